//! `erlmcp-operator render -f cluster.yaml`: every object the operator would apply, offline.

use std::fmt::Write as _;

use erlmcp_crds::strict;
use erlmcp_crds::validate::{validate, FieldError};
use erlmcp_crds::ErlmcpCluster;
use serde::Deserialize;

use crate::desired::{build, BuildContext, ServerCapabilities};

/// Why rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("document {doc}: not an ErlmcpCluster: {source}")]
    Parse {
        doc: usize,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{}", format_invalid(.0))]
    Invalid(Vec<(String, Vec<FieldError>)>),
    #[error("no ErlmcpCluster in the input")]
    Empty,
}

fn format_invalid(all: &[(String, Vec<FieldError>)]) -> String {
    let mut s = String::new();
    for (name, errs) in all {
        let _ = writeln!(s, "ErlmcpCluster {name:?} is invalid:");
        for e in errs {
            let _ = writeln!(s, "  - {e}");
        }
    }
    s.trim_end().to_string()
}

/// Parse every YAML document of `input` as an ErlmcpCluster (documents of other kinds are an
/// error), each with the paths of the fields it does not know.
pub fn parse_clusters(input: &str) -> Result<Vec<(ErlmcpCluster, Vec<String>)>, RenderError> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(input).enumerate() {
        let value = serde_yaml::Value::deserialize(doc)
            .map_err(|source| RenderError::Parse { doc: i + 1, source })?;
        if value.is_null() {
            continue;
        }
        let decoded = strict::cluster_from_yaml_value(value)
            .map_err(|source| RenderError::Parse { doc: i + 1, source })?;
        let mut c = decoded.value;
        c.metadata.namespace.get_or_insert_with(|| "default".into());
        out.push((c, decoded.unknown));
    }
    if out.is_empty() {
        return Err(RenderError::Empty);
    }
    Ok(out)
}

/// A field this operator does not know: a typo, or a field of a newer CRD. The operator itself
/// ignores it (so an upgrade or rollback cannot stop it); offline, it is refused.
fn unknown_field(path: String) -> FieldError {
    FieldError {
        path,
        message: "unknown field (a typo, or a field of a newer ErlmcpCluster CRD than this \
                  operator; the operator ignores it)"
            .into(),
    }
}

/// Render as multi-document YAML, for the given server capabilities.
pub fn render(input: &str, capabilities: ServerCapabilities) -> Result<String, RenderError> {
    let clusters = parse_clusters(input)?;
    let invalid: Vec<_> = clusters
        .iter()
        .map(|(c, unknown)| {
            let mut errs: Vec<FieldError> = unknown.iter().cloned().map(unknown_field).collect();
            errs.extend(validate(c));
            (c.metadata.name.clone().unwrap_or_default(), errs)
        })
        .filter(|(_, e)| !e.is_empty())
        .collect();
    if !invalid.is_empty() {
        return Err(RenderError::Invalid(invalid));
    }
    let ctx = BuildContext::new(capabilities);
    let mut out = String::new();
    for (c, _) in &clusters {
        let desired = build(c, &ctx);
        for note in &desired.skipped {
            let _ = writeln!(out, "# skipped: {note}");
        }
        for child in desired.all() {
            out.push_str("---\n");
            out.push_str(&serde_yaml::to_string(&child.object).expect("objects serialise"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_renders() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/samples");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let out = render(&text, ServerCapabilities::default())
                .unwrap_or_else(|e| panic!("{} does not render: {e}", path.display()));
            // Every rendered document parses back as a Kubernetes object with a kind and a name.
            for doc in serde_yaml::Deserializer::from_str(&out) {
                let v = serde_yaml::Value::deserialize(doc).unwrap();
                assert!(
                    v.get("kind").is_some() && v["metadata"].get("name").is_some(),
                    "{v:?}"
                );
            }
            assert!(out.contains("kind: StatefulSet"));
            seen += 1;
        }
        assert!(seen >= 5, "expected the five samples, saw {seen}");
    }

    #[test]
    fn invalid_spec_lists_every_problem_with_its_path() {
        let err = render(
            "apiVersion: erlmcp.io/v1alpha1\nkind: ErlmcpCluster\nmetadata: {name: bad}\nspec:\n  replicas: -1\n  autoscaling: {minReplicas: 5, maxReplicas: 2, targetCPUUtilizationPercentage: 50}\n",
            ServerCapabilities::default(),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, RenderError::Invalid(_)));
        assert!(text.contains("spec.replicas: must be 0 or more"), "{text}");
        assert!(
            text.contains("spec.autoscaling.minReplicas: (5) must not exceed maxReplicas (2)"),
            "{text}"
        );
    }

    #[test]
    fn typos_are_refused_not_ignored() {
        let err = render(
            "apiVersion: erlmcp.io/v1alpha1\nkind: ErlmcpCluster\nmetadata: {name: t}\nspec:\n  replica: 3\n",
            ServerCapabilities::default(),
        )
        .unwrap_err();
        assert!(matches!(err, RenderError::Invalid(_)), "{err}");
        assert!(
            err.to_string().contains("spec.replica: unknown field"),
            "{err}"
        );
    }
}
