//! Optional CRDs installed after the operator started, against the fake API: discovery runs
//! again, sees them, and the next reconcile applies what it skipped before.

mod support;

use std::time::Duration;

use erlmcp_operator::desired::ServerCapabilities;
use erlmcp_operator::discovery;
use serde_json::json;
use support::fake_api::FakeApi;
use support::reconcile::*;

const MONITOR: &str = "/apis/monitoring.coreos.com/v1/namespaces/prod/servicemonitors/mcp";

/// The Prometheus Operator is not installed yet: its group answers 404.
fn without_prometheus_operator(api: &FakeApi) {
    api.fail_with(|_, path| {
        path.starts_with("/apis/monitoring.coreos.com")
            .then_some(404)
    });
}

fn applied(api: &FakeApi, path: &str) -> bool {
    take_requests(api)
        .iter()
        .any(|s| s.method == "PATCH" && s.path == path)
}

#[tokio::test]
async fn a_prometheus_operator_installed_later_is_picked_up_by_rediscovery() {
    let (ctx, api) = start(ServerCapabilities::default());
    without_prometheus_operator(&api);
    // What the operator found at start: no monitoring CRDs.
    ctx.set_capabilities(
        erlmcp_operator::discovery::capabilities(&api.client())
            .await
            .unwrap(),
    );
    assert!(!ctx.capabilities().service_monitor);
    let c = cluster(json!({"monitoring": {"serviceMonitor": {}}}), 1);
    run(&c, &ctx).await.unwrap();
    assert!(!applied(&api, MONITOR), "no ServiceMonitor without its CRD");

    // Nothing installed yet: rediscovery changes nothing.
    assert!(!discovery::rediscover(&ctx).await.unwrap());

    // `helm install kube-prometheus-stack`: the next rediscovery sees it.
    api.stop_failing();
    assert!(discovery::rediscover(&ctx).await.unwrap());
    let caps = ctx.capabilities();
    assert!(caps.service_monitor && caps.prometheus_rule, "{caps:?}");
    take_requests(&api);
    run(&c, &ctx).await.unwrap();
    assert!(applied(&api, MONITOR), "the ServiceMonitor is applied now");
    // And once taken over, the same answer is no change.
    assert!(!discovery::rediscover(&ctx).await.unwrap());
}

#[tokio::test]
async fn the_rediscovery_loop_signals_a_change_and_stops_on_shutdown() {
    let (ctx, api) = start(ServerCapabilities::default());
    without_prometheus_operator(&api);
    ctx.set_capabilities(discovery::capabilities(&api.client()).await.unwrap());
    let (changed_tx, mut changed) = tokio::sync::watch::channel(());
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(discovery::run_rediscovery(
        ctx.clone(),
        Duration::from_millis(20),
        changed_tx,
        stop,
    ));
    api.stop_failing();
    tokio::time::timeout(Duration::from_secs(10), changed.changed())
        .await
        .expect("a change signalled")
        .unwrap();
    assert!(ctx.capabilities().service_monitor);
    stop_tx.send_replace(true);
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stopped on shutdown")
        .unwrap();
}
