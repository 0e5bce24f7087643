//! Running the reconciler against the fake API: a cluster from a spec, the operator's context
//! with a real event recorder, and readers for what it sent.

use std::sync::Arc;
use std::time::Duration;

use erlmcp_crds::ErlmcpCluster;
use erlmcp_operator::desired::{ServerCapabilities, FIELD_MANAGER};
use erlmcp_operator::metrics::Metrics;
use erlmcp_operator::reconcile::{reconcile, Context, Error};
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{json, Value};

use super::fake_api::{FakeApi, Seen};

pub const NS: &str = "prod";
pub const STS: &str = "/apis/apps/v1/namespaces/prod/statefulsets/mcp";

pub fn cluster(spec: Value, generation: i64) -> ErlmcpCluster {
    serde_json::from_value(json!({
        "apiVersion": "erlmcp.io/v1alpha1", "kind": "ErlmcpCluster",
        "metadata": {"name": "mcp", "namespace": NS, "uid": "5a0d3c0e-0000-4000-8000-000000000001", "generation": generation},
        "spec": spec,
    }))
    .unwrap()
}

/// The fake API holding the cluster, and the operator's context on it.
pub fn start(caps: ServerCapabilities) -> (Arc<Context>, FakeApi) {
    let api = FakeApi::new();
    api.put(
        &format!("/apis/erlmcp.io/v1alpha1/namespaces/{NS}/erlmcpclusters/mcp"),
        serde_json::to_value(cluster(json!({}), 1)).unwrap(),
    );
    let client = api.client();
    let reporter = Reporter {
        controller: FIELD_MANAGER.into(),
        instance: None,
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let ctx = Arc::new(Context::new(client, caps, Metrics::new(), recorder));
    (ctx, api)
}

pub async fn run(c: &ErlmcpCluster, ctx: &Arc<Context>) -> Result<Action, Error> {
    tokio::time::timeout(
        Duration::from_secs(10),
        reconcile(Arc::new(c.clone()), ctx.clone()),
    )
    .await
    .expect("reconcile finished")
}

/// The API requests since the last call, without the Events.
pub fn take_requests(api: &FakeApi) -> Vec<Seen> {
    api.take_seen()
        .into_iter()
        .filter(|s| !s.is_event())
        .collect()
}

pub fn lines(seen: &[Seen]) -> Vec<String> {
    seen.iter().map(Seen::line).collect()
}

/// Every Event written so far, as "reason: note".
pub fn reasons(api: &FakeApi) -> Vec<String> {
    api.history()
        .into_iter()
        .filter(|s| s.is_event() && matches!(s.method.as_str(), "POST" | "PATCH"))
        .map(|s| {
            format!(
                "{}: {}",
                s.body["reason"].as_str().unwrap_or_default(),
                s.body["note"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

/// A condition of the last status write among `seen`.
pub fn condition(seen: &[Seen], type_: &str) -> Value {
    let status = seen
        .iter()
        .rev()
        .find(|s| s.path.ends_with("/status"))
        .expect("a status write");
    status.body["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition"))
        .clone()
}

/// The StatefulSet apply among `seen`.
pub fn statefulset_apply(seen: &[Seen]) -> Option<&Seen> {
    seen.iter().find(|s| s.method == "PATCH" && s.path == STS)
}
