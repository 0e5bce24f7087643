//! The disaster-recovery drills' helpers: an operator process, waiting on the cluster, the
//! runbook's Secret backup and restore, an MCP session client, and the etcd script.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
pub use erlmcp_e2e::cluster::{self, clusters, pod_addr, pods};
use erlmcp_e2e::env::pod_ready;
use erlmcp_e2e::mcp;
pub use erlmcp_e2e::operator::Operator;
use erlmcp_e2e::TestEnv;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::{Api, ResourceExt};
use serde_json::{json, Value};

const CHECKSUM: &str = "erlmcp.io/config-checksum";
pub const READY_WITHIN: Duration = Duration::from_secs(180);

// ---------------------------------------------------------------------------------------------

pub fn checksum_of(template_meta: &Value) -> String {
    template_meta["annotations"][CHECKSUM]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The StatefulSet's uid, generation and pod-template checksum, and each pod's (name, uid,
/// checksum): what must not move when nothing about the pods changed.
pub async fn rollout_state(env: &TestEnv, ns: &str, name: &str) -> Result<(Value, Vec<Value>)> {
    let sts = serde_json::to_value(
        Api::<StatefulSet>::namespaced(env.client(), ns)
            .get(name)
            .await?,
    )?;
    let set = json!({
        "uid": sts["metadata"]["uid"],
        "generation": sts["metadata"]["generation"],
        "checksum": checksum_of(&sts["spec"]["template"]["metadata"]),
    });
    let mut out = Vec::new();
    for p in pods(env, ns, name).await? {
        let v = serde_json::to_value(&p)?;
        out.push(
            json!({"name": p.name_any(), "uid": p.uid(), "checksum": checksum_of(&v["metadata"])}),
        );
    }
    Ok((set, out))
}

/// `.data` of each Secret, by name (base64, byte for byte as stored).
pub async fn secret_data(
    env: &TestEnv,
    ns: &str,
    names: &[String],
) -> Result<BTreeMap<String, Value>> {
    let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(env.client(), ns);
    let mut out = BTreeMap::new();
    for n in names {
        let s = serde_json::to_value(api.get(n).await?)?;
        ensure!(s["data"].is_object(), "Secret {n} has no data");
        out.insert(n.clone(), s["data"].clone());
    }
    Ok(out)
}

/// The runbook's backup: `kubectl get secret ... -o json`, stripped of what belongs to the
/// object's life in this cluster (uid, resourceVersion, ownerReferences, managedFields,
/// creationTimestamp), as a YAML List that `kubectl apply -f` restores.
pub fn backup_secrets(env: &TestEnv, ns: &str, names: &[String], file: &Path) -> Result<()> {
    let mut args = vec!["-n", ns, "get", "secret"];
    args.extend(names.iter().map(String::as_str));
    args.extend(["-o", "json"]);
    let mut list: Value = serde_json::from_str(&env.kubectl(&args)?)?;
    let items = list["items"].as_array_mut().context("a List")?;
    ensure!(
        items.len() == names.len(),
        "backed up {} of {names:?}",
        items.len()
    );
    for item in items.iter_mut() {
        let meta = item["metadata"].as_object_mut().context("metadata")?;
        for key in [
            "uid",
            "resourceVersion",
            "ownerReferences",
            "managedFields",
            "creationTimestamp",
        ] {
            meta.remove(key);
        }
    }
    std::fs::write(file, serde_yaml::to_string(&list)?)?;
    Ok(())
}

pub fn restore(env: &TestEnv, file: &Path) -> Result<()> {
    env.kubectl(&["apply", "-f", &file.display().to_string()])?;
    Ok(())
}

/// Each Secret carries a controller reference to the cluster `uid`.
pub async fn owned_by(env: &TestEnv, ns: &str, names: &[String], uid: &str) -> Result<bool> {
    let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(env.client(), ns);
    for n in names {
        let owned = api
            .get(n)
            .await?
            .owner_references()
            .iter()
            .any(|r| r.uid == uid && r.controller == Some(true) && r.kind == "ErlmcpCluster");
        if !owned {
            return Ok(false);
        }
    }
    Ok(true)
}

pub fn uid_of(c: &Value) -> String {
    c["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// `tools/call echo` in `session` on the pod at `addr`; the answer must carry `message`.
pub async fn echo(addr: SocketAddr, session: &str, message: &str) -> Result<()> {
    let result = mcp::session_echo(addr, session, 7, message).await?;
    ensure!(
        mcp::echoed(&result).contains(message),
        "echo on {addr}: {result}"
    );
    Ok(())
}

/// Ready for its current generation with `n` ready pods, within [`READY_WITHIN`].
pub async fn wait_ready(env: &TestEnv, ns: &str, name: &str, n: i64) -> Result<Value> {
    cluster::wait_ready(env, ns, name, n, READY_WITHIN).await
}

/// A session-revision client on the pod at `addr`.
pub async fn open_session(addr: SocketAddr) -> Result<String> {
    mcp::initialize(addr, "e2e-dr").await
}

/// Deletes the cluster's children of these kinds (by the operator's labels) and these claims.
pub fn delete_children(
    env: &TestEnv,
    ns: &str,
    name: &str,
    kinds: &str,
    claims: &[String],
) -> Result<()> {
    env.kubectl(&[
        "-n",
        ns,
        "delete",
        kinds,
        "-l",
        &managed(name),
        "--wait=false",
    ])?;
    for c in claims {
        env.kubectl(&["-n", ns, "delete", "pvc", c, "--wait=false"])?;
    }
    Ok(())
}

pub fn managed(name: &str) -> String {
    format!("app.kubernetes.io/managed-by=erlmcp-operator,app.kubernetes.io/instance={name}")
}

/// Waits until those children, the claims and the pods are gone (the operator stopped).
pub async fn wait_gone(
    env: &TestEnv,
    ns: &str,
    name: &str,
    kinds: &str,
    claims: &[String],
) -> Result<()> {
    env.wait_for(
        "the children and pods gone",
        Duration::from_secs(120),
        Some(ns),
        || async {
            let left =
                env.kubectl(&["-n", ns, "get", kinds, "-l", &managed(name), "-o", "name"])?;
            let pods_left = pods(env, ns, name).await?.len();
            let claims_left = claims
                .iter()
                .filter(|c| {
                    env.kubectl(&["-n", ns, "get", "pvc", c.as_str(), "-o", "name"])
                        .is_ok()
                })
                .count();
            Ok((left.trim().is_empty() && pods_left == 0 && claims_left == 0).then_some(()))
        },
    )
    .await
}

/// Waits for a StatefulSet other than `set` with as many ready pods, none of them in `before`
/// (the cluster's status may still say Ready from before the deletion).
pub async fn wait_rebuilt(
    env: &TestEnv,
    ns: &str,
    name: &str,
    set: &Value,
    before: &[Value],
) -> Result<()> {
    env.wait_for(
        "the StatefulSet and its pods re-created and ready",
        READY_WITHIN,
        Some(ns),
        || async {
            let Ok((set_now, pods_now)) = rollout_state(env, ns, name).await else {
                return Ok(None);
            };
            let ready = pods(env, ns, name)
                .await?
                .iter()
                .filter(|p| pod_ready(p))
                .count();
            let fresh = set_now["uid"] != set["uid"]
                && pods_now.len() == before.len()
                && ready == before.len()
                && pods_now
                    .iter()
                    .all(|p| before.iter().all(|b| b["uid"] != p["uid"]));
            Ok(fresh.then_some(()))
        },
    )
    .await
}

pub const CHILD_KINDS: &str =
    "statefulsets,services,configmaps,serviceaccounts,roles,rolebindings,poddisruptionbudgets,networkpolicies";

pub fn generated_secrets(name: &str) -> Vec<String> {
    ["cookie", "ca", "tls"]
        .iter()
        .map(|s| format!("{name}-{s}"))
        .collect()
}

pub async fn etcd_script(env: &TestEnv, action: &str, plane: &Path, file: &Path) -> Result<()> {
    let script: PathBuf = env.workspace.join("e2e/scripts/k8s-etcd.sh");
    let (action, plane, file) = (action.to_string(), plane.to_path_buf(), file.to_path_buf());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&script)
            .arg(&action)
            .arg(&plane)
            .arg(&file)
            .stderr(Stdio::inherit())
            .output()
    })
    .await??;
    if !out.status.success() {
        bail!(
            "e2e/scripts/k8s-etcd.sh failed ({}); see its output above",
            out.status
        );
    }
    Ok(())
}
