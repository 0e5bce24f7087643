//! OpenTelemetry spans of the data plane: one per HTTP exchange on the MCP port (joining an
//! incoming `traceparent`), one per MCP request under it, and children for backend calls and
//! session forwarding (which pass the context on). When no exporter is installed every helper
//! returns `Span::none()` at the cost of one atomic load, so the hot path stays as it was.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use serde_json::Value;
use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::context::{Ctx, Era};
use crate::wire::jsonrpc::{Message, RpcError};

pub use erlmcp_telemetry::enabled;

/// axum middleware for the MCP router: a server span per HTTP exchange, child of the caller's
/// `traceparent` (a client's, or the node that forwarded the request here).
pub async fn http_layer(req: Request, next: Next) -> Response {
    if !enabled() {
        return next.run(req).await;
    }
    let span = tracing::info_span!(
        "mcp.http",
        otel.name = %format_args!("{} {}", req.method(), req.uri().path()),
        otel.kind = "server",
        http.request.method = %req.method(),
        url.path = req.uri().path(),
        erlmcp.forwarded_by = Empty,
        http.response.status_code = Empty,
        trace_id = Empty,
    );
    erlmcp_telemetry::set_parent_from_headers(&span, req.headers());
    if let Some(from) = req
        .headers()
        .get(crate::cluster::peer::FORWARDED_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        span.record("erlmcp.forwarded_by", from);
    }
    record_trace_id(&span);
    let resp = next.run(req).instrument(span.clone()).await;
    span.record("http.response.status_code", resp.status().as_u16());
    resp
}

/// The span of one MCP request: method, the tool / resource / prompt it names, revision,
/// transport, whether a session carries it. A `_meta.traceparent` (the MCP way to pass trace
/// context, for transports without headers) makes it a child of that trace.
pub fn request_span(msg: &Message, ctx: &Ctx) -> Span {
    if !enabled() {
        return Span::none();
    }
    let method = msg.method();
    let params = msg.params.as_ref();
    let target = params.and_then(|p| target_of(method, p));
    let (revision, session) = match &ctx.era {
        Era::Modern(m) => (&*m.protocol_version, false),
        Era::Legacy(s) => (s.version.as_str(), true),
    };
    let name = match target {
        Some(t) => format!("{method} {t}"),
        None => method.to_string(),
    };
    let span = tracing::info_span!(
        "mcp.request",
        otel.name = %name,
        mcp.method.name = method,
        mcp.target = target,
        mcp.protocol.version = revision,
        mcp.transport = ctx.transport,
        mcp.session = session,
        rpc.jsonrpc.error_code = Empty,
        otel.status_code = Empty,
        trace_id = Empty,
    );
    if let Some(meta) = msg.meta() {
        if let Some(tp) = meta.get("traceparent").and_then(Value::as_str) {
            let ts = meta.get("tracestate").and_then(Value::as_str);
            erlmcp_telemetry::set_parent_from_traceparent(&span, tp, ts);
        }
    }
    record_trace_id(&span);
    span
}

/// What the request span says about its result: the JSON-RPC error code, or OK.
pub fn record_outcome<T>(span: &Span, r: &Result<T, RpcError>) {
    if span.is_none() {
        return;
    }
    match r {
        Ok(_) => span.record("otel.status_code", "OK"),
        Err(e) => span
            .record("rpc.jsonrpc.error_code", e.code)
            .record("otel.status_code", "ERROR"),
    };
}

/// A client span for a call to an HTTP tool backend.
pub fn backend_span(method: &http::Method, url: &http::Uri) -> Span {
    if !enabled() {
        return Span::none();
    }
    tracing::info_span!(
        "mcp.backend.http",
        otel.name = %format_args!("{method} {}", url.host().unwrap_or("backend")),
        otel.kind = "client",
        http.request.method = %method,
        url.full = %url,
        http.response.status_code = Empty,
    )
}

/// A client span for a session request forwarded to the node that owns the session.
pub fn forward_span(owner: &str) -> Span {
    if !enabled() {
        return Span::none();
    }
    tracing::info_span!(
        "mcp.forward",
        otel.name = %format_args!("forward to {owner}"),
        otel.kind = "client",
        erlmcp.owner = owner,
        http.response.status_code = Empty,
    )
}

/// Put `span`'s context on an outgoing request (replacing the caller's, which it descends from).
pub fn inject(span: &Span, headers: &mut http::HeaderMap) {
    if !span.is_none() {
        erlmcp_telemetry::inject(span, headers);
    }
}

/// Logs inside the span name its trace (the id is only known once the parent is set).
fn record_trace_id(span: &Span) {
    if let Some(id) = erlmcp_telemetry::trace_id(span) {
        span.record("trace_id", id.as_str());
    }
}

/// The name a request is about: the tool, prompt or resource URI.
fn target_of<'a>(method: &str, params: &'a Value) -> Option<&'a str> {
    let key = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => "uri",
        _ => return None,
    };
    params.get(key).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_target_is_the_tool_prompt_or_resource_named() {
        let p = json!({"name": "echo", "uri": "file:///a"});
        assert_eq!(target_of("tools/call", &p), Some("echo"));
        assert_eq!(target_of("prompts/get", &p), Some("echo"));
        assert_eq!(target_of("resources/read", &p), Some("file:///a"));
        assert_eq!(target_of("tools/list", &p), None);
        assert_eq!(target_of("tools/call", &json!({"name": 3})), None);
    }

    #[test]
    fn without_an_exporter_no_span_is_built() {
        assert!(!enabled());
        assert!(
            backend_span(&http::Method::POST, &"http://127.0.0.1/x".parse().unwrap()).is_none()
        );
        assert!(forward_span("a").is_none());
        let mut h = http::HeaderMap::new();
        inject(&Span::none(), &mut h);
        assert!(h.is_empty());
    }
}
