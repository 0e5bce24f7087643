//! Reconcile against a mocked API server (tower_test::mock): the exact requests the operator
//! sends, their bodies, and how it handles errors. The fake server keeps objects in memory so
//! that multi-step scenarios (a spec change, pruning) see what earlier steps stored.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use erlmcp_crds::ErlmcpCluster;
use erlmcp_operator::desired::ServerCapabilities;
use erlmcp_operator::metrics::Metrics;
use erlmcp_operator::reconcile::{error_policy, reconcile, Context, Events};
use http::{Request, Response, StatusCode};
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::Client;
use serde_json::{json, Value};

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    body: Value,
}

impl Seen {
    fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

type FailFn = dyn Fn(&str, &str) -> Option<u16> + Send + Sync;

#[derive(Default)]
struct FakeState {
    objects: BTreeMap<String, Value>,
    seen: Vec<Seen>,
    rv: u64,
}

/// An in-memory API server behind a tower_test mock.
struct FakeApi {
    state: Arc<Mutex<FakeState>>,
    fail: Arc<Mutex<Option<Box<FailFn>>>>,
}

fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

impl FakeApi {
    fn start() -> (Client, FakeApi) {
        let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let state = Arc::new(Mutex::new(FakeState::default()));
        let fail: Arc<Mutex<Option<Box<FailFn>>>> = Arc::new(Mutex::new(None));
        let (st, fl) = (state.clone(), fail.clone());
        tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let method = req.method().to_string();
                let path = req.uri().path().to_string();
                let query = req.uri().query().unwrap_or_default().to_string();
                let bytes = req.into_body().collect_bytes().await.unwrap();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let injected = fl.lock().unwrap().as_ref().and_then(|f| f(&method, &path));
                let (code, out) = {
                    let mut s = st.lock().unwrap();
                    s.seen.push(Seen {
                        method: method.clone(),
                        path: path.clone(),
                        query: query.clone(),
                        body: body.clone(),
                    });
                    match injected {
                        Some(code) => (code, status_body(code, "Injected", "injected failure")),
                        None => Self::handle(&mut s, &method, &path, body),
                    }
                };
                let resp = Response::builder()
                    .status(StatusCode::from_u16(code).unwrap())
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&out).unwrap()))
                    .unwrap();
                send.send_response(resp);
            }
        });
        (Client::new(svc, "default"), FakeApi { state, fail })
    }

    fn handle(s: &mut FakeState, method: &str, path: &str, body: Value) -> (u16, Value) {
        let (base, sub) = match path.strip_suffix("/status") {
            Some(b) if path.contains("/erlmcpclusters/") => (b.to_string(), Some("status")),
            _ => (path.to_string(), None),
        };
        match method {
            "GET" => {
                if let Some(obj) = s.objects.get(&base) {
                    return (200, obj.clone());
                }
                // A collection: every stored object directly under this path.
                let prefix = format!("{base}/");
                let items: Vec<Value> = s
                    .objects
                    .iter()
                    .filter(|(k, _)| k.starts_with(&prefix) && !k[prefix.len()..].contains('/'))
                    .map(|(_, v)| v.clone())
                    .collect();
                let is_collection = base
                    .split("/namespaces/")
                    .nth(1)
                    .map(|r| r.split('/').count())
                    == Some(2);
                if is_collection {
                    (
                        200,
                        json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": s.rv.to_string()}, "items": items}),
                    )
                } else {
                    (
                        404,
                        status_body(404, "NotFound", &format!("{base} not found")),
                    )
                }
            }
            "PATCH" => {
                s.rv += 1;
                let rv = s.rv.to_string();
                let mut obj = s
                    .objects
                    .get(&base)
                    .cloned()
                    .unwrap_or_else(|| json!({"metadata": {"generation": 0}}));
                if sub == Some("status") {
                    // The real server returns the whole resource; keep a spec so it parses.
                    if obj.get("spec").is_none() {
                        obj = json!({"apiVersion": body["apiVersion"], "kind": body["kind"],
                                     "metadata": {"name": "mcp", "namespace": NS}, "spec": {}});
                    }
                    obj["status"] = body["status"].clone();
                } else {
                    let changed = obj.get("spec") != body.get("spec")
                        || obj.get("data") != body.get("data")
                        || obj.get("rules") != body.get("rules");
                    let gen =
                        obj["metadata"]["generation"].as_i64().unwrap_or(0) + i64::from(changed);
                    let status = obj.get("status").cloned();
                    obj = body;
                    obj["metadata"]["generation"] = json!(gen);
                    if let Some(st) = status {
                        obj["status"] = st;
                    }
                }
                obj["metadata"]["resourceVersion"] = json!(rv);
                s.objects.insert(base, obj.clone());
                (200, obj)
            }
            "POST" => {
                let name = body["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let key = format!("{base}/{name}");
                if s.objects.contains_key(&key) {
                    return (409, status_body(409, "AlreadyExists", "exists"));
                }
                s.rv += 1;
                let mut obj = body;
                obj["metadata"]["resourceVersion"] = json!(s.rv.to_string());
                s.objects.insert(key, obj.clone());
                (201, obj)
            }
            "DELETE" => match s.objects.remove(&base) {
                Some(_) => (
                    200,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
                ),
                None => (404, status_body(404, "NotFound", "gone")),
            },
            _ => (405, status_body(405, "MethodNotAllowed", method)),
        }
    }

    fn take_seen(&self) -> Vec<Seen> {
        std::mem::take(&mut self.state.lock().unwrap().seen)
    }

    fn get(&self, path: &str) -> Option<Value> {
        self.state.lock().unwrap().objects.get(path).cloned()
    }

    fn put(&self, path: &str, obj: Value) {
        self.state
            .lock()
            .unwrap()
            .objects
            .insert(path.to_string(), obj);
    }

    fn fail_with(&self, f: impl Fn(&str, &str) -> Option<u16> + Send + Sync + 'static) {
        *self.fail.lock().unwrap() = Some(Box::new(f));
    }
}

const NS: &str = "prod";

fn cluster(spec: Value) -> ErlmcpCluster {
    serde_json::from_value(json!({
        "apiVersion": "erlmcp.io/v1alpha1", "kind": "ErlmcpCluster",
        "metadata": {"name": "mcp", "namespace": NS, "uid": "5a0d3c0e-0000-4000-8000-000000000001", "generation": 1},
        "spec": spec,
    }))
    .unwrap()
}

fn context(client: Client, caps: ServerCapabilities) -> Arc<Context> {
    Arc::new(Context::new(
        client,
        caps,
        Metrics::new(),
        Events::Memory(Mutex::new(Vec::new())),
    ))
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

fn reasons(ctx: &Context) -> Vec<String> {
    ctx.recorded_events()
        .into_iter()
        .map(|(_, r, n)| format!("{r}: {n}"))
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
    let (client, api) = FakeApi::start();
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
    let seen = api.take_seen();
    let expected = vec![
        // The cookie is generated once: looked up, then created.
        "GET /api/v1/namespaces/prod/secrets/mcp-cookie",
        "POST /api/v1/namespaces/prod/secrets",
        // Its contents feed the pod-template checksum.
        "GET /api/v1/namespaces/prod/secrets/mcp-cookie",
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
        // Then the status.
        "PATCH /apis/erlmcp.io/v1alpha1/namespaces/prod/erlmcpclusters/mcp/status",
    ];
    assert_eq!(lines(&seen), expected);

    // Lists select our objects by label.
    let list = &seen[3];
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

    let events = reasons(&ctx);
    assert!(
        events.contains(&"Created: created Secret mcp-cookie (generated once)".to_string()),
        "{events:?}"
    );
    assert!(events.contains(&"Created: created StatefulSet mcp".to_string()));
    assert_eq!(
        events.iter().filter(|e| e.starts_with("Created")).count(),
        10,
        "{events:?}"
    );
    // Not ready yet: come back soon.
    assert_eq!(action, Action::requeue(Duration::from_secs(15)));
}

#[tokio::test]
async fn a_spec_change_updates_rolls_and_never_rewrites_the_cookie() {
    let (client, api) = FakeApi::start();
    let ctx = context(client, ServerCapabilities::default());
    run(&cluster(json!({"replicas": 3})), &ctx).await.unwrap();
    let first_sts = api
        .get("/apis/apps/v1/namespaces/prod/statefulsets/mcp")
        .unwrap();
    let cookie = api
        .get("/api/v1/namespaces/prod/secrets/mcp-cookie")
        .unwrap();
    api.take_seen();

    let mut changed = cluster(json!({"replicas": 5, "logging": {"level": "debug"}}));
    changed.metadata.generation = Some(2);
    run(&changed, &ctx).await.unwrap();
    let seen = api.take_seen();
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
    let events = reasons(&ctx);
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
    let (client, api) = FakeApi::start();
    let ctx = context(client, ServerCapabilities::default());
    let action = run(&cluster(json!({"paused": true})), &ctx).await.unwrap();
    let seen = api.take_seen();
    assert_eq!(
        lines(&seen),
        vec![
            "GET /apis/apps/v1/namespaces/prod/statefulsets/mcp",
            "PATCH /apis/erlmcp.io/v1alpha1/namespaces/prod/erlmcpclusters/mcp/status",
        ]
    );
    assert_eq!(seen[1].body["status"]["phase"], "Paused");
    assert_eq!(reconcile_condition(&seen[1])["reason"], "Paused");
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
}

#[tokio::test]
async fn an_invalid_spec_is_a_condition_not_a_retry_storm() {
    let (client, api) = FakeApi::start();
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
    let seen = api.take_seen();
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
    assert!(reasons(&ctx)[0].starts_with("InvalidSpec: spec.replicas"));
}

#[tokio::test]
async fn server_errors_back_off_without_pruning_or_crashing() {
    for code in [409u16, 500] {
        let (client, api) = FakeApi::start();
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
        let seen = api.take_seen();
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
        // Recovery resets the backoff.
        *api.fail.lock().unwrap() = None;
        run(&c, &ctx).await.unwrap();
        assert_eq!(
            error_policy(c, &err, ctx.clone()),
            Action::requeue(Duration::from_secs(2))
        );
    }
}

#[tokio::test]
async fn turning_features_off_prunes_their_objects() {
    let (client, api) = FakeApi::start();
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
    api.take_seen();

    let off = cluster(
        json!({"replicas": 1, "autoscaling": {"enabled": false, "maxReplicas": 6, "targetCPUUtilizationPercentage": 70}, "networkPolicy": {"enabled": false}}),
    );
    run(&off, &ctx).await.unwrap();
    let seen = api.take_seen();
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
    let events = reasons(&ctx);
    assert!(
        events
            .iter()
            .any(|e| e == "Pruned: deleted HorizontalPodAutoscaler mcp: no longer in the spec"),
        "{events:?}"
    );
}

#[tokio::test]
async fn old_servers_get_the_beta_api_versions() {
    let (client, api) = FakeApi::start();
    let caps = ServerCapabilities {
        hpa_api_version: "autoscaling/v2beta2".into(),
        pdb_api_version: "policy/v1beta1".into(),
        service_monitor: false,
        prometheus_rule: false,
        cert_manager: false,
    };
    let ctx = context(client, caps);
    let c = cluster(
        json!({"autoscaling": {"maxReplicas": 4, "targetCPUUtilizationPercentage": 60},
                           "monitoring": {"serviceMonitor": {}}}),
    );
    run(&c, &ctx).await.unwrap();
    let seen = api.take_seen();
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
    assert!(reasons(&ctx)
        .iter()
        .any(|e| e.starts_with("Skipped: ServiceMonitor")));
}
