//! Disaster recovery, drilled on the real control plane: each case is a step of the README's
//! "Disaster recovery" runbook, done the way a user does it (kubectl, a backup YAML, etcdctl).
//!
//! - Everything but the CR deleted: the operator rebuilds it; with the generated Secrets kept
//!   or restored from a backup the cookie and CA are the same bytes, so the pods' checksum (and
//!   what peers and clients trust) does not move; sessions on kept claims survive.
//! - The namespace deleted and restored from Git plus a Secret backup: the Secrets are adopted.
//! - An etcd snapshot restored into a new data dir: the cluster comes back without a roll.
//!
//! The etcd drill stops the whole plane, so it takes [`PLANE`] exclusively; the others share it.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use erlmcp_e2e::env::pod_ready;
use erlmcp_e2e::http::{self, Response};
use erlmcp_e2e::TestEnv;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, ResourceExt};
use serde_json::{json, Value};
use tokio::sync::RwLock;

/// Held shared by the drills that need the plane up, exclusively by the one that stops it.
static PLANE: RwLock<()> = RwLock::const_new(());

const CHECKSUM: &str = "erlmcp.io/config-checksum";
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
const READY_WITHIN: Duration = Duration::from_secs(180);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// An operator process beside the cluster, watching `watch`, holding its lease in `home` (its
/// own namespace, as in a real install: deleting the watched namespace leaves it running).
struct Operator {
    child: Child,
    metrics: SocketAddr,
}

impl Operator {
    fn start(env: &TestEnv, watch: &str, home: &str, name: &str) -> Result<Operator> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let metrics: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let log = env.run_dir.join(format!("operator-{watch}-{name}.log"));
        let child = Command::new(env.bin_dir.join("erlmcp-operator"))
            .arg("run")
            .env("KUBECONFIG", &env.kubeconfig)
            .env("WATCH_NAMESPACES", watch)
            .env("POD_NAMESPACE", home)
            .env("POD_NAME", name)
            .env("METRICS_ADDR", metrics.to_string())
            .env("LOG_FORMAT", "text")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting erlmcp-operator")?;
        Ok(Operator { child, metrics })
    }

    /// Successful reconciles so far, from its `/metrics`.
    async fn reconciles(&self) -> Result<f64> {
        let Response { status, body, .. } =
            http::request(self.metrics, "GET", "/metrics", &[], None, HTTP_TIMEOUT).await?;
        ensure!(status == 200, "/metrics answered {status}");
        Ok(body
            .lines()
            .find(|l| l.starts_with("erlmcp_operator_reconciliations_total{result=\"success\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0))
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clusters(env: &TestEnv, ns: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("erlmcp.io", "v1alpha1", "ErlmcpCluster"),
        "erlmcpclusters",
    );
    Api::namespaced_with(env.client(), ns, &ar)
}

/// Ready for its current generation with `n` ready pods.
async fn wait_ready(env: &TestEnv, ns: &str, name: &str, n: i64) -> Result<Value> {
    env.wait_for(
        &format!("erlmcpcluster/{name} Ready with {n} pods"),
        READY_WITHIN,
        Some(ns),
        || async {
            let c = serde_json::to_value(clusters(env, ns).get(name).await?)?;
            let fresh = c["status"]["observedGeneration"] == c["metadata"]["generation"];
            let ready = c["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|x| x["type"] == "Ready" && x["status"] == "True")
            });
            Ok((fresh && ready && c["status"]["readyReplicas"] == n).then_some(c))
        },
    )
    .await
}

async fn pods(env: &TestEnv, ns: &str, name: &str) -> Result<Vec<Pod>> {
    let mut list = Api::<Pod>::namespaced(env.client(), ns)
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={name}")))
        .await?
        .items;
    list.sort_by_key(|p| p.name_any());
    Ok(list)
}

fn pod_addr(p: &Pod) -> Result<SocketAddr> {
    let ip = p
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .context("pod IP")?;
    Ok(format!("{ip}:8080").parse()?)
}

fn checksum_of(template_meta: &Value) -> String {
    template_meta["annotations"][CHECKSUM]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The StatefulSet's uid, generation and pod-template checksum, and each pod's (name, uid,
/// checksum): what must not move when nothing about the pods changed.
async fn rollout_state(env: &TestEnv, ns: &str, name: &str) -> Result<(Value, Vec<Value>)> {
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
async fn secret_data(env: &TestEnv, ns: &str, names: &[String]) -> Result<BTreeMap<String, Value>> {
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
fn backup_secrets(env: &TestEnv, ns: &str, names: &[String], file: &Path) -> Result<()> {
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

fn restore(env: &TestEnv, file: &Path) -> Result<()> {
    env.kubectl(&["apply", "-f", &file.display().to_string()])?;
    Ok(())
}

/// Each Secret carries a controller reference to the cluster `uid`.
async fn owned_by(env: &TestEnv, ns: &str, names: &[String], uid: &str) -> Result<bool> {
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

fn uid_of(c: &Value) -> String {
    c["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A session-revision client: `initialize`, then `tools/call echo` on any pod.
async fn mcp(addr: SocketAddr, session: Option<&str>, body: Value) -> Result<Response> {
    let mut headers = vec![("Accept", "application/json, text/event-stream")];
    if let Some(s) = session {
        headers.extend([
            ("Mcp-Session-Id", s),
            ("MCP-Protocol-Version", "2025-11-25"),
        ]);
    }
    http::request(addr, "POST", "/mcp", &headers, Some(&body), HTTP_TIMEOUT).await
}

async fn open_session(addr: SocketAddr) -> Result<String> {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "e2e-dr", "version": "1"}}});
    let r = mcp(addr, None, init).await?;
    ensure!(
        r.status == 200,
        "initialize answered {}: {}",
        r.status,
        r.body
    );
    let session = r
        .headers
        .get("mcp-session-id")
        .cloned()
        .context("no Mcp-Session-Id")?;
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let r = mcp(addr, Some(&session), note).await?;
    ensure!(
        r.status == 202,
        "notifications/initialized answered {}",
        r.status
    );
    Ok(session)
}

async fn echo(addr: SocketAddr, session: &str, message: &str) -> Result<()> {
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                      "params": {"name": "echo", "arguments": {"message": message}}});
    let r = mcp(addr, Some(session), call).await?;
    ensure!(
        r.status == 200,
        "tools/call on {addr} answered {}: {}",
        r.status,
        r.body
    );
    ensure!(r.body.contains(message), "echo on {addr}: {}", r.body);
    Ok(())
}

/// Deletes the cluster's children of these kinds (by the operator's labels) and these claims.
fn delete_children(
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

fn managed(name: &str) -> String {
    format!("app.kubernetes.io/managed-by=erlmcp-operator,app.kubernetes.io/instance={name}")
}

/// Waits until those children, the claims and the pods are gone (the operator stopped).
async fn wait_gone(
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
async fn wait_rebuilt(
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

const CHILD_KINDS: &str =
    "statefulsets,services,configmaps,serviceaccounts,roles,rolebindings,poddisruptionbudgets,networkpolicies";

fn generated_secrets(name: &str) -> Vec<String> {
    ["cookie", "ca", "tls"]
        .iter()
        .map(|s| format!("{name}-{s}"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Drills
// ---------------------------------------------------------------------------------------------

/// Drill 1. Everything but the CR deleted, twice: first with the generated Secrets and the
/// session claims kept (the StatefulSet is re-created; a session opened before lives on), then
/// everything including Secrets and claims, the Secrets restored from their backup while the
/// operator is stopped. Both times: Ready again, the same Secret bytes, the same checksum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_deleted_the_operator_rebuilds_with_the_same_cookie_and_ca() -> Result<()> {
    let _plane = PLANE.read().await;
    let env = TestEnv::get();
    env.install_crd()?;
    let ns = env.namespace("dr-children").await?;
    let home = env.namespace("dr-children-op").await?;
    let mut op = Operator::start(env, &ns, &home, "op-dr-1")?;
    let cr = "apiVersion: erlmcp.io/v1alpha1\nkind: ErlmcpCluster\nmetadata: {name: dr}\nspec: {replicas: 2, storage: {size: 1Gi}, tls: {operatorCa: {}}}\n";
    env.apply(&ns, cr).await?;
    let c = wait_ready(env, &ns, "dr", 2).await?;
    let secrets = generated_secrets("dr");
    let claims: Vec<String> = (0..2).map(|i| format!("sessions-dr-{i}")).collect();
    let data = secret_data(env, &ns, &secrets).await?;
    let (set, before) = rollout_state(env, &ns, "dr").await?;
    ensure!(
        set["checksum"].as_str().is_some_and(|s| !s.is_empty()),
        "{set}"
    );
    let ps = pods(env, &ns, "dr").await?;
    let session = open_session(pod_addr(&ps[0])?).await?;
    echo(pod_addr(&ps[0])?, &session, "before the disaster").await?;
    let backup = env.run_dir.join(format!("{}-secrets-backup.yaml", ns.name));
    backup_secrets(env, &ns, &secrets, &backup)?;

    // 1a. Secrets and claims kept; the operator, running, rebuilds at once.
    delete_children(env, &ns, "dr", CHILD_KINDS, &[])?;
    wait_rebuilt(env, &ns, "dr", &set, &before).await?;
    wait_ready(env, &ns, "dr", 2).await?;
    let (set_a, after_a) = rollout_state(env, &ns, "dr").await?;
    ensure!(set_a["uid"] != set["uid"], "the StatefulSet was re-created");
    ensure!(
        set_a["checksum"] == set["checksum"],
        "same config and Secrets: {set} -> {set_a}"
    );
    for (b, a) in before.iter().zip(&after_a) {
        ensure!(
            a["uid"] != b["uid"] && a["checksum"] == set["checksum"],
            "pods: {b} -> {a}"
        );
    }
    ensure!(
        secret_data(env, &ns, &secrets).await? == data,
        "the kept Secrets changed"
    );
    let ps = pods(env, &ns, "dr").await?;
    for p in &ps {
        // The owner (pod 0) restored it from its claim; the other pod forwards to it.
        echo(pod_addr(p)?, &session, "after the re-creation").await?;
    }

    // 1b. Everything, Secrets and claims too; the runbook restores the Secrets with the operator
    // stopped (a running one would generate a new cookie first), then starts it.
    drop(op);
    delete_children(env, &ns, "dr", &format!("{CHILD_KINDS},secrets"), &claims)?;
    wait_gone(env, &ns, "dr", &format!("{CHILD_KINDS},secrets"), &claims).await?;
    restore(env, &backup)?;
    op = Operator::start(env, &ns, &home, "op-dr-1b")?;
    wait_rebuilt(env, &ns, "dr", &set_a, &after_a).await?;
    wait_ready(env, &ns, "dr", 2).await?;
    let (set_b, _) = rollout_state(env, &ns, "dr").await?;
    ensure!(
        set_b["checksum"] == set["checksum"],
        "restored Secrets: {set} -> {set_b}"
    );
    ensure!(
        secret_data(env, &ns, &secrets).await? == data,
        "the restored Secrets were rewritten"
    );
    ensure!(
        owned_by(env, &ns, &secrets, &uid_of(&c)).await?,
        "the restored Secrets were not adopted"
    );
    ensure!(op.reconciles().await? >= 1.0);
    Ok(())
}

/// Drill 2. The namespace deleted; restored from Git (the CR) and the Secret backup, Secrets
/// first: the operator adopts them (its controller reference, their data kept) instead of
/// generating new ones, and the pods come back with the same checksum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_restored_from_git_and_a_secret_backup_adopts_the_secrets() -> Result<()> {
    let _plane = PLANE.read().await;
    let env = TestEnv::get();
    env.install_crd()?;
    let ns = env.namespace("dr-ns").await?;
    let home = env.namespace("dr-ns-op").await?;
    let _op = Operator::start(env, &ns, &home, "op-dr-2")?;
    let cr = "apiVersion: erlmcp.io/v1alpha1\nkind: ErlmcpCluster\nmetadata: {name: gitops}\nspec: {replicas: 2, tls: {operatorCa: {}}}\n";
    env.apply(&ns, cr).await?;
    let c = wait_ready(env, &ns, "gitops", 2).await?;
    let secrets = generated_secrets("gitops");
    let data = secret_data(env, &ns, &secrets).await?;
    let (set, _) = rollout_state(env, &ns, "gitops").await?;
    let backup = env.run_dir.join(format!("{}-secrets-backup.yaml", ns.name));
    backup_secrets(env, &ns, &secrets, &backup)?;

    env.kubectl(&["delete", "namespace", &ns, "--wait=false"])?;
    env.wait_for(
        "the namespace gone",
        Duration::from_secs(180),
        None,
        || async {
            Ok(env
                .kubectl(&["get", "namespace", &ns, "-o", "name"])
                .is_err()
                .then_some(()))
        },
    )
    .await?;

    env.kubectl(&["create", "namespace", &ns])?;
    restore(env, &backup)?;
    env.apply(&ns, cr).await?;
    let c2 = wait_ready(env, &ns, "gitops", 2).await?;
    ensure!(uid_of(&c2) != uid_of(&c), "a new CR");
    ensure!(
        secret_data(env, &ns, &secrets).await? == data,
        "the Secrets were regenerated"
    );
    ensure!(
        owned_by(env, &ns, &secrets, &uid_of(&c2)).await?,
        "the Secrets were not adopted"
    );
    let (set2, pods2) = rollout_state(env, &ns, "gitops").await?;
    ensure!(set2["checksum"] == set["checksum"], "{set} -> {set2}");
    ensure!(
        pods2.iter().all(|p| p["checksum"] == set["checksum"]),
        "{pods2:?}"
    );
    let events = env.kubectl(&[
        "-n",
        &ns,
        "get",
        "events",
        "--field-selector",
        "reason=Adopted",
        "-o",
        "name",
    ])?;
    ensure!(
        events.lines().count() >= secrets.len(),
        "Adopted events: {events}"
    );
    Ok(())
}

/// Drill 3. `etcdctl snapshot save` of the running plane; the plane stopped, its etcd data
/// deleted, the snapshot restored into a new data dir and every component restarted (the
/// operator too, as etcd's restore guidance says for every watching client). The cluster is
/// Ready again with its cookie, and nothing rolled: the same StatefulSet generation and
/// checksum, the same pods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_snapshot_restored_the_cluster_returns_without_a_roll() -> Result<()> {
    let env = TestEnv::get();
    env.install_crd()?;
    let plane = env
        .local_plane
        .clone()
        .context("this drill restores the local plane's etcd: run it without KUBECONFIG")?;
    let ns = env.namespace("dr-etcd").await?;
    let home = env.namespace("dr-etcd-op").await?;
    let op = Operator::start(env, &ns, &home, "op-dr-3")?;
    env.apply(
        &ns,
        "apiVersion: erlmcp.io/v1alpha1\nkind: ErlmcpCluster\nmetadata: {name: snap}\nspec: {replicas: 2}\n",
    )
    .await?;
    wait_ready(env, &ns, "snap", 2).await?;
    let secrets = vec!["snap-cookie".to_string()];
    let data = secret_data(env, &ns, &secrets).await?;
    let before = rollout_state(env, &ns, "snap").await?;

    let _plane = PLANE.write().await;
    let snapshot = env.run_dir.join("etcd-snapshot.db");
    etcd_script(env, "snapshot", &plane, &snapshot).await?;
    drop(op);
    etcd_script(env, "restore", &plane, &snapshot).await?;
    let restored_at = chrono::Utc::now();
    let op = Operator::start(env, &ns, &home, "op-dr-3-restored")?;
    // The restored status said Ready before the disaster: wait for both pods to report again.
    env.wait_for(
        "both members heard from after the restore",
        READY_WITHIN,
        Some(&ns),
        || async {
            let c = serde_json::to_value(clusters(env, &ns).get("snap").await?)?;
            let fresh = c["status"]["members"].as_array().is_some_and(|ms| {
                ms.len() == 2
                    && ms.iter().all(|m| {
                        m["ready"] == true
                            && m["lastHeartbeat"]
                                .as_str()
                                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                                .is_some_and(|t| t > restored_at)
                    })
            });
            Ok(fresh.then_some(()))
        },
    )
    .await?;
    wait_ready(env, &ns, "snap", 2).await?;
    env.wait_for(
        "a reconcile after the restore",
        Duration::from_secs(60),
        Some(&ns),
        || async { Ok((op.reconciles().await? >= 1.0).then_some(())) },
    )
    .await?;
    ensure!(
        secret_data(env, &ns, &secrets).await? == data,
        "the cookie changed"
    );
    let after = rollout_state(env, &ns, "snap").await?;
    ensure!(after == before, "the pods rolled: {before:?} -> {after:?}");
    Ok(())
}

async fn etcd_script(env: &TestEnv, action: &str, plane: &Path, file: &Path) -> Result<()> {
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
