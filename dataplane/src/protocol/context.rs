//! What a handler knows about the request it serves: the era (modern per-request metadata or
//! a legacy session), where request-scoped notifications go, and how to ask the client for
//! something (a server-to-client request on legacy revisions).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::jsonrpc::{self, Id, RpcError};
use super::revision::Legacy;
use crate::session::Session;

/// Log levels, lowest first (RFC 5424 order as MCP uses it).
pub const LEVELS: &[&str] = &[
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

pub fn level_index(l: &str) -> Option<u8> {
    LEVELS.iter().position(|x| *x == l).map(|i| i as u8)
}

/// Level value meaning "send nothing".
pub const LEVEL_OFF: u8 = u8::MAX;

/// Per-request metadata of the modern revision.
#[derive(Debug, Clone, Default)]
pub struct ModernMeta {
    pub protocol_version: String,
    pub client_capabilities: Value,
    pub client_info: Option<Value>,
    /// Absent: the server MUST NOT log to this request.
    pub log_level: Option<u8>,
}

#[derive(Clone)]
pub enum Era {
    Modern(Arc<ModernMeta>),
    /// A legacy request inside a session.
    Legacy(Arc<Session>),
}

impl Era {
    pub fn is_modern(&self) -> bool {
        matches!(self, Era::Modern(_))
    }
    pub fn legacy_version(&self) -> Option<Legacy> {
        match self {
            Era::Legacy(s) => Some(s.version),
            Era::Modern(_) => None,
        }
    }
    pub fn client_capabilities(&self) -> Value {
        match self {
            Era::Modern(m) => m.client_capabilities.clone(),
            Era::Legacy(s) => s.client_capabilities.clone(),
        }
    }
    pub fn has_client_capability(&self, cap: &str) -> bool {
        match self {
            Era::Modern(m) => m.client_capabilities.get(cap).is_some_and(|v| !v.is_null()),
            Era::Legacy(s) => s.client_capabilities.get(cap).is_some_and(|v| !v.is_null()),
        }
    }
    fn log_threshold(&self) -> u8 {
        match self {
            Era::Modern(m) => m.log_level.unwrap_or(LEVEL_OFF),
            Era::Legacy(s) => s.log_level.load(Ordering::Relaxed),
        }
    }
}

/// Pending server-to-client requests of one peer (a legacy session or a connection).
#[derive(Default)]
pub struct Peer {
    next_id: AtomicI64,
    pending: DashMap<Id, oneshot::Sender<Result<Value, RpcError>>>,
}

impl Peer {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
    fn register(&self) -> (Id, oneshot::Receiver<Result<Value, RpcError>>) {
        let id = Id::Str(format!(
            "srv-{}",
            self.next_id.fetch_add(1, Ordering::Relaxed)
        ));
        let (tx, rx) = oneshot::channel();
        self.pending.insert(id.clone(), tx);
        (id, rx)
    }
    /// A client's response to one of our requests. False if nobody waits for that id.
    pub fn complete(&self, id: &Id, result: Option<Value>, error: Option<Value>) -> bool {
        match self.pending.remove(id) {
            Some((_, tx)) => {
                let r = match (result, error) {
                    (Some(v), _) => Ok(v),
                    (None, Some(e)) => Err(RpcError::new(
                        e.get("code").and_then(Value::as_i64).unwrap_or(-32603) as i32,
                        e.get("message")
                            .and_then(Value::as_str)
                            .unwrap_or("client error")
                            .to_string(),
                    )),
                    (None, None) => Err(RpcError::internal("empty response")),
                };
                let _ = tx.send(r);
                true
            }
            None => false,
        }
    }
}

/// Where request-scoped messages go (progress, logs, server-to-client requests). `None` means
/// the transport cannot carry them (a plain JSON response with nothing streaming).
#[derive(Clone, Default)]
pub struct Outbound {
    pub tx: Option<mpsc::UnboundedSender<Value>>,
}

impl Outbound {
    pub fn none() -> Self {
        Self { tx: None }
    }
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<Value>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx: Some(tx) }, rx)
    }
    pub fn send(&self, msg: Value) -> bool {
        self.tx.as_ref().is_some_and(|t| t.send(msg).is_ok())
    }
}

/// Context of one request.
#[derive(Clone)]
pub struct Ctx {
    pub era: Era,
    pub out: Outbound,
    /// Who asks the client for things (legacy only).
    pub peer: Option<Arc<Peer>>,
    /// `_meta.progressToken` of the request.
    pub progress_token: Option<Value>,
    /// Authenticated principal (token subject), for request-state binding.
    pub principal: Option<Arc<str>>,
    /// Transport name, for metrics.
    pub transport: &'static str,
}

impl Ctx {
    /// Send `notifications/progress` if the request asked for it.
    pub fn progress(&self, progress: f64, total: Option<f64>, message: Option<&str>) {
        let Some(token) = &self.progress_token else {
            return;
        };
        let mut p = json!({"progressToken": token, "progress": progress});
        if let Some(t) = total {
            p["total"] = json!(t);
        }
        if let Some(m) = message {
            p["message"] = json!(m);
        }
        self.out
            .send(jsonrpc::notification("notifications/progress", p));
    }

    /// Send `notifications/message` if the request's (modern) or session's (legacy) level allows.
    pub fn log(&self, level: &str, logger: &str, data: Value) {
        let Some(idx) = level_index(level) else {
            return;
        };
        if idx < self.era.log_threshold() {
            return;
        }
        self.out.send(jsonrpc::notification(
            "notifications/message",
            json!({"level": level, "logger": logger, "data": data}),
        ));
    }

    /// Ask the client (legacy revisions): send a request on the response stream and wait.
    pub async fn ask(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, RpcError> {
        let peer = self.peer.as_ref().ok_or_else(|| {
            RpcError::internal("this transport cannot carry server-to-client requests")
        })?;
        let (id, rx) = peer.register();
        if !self.out.send(jsonrpc::request(&id, method, params)) {
            peer.pending.remove(&id);
            return Err(RpcError::internal("no stream to the client"));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(RpcError::internal("client went away")),
            Err(_) => {
                peer.pending.remove(&id);
                Err(RpcError::internal(format!(
                    "client did not answer {method} in time"
                )))
            }
        }
    }
}
