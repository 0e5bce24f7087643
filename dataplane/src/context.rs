//! What a handler knows about the request it serves: the era (modern per-request metadata or
//! a legacy session), where request-scoped notifications go, and how to ask the client for
//! something (a server-to-client request on legacy revisions).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::session::{ClientRequests, Session};
use crate::wire::jsonrpc::{self, RpcError};
use crate::wire::revision::Legacy;

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
    /// Always the modern revision (a request naming another is refused before a `ModernMeta`
    /// exists), so borrowed: nothing is copied per request.
    pub protocol_version: std::borrow::Cow<'static, str>,
    pub client_capabilities: Value,
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
    /// Whether results may carry `structuredContent` (every revision but the oldest ones).
    pub fn has_structured_output(&self) -> bool {
        self.legacy_version()
            .is_none_or(|v| v.has_structured_output())
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

/// One item a request sends towards the client while it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum OutboundItem {
    /// A JSON-RPC message (notification or server-to-client request).
    Message(Value),
    /// End the response stream now (SSE polling, SEP-1699): the rest of the request's output,
    /// its result included, is buffered for resumption. Transports without such a stream
    /// ignore it.
    CloseStream,
}

/// Where request-scoped messages go (progress, logs, server-to-client requests). `None` means
/// the transport cannot carry them (a plain JSON response with nothing streaming).
#[derive(Clone, Default)]
pub struct Outbound {
    pub tx: Option<mpsc::UnboundedSender<OutboundItem>>,
}

impl Outbound {
    pub fn none() -> Self {
        Self { tx: None }
    }
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<OutboundItem>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx: Some(tx) }, rx)
    }
    pub fn send(&self, msg: Value) -> bool {
        self.push(OutboundItem::Message(msg))
    }
    /// Ask the transport to close the response stream early (see [`OutboundItem::CloseStream`]).
    pub fn close_stream(&self) -> bool {
        self.push(OutboundItem::CloseStream)
    }
    fn push(&self, item: OutboundItem) -> bool {
        self.tx.as_ref().is_some_and(|t| t.send(item).is_ok())
    }
}

/// Context of one request.
#[derive(Clone)]
pub struct Ctx {
    pub era: Era,
    pub out: Outbound,
    /// Our requests to the client awaiting its answer (legacy only). The field keeps its old
    /// name until the Streamable HTTP transport's split lands.
    pub peer: Option<Arc<ClientRequests>>,
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
        let requests = self.peer.as_ref().ok_or_else(|| {
            RpcError::internal("this transport cannot carry server-to-client requests")
        })?;
        let (id, rx) = requests.register();
        if !self.out.send(jsonrpc::request(&id, method, params)) {
            requests.forget(&id);
            return Err(RpcError::internal("no stream to the client"));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(RpcError::internal("client went away")),
            Err(_) => {
                requests.forget(&id);
                Err(RpcError::internal(format!(
                    "client did not answer {method} in time"
                )))
            }
        }
    }
}
