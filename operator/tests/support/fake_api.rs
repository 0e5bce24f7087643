//! One fake Kubernetes API server for the operator's tests. It keeps objects in memory, so that
//! multi-step scenarios (a spec change, pruning) see what earlier steps stored, records every
//! request it is sent, and fails the requests a test chooses. Two doors onto the same state:
//! [`FakeApi::client`], an in-process `tower_test` mock for a `kube::Client` (exact request
//! sequences), and [`FakeApi::serve`], a loopback HTTP server for the operator binary.
//!
//! Semantics, kept small: server-side apply creates what is missing and merges the body into
//! what exists (fields are never dropped); `generation` moves when `spec`, `data` or `rules`
//! change; the `status` subresource replaces the status of an object that exists; list ignores
//! the version (one object, every version, as the real server); watches stay open, silent.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Value,
    /// A server-side apply that created the object (the real server authorizes it as a create).
    pub created: bool,
}

impl Seen {
    /// `METHOD path`.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// An Event written by an event recorder.
    pub fn is_event(&self) -> bool {
        self.path.starts_with("/apis/events.k8s.io/")
    }

    /// The RBAC verb of the request, for paths that name a resource.
    pub fn verb(&self) -> Option<&'static str> {
        let p = ApiPath::parse(&self.path)?;
        let watch = self
            .query
            .split('&')
            .any(|kv| kv == "watch=true" || kv == "watch=1");
        Some(match (self.method.as_str(), &p.name) {
            ("GET", Some(_)) => "get",
            ("GET", None) if watch => "watch",
            ("GET", None) => "list",
            ("POST", _) => "create",
            ("PUT", _) => "update",
            ("PATCH", _) => "patch",
            ("DELETE", Some(_)) => "delete",
            ("DELETE", None) => "deletecollection",
            _ => return None,
        })
    }
}

/// An API path split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiPath {
    /// "" for the core group.
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    /// Plural resource name.
    pub resource: String,
    pub name: Option<String>,
    pub sub: Option<String>,
}

impl ApiPath {
    pub fn parse(path: &str) -> Option<ApiPath> {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, version, rest) = match segs.as_slice() {
            ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
            ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
            _ => return None,
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
            _ => (None, rest),
        };
        let (resource, name, sub) = match rest {
            [r] => (r.to_string(), None, None),
            [r, n] => (r.to_string(), Some(n.to_string()), None),
            [r, n, s] => (r.to_string(), Some(n.to_string()), Some(s.to_string())),
            _ => return None,
        };
        Some(ApiPath {
            group,
            version,
            namespace,
            resource,
            name,
            sub,
        })
    }

    /// The storage path of the object `name` of this resource.
    pub fn object(&self, name: &str) -> String {
        let prefix = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match &self.namespace {
            Some(ns) => format!("{prefix}/namespaces/{ns}/{}/{name}", self.resource),
            None => format!("{prefix}/{}/{name}", self.resource),
        }
    }

    fn group_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// What the server answers.
pub enum Reply {
    Json(u16, Value),
    /// A watch: headers now, then nothing until the client goes away.
    Watch,
}

type FailFn = dyn Fn(&str, &str) -> Option<u16> + Send + Sync;

#[derive(Default)]
struct State {
    /// Object path (no query) -> object.
    objects: BTreeMap<String, Value>,
    /// Requests not yet taken by [`FakeApi::take_seen`].
    seen: Vec<Seen>,
    /// Every request, never taken.
    history: Vec<Seen>,
    rv: u64,
}

/// The fake server's state, shared by its doors and the test.
#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
    fail: Arc<Mutex<Option<Box<FailFn>>>>,
}

pub fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn failure(code: u16, reason: &str) -> Reply {
    Reply::Json(code, status_body(code, reason, reason))
}

/// JSON merge patch (RFC 7386): objects merge, null removes, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// Discovery: the version and group versions a current cluster with every optional CRD serves.
fn discovery(path: &str) -> Option<Value> {
    let res = |gv: &str, list: &[(&str, &str)]| {
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
               "resources": list.iter().map(|(name, kind)| json!({
                   "name": name, "singularName": "", "namespaced": true, "kind": kind,
                   "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})).collect::<Vec<_>>()})
    };
    match path.trim_end_matches('/') {
        // The server version decides which newer fields the builders may emit.
        "/version" => Some(json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0",
                                  "gitCommit": "", "gitTreeState": "clean", "buildDate": "",
                                  "goVersion": "", "compiler": "gc", "platform": "linux/amd64"})),
        "/apis/autoscaling/v2" => Some(res(
            "autoscaling/v2",
            &[("horizontalpodautoscalers", "HorizontalPodAutoscaler")],
        )),
        "/apis/policy/v1" => Some(res(
            "policy/v1",
            &[("poddisruptionbudgets", "PodDisruptionBudget")],
        )),
        "/apis/monitoring.coreos.com/v1" => Some(res(
            "monitoring.coreos.com/v1",
            &[
                ("servicemonitors", "ServiceMonitor"),
                ("prometheusrules", "PrometheusRule"),
            ],
        )),
        "/apis/cert-manager.io/v1" => Some(res(
            "cert-manager.io/v1",
            &[("certificates", "Certificate")],
        )),
        _ => None,
    }
}

/// The fields whose change moves an object's generation.
fn generation_fields(o: &Value) -> [Option<&Value>; 3] {
    [o.get("spec"), o.get("data"), o.get("rules")]
}

impl FakeApi {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every request since the last call, in order.
    pub fn take_seen(&self) -> Vec<Seen> {
        std::mem::take(&mut self.state.lock().unwrap().seen)
    }

    /// Every request since the start, in order (untouched by [`FakeApi::take_seen`]).
    pub fn history(&self) -> Vec<Seen> {
        self.state.lock().unwrap().history.clone()
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.state.lock().unwrap().objects.get(path).cloned()
    }

    /// Every stored object whose path starts with `prefix`, in path order.
    pub fn objects_under(&self, prefix: &str) -> Vec<Value> {
        let s = self.state.lock().unwrap();
        s.objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// Delete an object behind the operator's back (a human with kubectl).
    pub fn remove(&self, path: &str) -> Option<Value> {
        self.state.lock().unwrap().objects.remove(path)
    }

    pub fn put(&self, path: &str, obj: Value) {
        self.state
            .lock()
            .unwrap()
            .objects
            .insert(path.to_string(), obj);
    }

    /// Answer `(method, path)` with this status code when `f` says so.
    pub fn fail_with(&self, f: impl Fn(&str, &str) -> Option<u16> + Send + Sync + 'static) {
        *self.fail.lock().unwrap() = Some(Box::new(f));
    }

    pub fn stop_failing(&self) {
        *self.fail.lock().unwrap() = None;
    }

    /// A `kube::Client` whose requests this fake answers in-process.
    pub fn client(&self) -> kube::Client {
        use http::{Request, Response, StatusCode};
        use kube::client::Body;
        let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let fake = self.clone();
        tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let method = req.method().to_string();
                let path = req.uri().path().to_string();
                let query = req.uri().query().unwrap_or_default().to_string();
                let content_type = header(req.headers(), "content-type");
                let bytes = req.into_body().collect_bytes().await.unwrap();
                let (code, out) = match fake.handle(&method, &path, &query, &content_type, &bytes) {
                    Reply::Json(code, v) => (code, v),
                    Reply::Watch => (
                        405,
                        status_body(405, "MethodNotAllowed", "watches need FakeApi::serve"),
                    ),
                };
                let resp = Response::builder()
                    .status(StatusCode::from_u16(code).unwrap())
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&out).unwrap()))
                    .unwrap();
                send.send_response(resp);
            }
        });
        kube::Client::new(svc, "default")
    }

    /// Serve this fake over HTTP on a loopback port.
    pub async fn serve(&self) -> SocketAddr {
        use axum::body::{Body, Bytes};
        use axum::http::{Request, Response};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = self.clone();
        let app = axum::Router::new().fallback(move |req: Request<Body>| {
            let fake = fake.clone();
            async move {
                let method = req.method().to_string();
                let path = req.uri().path().to_string();
                let query = req.uri().query().unwrap_or_default().to_string();
                let content_type = header(req.headers(), "content-type");
                let body: Bytes = axum::body::to_bytes(req.into_body(), 16 << 20)
                    .await
                    .unwrap_or_default();
                let response = Response::builder().header("content-type", "application/json");
                match fake.handle(&method, &path, &query, &content_type, &body) {
                    Reply::Watch => {
                        let stream = futures::stream::pending::<Result<Bytes, std::io::Error>>();
                        response.status(200).body(Body::from_stream(stream))
                    }
                    Reply::Json(code, v) => response.status(code).body(Body::from(v.to_string())),
                }
                .unwrap()
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }

    /// Answer one request.
    pub fn handle(
        &self,
        method: &str,
        path: &str,
        query: &str,
        content_type: &str,
        body: &[u8],
    ) -> Reply {
        let body: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(body)
                .or_else(|_| serde_yaml::from_slice::<Value>(body))
                .unwrap_or(Value::Null)
        };
        let injected = self
            .fail
            .lock()
            .unwrap()
            .as_ref()
            .and_then(|f| f(method, path));
        let mut seen = Seen {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            content_type: content_type.into(),
            body: body.clone(),
            created: false,
        };
        let mut s = self.state.lock().unwrap();
        let reply = match injected {
            Some(code) => Reply::Json(code, status_body(code, "Injected", "injected failure")),
            None => s.answer(&mut seen, body),
        };
        s.history.push(seen.clone());
        s.seen.push(seen);
        reply
    }
}

impl State {
    fn answer(&mut self, seen: &mut Seen, body: Value) -> Reply {
        if let Some(d) = discovery(&seen.path) {
            return Reply::Json(200, d);
        }
        let (Some(p), Some(verb)) = (ApiPath::parse(&seen.path), seen.verb()) else {
            return failure(404, "NotFound");
        };
        match verb {
            "list" => {
                let items: Vec<Value> = self
                    .objects
                    .iter()
                    .filter(|(k, _)| {
                        ApiPath::parse(k).is_some_and(|o| {
                            o.group == p.group
                                && o.resource == p.resource
                                && (p.namespace.is_none() || o.namespace == p.namespace)
                        })
                    })
                    .map(|(_, o)| o.clone())
                    .collect();
                Reply::Json(
                    200,
                    json!({"apiVersion": p.group_version(), "kind": "List",
                           "metadata": {"resourceVersion": self.rv.to_string()}, "items": items}),
                )
            }
            "watch" => Reply::Watch,
            "get" => match self.objects.get(&p.object(p.name.as_deref().unwrap())) {
                Some(o) => Reply::Json(200, o.clone()),
                None => failure(404, "NotFound"),
            },
            "create" => {
                let name = body["metadata"]["name"]
                    .as_str()
                    .unwrap_or("generated")
                    .to_string();
                let key = p.object(&name);
                if self.objects.contains_key(&key) {
                    return failure(409, "AlreadyExists");
                }
                let o = self.stored(&p, body);
                self.objects.insert(key, o.clone());
                Reply::Json(201, o)
            }
            "patch" | "update" => {
                let key = p.object(p.name.as_deref().unwrap());
                let apply = seen.content_type.starts_with("application/apply-patch");
                let (old, mut o) = match self.objects.get(&key) {
                    Some(o) => (o.clone(), o.clone()),
                    None if apply && p.sub.is_none() => {
                        seen.created = true;
                        (Value::Null, self.stored(&p, json!({})))
                    }
                    None => return failure(404, "NotFound"),
                };
                match (verb, p.sub.as_deref()) {
                    (_, Some("status")) => o["status"] = body["status"].clone(),
                    ("update", _) => {
                        let meta = o["metadata"].clone();
                        o = body;
                        o["metadata"]["uid"] = meta["uid"].clone();
                    }
                    _ => merge(&mut o, &body),
                }
                if p.sub.is_none() {
                    let generation = old["metadata"]["generation"].as_i64().unwrap_or(0);
                    let changed = generation_fields(&old) != generation_fields(&o);
                    o["metadata"]["generation"] = json!(generation + i64::from(changed));
                }
                self.rv += 1;
                o["metadata"]["resourceVersion"] = json!(self.rv.to_string());
                self.objects.insert(key, o.clone());
                Reply::Json(200, o)
            }
            "delete" => match self.objects.remove(&p.object(p.name.as_deref().unwrap())) {
                Some(_) => Reply::Json(
                    200,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
                ),
                None => failure(404, "NotFound"),
            },
            _ => failure(405, "MethodNotAllowed"),
        }
    }

    /// A new object as the server stores it: identity, version and namespace filled in.
    fn stored(&mut self, p: &ApiPath, body: Value) -> Value {
        self.rv += 1;
        let mut o = body;
        if p.resource == "secrets" {
            string_data_into_data(&mut o);
        }
        o["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        if o["metadata"]["uid"].is_null() {
            o["metadata"]["uid"] = json!(format!("uid-{}", self.rv));
        }
        if o["metadata"]["creationTimestamp"].is_null() {
            o["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        if let Some(ns) = &p.namespace {
            o["metadata"]["namespace"] = json!(ns);
        }
        o
    }
}

fn header(headers: &http::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// What the API server does with a Secret's `stringData`: merged into `data`, base64-encoded.
fn string_data_into_data(secret: &mut Value) {
    use base64::Engine;
    let Some(Value::Object(strings)) = secret.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return;
    };
    for (k, v) in strings {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or_default());
        secret["data"][k] = json!(encoded);
    }
}
