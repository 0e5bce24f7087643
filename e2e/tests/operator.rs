//! The operator against a real API server, with pods run by the pod runner: what a user sees
//! with `kubectl get`, in the status, and over MCP.
//!
//! Each test runs its own operator process (watching only the test's namespace, holding its
//! leader lease there) so tests run side by side without stepping on each other.

#[path = "operator/support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use erlmcp_e2e::cluster::{cluster_obj, clusters, condition, is_true, pod_addr, wait_ready};
use erlmcp_e2e::env::pod_ready;
use erlmcp_e2e::http::{self, Response};
use erlmcp_e2e::mcp::{self, HTTP_TIMEOUT};
use erlmcp_e2e::operator::Operator;
use erlmcp_e2e::TestEnv;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::{json, Value};
use support::{able_to_scale, children, kinds, owned_by, pods, BASIC_CHILDREN};

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// A 3-pod cluster: children with owner references, Ready with three members that see each
/// other, the columns users read, MCP across pods; scale to 5 and back to 2 through the scale
/// subresource; a config change rolls the pods one at a time; a killed pod shows as Degraded
/// and recovers; deleting the cluster removes everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_lifecycle() -> Result<()> {
    let env = TestEnv::get();
    env.install_crd()?;
    let ns = env.namespace("life").await?;
    let ns = ns.name.clone();
    let _op = Operator::start(env, &ns, &ns, "op-life")?;

    let sample = std::fs::read_to_string(env.workspace.join("config/samples/basic.yaml"))?;
    env.apply(&ns, &sample).await?;
    let c = wait_ready(env, &ns, "basic", 3, Duration::from_secs(180)).await?;
    let uid = c["metadata"]["uid"].as_str().unwrap().to_string();

    // Every child exists and is owned by the cluster (controller reference).
    let objs = children(env, &ns, "basic")?;
    let have = kinds(&objs);
    for want in BASIC_CHILDREN {
        ensure!(have.contains(want), "{want} missing; have {have:?}");
    }
    for o in &objs {
        ensure!(
            owned_by(o, &uid),
            "{} {} not owned by the cluster",
            o["kind"],
            o["metadata"]["name"]
        );
    }

    // Three members, written by the pods themselves, each seeing the other two.
    let members = c["status"]["members"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: BTreeSet<&str> = members.iter().filter_map(|m| m["name"].as_str()).collect();
    ensure!(
        names == BTreeSet::from(["basic-0", "basic-1", "basic-2"]),
        "members: {members:?}"
    );
    // A count and a hash of each view (the names stay on the pods' /status): one view for all.
    let views: BTreeSet<&str> = members
        .iter()
        .filter_map(|m| m["viewHash"].as_str())
        .collect();
    ensure!(views.len() == 1, "members: {members:?}");
    for m in &members {
        ensure!(m["ready"] == true && m["peerCount"] == 2, "member {m}");
    }
    ensure!(
        is_true(&c, "ClusterHealthy") && is_true(&c, "Available"),
        "{}",
        c["status"]
    );
    ensure!(
        c["status"]["health"] == "Healthy" && c["status"]["phase"] == "Running",
        "{}",
        c["status"]
    );

    // What `kubectl get erlmcpclusters` shows.
    let table = env.kubectl(&["-n", &ns, "get", "erlmcpclusters"])?;
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    ensure!(
        header == ["NAME", "REPLICAS", "READY", "PHASE", "HEALTH", "VERSION", "AGE"],
        "{table}"
    );
    let row: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    ensure!(
        row[..5] == ["basic", "3", "3", "Running", "Healthy"],
        "{table}"
    );
    ensure!(
        row[5] == env!("CARGO_PKG_VERSION"),
        "version column: {table}"
    );
    // The short name works too.
    ensure!(
        env.kubectl(&["-n", &ns, "get", "emc", "basic", "-o", "name"])?
            .trim()
            == "erlmcpcluster.erlmcp.io/basic"
    );

    // MCP: initialise on one pod, call echo there and on the other pods (forwarded to the owner).
    let ps = pods(env, &ns).await?;
    let session = mcp::initialize(pod_addr(&ps[0], 8080)?, "e2e").await?;
    for (i, p) in ps.iter().enumerate() {
        let r = mcp::session_echo(
            pod_addr(p, 8080)?,
            &session,
            10 + i as u64,
            "hello from e2e",
        )
        .await?;
        ensure!(
            r["content"][0]["text"]
                .as_str()
                .is_some_and(|t| t.contains("hello from e2e")),
            "echo via {}: {r}",
            p.name_any()
        );
    }

    // Scale through the scale subresource, as users and HPAs do.
    env.kubectl(&["-n", &ns, "scale", "erlmcpcluster/basic", "--replicas=5"])?;
    let c = wait_ready(env, &ns, "basic", 5, Duration::from_secs(180)).await?;
    ensure!(
        c["status"]["members"].as_array().map(Vec::len) == Some(5),
        "{}",
        c["status"]["members"]
    );
    let scale = env.kubectl(&[
        "-n",
        &ns,
        "get",
        "--raw",
        &format!("/apis/erlmcp.io/v1alpha1/namespaces/{ns}/erlmcpclusters/basic/scale"),
    ])?;
    let scale: Value = serde_json::from_str(&scale)?;
    ensure!(
        scale["spec"]["replicas"] == 5 && scale["status"]["replicas"] == 5,
        "{scale}"
    );
    ensure!(
        scale["status"]["selector"]
            == "app.kubernetes.io/instance=basic,app.kubernetes.io/name=erlmcp",
        "{scale}"
    );
    env.kubectl(&["-n", &ns, "scale", "erlmcpcluster/basic", "--replicas=2"])?;
    wait_ready(env, &ns, "basic", 2, Duration::from_secs(180)).await?;
    env.wait_for(
        "3 pods gone after scale-down",
        Duration::from_secs(60),
        Some(&ns),
        || async { Ok((pods(env, &ns).await?.len() == 2).then_some(())) },
    )
    .await?;
    // Departed members take their entries with them (or go stale): health is computed on the two.
    let c = cluster_obj(env, &ns, "basic").await?;
    ensure!(c["status"]["health"] == "Healthy", "{}", c["status"]);

    // A config change rolls the pods, one at a time, and the status shows it.
    let before: BTreeMap<String, String> = pods(env, &ns)
        .await?
        .iter()
        .map(|p| (p.name_any(), p.uid().unwrap()))
        .collect();
    let clusters_api = clusters(env, &ns);
    clusters_api
        .patch("basic", &PatchParams::apply("e2e-user").force(), &Patch::Apply(json!({
            "apiVersion": "erlmcp.io/v1alpha1", "kind": "ErlmcpCluster", "metadata": {"name": "basic"},
            "spec": {"logging": {"level": "debug"}}})))
        .await?;
    let mut saw_progressing = false;
    let mut max_down = 0;
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let c = cluster_obj(env, &ns, "basic").await?;
        if is_true(&c, "Progressing")
            && condition(&c, "Progressing").unwrap()["reason"] == "RollingUpdate"
        {
            saw_progressing = true;
        }
        let now = pods(env, &ns).await?;
        let down = 2 - now
            .iter()
            .filter(|p| pod_ready(p) && p.metadata.deletion_timestamp.is_none())
            .count()
            .min(2);
        max_down = max_down.max(down);
        let replaced = now
            .iter()
            .all(|p| before.get(&p.name_any()) != p.uid().as_ref());
        if replaced
            && now.len() == 2
            && is_true(&c, "Ready")
            && c["status"]["observedGeneration"] == c["metadata"]["generation"]
        {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "rollout did not finish: {}\n{}",
            c["status"],
            env.dump(Some(&ns))
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ensure!(
        saw_progressing,
        "Progressing=True (RollingUpdate) never observed"
    );
    ensure!(
        max_down <= 1,
        "{max_down} pods were down at once: the rollout was not one at a time"
    );
    let cm = env.kubectl(&[
        "-n",
        &ns,
        "get",
        "configmap",
        "basic-config",
        "-o",
        "jsonpath={.data.erlmcp\\.yaml}",
    ])?;
    ensure!(cm.contains("level: debug"), "{cm}");

    // A pod dies: the cluster reports Degraded, then recovers by itself.
    let victim = pods(env, &ns).await?.remove(0);
    Api::<Pod>::namespaced(env.client(), &ns)
        .delete(
            &victim.name_any(),
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
        )
        .await?;
    env.wait_for(
        "Degraded or not Ready after a pod died",
        Duration::from_secs(60),
        Some(&ns),
        || async {
            let c = cluster_obj(env, &ns, "basic").await?;
            Ok((!is_true(&c, "Ready") || is_true(&c, "Degraded")).then_some(()))
        },
    )
    .await?;
    wait_ready(env, &ns, "basic", 2, Duration::from_secs(120)).await?;

    // Deleting the cluster garbage-collects every child.
    clusters_api
        .delete("basic", &DeleteParams::background())
        .await?;
    env.wait_for(
        "children garbage-collected",
        Duration::from_secs(120),
        Some(&ns),
        || async {
            let left = children(env, &ns, "basic")?;
            let pods_left = pods(env, &ns).await?.len();
            Ok((left.is_empty() && pods_left == 0).then_some(()))
        },
    )
    .await?;
    Ok(())
}

/// An HPA targets the cluster's scale subresource and can read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hpa_targets_the_scale_subresource() -> Result<()> {
    let env = TestEnv::get();
    env.install_crd()?;
    let ns = env.namespace("hpa").await?;
    let ns = ns.name.clone();
    let _op = Operator::start(env, &ns, &ns, "op-hpa")?;
    let sample = std::fs::read_to_string(env.workspace.join("config/samples/autoscaling.yaml"))?;
    env.apply(&ns, &sample).await?;
    let hpa = env
        .wait_for(
            "HPA able to scale",
            // The controller manager's REST mapper learns new CRDs only on its periodic reset,
            // and the HPA controller backs off after "no matches for kind": minutes, not seconds.
            Duration::from_secs(300),
            Some(&ns),
            || async {
                // Read as autoscaling/v1, served everywhere: its conditions live in an
                // annotation (on 1.20, where HPAs are stored as v1, the v2beta2 view can miss
                // them); v2 servers also show them in status.conditions.
                let path = format!(
                    "/apis/autoscaling/v1/namespaces/{ns}/horizontalpodautoscalers/autoscaled"
                );
                let Ok(out) = env.kubectl(&["get", "--raw", &path]) else {
                    return Ok(None);
                };
                let v: Value = serde_json::from_str(&out)?;
                Ok(able_to_scale(&v).then_some(v))
            },
        )
        .await?;
    ensure!(
        hpa["spec"]["scaleTargetRef"]["kind"] == "ErlmcpCluster",
        "{}",
        hpa["spec"]
    );
    ensure!(
        hpa["status"]["currentReplicas"] == 2,
        "the HPA read the current size from the scale subresource: {}",
        hpa["status"]
    );
    ensure!(
        hpa["spec"]["minReplicas"] == 2 && hpa["spec"]["maxReplicas"] == 10,
        "{}",
        hpa["spec"]
    );
    Ok(())
}

/// An invalid spec is refused: by the API server where it can (schema; CEL on 1.25+), else by
/// the operator as a condition, and nothing is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_specs_are_refused_and_nothing_is_applied() -> Result<()> {
    let env = TestEnv::get();
    env.install_crd()?;
    let ns = env.namespace("invalid").await?;
    let ns = ns.name.clone();
    let _op = Operator::start(env, &ns, &ns, "op-invalid")?;

    // Schema: every server enforces minimum/enum-like rules.
    let err = env
        .apply(&ns, "apiVersion: erlmcp.io/v1alpha1\nkind: ErlmcpCluster\nmetadata: {name: negative}\nspec: {replicas: -1}\n")
        .await
        .expect_err("replicas -1 must be refused");
    ensure!(format!("{err:#}").contains("spec.replicas"), "{err:#}");

    // Cross-field rule: CEL on new servers, the operator's own validation on old ones.
    let bad = "apiVersion: erlmcp.io/v1alpha1\nkind: ErlmcpCluster\nmetadata: {name: crossed}\nspec:\n  autoscaling: {minReplicas: 5, maxReplicas: 2, targetCPUUtilizationPercentage: 50}\n";
    match env.apply(&ns, bad).await {
        Err(e) => ensure!(
            format!("{e:#}").contains("minReplicas must not exceed maxReplicas"),
            "{e:#}"
        ),
        Ok(_) => {
            let c = env
                .wait_for(
                    "InvalidSpec condition",
                    Duration::from_secs(60),
                    Some(&ns),
                    || async {
                        let c = cluster_obj(env, &ns, "crossed").await?;
                        Ok(condition(&c, "ReconcileSuccess")
                            .filter(|r| r["reason"] == "InvalidSpec")
                            .map(|_| c.clone()))
                    },
                )
                .await?;
            let msg = condition(&c, "ReconcileSuccess").unwrap()["message"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            ensure!(msg.contains("spec.autoscaling.minReplicas"), "{msg}");
            ensure!(c["status"]["phase"] == "Failed", "{}", c["status"]);
            ensure!(
                children(env, &ns, "crossed")?.is_empty(),
                "objects were applied for an invalid spec"
            );
            let events = env.kubectl(&[
                "-n",
                &ns,
                "get",
                "events",
                "--field-selector",
                "reason=InvalidSpec",
                "-o",
                "name",
            ])?;
            ensure!(!events.trim().is_empty(), "no InvalidSpec event");
        }
    }
    Ok(())
}

/// The operator killed mid-reconcile converges when it comes back; with two replicas exactly one
/// leads, and the other takes over when the leader dies; a clean stop releases the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_restart_and_leader_failover() -> Result<()> {
    let env = TestEnv::get();
    env.install_crd()?;
    let ns = env.namespace("leader").await?;
    let ns = ns.name.clone();
    let mut a = Operator::start(env, &ns, &ns, "op-a")?;
    let mut b = Operator::start(env, &ns, &ns, "op-b")?;
    let leases: Api<Lease> = Api::namespaced(env.client(), &ns);
    let holder = || async {
        let l = leases.get_opt("erlmcp-operator-leader").await?;
        anyhow::Ok(
            l.and_then(|l| l.spec)
                .and_then(|s| s.holder_identity)
                .unwrap_or_default(),
        )
    };
    let first = env
        .wait_for("a leader", Duration::from_secs(60), Some(&ns), || async {
            let h = holder().await?;
            Ok((!h.is_empty()).then_some(h))
        })
        .await?;
    // Exactly one reports itself leader.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (la, lb) = (
        a.metric("erlmcp_operator_leader").await?,
        b.metric("erlmcp_operator_leader").await?,
    );
    ensure!(
        la + lb == 1.0,
        "leader gauges {la} and {lb} (lease held by {first})"
    );
    let (leader, follower) = if la == 1.0 {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    // The follower stays ready.
    let Response { status: code, .. } =
        http::request(follower.metrics, "GET", "/readyz", &[], None, HTTP_TIMEOUT).await?;
    ensure!(code == 200, "follower /readyz answered {code}");

    // Apply a cluster and kill the leader while it reconciles.
    env.apply(&ns, "apiVersion: erlmcp.io/v1alpha1\nkind: ErlmcpCluster\nmetadata: {name: ha}\nspec: {replicas: 2}\n").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    leader.kill();
    // The follower takes over (after the lease expires) and converges.
    wait_ready(env, &ns, "ha", 2, Duration::from_secs(180)).await?;
    ensure!(
        follower.metric("erlmcp_operator_leader").await? == 1.0,
        "follower did not take over:\n{}",
        follower.log_tail()
    );

    // A restarted operator converges a change it did not see being made.
    follower.kill();
    clusters(env, &ns)
        .patch("ha", &PatchParams::apply("e2e-user").force(), &Patch::Apply(json!({
            "apiVersion": "erlmcp.io/v1alpha1", "kind": "ErlmcpCluster", "metadata": {"name": "ha"}, "spec": {"replicas": 3}})))
        .await?;
    let mut c = Operator::start(env, &ns, &ns, "op-c")?;
    wait_ready(env, &ns, "ha", 3, Duration::from_secs(180)).await?;

    // A clean stop releases the lease at once.
    let st = c.stop()?;
    ensure!(st.success(), "operator exit {st}:\n{}", c.log_tail());
    let h = holder().await?;
    ensure!(h.is_empty(), "lease still held by {h:?} after a clean stop");
    let sts: Api<StatefulSet> = Api::namespaced(env.client(), &ns);
    ensure!(sts.get("ha").await?.spec.and_then(|s| s.replicas) == Some(3));
    Ok(())
}

/// Every sample is accepted and reconciled: each gets its StatefulSet and a truthful
/// ReconcileSuccess condition (samples that need what this cluster lacks say so).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_is_applied() -> Result<()> {
    let env = TestEnv::get();
    env.install_crd()?;
    let ns = env.namespace("samples").await?;
    let ns = ns.name.clone();
    let _op = Operator::start(env, &ns, &ns, "op-samples")?;
    let dir = env.workspace.join("config/samples");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let applied = env
            .apply(&ns, &text)
            .await
            .with_context(|| path.display().to_string())?;
        names.extend(applied.iter().map(|o| o.name_any()));
    }
    ensure!(names.len() >= 5, "samples: {names:?}");
    for name in &names {
        let c = env
            .wait_for(
                &format!("{name} reconciled"),
                Duration::from_secs(90),
                Some(&ns),
                || async {
                    let c = cluster_obj(env, &ns, name).await?;
                    Ok(condition(&c, "ReconcileSuccess").is_some().then_some(c))
                },
            )
            .await?;
        let rs = condition(&c, "ReconcileSuccess").unwrap().clone();
        // Only a missing cert-manager or a Secret the sample expects the user to create may
        // keep a sample from reconciling cleanly.
        let ok = rs["status"] == "True" || rs["reason"] == "SecretNotFound";
        ensure!(ok, "{name}: {rs}");
        let sts = env.kubectl(&[
            "-n",
            &ns,
            "get",
            "statefulset",
            name,
            "-o",
            "jsonpath={.spec.replicas}",
        ])?;
        let want = c["spec"]["replicas"].as_i64().unwrap_or(-1);
        ensure!(
            sts.trim().parse::<i64>().ok() == Some(want),
            "{name}: StatefulSet replicas {sts}, spec {want}"
        );
    }
    Ok(())
}
