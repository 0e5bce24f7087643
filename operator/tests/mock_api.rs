//! Reconcile against a mocked API server (tower_test::mock): the exact requests the operator
//! sends, their bodies, and how it handles errors. The fake server keeps objects in memory so
//! that multi-step scenarios (a spec change, pruning) see what earlier steps stored.

mod support;

use std::sync::Arc;
use std::time::Duration;

use erlmcp_crds::ErlmcpCluster;
use erlmcp_operator::desired::{ServerCapabilities, FIELD_MANAGER};
use erlmcp_operator::metrics::Metrics;
use erlmcp_operator::reconcile::{error_policy, reconcile, Context, RESYNC};
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::Client;
use serde_json::{json, Value};
use support::fake_api::{FakeApi, Seen};

const NS: &str = "prod";

fn cluster(spec: Value) -> ErlmcpCluster {
    serde_json::from_value(json!({
        "apiVersion": "erlmcp.io/v1alpha1", "kind": "ErlmcpCluster",
        "metadata": {"name": "mcp", "namespace": NS, "uid": "5a0d3c0e-0000-4000-8000-000000000001", "generation": 1},
        "spec": spec,
    }))
    .unwrap()
}

/// The fake API server, holding the cluster the tests reconcile (its status is written there).
fn start() -> (Client, FakeApi) {
    let api = FakeApi::new();
    api.put(
        &format!("/apis/erlmcp.io/v1alpha1/namespaces/{NS}/erlmcpclusters/mcp"),
        serde_json::to_value(cluster(json!({}))).unwrap(),
    );
    (api.client(), api)
}

/// The operator's context, with a real event recorder on the mocked client.
fn context(client: Client, caps: ServerCapabilities) -> Arc<Context> {
    let reporter = Reporter {
        controller: FIELD_MANAGER.into(),
        instance: None,
    };
    let recorder = Recorder::new(client.clone(), reporter);
    Arc::new(Context::new(client, caps, Metrics::new(), recorder))
}

/// The API requests since the last call, without the Events (read by [`reasons`]).
fn take_requests(api: &FakeApi) -> Vec<Seen> {
    api.take_seen()
        .into_iter()
        .filter(|s| !s.is_event())
        .collect()
}

fn lines(seen: &[Seen]) -> Vec<String> {
    seen.iter().map(Seen::line).collect()
}

fn applies(seen: &[Seen]) -> Vec<&Seen> {
    seen.iter()
        .filter(|s| s.method == "PATCH" && !s.path.ends_with("/status"))
        .collect()
}

/// The ReconcileSuccess condition of a status write.
fn reconcile_condition(status_write: &Seen) -> Value {
    status_write.body["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "ReconcileSuccess")
        .unwrap()
        .clone()
}

/// Every Event the recorder wrote to the API server so far, as "reason: note".
fn reasons(api: &FakeApi) -> Vec<String> {
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

async fn run(
    c: &ErlmcpCluster,
    ctx: &Arc<Context>,
) -> Result<Action, erlmcp_operator::reconcile::Error> {
    tokio::time::timeout(
        Duration::from_secs(10),
        reconcile(Arc::new(c.clone()), ctx.clone()),
    )
    .await
    .expect("reconcile finished")
}

#[tokio::test]
async fn first_reconcile_sends_exactly_these_requests() {
    let (client, api) = start();
    let ctx = context(
        client,
        ServerCapabilities {
            service_monitor: false,
            prometheus_rule: false,
            cert_manager: false,
            ..Default::default()
        },
    );
    let c = cluster(json!({"replicas": 3}));
    let action = run(&c, &ctx).await.unwrap();
    let seen = take_requests(&api);
    let expected = vec![
        // The cookie is generated once: looked up (no caches here), then created. Its
        // contents feed the pod-template checksum: the create's answer has them.
        "GET /api/v1/namespaces/prod/secrets/mcp-cookie",
        "POST /api/v1/namespaces/prod/secrets",
        // What we own already (for events and pruning).
        "GET /apis/apps/v1/namespaces/prod/statefulsets",
        "GET /api/v1/namespaces/prod/services",
        "GET /api/v1/namespaces/prod/configmaps",
        "GET /api/v1/namespaces/prod/secrets",
        "GET /api/v1/namespaces/prod/serviceaccounts",
        "GET /apis/rbac.authorization.k8s.io/v1/namespaces/prod/roles",
        "GET /apis/rbac.authorization.k8s.io/v1/namespaces/prod/rolebindings",
        "GET /apis/networking.k8s.io/v1/namespaces/prod/networkpolicies",
        "GET /apis/policy/v1/namespaces/prod/poddisruptionbudgets",
        "GET /apis/autoscaling/v2/namespaces/prod/horizontalpodautoscalers",
        "GET /apis/apps/v1/namespaces/prod/statefulsets/mcp",
        // Every child, server-side applied.
        "PATCH /api/v1/namespaces/prod/configmaps/mcp-config",
        "PATCH /api/v1/namespaces/prod/serviceaccounts/mcp-dataplane",
        "PATCH /apis/rbac.authorization.k8s.io/v1/namespaces/prod/roles/mcp-dataplane",
        "PATCH /apis/rbac.authorization.k8s.io/v1/namespaces/prod/rolebindings/mcp-dataplane",
        "PATCH /api/v1/namespaces/prod/services/mcp-headless",
        "PATCH /api/v1/namespaces/prod/services/mcp",
        "PATCH /apis/apps/v1/namespaces/prod/statefulsets/mcp",
        "PATCH /apis/policy/v1/namespaces/prod/poddisruptionbudgets/mcp",
        "PATCH /apis/networking.k8s.io/v1/namespaces/prod/networkpolicies/mcp",
        // Then the status, with the Pods' readiness (listed: no controller caches here).
        "GET /api/v1/namespaces/prod/pods",
        "PATCH /apis/erlmcp.io/v1alpha1/namespaces/prod/erlmcpclusters/mcp/status",
    ];
    assert_eq!(lines(&seen), expected);

    // Lists select our objects by label.
    let list = &seen[2];
    assert!(
        list.query
            .contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Derlmcp-operator"),
        "{}",
        list.query
    );

    // The generated cookie is real, not the placeholder.
    let cookie = &seen[1].body["stringData"]["cookie"];
    assert!(
        cookie.as_str().unwrap().len() >= 64 && !cookie.as_str().unwrap().contains("generated")
    );

    // Every apply: forced, our field manager, owned by the cluster as controller.
    for s in applies(&seen) {
        assert!(
            s.query.contains("fieldManager=erlmcp-operator") && s.query.contains("force=true"),
            "{}",
            s.query
        );
        let owner = &s.body["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "ErlmcpCluster", "{}", s.path);
        assert_eq!(owner["uid"], "5a0d3c0e-0000-4000-8000-000000000001");
        assert_eq!(owner["controller"], true);
        assert_eq!(
            s.body["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "erlmcp-operator"
        );
    }
    let sts = applies(&seen)
        .into_iter()
        .find(|s| s.path.ends_with("statefulsets/mcp"))
        .unwrap();
    assert_eq!(sts.body["spec"]["replicas"], 3);

    // Status: own manager, no members (the pods own those).
    let status = seen.last().unwrap();
    assert!(status.query.contains("fieldManager=erlmcp-operator-status"));
    assert!(status.body["status"].get("members").is_none());
    assert_eq!(
        status.body["status"]["selector"],
        "app.kubernetes.io/instance=mcp,app.kubernetes.io/name=erlmcp"
    );
    assert_eq!(status.body["status"]["observedGeneration"], 1);
    assert_eq!(reconcile_condition(status)["status"], "True");

    // The ten children of a new cluster, the generated cookie among them: one event on the
    // cluster, not one each.
    let events = reasons(&api);
    let created: Vec<_> = events.iter().filter(|e| e.starts_with("Created")).collect();
    assert_eq!(created.len(), 1, "{events:?}");
    let summary = created[0];
    assert!(
        summary.starts_with("Created: created 10 objects: Secret mcp-cookie (generated once), "),
        "{summary}"
    );
    assert!(summary.contains("StatefulSet mcp"), "{summary}");
    assert!(summary.contains("Service mcp-headless"), "{summary}");
    // Not ready yet: come back soon.
    assert_eq!(action, Action::requeue(Duration::from_secs(15)));
}

#[tokio::test]
async fn a_spec_change_updates_rolls_and_never_rewrites_the_cookie() {
    let (client, api) = start();
    let ctx = context(client, ServerCapabilities::default());
    run(&cluster(json!({"replicas": 3})), &ctx).await.unwrap();
    let first_sts = api
        .get("/apis/apps/v1/namespaces/prod/statefulsets/mcp")
        .unwrap();
    let cookie = api
        .get("/api/v1/namespaces/prod/secrets/mcp-cookie")
        .unwrap();
    take_requests(&api);

    let mut changed = cluster(json!({"replicas": 5, "logging": {"level": "debug"}}));
    changed.metadata.generation = Some(2);
    run(&changed, &ctx).await.unwrap();
    let seen = take_requests(&api);
    assert!(
        !seen.iter().any(|s| s.method == "POST"),
        "nothing created: {:?}",
        lines(&seen)
    );
    assert_eq!(
        api.get("/api/v1/namespaces/prod/secrets/mcp-cookie")
            .unwrap(),
        cookie,
        "cookie never rewritten"
    );
    let sts = api
        .get("/apis/apps/v1/namespaces/prod/statefulsets/mcp")
        .unwrap();
    assert_eq!(sts["spec"]["replicas"], 5);
    let checksum = |o: &Value| {
        o["spec"]["template"]["metadata"]["annotations"]["erlmcp.io/config-checksum"].clone()
    };
    assert_ne!(
        checksum(&sts),
        checksum(&first_sts),
        "config change rolls the pods"
    );
    let cm = api
        .get("/api/v1/namespaces/prod/configmaps/mcp-config")
        .unwrap();
    assert!(cm["data"]["erlmcp.yaml"]
        .as_str()
        .unwrap()
        .contains("level: debug"));
    let events = reasons(&api);
    assert!(
        events.contains(&"Updated: updated ConfigMap mcp-config".to_string()),
        "{events:?}"
    );
    assert!(
        events.contains(&"Updated: updated StatefulSet mcp".to_string()),
        "{events:?}"
    );
    assert!(
        events.contains(&"ScaledUp: scaled from 3 to 5 pods".to_string()),
        "{events:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| e.starts_with("Updated: updated Role")),
        "unchanged children are not reported: {events:?}"
    );
}

#[tokio::test]
async fn paused_applies_nothing_and_reports_status() {
    let (client, api) = start();
    let ctx = context(client, ServerCapabilities::default());
    let action = run(&cluster(json!({"paused": true})), &ctx).await.unwrap();
    let seen = take_requests(&api);
    assert_eq!(
        lines(&seen),
        vec![
            "GET /apis/apps/v1/namespaces/prod/statefulsets/mcp",
            "GET /api/v1/namespaces/prod/pods",
            "PATCH /apis/erlmcp.io/v1alpha1/namespaces/prod/erlmcpclusters/mcp/status",
        ]
    );
    assert_eq!(seen[2].body["status"]["phase"], "Paused");
    assert_eq!(reconcile_condition(&seen[2])["reason"], "Paused");
    assert_eq!(action, Action::requeue(RESYNC));
}

#[tokio::test]
async fn an_invalid_spec_is_a_condition_not_a_retry_storm() {
    let (client, api) = start();
    let ctx = context(client, ServerCapabilities::default());
    let bad = cluster(
        json!({"replicas": -1, "autoscaling": {"minReplicas": 5, "maxReplicas": 2, "targetCPUUtilizationPercentage": 50}}),
    );
    let action = run(&bad, &ctx).await.unwrap();
    assert_eq!(
        action,
        Action::await_change(),
        "no requeue: wait for the user to fix it"
    );
    let seen = take_requests(&api);
    assert!(
        applies(&seen).is_empty() && !seen.iter().any(|s| s.method == "POST"),
        "nothing applied: {:?}",
        lines(&seen)
    );
    let status = seen.last().unwrap();
    assert!(status.path.ends_with("/erlmcpclusters/mcp/status"));
    let rs = reconcile_condition(status);
    assert_eq!(rs["status"], "False");
    assert_eq!(rs["reason"], "InvalidSpec");
    let msg = rs["message"].as_str().unwrap();
    assert!(
        msg.contains("spec.replicas: must be 0 or more")
            && msg.contains("spec.autoscaling.minReplicas"),
        "{msg}"
    );
    assert_eq!(status.body["status"]["phase"], "Failed");
    assert!(reasons(&api)[0].starts_with("InvalidSpec: spec.replicas"));
}

#[tokio::test]
async fn server_errors_back_off_without_pruning_or_crashing() {
    for code in [409u16, 500] {
        let (client, api) = start();
        let ctx = context(client, ServerCapabilities::default());
        let c = cluster(json!({}));
        // A stale object we own: must not be pruned while applies fail.
        api.put(
            "/apis/autoscaling/v2/namespaces/prod/horizontalpodautoscalers/mcp",
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                   "metadata": {"name": "mcp", "namespace": "prod", "labels": {"app.kubernetes.io/managed-by": "erlmcp-operator"},
                                "ownerReferences": [{"apiVersion": "erlmcp.io/v1alpha1", "kind": "ErlmcpCluster", "name": "mcp",
                                                     "uid": "5a0d3c0e-0000-4000-8000-000000000001", "controller": true}]}}),
        );
        api.fail_with(move |m, p| (m == "PATCH" && p.contains("/statefulsets/")).then_some(code));
        let err = run(&c, &ctx).await.unwrap_err();
        let seen = take_requests(&api);
        assert!(err.to_string().contains("StatefulSet/mcp"), "{err}");
        assert_eq!(
            err.reason(),
            if code == 409 {
                "Conflict"
            } else {
                "ServerError"
            }
        );
        assert!(
            !seen.iter().any(|s| s.method == "DELETE"),
            "no pruning after a failed apply"
        );
        // The other children were still applied, and the failure is in the status.
        assert!(applies(&seen)
            .iter()
            .any(|s| s.path.ends_with("/networkpolicies/mcp")));
        let status = seen.last().unwrap();
        let rs = reconcile_condition(status);
        assert_eq!(rs["reason"], "ApplyFailed");
        // Backoff grows per consecutive failure.
        let c = Arc::new(c);
        let a1 = error_policy(c.clone(), &err, ctx.clone());
        let a2 = error_policy(c.clone(), &err, ctx.clone());
        let a3 = error_policy(c.clone(), &err, ctx.clone());
        assert_eq!(a1, Action::requeue(Duration::from_secs(2)));
        assert_eq!(a2, Action::requeue(Duration::from_secs(4)));
        assert_eq!(a3, Action::requeue(Duration::from_secs(8)));
        assert!(ctx.metrics.render().contains(&format!(
            "erlmcp_operator_reconcile_errors_total{{reason=\"{}\"}} 3",
            err.reason()
        )));
        // Recovery resets the backoff. (During the backoff only a spec change runs a
        // reconcile: other triggers wait it out.)
        api.stop_failing();
        let mut fixed = (*c).clone();
        fixed.metadata.generation = Some(2);
        run(&fixed, &ctx).await.unwrap();
        assert_eq!(
            error_policy(c, &err, ctx.clone()),
            Action::requeue(Duration::from_secs(2))
        );
    }
}

#[tokio::test]
async fn turning_features_off_prunes_their_objects() {
    let (client, api) = start();
    let ctx = context(client, ServerCapabilities::default());
    let on =
        cluster(json!({"autoscaling": {"maxReplicas": 6, "targetCPUUtilizationPercentage": 70}}));
    run(&on, &ctx).await.unwrap();
    assert!(api
        .get("/apis/autoscaling/v2/namespaces/prod/horizontalpodautoscalers/mcp")
        .is_some());
    assert!(api
        .get("/apis/networking.k8s.io/v1/namespaces/prod/networkpolicies/mcp")
        .is_some());
    // Somebody else's object with our name but no owner reference to us: never touched.
    api.put(
        "/apis/policy/v1/namespaces/prod/poddisruptionbudgets/other",
        json!({"metadata": {"name": "other", "labels": {"app.kubernetes.io/managed-by": "erlmcp-operator"}}}),
    );
    take_requests(&api);

    let off = cluster(
        json!({"replicas": 1, "autoscaling": {"enabled": false, "maxReplicas": 6, "targetCPUUtilizationPercentage": 70}, "networkPolicy": {"enabled": false}}),
    );
    run(&off, &ctx).await.unwrap();
    let seen = take_requests(&api);
    let deletes: Vec<String> = seen
        .iter()
        .filter(|s| s.method == "DELETE")
        .map(Seen::line)
        .collect();
    assert_eq!(
        deletes,
        vec![
            "DELETE /apis/networking.k8s.io/v1/namespaces/prod/networkpolicies/mcp",
            // One replica: a budget would only block node drains.
            "DELETE /apis/policy/v1/namespaces/prod/poddisruptionbudgets/mcp",
            "DELETE /apis/autoscaling/v2/namespaces/prod/horizontalpodautoscalers/mcp",
        ]
    );
    assert!(api
        .get("/apis/policy/v1/namespaces/prod/poddisruptionbudgets/other")
        .is_some());
    assert!(
        api.get("/api/v1/namespaces/prod/secrets/mcp-cookie")
            .is_some(),
        "generated secrets are not pruned"
    );
    let events = reasons(&api);
    assert!(
        events
            .iter()
            .any(|e| e == "Pruned: deleted HorizontalPodAutoscaler mcp: no longer in the spec"),
        "{events:?}"
    );
}

#[tokio::test]
async fn old_servers_get_the_beta_api_versions() {
    let (client, api) = start();
    let caps = ServerCapabilities {
        hpa_api_version: "autoscaling/v2beta2".into(),
        pdb_api_version: "policy/v1beta1".into(),
        service_monitor: false,
        prometheus_rule: false,
        cert_manager: false,
        pdb_unhealthy_pod_eviction_policy: false,
        pvc_retention_policy: false,
    };
    let ctx = context(client, caps);
    let c = cluster(
        json!({"autoscaling": {"maxReplicas": 4, "targetCPUUtilizationPercentage": 60},
                           "monitoring": {"serviceMonitor": {}}}),
    );
    run(&c, &ctx).await.unwrap();
    let seen = take_requests(&api);
    let l = lines(&seen);
    assert!(
        l.contains(&"GET /apis/policy/v1beta1/namespaces/prod/poddisruptionbudgets".to_string())
    );
    assert!(l.contains(
        &"PATCH /apis/policy/v1beta1/namespaces/prod/poddisruptionbudgets/mcp".to_string()
    ));
    assert!(l.contains(
        &"PATCH /apis/autoscaling/v2beta2/namespaces/prod/horizontalpodautoscalers/mcp".to_string()
    ));
    assert!(
        !l.iter().any(|x| x.contains("/policy/v1/")
            || x.contains("/autoscaling/v2/")
            || x.contains("monitoring.coreos.com")),
        "{l:?}"
    );
    let hpa = applies(&seen)
        .into_iter()
        .find(|s| s.path.contains("horizontalpodautoscalers"))
        .unwrap();
    assert_eq!(hpa.body["apiVersion"], "autoscaling/v2beta2");
    // The ServiceMonitor was asked for but cannot be: the status says why.
    let status = seen.last().unwrap();
    let rs = reconcile_condition(status);
    assert_eq!(rs["reason"], "ReconciledWithSkips");
    assert!(rs["message"].as_str().unwrap().contains("ServiceMonitor"));
    assert!(reasons(&api)
        .iter()
        .any(|e| e.starts_with("Skipped: ServiceMonitor")));
}

#[tokio::test]
async fn a_cluster_being_deleted_is_left_to_the_garbage_collector() {
    let (client, api) = start();
    let ctx = context(client, ServerCapabilities::default());
    let mut c = cluster(json!({"replicas": 3}));
    c.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    let action = run(&c, &ctx).await.unwrap();
    let seen = take_requests(&api);
    assert!(
        seen.is_empty(),
        "no request while deleting (the cookie would be re-created): {:?}",
        lines(&seen)
    );
    assert!(api
        .get("/api/v1/namespaces/prod/secrets/mcp-cookie")
        .is_none());
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn forbidden_and_unprocessable_are_terminal_not_a_fast_retry() {
    for (code, reason) in [(403u16, "Forbidden"), (422, "RejectedByAPIServer")] {
        let (client, api) = start();
        let ctx = context(client, ServerCapabilities::default());
        let c = cluster(json!({}));
        api.fail_with(move |m, p| (m == "PATCH" && p.contains("/statefulsets/")).then_some(code));
        let action = run(&c, &ctx).await.unwrap();
        assert_eq!(
            action,
            Action::requeue(Duration::from_secs(600)),
            "{code}: a long requeue, not the error backoff"
        );
        let seen = take_requests(&api);
        let status = seen.last().unwrap();
        assert!(status.path.ends_with("/status"), "{}", status.line());
        let rs = reconcile_condition(status);
        assert_eq!(rs["status"], "False");
        assert_eq!(rs["reason"], reason, "{code}");
        assert!(rs["message"].as_str().unwrap().contains("StatefulSet/mcp"));
        assert!(
            reasons(&api)
                .iter()
                .any(|e| e.starts_with(&format!("{reason}: applying StatefulSet/mcp"))),
            "{:?}",
            reasons(&api)
        );
        let metrics = ctx.metrics.render();
        assert!(
            metrics.contains("erlmcp_operator_reconciliations_total{result=\"error\"} 1"),
            "{metrics}"
        );

        // A refusal before the status step (reading a Secret) is terminal as well.
        api.fail_with(move |m, p| {
            (m == "GET" && p.ends_with("/secrets/mcp-cookie")).then_some(code)
        });
        let action = run(&c, &ctx).await.unwrap();
        assert_eq!(action, Action::requeue(Duration::from_secs(600)));
        let seen = take_requests(&api);
        assert!(applies(&seen).is_empty(), "{:?}", lines(&seen));
        let rs = reconcile_condition(seen.last().unwrap());
        assert_eq!(rs["reason"], reason, "{:?}", lines(&seen));
    }
}
