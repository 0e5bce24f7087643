//! Decoding that tolerates fields it does not know and says which ones it dropped.
//!
//! The types accept unknown fields so that one object written against a newer CRD (or a config
//! file from a newer operator) cannot break a whole watch or crash a pod after an upgrade or a
//! rollback. Where a human is the reader (`render`, validation, the data plane's start-up log),
//! these functions return the dropped fields, as paths, to refuse or warn about.

use serde::de::DeserializeOwned;

use crate::ErlmcpCluster;

/// A decoded value and the paths of the fields that were dropped (`spec.replica`).
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded<T> {
    pub value: T,
    pub unknown: Vec<String>,
}

/// Decode a YAML value.
pub fn from_yaml_value<T: DeserializeOwned>(
    value: serde_yaml::Value,
) -> Result<Decoded<T>, serde_yaml::Error> {
    let mut unknown = Vec::new();
    let value = serde_ignored::deserialize(value, |path| unknown.push(path_string(&path)))?;
    Ok(Decoded { value, unknown })
}

/// Decode an ErlmcpCluster. Its derived type reads `apiVersion` and `kind` without keeping
/// them, so they are not reported.
pub fn cluster_from_yaml_value(
    value: serde_yaml::Value,
) -> Result<Decoded<ErlmcpCluster>, serde_yaml::Error> {
    let mut d: Decoded<ErlmcpCluster> = from_yaml_value(value)?;
    d.unknown.retain(|p| p != "apiVersion" && p != "kind");
    Ok(d)
}

/// Decode YAML text (one document).
pub fn from_yaml_str<T: DeserializeOwned>(text: &str) -> Result<Decoded<T>, serde_yaml::Error> {
    let mut unknown = Vec::new();
    let value = serde_ignored::deserialize(serde_yaml::Deserializer::from_str(text), |path| {
        unknown.push(path_string(&path))
    })?;
    Ok(Decoded { value, unknown })
}

/// The path as the validation messages write it: `mcp.tools[0].bogus`.
fn path_string(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", path_string(parent)),
        Path::Map { parent, key } => match path_string(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => path_string(parent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DataplaneConfig;

    const NEWER: &str = "apiVersion: erlmcp.io/v1alpha1\nkind: ErlmcpCluster\nmetadata: {name: n, namespace: d}\nspec:\n  replicas: 2\n  fromTheFuture: {a: 1}\n  mcp: {transports: {port: 8080, futureKnob: true}}\n";

    #[test]
    fn a_cluster_from_a_newer_crd_decodes_and_names_what_it_dropped() {
        let d = cluster_from_yaml_value(serde_yaml::from_str(NEWER).unwrap()).unwrap();
        assert_eq!(d.value.spec.replicas, 2);
        assert_eq!(
            d.unknown,
            vec!["spec.fromTheFuture", "spec.mcp.transports.futureKnob"]
        );
    }

    #[test]
    fn the_watch_decodes_a_newer_object_instead_of_failing_the_list() {
        // What the controller's LIST does: plain serde, no strictness. One unknown field must
        // not fail the whole list.
        let list = serde_json::json!({"items": [serde_yaml::from_str::<serde_json::Value>(NEWER).unwrap()]});
        let items: Vec<ErlmcpCluster> = serde_json::from_value(list["items"].clone()).unwrap();
        assert_eq!(items[0].spec.replicas, 2);
    }

    #[test]
    fn config_keys_from_a_newer_operator_are_reported_not_fatal() {
        let d: Decoded<DataplaneConfig> = from_yaml_str(
            "newTopLevel: 1\nmcp:\n  tools:\n    - name: x\n      backend: {}\n      newKnob: 1\n",
        )
        .unwrap();
        assert_eq!(d.value.mcp.tools[0].name, "x");
        assert_eq!(d.unknown, vec!["newTopLevel", "mcp.tools[0].newKnob"]);
    }
}
