//! The current-server checks' helpers: the server's minor version, `kubectl` with stdin that
//! keeps its warnings, the CRD's schema and its CEL rules as written in the repository, the
//! basic sample, and JSON merging and trimming for comparing what the server stored.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{ensure, Context, Result};
use erlmcp_e2e::TestEnv;
use serde_json::{json, Value};

/// The minor version of the API server under test (`1.37.2` gives 37).
pub async fn server_minor(env: &TestEnv) -> Result<u32> {
    let v = env.client().apiserver_version().await?;
    ensure!(
        v.major == "1",
        "unexpected server major version {:?}",
        v.major
    );
    v.minor
        .trim_end_matches('+')
        .parse()
        .with_context(|| format!("server minor version {:?}", v.minor))
}

/// What one `kubectl` run gave: unlike [`TestEnv::kubectl`], keeps stderr on success too
/// (warnings are printed there).
pub struct KubectlRun {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// `kubectl args...` with `input` on stdin.
pub fn kubectl_stdin(env: &TestEnv, args: &[&str], input: &str) -> Result<KubectlRun> {
    let mut child = Command::new(&env.kubectl)
        .env("KUBECONFIG", &env.kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running kubectl")?;
    child
        .stdin
        .take()
        .context("kubectl stdin")?
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    Ok(KubectlRun {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// The CRD's schema of `spec` as written in the repository.
pub fn crd_openapi(env: &TestEnv) -> Result<Value> {
    let text = std::fs::read_to_string(env.workspace.join("crds/erlmcp.io_erlmcpclusters.yaml"))?;
    let crd: Value = serde_yaml::from_str(&text)?;
    Ok(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone())
}

/// Every `(schema path, message)` of the CEL rules under `node`; list items are `[]`.
pub fn cel_rules(node: &Value, path: &str, out: &mut BTreeSet<(String, String)>) {
    for rule in node["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let message = rule["message"].as_str().unwrap_or_default().to_string();
        out.insert((path.to_string(), message));
    }
    if let Some(props) = node["properties"].as_object() {
        for (name, child) in props {
            let p = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            cel_rules(child, &p, out);
        }
    }
    if node["items"].is_object() {
        cel_rules(&node["items"], &format!("{path}[]"), out);
    }
    if node["additionalProperties"].is_object() {
        cel_rules(&node["additionalProperties"], &format!("{path}{{}}"), out);
    }
}

/// `config/samples/basic.yaml` renamed to `name`: the valid minimal object every case starts from.
pub fn basic_sample(env: &TestEnv, name: &str) -> Result<Value> {
    let text = std::fs::read_to_string(env.workspace.join("config/samples/basic.yaml"))?;
    let mut obj: Value = serde_yaml::from_str(&text)?;
    obj["metadata"]["name"] = json!(name);
    Ok(obj)
}

/// RFC 7386 merge of `patch` into `target`.
pub fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// Keeps in `seen` only the keys `like` has (recursively, lists item by item).
pub fn retain_like(seen: &mut Value, like: &Value) {
    match (seen, like) {
        (Value::Object(s), Value::Object(l)) => {
            s.retain(|k, _| l.contains_key(k));
            for (k, v) in s.iter_mut() {
                retain_like(v, &l[k]);
            }
        }
        (Value::Array(s), Value::Array(l)) => {
            for (sv, lv) in s.iter_mut().zip(l) {
                retain_like(sv, lv);
            }
        }
        _ => {}
    }
}

pub fn strip_nulls(v: &mut Value) {
    if let Value::Object(m) = v {
        m.retain(|_, x| !x.is_null());
        m.values_mut().for_each(strip_nulls);
    }
}
