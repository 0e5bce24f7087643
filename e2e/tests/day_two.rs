//! Day two on a real API server, pods run by the pod runner: a pod whose process dies, a
//! scale-down that keeps the survivors' sessions, and a bad release that stops, is rolled back
//! by reverting the CR, and never fails a stateless request sent through the cluster.
//!
//! Each test runs its own operator process watching only its namespace. Every loop is bounded
//! in count and time; traffic goes to pod addresses only (the runner's pod network).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use erlmcp_e2e::cluster::{
    cluster_obj, condition, is_true, patch_spec, pod_addr, pods, ready_with, reason, wait_ready,
};
use erlmcp_e2e::env::pod_ready;
use erlmcp_e2e::http::{self, Response};
use erlmcp_e2e::mcp::{self, rpc_message, HTTP_TIMEOUT};
use erlmcp_e2e::operator::Operator;
use erlmcp_e2e::TestEnv;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde_json::{json, Value};

/// How often the observers below look at the cluster.
const POLL: Duration = Duration::from_millis(150);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn revision(p: &Pod) -> String {
    p.labels()
        .get("controller-revision-hash")
        .cloned()
        .unwrap_or_default()
}

fn restarts(p: &Pod) -> i32 {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).sum())
        .unwrap_or(0)
}

/// The host pid of the pod's running erlmcp container: the pod runner reports it as the
/// container id (`erlmcp-pod-runner://<pid>`).
fn container_pid(p: &Pod) -> Option<i32> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == "erlmcp")?
        .container_id
        .as_deref()?
        .strip_prefix("erlmcp-pod-runner://")?
        .parse()
        .ok()
}

fn uids(ps: &[Pod]) -> BTreeMap<String, String> {
    ps.iter()
        .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
        .collect()
}

/// One `echo` call that must succeed: HTTP 200 and the echoed text in the result.
fn check_echo(Response { status, body, .. }: Response, id: u64, message: &str) -> Result<()> {
    ensure!(status == 200, "answered {status}: {body}");
    let msg = rpc_message(&body)?;
    ensure!(msg["id"] == id && msg.get("error").is_none(), "{msg}");
    let text = msg["result"]["content"][0]["text"].as_str().unwrap_or("");
    ensure!(text.contains(message), "echo answered {msg}");
    Ok(())
}

/// A stateless (2026-07-28) `tools/call echo`: no session, the version in `_meta` and headers.
async fn stateless_echo(addr: SocketAddr, id: u64) -> Result<()> {
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "e2e-day-two", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let message = format!("stateless {id}");
    let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": message}, "_meta": meta}});
    let r = http::request(
        addr,
        "POST",
        "/mcp",
        &[
            ("Accept", "application/json, text/event-stream"),
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "echo"),
        ],
        Some(&call),
        HTTP_TIMEOUT,
    )
    .await?;
    check_echo(r, id, &message)
}

async fn session_echo(addr: SocketAddr, session: &str, id: u64) -> Result<()> {
    let message = format!("in session {id}");
    let result = mcp::session_echo(addr, session, id, &message).await?;
    ensure!(
        mcp::echoed(&result).contains(&message),
        "echo answered {result}"
    );
    Ok(())
}

/// A bounded client loop in the background: `call(i)` until stopped or `max` calls, counting
/// the calls and the failures, keeping the first few.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start<F, Fut>(max: u64, pause: Duration, call: F) -> Load
    where
        F: Fn(u64) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<()>> + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let (s, n, nf, f) = (stop.clone(), sent.clone(), failed.clone(), failures.clone());
        let task = tokio::spawn(async move {
            for i in 0..max {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                if let Err(e) = call(100 + i).await {
                    nf.fetch_add(1, Ordering::Relaxed);
                    let mut f = f.lock().unwrap();
                    if f.len() < 10 {
                        f.push(format!("{e:#}"));
                    }
                }
                n.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(pause).await;
            }
        });
        Load {
            stop,
            sent,
            failed,
            failures,
            task,
        }
    }

    /// Stop and return (calls made, calls failed, the first failures).
    async fn finish(self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = tokio::time::timeout(HTTP_TIMEOUT * 2, self.task).await;
        let failures = self.failures.lock().unwrap().clone();
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        (load(&self.sent), load(&self.failed), failures)
    }
}

fn cluster_yaml(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: erlmcp.io/v1alpha1\nkind: ErlmcpCluster\nmetadata: {{name: {name}}}\nspec:\n  replicas: 3\n{extra}"
    )
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// A pod's process killed under the runner (the Pod stays, not Ready, restarting with back-off):
/// a member is reported missing, never a partition, and the cluster is Ready again once the
/// process is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_pod_reads_as_members_missing_and_recovers() -> Result<()> {
    let env = TestEnv::get();
    env.install_crd()?;
    let ns = env.namespace("killed").await?;
    let ns = ns.name.clone();
    let _op = Operator::start(env, &ns, &ns, &format!("op-{ns}"))?;
    env.apply(&ns, &cluster_yaml("killed", "")).await?;
    wait_ready(env, &ns, "killed", 3, Duration::from_secs(180)).await?;
    let before = uids(&pods(env, &ns, "killed").await?);
    let pod_api: Api<Pod> = Api::namespaced(env.client(), &ns);
    let victim = "killed-1";

    // Kill the process, and again each time the runner brings it back (with the kubelet's
    // growing back-off), until the status has reported the member missing: the operator holds
    // a health change for 20 s before reporting it, so one quick restart would never show.
    let mut pid = container_pid(&pod_api.get(victim).await?).context("victim pid")?;
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let mut kills = 1;
    let mut reasons = BTreeSet::new();
    let mut healths = BTreeSet::new();
    let mut missing_named_victim = false;
    let mut was_not_ready = false;
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let c = cluster_obj(env, &ns, "killed").await?;
        let r = reason(&c, "ClusterHealthy");
        if r == "MembersMissing" {
            let message = condition(&c, "ClusterHealthy").unwrap()["message"].clone();
            missing_named_victim |= message.as_str().is_some_and(|m| m.contains(victim));
        }
        reasons.insert(r);
        healths.insert(c["status"]["health"].as_str().unwrap_or("").to_string());
        was_not_ready |= !is_true(&c, "Ready");
        if was_not_ready && missing_named_victim && ready_with(&c, 3) {
            break;
        }
        if !missing_named_victim && kills < 12 {
            if let Some(now) = container_pid(&pod_api.get(victim).await?).filter(|p| *p != pid) {
                unsafe { libc::kill(now, libc::SIGKILL) };
                pid = now;
                kills += 1;
            }
        }
        ensure!(
            Instant::now() < deadline,
            "not back to Ready with MembersMissing seen after {kills} kills: reasons {reasons:?}, health {healths:?}\n{}\n{}",
            c["status"],
            env.dump(Some(&ns))
        );
        tokio::time::sleep(POLL).await;
    }
    ensure!(
        !reasons.contains("Partitioned") && !healths.contains("Partitioned"),
        "one dead pod read as a partition: reasons {reasons:?}, health {healths:?}"
    );
    ensure!(healths.contains("Degraded"), "health seen: {healths:?}");

    // The same Pods, the victim's process restarted under it.
    let after = pods(env, &ns, "killed").await?;
    ensure!(uids(&after) == before, "pods were replaced, not restarted");
    let v = after.iter().find(|p| p.name_any() == victim).unwrap();
    ensure!(
        restarts(v) >= kills,
        "victim restarts: {} after {kills} kills",
        restarts(v)
    );
    Ok(())
}

/// Scale-down 3 -> 1: the StatefulSet steps 3 -> 2 -> 1, the highest pod drains and is gone
/// before the next one is condemned, and a session on the surviving pod answers throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_down_goes_one_ordinal_at_a_time_and_keeps_sessions() -> Result<()> {
    let env = TestEnv::get();
    env.install_crd()?;
    let ns = env.namespace("shrink").await?;
    let ns = ns.name.clone();
    let _op = Operator::start(env, &ns, &ns, &format!("op-{ns}"))?;
    env.apply(&ns, &cluster_yaml("shrink", "")).await?;
    wait_ready(env, &ns, "shrink", 3, Duration::from_secs(180)).await?;
    let survivor = pods(env, &ns, "shrink").await?.remove(0);
    ensure!(survivor.name_any() == "shrink-0", "{}", survivor.name_any());
    let addr = pod_addr(&survivor, 8080)?;
    let session = mcp::initialize(addr, "e2e-day-two").await?;
    let load = {
        let session = session.clone();
        Load::start(5000, Duration::from_millis(50), move |id| {
            let session = session.clone();
            async move { session_echo(addr, &session, id).await }
        })
    };

    patch_spec(env, &ns, "shrink", json!({"replicas": 1})).await?;
    let sets: Api<StatefulSet> = Api::namespaced(env.client(), &ns);
    let mut steps: Vec<i32> = Vec::new();
    // Per pod: when it was first seen terminating and first seen gone (poll index).
    let mut terminating: BTreeMap<String, usize> = BTreeMap::new();
    let mut gone: BTreeMap<String, usize> = BTreeMap::new();
    // The last log of each condemned pod, read while it still exists (its directory goes with it).
    let mut last_log: BTreeMap<String, String> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(240);
    for i in 0.. {
        let asked = sets
            .get("shrink")
            .await?
            .spec
            .and_then(|s| s.replicas)
            .unwrap_or(-1);
        if steps.last() != Some(&asked) {
            steps.push(asked);
        }
        let now = pods(env, &ns, "shrink").await?;
        let present: BTreeSet<String> = now.iter().map(|p| p.name_any()).collect();
        for p in &now {
            if p.metadata.deletion_timestamp.is_some() {
                terminating.entry(p.name_any()).or_insert(i);
                last_log.insert(p.name_any(), env.pod_log(&ns, &p.name_any(), "erlmcp"));
            }
        }
        for name in ["shrink-1", "shrink-2"] {
            if !present.contains(name) {
                gone.entry(name.to_string()).or_insert(i);
            }
        }
        let c = cluster_obj(env, &ns, "shrink").await?;
        if now.len() == 1 && ready_with(&c, 1) {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "scale-down did not finish: StatefulSet steps {steps:?}\n{}\n{}",
            c["status"],
            env.dump(Some(&ns))
        );
        tokio::time::sleep(POLL).await;
    }
    let (sent, failed, failures) = load.finish().await;

    ensure!(
        steps == [3, 2, 1],
        "StatefulSet replicas went {steps:?}, not one at a time"
    );
    let (t2, g2) = (terminating.get("shrink-2"), gone.get("shrink-2"));
    let t1 = terminating.get("shrink-1");
    ensure!(
        t2.is_some() && t1.is_some(),
        "each condemned pod is seen terminating (drained), not just vanishing: {terminating:?}"
    );
    ensure!(
        g2.is_some_and(|g2| t1.is_some_and(|t1| g2 <= t1)),
        "shrink-1 was condemned before shrink-2 was gone: terminating {terminating:?}, gone {gone:?}"
    );
    for name in ["shrink-2", "shrink-1"] {
        let log = last_log.get(name).map(String::as_str).unwrap_or("");
        ensure!(
            log.contains("leaving the cluster") || log.contains("draining"),
            "{name} did not drain before it went; its log:\n{}",
            erlmcp_e2e::env::tail(log, 20)
        );
    }
    ensure!(
        failed == 0,
        "{failed} of {sent} calls in the session on shrink-0 failed: {failures:#?}"
    );
    ensure!(sent >= 20, "only {sent} calls made during the scale-down");
    // The session still answers after the last step, too.
    session_echo(addr, &session, 99_999).await?;
    Ok(())
}

/// A bad release (a config the new pods refuse, so they crash-loop) stops at the progress
/// deadline with the old pods kept; reverting the CR returns the cluster to the previous
/// revision. A stateless client sending through the cluster's ready endpoints sees no failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_release_stalls_and_a_revert_rolls_it_back_without_failed_requests() -> Result<()> {
    let env = TestEnv::get();
    env.install_crd()?;
    let ns = env.namespace("release").await?;
    let ns = ns.name.clone();
    let _op = Operator::start(env, &ns, &ns, &format!("op-{ns}"))?;
    env.apply(
        &ns,
        &cluster_yaml("release", "  progressDeadlineSeconds: 30\n"),
    )
    .await?;
    wait_ready(env, &ns, "release", 3, Duration::from_secs(180)).await?;
    let sets: Api<StatefulSet> = Api::namespaced(env.client(), &ns);
    let good_revision = sets
        .get("release")
        .await?
        .status
        .and_then(|s| s.current_revision)
        .context("StatefulSet currentRevision")?;
    let before = pods(env, &ns, "release").await?;
    let old_uids = uids(&before);

    // What a Service does without kube-proxy: send to the pods that are Ready and not
    // terminating, the set refreshed in the background.
    let endpoints: Arc<Mutex<Vec<SocketAddr>>> = Arc::new(Mutex::new(
        before
            .iter()
            .filter_map(|p| pod_addr(p, 8080).ok())
            .collect(),
    ));
    let refresher = {
        let (endpoints, client, ns) = (endpoints.clone(), env.client(), ns.clone());
        tokio::spawn(async move {
            let api: Api<Pod> = Api::namespaced(client, &ns);
            let lp = ListParams::default().labels("app.kubernetes.io/instance=release");
            // Bounded: at most 20 minutes of refreshes; the test aborts it sooner.
            for _ in 0..(20 * 60 * 4) {
                if let Ok(list) = api.list(&lp).await {
                    let ready: Vec<SocketAddr> = list
                        .items
                        .iter()
                        .filter(|p| pod_ready(p) && p.metadata.deletion_timestamp.is_none())
                        .filter_map(|p| pod_addr(p, 8080).ok())
                        .collect();
                    *endpoints.lock().unwrap() = ready;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let load = {
        let endpoints = endpoints.clone();
        Load::start(20_000, Duration::from_millis(20), move |id| {
            let endpoints = endpoints.clone();
            async move {
                let addr = {
                    let e = endpoints.lock().unwrap();
                    ensure!(!e.is_empty(), "no ready endpoint");
                    e[id as usize % e.len()]
                };
                stateless_echo(addr, id)
                    .await
                    .with_context(|| format!("via {addr}"))
            }
        })
    };

    // The bad release: a log level the data plane refuses at start-up.
    patch_spec(
        env,
        &ns,
        "release",
        json!({"env": [{"name": "ERLMCP_LOG_LEVEL", "value": "loud"}]}),
    )
    .await?;
    let stalled = env
        .wait_for(
            "Progressing=False RolloutStalled past the 30 s deadline",
            Duration::from_secs(180),
            Some(&ns),
            || async {
                let c = cluster_obj(env, &ns, "release").await?;
                let fresh = c["status"]["observedGeneration"] == c["metadata"]["generation"];
                let p = condition(&c, "Progressing");
                let stalled = p.is_some_and(|p| p["status"] == "False")
                    && reason(&c, "Progressing") == "RolloutStalled";
                Ok((fresh && stalled).then_some(c))
            },
        )
        .await?;
    ensure!(
        is_true(&stalled, "Degraded") && reason(&stalled, "Degraded") == "RolloutStalled",
        "{}",
        stalled["status"]
    );
    ensure!(
        stalled["status"]["phase"] == "Degraded" && !is_true(&stalled, "Ready"),
        "{}",
        stalled["status"]
    );
    // The Warning event (written beside the status, so it may land a moment later).
    env.wait_for(
        "a Warning event RolloutStalled",
        Duration::from_secs(30),
        Some(&ns),
        || async {
            let out = env.kubectl(&[
                "-n",
                &ns,
                "get",
                "events",
                "--field-selector",
                "reason=RolloutStalled",
                "-o",
                "json",
            ])?;
            let events: Value = serde_json::from_str(&out)?;
            let found = events["items"].as_array().is_some_and(|e| {
                e.iter()
                    .any(|e| e["type"] == "Warning" && e["involvedObject"]["name"] == "release")
            });
            Ok(found.then_some(()))
        },
    )
    .await?;

    // Held: the status write that reports the stall wakes a reconcile (its watch event changes
    // the reconcile key), which sets the StatefulSet's partition above the old pods' ordinals.
    env.wait_for(
        "the StatefulSet's partition holding release-0 and release-1",
        Duration::from_secs(60),
        Some(&ns),
        || async {
            let sts = serde_json::to_value(sets.get("release").await?)?;
            let partition = sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"].as_i64();
            Ok((partition == Some(2)).then_some(()))
        },
    )
    .await?;
    // The new pod crash-loops on the new revision, the others are the same pods on the old one,
    // and stay so while the rollout is stalled.
    for _ in 0..2 {
        let now = pods(env, &ns, "release").await?;
        let by_name: BTreeMap<String, &Pod> = now.iter().map(|p| (p.name_any(), p)).collect();
        for name in ["release-0", "release-1"] {
            let p = by_name.get(name).context(format!("{name} missing"))?;
            ensure!(
                Some(&p.uid().unwrap_or_default()) == old_uids.get(name)
                    && revision(p) == good_revision
                    && pod_ready(p),
                "{name} was touched by the stalled rollout: revision {}, ready {}",
                revision(p),
                pod_ready(p)
            );
        }
        let bad = by_name.get("release-2").context("release-2 missing")?;
        ensure!(
            revision(bad) != good_revision && !pod_ready(bad) && restarts(bad) >= 1,
            "release-2 is not the crash-looping new revision: revision {}, ready {}, restarts {}",
            revision(bad),
            pod_ready(bad),
            restarts(bad)
        );
        let sts = serde_json::to_value(sets.get("release").await?)?;
        ensure!(
            sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"] == 2,
            "the partition no longer holds the old pods: {}",
            sts["spec"]["updateStrategy"]
        );
        tokio::time::sleep(Duration::from_secs(10)).await;
    }

    // Roll back: revert the CR.
    patch_spec(env, &ns, "release", json!({"env": null})).await?;
    let back = wait_ready(env, &ns, "release", 3, Duration::from_secs(240)).await?;
    ensure!(
        !is_true(&back, "Degraded") && reason(&back, "Progressing") != "RolloutStalled",
        "{}",
        back["status"]
    );
    let sts = sets.get("release").await?.status.unwrap_or_default();
    ensure!(
        sts.current_revision.as_deref() == Some(good_revision.as_str())
            && sts.update_revision.as_deref() == Some(good_revision.as_str()),
        "not back on revision {good_revision}: current {:?}, update {:?}",
        sts.current_revision,
        sts.update_revision
    );
    let after = pods(env, &ns, "release").await?;
    for p in &after {
        ensure!(
            revision(p) == good_revision && pod_ready(p),
            "{} on {} (ready {})",
            p.name_any(),
            revision(p),
            pod_ready(p)
        );
    }
    for name in ["release-0", "release-1"] {
        ensure!(
            uids(&after).get(name) == old_uids.get(name),
            "{name} was restarted by the rollback"
        );
    }
    // A few more seconds of traffic on the restored cluster, then the verdict.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (sent, failed, failures) = load.finish().await;
    refresher.abort();
    if failed > 0 {
        bail!(
            "{failed} of {sent} stateless requests failed during the bad release and its rollback: {failures:#?}"
        );
    }
    ensure!(sent >= 100, "only {sent} requests were sent");
    Ok(())
}
