//! The protocol core: takes a parsed request plus a context and returns a result or error. It
//! knows nothing of HTTP, sockets or Kubernetes; transports decide how bytes move, this decides
//! what they say. One file per method family.

pub mod completion;
pub mod lifecycle;
pub mod pagination;
pub mod prompts;
pub mod resources;
pub mod subscriptions;
pub mod tasks;
pub mod tools;

// The vocabulary and the request context live below the catalog (its handlers use them);
// these names keep the paths the transports and the cluster use.
pub use crate::context;
pub use crate::wire::{jsonrpc, mrtr, revision};

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::broadcast;
use tracing::Instrument;

use crate::catalog::{handler, Catalog};
use crate::node::{ClusterView, Lifecycle, NodeIdentity};
use crate::observe::metrics::Metrics;
use crate::session::SessionRegistry;
use crate::tasks::{self as task_store, TaskStore};
use context::{Ctx, Era};
use jsonrpc::{Message, RpcError};

/// Server-wide events fanned out to listen streams and legacy standalone streams.
#[derive(Debug, Clone)]
pub enum ServerEvent {
    /// `tools`, `prompts` or `resources`.
    ListChanged(&'static str),
    ResourceUpdated(Arc<str>),
}

/// The notification a server event becomes for one session: every list change, and resource
/// updates only for the URIs the session subscribed to. Shared by every session transport.
pub fn session_notification(ev: &ServerEvent, s: &crate::session::Session) -> Option<Value> {
    match ev {
        ServerEvent::ListChanged(what) => Some(jsonrpc::notification(
            &format!("notifications/{what}/list_changed"),
            json!({}),
        )),
        ServerEvent::ResourceUpdated(uri) if s.is_subscribed(uri) => Some(jsonrpc::notification(
            "notifications/resources/updated",
            json!({"uri": &**uri}),
        )),
        ServerEvent::ResourceUpdated(_) => None,
    }
}

pub static EMPTY_OBJECT: LazyLock<Value> = LazyLock::new(|| json!({}));

/// Methods whose modern results carry `ttlMs` / `cacheScope`.
const CACHEABLE: &[&str] = &[
    "server/discover",
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
];

pub struct Core {
    pub catalog: Catalog,
    pub sessions: SessionRegistry,
    pub node: NodeIdentity,
    pub cluster: Arc<dyn ClusterView>,
    pub lifecycle: Arc<Lifecycle>,
    pub metrics: Arc<Metrics>,
    pub state_key: mrtr::StateKey,
    pub events: broadcast::Sender<ServerEvent>,
    pub page_size: usize,
    /// `public` without authentication, `private` with it.
    pub cache_scope: &'static str,
    pub list_ttl_ms: u64,
    pub request_timeout: Duration,
    /// Open client connections (all transports).
    pub connections: AtomicI64,
    /// Fixed at construction: `modern_members` is derived from it.
    pub server_info: Value,
    pub instructions: Option<String>,
    /// `"resultType":"complete","_meta":{serverInfo}` as JSON members, pre-serialised.
    modern_members: Box<[u8]>,
    /// MCP Tasks this node owns.
    pub tasks: TaskStore,
    /// This core itself, for task runners that outlive the request ([`Core::shared`]).
    me: Weak<Core>,
}

/// A successful result on its way out. `modern_members`: the fixed modern members
/// (`resultType: "complete"`, `_meta` with the server's identity) are still to be added;
/// [`Core::response_bytes`] appends them as pre-built bytes.
#[derive(Debug)]
pub struct Reply {
    pub value: Value,
    modern_members: bool,
}

pub struct CoreParts {
    pub catalog: Catalog,
    pub sessions: SessionRegistry,
    pub node: NodeIdentity,
    pub cluster: Arc<dyn ClusterView>,
    pub lifecycle: Arc<Lifecycle>,
    pub metrics: Arc<Metrics>,
    pub cookie: Option<String>,
    /// The cookie being rotated out (verifies request state signed before the rotation).
    pub previous_cookie: Option<String>,
    pub page_size: usize,
    pub authenticated: bool,
    pub request_timeout: Duration,
    pub task_limits: task_store::Limits,
    /// Where finished tasks survive a restart (under the session volume).
    pub task_dir: Option<PathBuf>,
}

impl Core {
    /// The core behind an `Arc`, as servers hold it; task runners keep a handle to it.
    pub fn shared(p: CoreParts) -> Arc<Self> {
        let core = Self::new(p);
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            ..core
        })
    }

    pub fn new(p: CoreParts) -> Self {
        let server_info =
            json!({"name": "erlmcp", "title": "erlmcp", "version": env!("CARGO_PKG_VERSION")});
        let meta = json!({ revision::META_SERVER_INFO: server_info });
        let tasks = TaskStore::new(p.task_limits.clone(), p.metrics.clone(), p.task_dir.clone());
        let modern_members = format!(r#""resultType":"complete","_meta":{meta}"#)
            .into_bytes()
            .into_boxed_slice();
        Self {
            catalog: p.catalog,
            sessions: p.sessions,
            node: p.node,
            cluster: p.cluster,
            lifecycle: p.lifecycle,
            metrics: p.metrics,
            state_key: mrtr::StateKey::new(p.cookie.as_deref())
                .with_previous(p.previous_cookie.as_deref()),
            events: broadcast::channel(1024).0,
            page_size: p.page_size,
            cache_scope: if p.authenticated { "private" } else { "public" },
            list_ttl_ms: 60_000,
            request_timeout: p.request_timeout,
            connections: AtomicI64::new(0),
            server_info,
            instructions: None,
            modern_members,
            tasks,
            me: Weak::new(),
        }
    }

    /// Handle one request (not `initialize`, not `subscriptions/listen`: transports own those
    /// because they create state or streams) and count it.
    pub async fn handle(&self, msg: &Message, ctx: &Ctx) -> Result<Value, RpcError> {
        self.handle_reply(msg, ctx)
            .await
            .map(|r| self.reply_value(r))
    }

    /// [`Core::handle`] for a transport that serialises the result itself with
    /// [`Core::response_bytes`] (the modern fixed members then go out as pre-built bytes).
    pub async fn handle_reply(&self, msg: &Message, ctx: &Ctx) -> Result<Reply, RpcError> {
        let start = Instant::now();
        let method = msg.method();
        // Most requests (built-in tools, lists) finish on their first poll: only one that
        // waits arms the request timer.
        let span = crate::observe::trace::request_span(msg, ctx);
        let mut fut = std::pin::pin!(self.dispatch(msg, ctx).instrument(span.clone()));
        let r = match futures::poll!(fut.as_mut()) {
            std::task::Poll::Ready(r) => r,
            std::task::Poll::Pending => {
                match tokio::time::timeout(self.request_timeout, fut).await {
                    Ok(r) => r,
                    Err(_) => Err(RpcError::internal(format!(
                        "request timed out after {}s",
                        self.request_timeout.as_secs()
                    ))),
                }
            }
        };
        let r = self.finish(method, r, &ctx.era);
        crate::observe::trace::record_outcome(&span, &r);
        self.metrics.request(
            method,
            ctx.transport,
            r.is_ok(),
            start.elapsed().as_secs_f64(),
        );
        r
    }

    /// The JSON-RPC response for `id` as bytes.
    pub fn response_bytes(&self, id: &jsonrpc::Id, r: &Result<Reply, RpcError>) -> Bytes {
        match r {
            Ok(Reply {
                value,
                modern_members: true,
            }) => jsonrpc::result_bytes_with(id, value, &self.modern_members),
            Ok(Reply { value, .. }) => jsonrpc::result_bytes(id, value),
            Err(e) => jsonrpc::error_bytes(Some(id), e),
        }
    }

    /// The result as one JSON value, fixed members included.
    pub fn reply_value(&self, r: Reply) -> Value {
        let mut v = r.value;
        if r.modern_members {
            if let Some(o) = v.as_object_mut() {
                self.add_modern_members(o);
            }
        }
        v
    }

    async fn dispatch(&self, msg: &Message, ctx: &Ctx) -> Result<Value, RpcError> {
        let params = msg.params.as_ref().unwrap_or(&EMPTY_OBJECT);
        if !params.is_object() {
            return Err(RpcError::invalid_params("params must be an object"));
        }
        let modern = ctx.era.is_modern();
        match msg.method() {
            "tools/list" => tools::list(self, params, ctx),
            "tools/call" => tools::call(self, params, ctx).await,
            "resources/list" => resources::list(self, params),
            "resources/templates/list" => resources::templates(self, params),
            "resources/read" => resources::read(self, params, ctx).await,
            "prompts/list" => prompts::list(self, params),
            "prompts/get" => prompts::get(self, params, ctx).await,
            "completion/complete" => completion::complete(self, params),
            "server/discover" if modern => Ok(lifecycle::discover(self)),
            "ping" if !modern => Ok(json!({})),
            "logging/setLevel" if !modern => lifecycle::set_level(params, ctx),
            "resources/subscribe" if !modern => resources::subscribe(self, params, ctx, true),
            "resources/unsubscribe" if !modern => resources::subscribe(self, params, ctx, false),
            m if m.starts_with("tasks/") && tasks::has_method(m, &ctx.era) => {
                tasks::dispatch(self, m, params, ctx).await
            }
            "initialize" if !modern => {
                Err(RpcError::invalid_request("Session already initialized"))
            }
            m => Err(self.not_found(m, modern)),
        }
    }

    pub fn not_found(&self, method: &str, modern: bool) -> RpcError {
        let e = RpcError::method_not_found(method);
        if modern {
            e.with_status(404)
        } else {
            e
        }
    }

    /// Shape a result for its era: modern results carry `resultType`, server identity and, when
    /// cacheable, caching hints. A modern result with neither `resultType` nor `_meta` of its
    /// own (the usual case) is left as it is and marked: the members it lacks are the same for
    /// every such result and are appended as bytes.
    fn finish(
        &self,
        method: &str,
        r: Result<Value, RpcError>,
        era: &Era,
    ) -> Result<Reply, RpcError> {
        let mut v = r?;
        let cacheable = CACHEABLE.contains(&method);
        if let (Era::Modern(_), Some(o)) = (era, v.as_object_mut()) {
            if !cacheable && !o.contains_key("resultType") && !o.contains_key("_meta") {
                return Ok(Reply {
                    value: v,
                    modern_members: true,
                });
            }
            self.add_modern_members(o);
            if cacheable && o.get("resultType").and_then(Value::as_str) == Some("complete") {
                o.entry("ttlMs").or_insert_with(|| json!(self.list_ttl_ms));
                o.entry("cacheScope")
                    .or_insert_with(|| json!(self.cache_scope));
            }
        }
        Ok(Reply {
            value: v,
            modern_members: false,
        })
    }

    fn add_modern_members(&self, o: &mut serde_json::Map<String, Value>) {
        o.entry("resultType").or_insert_with(|| json!("complete"));
        let meta = o.entry("_meta").or_insert_with(|| json!({}));
        if let Some(m) = meta.as_object_mut() {
            m.insert(revision::META_SERVER_INFO.into(), self.server_info.clone());
        }
    }

    pub fn notify_list_changed(&self, what: &'static str) {
        let _ = self.events.send(ServerEvent::ListChanged(what));
    }

    pub fn notify_resource_updated(&self, uri: &str) {
        let _ = self.events.send(ServerEvent::ResourceUpdated(uri.into()));
    }

    /// This node as `/status`, `cluster_status` and `erlmcp://node/status` report it.
    pub fn node_status(&self) -> Value {
        let peers = self.cluster.peers();
        json!({
            "node": self.node.name,
            "version": env!("CARGO_PKG_VERSION"),
            "uptimeSeconds": (self.lifecycle.uptime_seconds() * 10.0).round() / 10.0,
            "ready": self.lifecycle.is_ready(),
            "draining": self.lifecycle.is_draining(),
            "sessions": self.sessions.len(),
            "connections": self.connections.load(Ordering::Relaxed),
            "peers": peers,
            "clusterNodes": peers.iter().filter(|p| p.state == "up").count() + 1,
            "expectedNodes": self.cluster.expected_nodes(),
            "tasks": self.tasks.summary(),
        })
    }
}

/// The narrow view of the core that catalog handlers get.
impl handler::Server for Core {
    fn notify_list_changed(&self, what: &'static str) {
        Core::notify_list_changed(self, what)
    }
    fn notify_resource_updated(&self, uri: &str) {
        Core::notify_resource_updated(self, uri)
    }
    fn node_status(&self) -> Value {
        Core::node_status(self)
    }
    fn state_key(&self) -> &mrtr::StateKey {
        &self.state_key
    }
}
