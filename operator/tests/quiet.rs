//! Quiet at scale, against the fake API: the requests a member report, an unchanged status and
//! a failing cluster cause (or do not).

mod support;

use std::sync::Arc;
use std::time::Duration;

use erlmcp_crds::ErlmcpCluster;
use erlmcp_operator::desired::{ServerCapabilities, FIELD_MANAGER};
use erlmcp_operator::metrics::Metrics;
use erlmcp_operator::reconcile::{error_policy, reconcile, refresh_status, Context};
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{json, Value};
use support::fake_api::{FakeApi, Seen};

const NS: &str = "prod";
const PATH: &str = "/apis/erlmcp.io/v1alpha1/namespaces/prod/erlmcpclusters/mcp";

fn cluster(spec: Value, generation: i64) -> ErlmcpCluster {
    serde_json::from_value(json!({
        "apiVersion": "erlmcp.io/v1alpha1", "kind": "ErlmcpCluster",
        "metadata": {"name": "mcp", "namespace": NS, "uid": "5a0d3c0e-0000-4000-8000-000000000001",
                     "generation": generation},
        "spec": spec,
    }))
    .unwrap()
}

fn start(spec: Value) -> (Arc<Context>, FakeApi) {
    let api = FakeApi::new();
    api.put(PATH, serde_json::to_value(cluster(spec, 1)).unwrap());
    let client = api.client();
    let reporter = Reporter {
        controller: FIELD_MANAGER.into(),
        instance: None,
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let caps = ServerCapabilities {
        service_monitor: false,
        prometheus_rule: false,
        cert_manager: false,
        ..Default::default()
    };
    (
        Arc::new(Context::new(client, caps, Metrics::new(), recorder)),
        api,
    )
}

/// The cluster as the server holds it now (status included), as a watch would deliver it.
fn stored(api: &FakeApi) -> ErlmcpCluster {
    serde_json::from_value(api.get(PATH).unwrap()).unwrap()
}

/// API requests since the last call, Events aside.
fn requests(api: &FakeApi) -> Vec<Seen> {
    api.take_seen()
        .into_iter()
        .filter(|s| !s.is_event())
        .collect()
}

fn writes(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .filter(|s| s.method != "GET")
        .map(Seen::line)
        .collect()
}

async fn reconciled(c: ErlmcpCluster, ctx: &Arc<Context>) -> Result<Action, String> {
    tokio::time::timeout(Duration::from_secs(10), reconcile(Arc::new(c), ctx.clone()))
        .await
        .expect("reconcile finished")
        .map_err(|e| e.to_string())
}

/// A pod's member entry written into the stored status, as the pod's apply would.
fn heartbeat(api: &FakeApi, at: &str) {
    let mut o = api.get(PATH).unwrap();
    o["status"]["members"] = json!([{"name": "mcp-0", "ready": true, "peerCount": 0,
        "viewHash": erlmcp_crds::membership_hash(["mcp-0"]), "sessions": 1, "lastHeartbeat": at}]);
    api.put(PATH, o);
}

#[tokio::test]
async fn a_member_report_refreshes_the_status_without_touching_a_child() {
    let (ctx, api) = start(json!({"replicas": 1}));
    reconciled(cluster(json!({"replicas": 1}), 1), &ctx)
        .await
        .unwrap();
    requests(&api);

    heartbeat(&api, "2026-12-01T10:00:00Z");
    assert!(refresh_status(&stored(&api), &ctx).await.unwrap());
    let seen = requests(&api);
    assert_eq!(
        writes(&seen),
        vec![format!("PATCH {PATH}/status")],
        "the first report changes the health: one status write, no child applied"
    );
    let health = &seen.last().unwrap().body["status"]["health"];
    assert_eq!(health, "Degraded", "its Pod is not Ready: not live");

    // The next heartbeat changes nothing the operator reports: no write at all.
    heartbeat(&api, "2026-12-01T10:00:30Z");
    assert!(refresh_status(&stored(&api), &ctx).await.unwrap());
    let seen = requests(&api);
    assert!(writes(&seen).is_empty(), "{:?}", writes(&seen));
    assert!(
        seen.iter()
            .all(|s| !s.path.contains("/configmaps") && !s.path.contains("/services")),
        "no child read either: {seen:?}"
    );
}

#[tokio::test]
async fn an_unchanged_status_is_not_written_again() {
    let (ctx, api) = start(json!({"replicas": 0}));
    reconciled(cluster(json!({"replicas": 0}), 1), &ctx)
        .await
        .unwrap();
    let first = requests(&api);
    assert_eq!(
        first.iter().filter(|s| s.path.ends_with("/status")).count(),
        1
    );
    // A resync of the same generation, with the status the first one wrote.
    reconciled(stored(&api), &ctx).await.unwrap();
    let again = requests(&api);
    assert!(
        !again.iter().any(|s| s.path.ends_with("/status")),
        "{:?}",
        writes(&again)
    );
    assert_eq!(ctx.metrics.status_writes_skipped.get(), 1);
}

#[tokio::test]
async fn a_refresh_waits_for_the_reconcile_of_a_new_generation() {
    let (ctx, api) = start(json!({"replicas": 0}));
    // Nothing reconciled yet: a report alone writes nothing.
    assert!(!refresh_status(&stored(&api), &ctx).await.unwrap());
    reconciled(cluster(json!({"replicas": 0}), 1), &ctx)
        .await
        .unwrap();
    requests(&api);
    // The spec moved on: its reconcile (not the refresh) reports it.
    assert!(!refresh_status(&cluster(json!({"replicas": 2}), 2), &ctx)
        .await
        .unwrap());
    assert!(requests(&api).is_empty());
}

#[tokio::test]
async fn other_triggers_do_not_cut_a_failing_clusters_backoff_short() {
    let (ctx, api) = start(json!({"replicas": 1}));
    api.fail_with(|method, path| {
        (method == "PATCH" && path.ends_with("/configmaps/mcp-config")).then_some(500)
    });
    let c = cluster(json!({"replicas": 1}), 1);
    let e = reconcile(Arc::new(c.clone()), ctx.clone())
        .await
        .expect_err("the ConfigMap apply fails");
    assert!(e.to_string().contains("ConfigMap"), "{e}");
    // error_policy, as the controller calls it after a failure: a 2 s backoff.
    let backoff = error_policy(Arc::new(c.clone()), &e, ctx.clone());
    assert_eq!(backoff, Action::requeue(Duration::from_secs(2)));
    requests(&api);

    // A child event (or a resync) wakes the reconcile during the backoff: nothing is sent.
    let held = reconciled(c.clone(), &ctx).await.unwrap();
    assert!(requests(&api).is_empty(), "retried early");
    assert_ne!(held, Action::await_change());
    let events_before = api.history().iter().filter(|s| s.is_event()).count();

    // A spec change is retried at once.
    api.stop_failing();
    reconciled(cluster(json!({"replicas": 2}), 2), &ctx)
        .await
        .unwrap();
    assert!(!writes(&requests(&api)).is_empty());
    assert!(api.history().iter().filter(|s| s.is_event()).count() >= events_before);
}
