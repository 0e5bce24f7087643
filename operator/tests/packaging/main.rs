//! Packaging: the Helm chart (`charts/erlmcp-operator`), the kustomize bases (`config/`), the
//! Dockerfiles, and the CRD copies. Uses the real tools: Helm and kubectl from
//! `scripts/tools.sh`, hadolint and kubernetes-validate from `operator/tests/packaging-tools.sh`
//! (installed once, cached). A missing tool fails the test; nothing is skipped.
//!
//! The RBAC test runs the real operator binary against the fake API server the mock API tests use
//! (`operator/tests/support/`) and compares every call it makes with what the chart grants, both
//! ways.
//!
//! One module per concern; this file holds what they share (paths, tools, YAML helpers).

#[path = "../support/mod.rs"]
mod support;

mod chart;
mod crd;
mod dockerfiles;
mod kustomize;
mod rbac;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use erlmcp_operator::desired::{self, BuildContext, ServerCapabilities};
use serde_json::{json, Value};

const CHART: &str = "charts/erlmcp-operator";
const RELEASE: &str = "erlmcp-operator";
const NAMESPACE: &str = "erlmcp-system";
/// The user the images run as and the StatefulSet's runAsUser.
const UID: i64 = 10001;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace root")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// Run a command; on failure panic with everything it printed.
fn run(cmd: &mut Command) -> String {
    let (ok, out, err) = try_run(cmd);
    assert!(ok, "{cmd:?} failed\nstdout:\n{out}\nstderr:\n{err}");
    out
}

fn try_run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd
        .current_dir(root())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn last_line(s: &str) -> PathBuf {
    PathBuf::from(s.lines().last().unwrap_or_default().trim())
}

/// helm or kubectl, installed (once, cached) by scripts/tools.sh.
fn tool(name: &'static str) -> PathBuf {
    static TOOLS: OnceLock<Mutex<BTreeMap<&'static str, PathBuf>>> = OnceLock::new();
    let tools = TOOLS.get_or_init(Default::default);
    let mut tools = tools.lock().unwrap_or_else(|e| e.into_inner());
    tools
        .entry(name)
        .or_insert_with(|| {
            let p = last_line(&run(Command::new("bash").args(["scripts/tools.sh", name])));
            assert!(p.is_file(), "scripts/tools.sh {name} gave no binary: {p:?}");
            p
        })
        .clone()
}

/// hadolint or kubernetes-validate, installed (once, cached) by packaging-tools.sh.
fn lint_tool(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        last_line(&run(
            Command::new("bash").arg("operator/tests/packaging-tools.sh")
        ))
    });
    let p = dir.join(name);
    assert!(p.is_file(), "{name} is not installed in {dir:?}");
    p
}

fn yaml_docs(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde_yaml::Value::deserialize(d).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .map(|v| serde_json::to_value(v).expect("YAML as JSON"))
        .collect()
}

/// `helm template` of the chart as release erlmcp-operator in erlmcp-system.
fn helm_template(args: &[&str]) -> Vec<Value> {
    yaml_docs(&run(Command::new(tool("helm"))
        .args(["template", RELEASE, CHART, "--namespace", NAMESPACE])
        .args(args)))
}

/// The values files the chart is tested with: the defaults and every example in ci/.
fn values_files() -> Vec<Option<String>> {
    let mut files: Vec<Option<String>> = vec![None];
    let mut ci: Vec<String> = std::fs::read_dir(root().join(CHART).join("ci"))
        .expect("chart ci/ dir")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| format!("{CHART}/ci/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    ci.sort();
    assert!(ci.len() >= 3, "expected values examples in {CHART}/ci");
    files.extend(ci.into_iter().map(Some));
    files
}

fn values_args(f: &Option<String>) -> Vec<&str> {
    f.as_deref().map(|f| vec!["-f", f]).unwrap_or_default()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
}

fn kinds(docs: &[Value]) -> Vec<String> {
    docs.iter()
        .map(|d| d["kind"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn env_of(deploy: &Value) -> BTreeMap<String, Value> {
    deploy["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e.get("value").cloned().unwrap_or(Value::Null),
            )
        })
        .collect()
}

fn drop_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), drop_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(drop_nulls).collect()),
        // 1.0 and 1 are the same number to the API server (YAML writers differ).
        Value::Number(n) if n.is_f64() && n.as_f64().is_some_and(|f| f.fract() == 0.0) => {
            json!(n.as_f64().unwrap() as i64)
        }
        other => other.clone(),
    }
}

/// Deserialize into the k8s-openapi type and back: a misspelt or misplaced field is dropped on
/// the way and shows as a difference; a wrong type fails to parse.
fn typed_roundtrip<K>(doc: &Value) -> Result<(), String>
where
    K: serde::Serialize + serde::de::DeserializeOwned,
{
    let typed: K = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let back = drop_nulls(&serde_json::to_value(&typed).map_err(|e| e.to_string())?);
    let orig = drop_nulls(doc);
    if back != orig {
        return Err(format!(
            "fields the type does not know or normalises differently:\nrendered: {orig:#}\ntyped: {back:#}"
        ));
    }
    Ok(())
}

fn check_typed(doc: &Value) -> Result<(), String> {
    use k8s_openapi::api::{apps::v1 as apps, core::v1 as core, rbac::v1 as rbac};
    match (doc["apiVersion"].as_str(), doc["kind"].as_str()) {
        (Some("v1"), Some("ServiceAccount")) => typed_roundtrip::<core::ServiceAccount>(doc),
        (Some("v1"), Some("Service")) => typed_roundtrip::<core::Service>(doc),
        (Some("v1"), Some("ConfigMap")) => typed_roundtrip::<core::ConfigMap>(doc),
        (Some("v1"), Some("Namespace")) => typed_roundtrip::<core::Namespace>(doc),
        (Some("apps/v1"), Some("Deployment")) => typed_roundtrip::<apps::Deployment>(doc),
        (Some("rbac.authorization.k8s.io/v1"), Some("ClusterRole")) => {
            typed_roundtrip::<rbac::ClusterRole>(doc)
        }
        (Some("rbac.authorization.k8s.io/v1"), Some("ClusterRoleBinding")) => {
            typed_roundtrip::<rbac::ClusterRoleBinding>(doc)
        }
        (Some("rbac.authorization.k8s.io/v1"), Some("Role")) => typed_roundtrip::<rbac::Role>(doc),
        (Some("rbac.authorization.k8s.io/v1"), Some("RoleBinding")) => {
            typed_roundtrip::<rbac::RoleBinding>(doc)
        }
        (Some("coordination.k8s.io/v1"), Some("Lease")) => {
            typed_roundtrip::<k8s_openapi::api::coordination::v1::Lease>(doc)
        }
        (Some("monitoring.coreos.com/v1"), Some("ServiceMonitor" | "PrometheusRule")) => Ok(()),
        other => Err(format!("unexpected kind {other:?}")),
    }
}

/// Metric names the products export: the operator's (from its registry) and the data plane's
/// (the names in its source; the operator crate does not depend on the data plane).
fn exported_metrics() -> BTreeSet<String> {
    let m = erlmcp_operator::metrics::Metrics::new();
    m.reconciliations.with_label_values(&["success"]).inc();
    m.errors.with_label_values(&["ApplyFailed"]).inc();
    m.duration.observe(0.1);
    let mut names: BTreeSet<String> = m
        .render()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .flat_map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next().unwrap_or_default().to_string();
            let histogram = it.next() == Some("histogram");
            let mut v = vec![name.clone()];
            if histogram {
                v.extend(["_bucket", "_sum", "_count"].map(|s| format!("{name}{s}")));
            }
            v
        })
        .collect();
    let re = regex_lite_names(&source_text("dataplane/src"));
    names.extend(re);
    names
}

fn source_text(dir: &str) -> String {
    fn walk(p: &Path, out: &mut String) {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    let mut s = String::new();
    walk(&root().join(dir), &mut s);
    s
}

/// Every `erlmcp_...` identifier in a text (metric names in PromQL or source).
fn regex_lite_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("erlmcp_") {
        let start = i + pos;
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_lowercase()
                || bytes[end] == b'_'
                || bytes[end].is_ascii_digit())
        {
            end += 1;
        }
        if boundary && end > start + 7 {
            out.insert(text[start..end].to_string());
        }
        i = end.max(start + 1);
    }
    out
}
