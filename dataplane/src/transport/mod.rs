//! Transports move JSON-RPC between clients and the protocol core: Streamable HTTP (both eras)
//! on `/mcp`, the legacy HTTP+SSE transport, WebSocket, TCP and stdio. The message-stream
//! transports (WebSocket, TCP, stdio, legacy SSE) share [`conn`]. [`health`] serves the
//! health and metrics ports.

pub mod admin;
pub mod conn;
pub mod deadline_body;
pub mod health;
pub mod legacy_sse;
pub mod resource_metadata;
pub mod stdio;
pub mod streamable_http;
pub mod tcp;
pub mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use axum::response::IntoResponse;
use bytes::Bytes;
use serde_json::json;

use crate::auth::{Auth, AuthError};
use crate::limits::Limits;
use crate::protocol::jsonrpc::{self, RpcError};
use crate::protocol::Core;

/// Shared by every HTTP handler.
pub struct AppState {
    pub core: Arc<Core>,
    pub limits: Limits,
    pub auth: Auth,
    /// SSE `retry:` hint in milliseconds (also sent when draining closes streams).
    pub retry_ms: u64,
    pub keepalive: Duration,
    /// Legacy HTTP+SSE connections by their endpoint id.
    pub sse_conns: dashmap::DashMap<String, Arc<conn::Conn>>,
}

pub type Shared = Arc<AppState>;

/// Carries the principal the entry node authenticated, on a request forwarded to the session's
/// owner (hex, so any principal is a valid header value). The entry node strips the client's
/// `Authorization`; the owner trusts this header only from an authenticated peer channel.
pub const PRINCIPAL_HEADER: &str = "x-erlmcp-principal";

/// Set (in request extensions, which clients cannot reach) by the peer channel on a forwarded
/// request that named its principal.
#[derive(Clone, Debug)]
pub struct ForwardedPrincipal(pub String);

/// [`guard`] for requests that may have been forwarded by a peer: a forwarded principal was
/// authenticated by the entry node (whose Origin and rate-limit checks it also passed).
pub fn guard_forwardable(
    state: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
    forwarded: Option<&ForwardedPrincipal>,
) -> Result<Option<String>, HttpError> {
    match forwarded {
        Some(ForwardedPrincipal(p)) if !state.core.lifecycle.is_draining() => Ok(Some(p.clone())),
        _ => guard(state, headers, peer),
    }
}

/// The `maxConnections` slot an HTTP connection holds, in each request's extensions: a
/// WebSocket upgrade takes it, so the WebSocket keeps counting once the HTTP connection ends.
#[derive(Clone, Default)]
pub struct ConnSlot(Arc<std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>>);

impl ConnSlot {
    pub fn new(permit: Option<tokio::sync::OwnedSemaphorePermit>) -> Self {
        Self(Arc::new(std::sync::Mutex::new(permit)))
    }

    /// The slot's permit (None when the listener has no cap or it was taken).
    pub fn take(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.0.lock().map(|mut p| p.take()).unwrap_or(None)
    }
}

/// A JSON body response.
pub fn json_response(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A JSON-RPC error answered over HTTP: the status, the id of the request it answers (when
/// known) and the error, rendered as a JSON-RPC error body. Handlers return
/// `Result<_, HttpError>` and use `?`.
#[derive(Debug)]
pub struct HttpError {
    pub status: StatusCode,
    pub id: Option<jsonrpc::Id>,
    pub error: RpcError,
    /// Response headers some errors carry (`Allow`, `WWW-Authenticate`, `Retry-After`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl HttpError {
    /// An error that answers no particular request. A status that is not a valid HTTP code
    /// becomes 400.
    pub fn new(status: u16, error: RpcError) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            id: None,
            error,
            headers: Vec::new(),
        }
    }

    /// The error with the status it carries itself (`RpcError::http_status`).
    pub fn from_rpc(error: RpcError) -> Self {
        Self::new(error.http_status, error)
    }

    /// The error answers the request with this id.
    pub fn for_id(mut self, id: Option<&jsonrpc::Id>) -> Self {
        self.id = id.cloned();
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response<Body> {
        let mut r = json_response(
            self.status,
            jsonrpc::error_bytes(self.id.as_ref(), &self.error),
        );
        for (name, value) in self.headers {
            r.headers_mut().insert(name, value);
        }
        r
    }
}

pub fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}

/// One SSE event.
pub fn sse_event(id: Option<&str>, data: &[u8]) -> Bytes {
    let mut b = Vec::with_capacity(data.len() + 48);
    if let Some(id) = id {
        b.extend_from_slice(b"id: ");
        b.extend_from_slice(id.as_bytes());
        b.push(b'\n');
    }
    b.extend_from_slice(b"event: message\ndata: ");
    b.extend_from_slice(data);
    b.extend_from_slice(b"\n\n");
    Bytes::from(b)
}

pub fn sse_response(body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-transform"),
    );
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

/// The checks every HTTP request to an MCP endpoint passes first: Origin, authentication,
/// rate limit, draining. Ok carries the principal.
pub fn guard(
    state: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<Option<String>, HttpError> {
    let origin = headers
        .get(http::header::ORIGIN)
        .map(|v| v.to_str().unwrap_or("\u{0}invalid"));
    if !state.limits.origin.allows(origin) {
        return Err(HttpError::new(
            403,
            RpcError::invalid_request("Forbidden: Origin not allowed"),
        ));
    }
    let principal = match state.auth.check(
        headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    ) {
        Ok(p) => p,
        Err(e) => {
            let (msg, hdr) = match e {
                AuthError::Missing => (
                    "Unauthorized: bearer token required".to_string(),
                    "Bearer realm=\"erlmcp\"".to_string(),
                ),
                AuthError::Invalid(why) => (
                    format!("Unauthorized: {why}"),
                    "Bearer realm=\"erlmcp\", error=\"invalid_token\"".to_string(),
                ),
            };
            let mut hdr = hdr;
            // RFC 9728 §5.1: point OAuth clients at the metadata naming the issuer.
            if let Some(url) = state.auth.resource_metadata_url(headers) {
                hdr.push_str(&format!(", resource_metadata=\"{url}\""));
            }
            let mut e = HttpError::new(401, RpcError::invalid_request(msg));
            if let Ok(v) = HeaderValue::from_str(&hdr) {
                e = e.with_header(http::header::WWW_AUTHENTICATE, v);
            }
            return Err(e);
        }
    };
    // The client key is only built when the limiter is on.
    let limited = state.limits.rate.enabled().then(|| {
        let client = principal.clone().unwrap_or_else(|| peer.ip().to_string());
        state.limits.rate.check(&client)
    });
    if let Some(Err(wait)) = limited {
        state.core.metrics.rate_limited.inc();
        let err = RpcError::new(-31_001, "Rate limit exceeded")
            .with_data(json!({"retryAfterMs": wait.as_millis() as u64}));
        return Err(HttpError::new(429, err).with_header(
            http::header::RETRY_AFTER,
            HeaderValue::from(wait.as_secs().max(1)),
        ));
    }
    if state.core.lifecycle.is_draining() {
        return Err(HttpError::new(
            503,
            RpcError::internal("Server is shutting down; retry on another node"),
        )
        .with_header(http::header::RETRY_AFTER, HeaderValue::from_static("1")));
    }
    Ok(principal)
}
