//! This pod's entry in `ErlmcpCluster.status.members`, written by server-side apply with the
//! pod's own field manager (`erlmcp-member-<pod>`). `members` is a list-map keyed by name, so
//! each pod owns exactly its entry and never touches the others' or the operator's fields.
//!
//! Written when the view changes (readiness, the peers it reaches, the expected size), at most
//! every [`MIN_GAP`], and otherwise on a jittered heartbeat of about 30 s (which also refreshes
//! the session count). 404 (the cluster is gone) and 403 (RBAC) back off up to 5 minutes and
//! are logged once per episode. On a clean shutdown the entry is removed: an apply with an
//! empty `members` list under the same manager releases it.
//!
//! Kubernetes before 1.21 cannot build the server-side-apply schema of a CRD that has
//! int-or-string fields (kubernetes#90902: "error building openapi models ... anyOf"), and then
//! treats every list as atomic: each pod's apply would replace the others' entries. On those
//! servers the entry is written by read-modify-write instead: a merge patch of the whole list
//! with the read resourceVersion as precondition, retried on conflict.

use std::sync::Arc;
use std::time::Duration;

use erlmcp_crds::{ErlmcpCluster, MemberStatus};
use kube::api::{Api, Patch, PatchParams};
use rand::Rng;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::ClusterNode;
use crate::transport::Shared;

pub const HEARTBEAT: Duration = Duration::from_secs(30);
pub const MIN_GAP: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

pub fn field_manager(member: &str) -> String {
    format!("erlmcp-member-{member}")
}

/// The apply body for this member (or for none: removal).
pub fn apply_body(member: Option<&MemberStatus>) -> Value {
    json!({
        "apiVersion": "erlmcp.io/v1alpha1",
        "kind": "ErlmcpCluster",
        "status": { "members": member.into_iter().collect::<Vec<_>>() },
    })
}

/// The entry as the node sees itself now (heartbeat stamped by the caller).
pub fn entry(node: &ClusterNode) -> MemberStatus {
    let peers = node.reachable_members();
    MemberStatus {
        name: node.settings.member.clone(),
        ready: node.lifecycle().is_ready() && !node.is_leaving(),
        version: Some(env!("CARGO_PKG_VERSION").to_string()),
        // A count and a hash, not the names: the status must stay small at hundreds of pods.
        peers: Vec::new(),
        peer_count: Some(peers.len() as i32),
        view_hash: Some(erlmcp_crds::membership_hash(
            peers
                .iter()
                .map(String::as_str)
                .chain([node.settings.member.as_str()]),
        )),
        expected_peers: Some(node.expected().saturating_sub(1) as i32),
        sessions: node.sessions() as i64,
        last_heartbeat: None,
    }
}

fn jittered(d: Duration) -> Duration {
    let f: f64 = rand::rng().random_range(0.8..1.2);
    d.mul_f64(f)
}

/// How this server lets a pod write its own entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Server-side apply of the one entry (list-map semantics).
    Apply,
    /// Read, replace the entry, merge-patch the list with a resourceVersion precondition.
    ReadModifyWrite,
}

/// Servers before 1.21 lose list-map semantics for CRDs with int-or-string fields.
pub fn write_mode(major: &str, minor: &str) -> WriteMode {
    let num = |s: &str| s.trim_end_matches('+').parse::<u32>().unwrap_or(u32::MAX);
    if num(major) == 1 && num(minor) < 21 {
        WriteMode::ReadModifyWrite
    } else {
        WriteMode::Apply
    }
}

struct Target {
    api: Api<ErlmcpCluster>,
    name: String,
    member: String,
    manager: String,
    mode: WriteMode,
}

fn target(node: &ClusterNode, client: kube::Client) -> Option<Target> {
    let name = node.settings.cluster_name.clone()?;
    let ns = node.settings.namespace.clone()?;
    Some(Target {
        api: Api::namespaced(client, &ns),
        name,
        member: node.settings.member.clone(),
        manager: field_manager(&node.settings.member),
        mode: WriteMode::Apply,
    })
}

/// Ask the server which write mode it needs (Apply when it cannot be told).
async fn detect_mode(client: &kube::Client) -> WriteMode {
    match client.apiserver_version().await {
        Ok(v) => write_mode(&v.major, &v.minor),
        Err(_) => WriteMode::Apply,
    }
}

/// The members list with this member's entry replaced (or removed), sorted by name.
pub fn replace_entry(
    mut members: Vec<MemberStatus>,
    name: &str,
    m: Option<&MemberStatus>,
) -> Vec<MemberStatus> {
    members.retain(|x| x.name != name);
    members.extend(m.cloned());
    members.sort_by(|a, b| a.name.cmp(&b.name));
    members
}

async fn apply(t: &Target, m: Option<&MemberStatus>) -> Result<ErlmcpCluster, kube::Error> {
    if t.mode == WriteMode::Apply {
        return t
            .api
            .patch_status(
                &t.name,
                &PatchParams::apply(&t.manager).force(),
                &Patch::Apply(apply_body(m)),
            )
            .await;
    }
    let mut attempt = 0;
    loop {
        let current = t.api.get_status(&t.name).await?;
        let members = replace_entry(
            current.status.map(|s| s.members).unwrap_or_default(),
            &t.member,
            m,
        );
        let body = json!({
            "metadata": {"resourceVersion": current.metadata.resource_version},
            "status": {"members": members},
        });
        let pp = PatchParams {
            field_manager: Some(t.manager.clone()),
            ..Default::default()
        };
        match t.api.patch_status(&t.name, &pp, &Patch::Merge(&body)).await {
            Err(kube::Error::Api(e)) if e.code == 409 && attempt < 8 => {
                attempt += 1;
                // Another pod wrote in between: read again.
                let pause = Duration::from_millis(rand::rng().random_range(10..100));
                tokio::time::sleep(pause).await;
            }
            other => return other,
        }
    }
}

/// Is there a cluster object to report into?
pub fn enabled(node: &ClusterNode) -> bool {
    node.settings.report_status
        && node.settings.cluster_name.is_some()
        && node.settings.namespace.is_some()
        && (std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
            || std::env::var_os("KUBECONFIG").is_some())
}

pub async fn run(node: Arc<ClusterNode>, _state: Shared) {
    if !enabled(&node) {
        return;
    }
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "status reporting off: no Kubernetes client");
            return;
        }
    };
    report(node, client).await
}

/// The reporting loop, with a given client.
pub async fn report(node: Arc<ClusterNode>, client: kube::Client) {
    let mode = detect_mode(&client).await;
    let Some(mut t) = target(&node, client) else {
        return;
    };
    t.mode = mode;
    if mode == WriteMode::ReadModifyWrite {
        tracing::info!(
            "Kubernetes before 1.21: member status by read-modify-write (kubernetes#90902)"
        );
    }
    let mut changes = node.changes();
    let stop = node.stopped();
    tokio::pin!(stop);
    let mut last: Option<MemberStatus> = None;
    let mut last_write = Instant::now() - MIN_GAP;
    let mut next_heartbeat = Instant::now();
    let mut backoff = Duration::ZERO;
    let mut not_before = Instant::now();
    let mut logged: Option<u16> = None;
    loop {
        let wake = next_heartbeat.max(not_before);
        tokio::select! {
            _ = changes.changed() => {
                // Coalesce a burst of changes into one write.
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            _ = tokio::time::sleep_until(wake) => {}
            _ = &mut stop => return,
        }
        let now = Instant::now();
        if now < not_before {
            continue;
        }
        let mut m = entry(&node);
        let heartbeat_due = now >= next_heartbeat;
        let same = last.as_ref().is_some_and(|l| {
            let mut a = l.clone();
            a.sessions = m.sessions;
            a.last_heartbeat = None;
            a == m
        });
        if same && !heartbeat_due {
            continue;
        }
        if now < last_write + MIN_GAP {
            tokio::time::sleep_until(last_write + MIN_GAP).await;
            m = entry(&node);
        }
        m.last_heartbeat =
            Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        last_write = Instant::now();
        match apply(&t, Some(&m)).await {
            Ok(obj) => {
                if logged.take().is_some() {
                    tracing::info!(cluster = %t.name, "member status written again");
                }
                node.set_replicas(Some(i64::from(obj.spec.replicas)));
                tracing::debug!(peers = ?m.peer_count, ready = m.ready, "member status written");
                last = Some(m);
                backoff = Duration::ZERO;
                next_heartbeat = Instant::now() + jittered(HEARTBEAT);
            }
            Err(e) => {
                let code = match &e {
                    kube::Error::Api(s) => s.code,
                    _ => 0,
                };
                if logged != Some(code) {
                    match code {
                        404 => {
                            tracing::warn!(cluster = %t.name, "ErlmcpCluster not found (deleted?); member status paused")
                        }
                        403 => {
                            tracing::warn!(cluster = %t.name, error = %e, "not allowed to write member status (RBAC)")
                        }
                        _ => {
                            tracing::warn!(cluster = %t.name, error = %e, "member status write failed")
                        }
                    }
                    logged = Some(code);
                }
                backoff = (backoff * 2).clamp(Duration::from_secs(2), MAX_BACKOFF);
                not_before = Instant::now() + jittered(backoff);
                next_heartbeat = not_before;
            }
        }
    }
}

/// Remove this pod's entry (clean shutdown). Bounded; best effort.
pub async fn remove(node: &ClusterNode) {
    if !enabled(node) {
        return;
    }
    let fut = async {
        let client = kube::Client::try_default().await.ok()?;
        let mode = detect_mode(&client).await;
        let mut t = target(node, client)?;
        t.mode = mode;
        apply(&t, None).await.ok()
    };
    match tokio::time::timeout(Duration::from_secs(3), fut).await {
        Ok(Some(_)) => tracing::info!("member status entry removed"),
        _ => tracing::warn!("could not remove the member status entry"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{from_parts, RuntimeConfig};
    use crate::node::Lifecycle;
    use http::{Request, Response};
    use kube::client::Body as KubeBody;

    fn node() -> Arc<ClusterNode> {
        let env: std::collections::BTreeMap<String, String> = [
            ("ERLANG_COOKIE", "0123456789abcdef0123"),
            ("ERLMCP_NODE_NAME", "erlmcp@mcp-1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let rc: RuntimeConfig = from_parts(Default::default(), &env).unwrap();
        let mut env2 = env.clone();
        for (k, v) in [
            ("POD_NAME", "mcp-1"),
            ("POD_NAMESPACE", "prod"),
            ("ERLMCP_CLUSTER", "mcp"),
            ("ERLMCP_PEERS", "10.0.0.9:9200"),
        ] {
            env2.insert(k.into(), v.into());
        }
        let s = super::super::settings(&rc, &env2).unwrap();
        let lc = Arc::new(Lifecycle::new());
        lc.set_ready(true);
        ClusterNode::new(s, lc).unwrap()
    }

    type Handle = tower_test::mock::Handle<Request<KubeBody>, Response<KubeBody>>;

    fn respond(send: tower_test::mock::SendResponse<Response<KubeBody>>, code: u16, v: &Value) {
        send.send_response(
            Response::builder()
                .status(code)
                .body(KubeBody::from(serde_json::to_vec(v).unwrap()))
                .unwrap(),
        );
    }

    /// The first request asks the server's version.
    async fn answer_version(handle: &mut Handle, minor: &str) {
        let (req, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
            .await
            .expect("a request")
            .expect("request");
        assert_eq!(req.uri().path(), "/version");
        let v = json!({"major": "1", "minor": minor, "gitVersion": format!("v1.{minor}.0"),
            "gitCommit": "", "gitTreeState": "", "buildDate": "", "goVersion": "", "compiler": "", "platform": ""});
        respond(send, 200, &v);
    }

    /// Before 1.21: read, replace the own entry, merge-patch with the read resourceVersion as
    /// precondition; a conflict reads again.
    #[tokio::test]
    async fn old_servers_read_modify_write_and_retry_on_conflict() {
        let (svc, mut handle) = tower_test::mock::pair::<Request<KubeBody>, Response<KubeBody>>();
        let client = kube::Client::new(svc, "prod");
        let n = node();
        let task = tokio::spawn(report(n.clone(), client));
        answer_version(&mut handle, "20").await;
        for (rv, outcome) in [("7", 409u16), ("8", 200)] {
            let (req, send) = handle.next_request().await.unwrap();
            assert_eq!(req.method(), http::Method::GET);
            assert_eq!(
                req.uri().path(),
                "/apis/erlmcp.io/v1alpha1/namespaces/prod/erlmcpclusters/mcp/status"
            );
            let obj = json!({"apiVersion": "erlmcp.io/v1alpha1", "kind": "ErlmcpCluster",
                "metadata": {"name": "mcp", "namespace": "prod", "resourceVersion": rv},
                "spec": {"replicas": 3},
                "status": {"members": [{"name": "mcp-0", "ready": true, "peers": [], "sessions": 4},
                                       {"name": "mcp-1", "ready": false, "peers": [], "sessions": 0}]}});
            respond(send, 200, &obj);
            let (req, send) = handle.next_request().await.unwrap();
            assert_eq!(req.method(), http::Method::PATCH);
            assert_eq!(
                req.headers()["content-type"],
                "application/merge-patch+json"
            );
            assert!(req
                .uri()
                .to_string()
                .contains("fieldManager=erlmcp-member-mcp-1"));
            let body: Value =
                serde_json::from_slice(&req.into_body().collect_bytes().await.unwrap()).unwrap();
            assert_eq!(
                body["metadata"]["resourceVersion"], rv,
                "precondition on what was read"
            );
            let m = body["status"]["members"].as_array().unwrap();
            assert_eq!(m.len(), 2, "the other pod's entry is kept: {body}");
            assert_eq!(m[0]["name"], "mcp-0");
            assert_eq!(m[0]["sessions"], 4);
            assert_eq!(m[1]["name"], "mcp-1");
            assert_eq!(m[1]["ready"], true, "own entry replaced");
            if outcome == 409 {
                respond(
                    send,
                    409,
                    &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409, "message": "the object has been modified"}),
                );
            } else {
                respond(send, 200, &obj);
            }
        }
        let t0 = std::time::Instant::now();
        while n.expected() != 3 {
            assert!(t0.elapsed() < Duration::from_secs(5));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        n.stop();
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    }

    /// The exact request: SSA on the status subresource, the pod's own field manager, forced,
    /// one entry keyed by the pod name; and the replicas it learns from the answer.
    #[tokio::test]
    async fn applies_its_own_entry_with_its_own_manager() {
        let (svc, mut handle) = tower_test::mock::pair::<Request<KubeBody>, Response<KubeBody>>();
        let client = kube::Client::new(svc, "prod");
        let n = node();
        n.set_replicas(Some(2));
        let task = tokio::spawn(report(n.clone(), client));
        answer_version(&mut handle, "33").await;
        let (req, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
            .await
            .expect("a request")
            .expect("request");
        assert_eq!(req.method(), http::Method::PATCH);
        let uri = req.uri().to_string();
        assert!(
            uri.starts_with("/apis/erlmcp.io/v1alpha1/namespaces/prod/erlmcpclusters/mcp/status?"),
            "{uri}"
        );
        assert!(uri.contains("fieldManager=erlmcp-member-mcp-1"), "{uri}");
        assert!(uri.contains("force=true"), "{uri}");
        assert_eq!(
            req.headers()["content-type"],
            "application/apply-patch+yaml"
        );
        let body = req.into_body().collect_bytes().await.unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        let m = &v["status"]["members"];
        assert_eq!(m.as_array().unwrap().len(), 1, "{v}");
        assert_eq!(m[0]["name"], "mcp-1");
        assert_eq!(m[0]["ready"], true);
        assert_eq!(m[0]["expectedPeers"], 1);
        assert!(m[0]["lastHeartbeat"].as_str().unwrap().ends_with('Z'));
        let obj = json!({
            "apiVersion": "erlmcp.io/v1alpha1", "kind": "ErlmcpCluster",
            "metadata": {"name": "mcp", "namespace": "prod"},
            "spec": {"replicas": 5}
        });
        send.send_response(
            Response::builder()
                .status(200)
                .body(KubeBody::from(serde_json::to_vec(&obj).unwrap()))
                .unwrap(),
        );
        // The desired size now comes from spec.replicas.
        let t0 = std::time::Instant::now();
        while n.expected() != 5 {
            assert!(t0.elapsed() < Duration::from_secs(5));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        n.stop();
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    }

    #[tokio::test]
    async fn a_deleted_cluster_backs_off() {
        let (svc, mut handle) = tower_test::mock::pair::<Request<KubeBody>, Response<KubeBody>>();
        let client = kube::Client::new(svc, "prod");
        let n = node();
        let task = tokio::spawn(report(n.clone(), client));
        answer_version(&mut handle, "33").await;
        let (_, send) = handle.next_request().await.unwrap();
        let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"});
        send.send_response(
            Response::builder()
                .status(404)
                .body(KubeBody::from(serde_json::to_vec(&status).unwrap()))
                .unwrap(),
        );
        // No retry within the first second (backoff starts at 2 s): no hot loop.
        let again = tokio::time::timeout(Duration::from_millis(1200), handle.next_request()).await;
        assert!(again.is_err(), "retried too soon");
        n.stop();
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    }

    #[test]
    fn old_servers_write_by_read_modify_write() {
        assert_eq!(write_mode("1", "20"), WriteMode::ReadModifyWrite);
        assert_eq!(write_mode("1", "20+"), WriteMode::ReadModifyWrite);
        assert_eq!(write_mode("1", "21"), WriteMode::Apply);
        assert_eq!(write_mode("1", "33"), WriteMode::Apply);
        assert_eq!(write_mode("1", "weird"), WriteMode::Apply);
        let e = |n: &str, s: i64| MemberStatus {
            name: n.into(),
            sessions: s,
            ..Default::default()
        };
        let got = replace_entry(vec![e("b", 1), e("a", 1), e("c", 1)], "b", Some(&e("b", 9)));
        assert_eq!(
            got,
            vec![e("a", 1), e("b", 9), e("c", 1)],
            "others kept, own replaced"
        );
        let got = replace_entry(got, "a", None);
        assert_eq!(got, vec![e("b", 9), e("c", 1)], "own entry removed");
    }

    #[test]
    fn body_is_one_entry_or_none() {
        let m = MemberStatus {
            name: "mcp-0".into(),
            ready: true,
            version: Some("1".into()),
            peer_count: Some(1),
            view_hash: Some(erlmcp_crds::membership_hash(["mcp-0", "mcp-1"])),
            expected_peers: Some(2),
            sessions: 3,
            last_heartbeat: Some("2026-01-01T00:00:00Z".into()),
            ..Default::default()
        };
        let b = apply_body(Some(&m));
        assert_eq!(b["kind"], "ErlmcpCluster");
        assert_eq!(b["status"]["members"][0]["name"], "mcp-0");
        assert_eq!(b["status"]["members"][0]["expectedPeers"], 2);
        assert_eq!(b["status"]["members"][0]["peerCount"], 1);
        assert!(b["status"]["members"][0].get("peers").is_none(), "{b}");
        assert_eq!(
            b["status"]["members"][0]["lastHeartbeat"],
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(apply_body(None)["status"]["members"], json!([]));
        assert_eq!(field_manager("mcp-0"), "erlmcp-member-mcp-0");
        let j = jittered(HEARTBEAT);
        assert!(j >= Duration::from_secs(24) && j <= Duration::from_secs(36));
    }
}
