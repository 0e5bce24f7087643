//! The operator's traces against a real collector (Jaeger v2 built from its Go module, on
//! loopback): the operator binary reconciles a cluster held by the shared fake API server and
//! Jaeger holds a reconcile span (cluster, namespace, generation, outcome) with the Kubernetes
//! API calls it made as its children. No Jaeger, no pass: the test fails.

mod support;

#[path = "../../telemetry/testsupport/jaeger.rs"]
mod jaeger;

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use support::fake_api::FakeApi;

const NS: &str = "traced";

/// Spans of `trace` that descend from `root` (by parent references).
fn descendants<'a>(trace: &'a Value, root: &str) -> Vec<&'a Value> {
    let spans = trace["spans"].as_array().unwrap();
    let mut ids = vec![root.to_string()];
    let mut out = Vec::new();
    let mut grew = true;
    while grew {
        grew = false;
        for s in spans {
            let id = s["spanID"].as_str().unwrap_or_default().to_string();
            if ids.contains(&id) {
                continue;
            }
            if jaeger::parent_of(s).is_some_and(|p| ids.contains(&p)) {
                ids.push(id);
                out.push(s);
                grew = true;
            }
        }
    }
    out
}

#[test]
fn a_reconcile_is_a_trace_with_its_api_calls() {
    let dir = std::env::temp_dir().join(format!("erlmcp-op-traces-{}", std::process::id()));
    let collector = jaeger::Jaeger::start(&dir);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = FakeApi::new();
    fake.put(
        &format!("/apis/erlmcp.io/v1alpha1/namespaces/{NS}/erlmcpclusters/demo"),
        json!({"apiVersion": "erlmcp.io/v1alpha1", "kind": "ErlmcpCluster",
               "metadata": {"name": "demo", "namespace": NS, "uid": "uid-demo", "generation": 3,
                            "resourceVersion": "1", "creationTimestamp": "2026-01-01T00:00:00Z"},
               "spec": {"replicas": 2}}),
    );
    let addr = rt.block_on(fake.serve());
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: \"http://{addr}\"}}}}]\n\
             users: [{{name: fake, user: {{}}}}]\ncontexts: [{{name: fake, context: {{cluster: fake, user: fake, namespace: {NS}}}}}]\n\
             current-context: fake\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("operator.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_erlmcp-operator"))
        .args([
            "run",
            "--metrics-addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("LEADER_ELECT", "false")
        .env("POD_NAMESPACE", NS)
        .env("RUST_LOG", "info")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.otlp_endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env_remove("OTEL_SERVICE_NAME")
        .env_remove("OTEL_RESOURCE_ATTRIBUTES")
        .env_remove("ERLMCP_BIND_ADDRESS")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start erlmcp-operator");

    let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        collector.wait_for(
            "a reconcile of demo with API-call children",
            Duration::from_secs(60),
            |j| {
                j.traces("erlmcp-operator").into_iter().find_map(|t| {
                    let root = t["spans"].as_array()?.iter().find(|s| {
                        s["operationName"] == "reconcile"
                            && jaeger::tag(s, "erlmcp.cluster.name").as_deref() == Some("demo")
                            && jaeger::tag(s, "erlmcp.reconcile.outcome").is_some()
                    })?;
                    let id = root["spanID"].as_str()?.to_string();
                    let calls = descendants(&t, &id)
                        .into_iter()
                        .filter(|s| jaeger::tag(s, "http.method").is_some())
                        .count();
                    (calls >= 3).then(|| (t.clone(), id))
                })
            },
        )
    }));
    let _ = child.kill();
    let _ = child.wait();
    let (trace, root_id) = found.unwrap_or_else(|e| {
        eprintln!(
            "operator log:\n{}",
            std::fs::read_to_string(dir.join("operator.log")).unwrap_or_default()
        );
        std::panic::resume_unwind(e)
    });

    let root = trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["spanID"] == root_id.as_str())
        .unwrap();
    assert_eq!(jaeger::tag(root, "k8s.namespace.name").as_deref(), Some(NS));
    assert_eq!(
        jaeger::tag(root, "erlmcp.cluster.generation").as_deref(),
        Some("3")
    );
    assert_eq!(
        jaeger::tag(root, "erlmcp.reconcile.outcome").as_deref(),
        Some("ok")
    );
    assert_eq!(
        jaeger::process_of(&trace, root)["serviceName"],
        "erlmcp-operator"
    );
    // Its children are the API requests it made: the StatefulSet's apply among them, each a
    // client span with its URL.
    let calls: Vec<String> = descendants(&trace, &root_id)
        .into_iter()
        .filter_map(|s| {
            Some(format!(
                "{} {}",
                jaeger::tag(s, "http.method")?,
                jaeger::tag(s, "http.url")?
            ))
        })
        .collect();
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("PATCH ") && c.contains("/statefulsets/demo")),
        "{calls:#?}"
    );
    assert!(
        calls
            .iter()
            .any(|c| c.contains("/erlmcpclusters/demo/status")),
        "{calls:#?}"
    );
    // The operator's JSON logs name the trace they belong to.
    let log = std::fs::read_to_string(dir.join("operator.log")).unwrap();
    let trace_id = trace["traceID"].as_str().unwrap();
    assert!(
        log.lines().any(|l| l.contains(trace_id)),
        "no log line carries trace {trace_id}"
    );
    drop(collector);
    std::fs::remove_dir_all(&dir).ok();
}
