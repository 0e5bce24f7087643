//! Streamable HTTP on `/mcp`, both eras on one endpoint.
//!
//! - Modern (2026-07-28): every POST is self-describing (`MCP-Protocol-Version`, `Mcp-Method`,
//!   `Mcp-Name`, `_meta`); headers must agree with the body. A response is JSON unless the
//!   handler emits something first, then SSE; closing that stream cancels the request.
//!   `subscriptions/listen` answers with a long-lived SSE stream.
//! - Legacy (2025-11-25 .. 2024-11-05): `initialize` mints an `Mcp-Session-Id`; SSE events carry
//!   ids and are buffered per session so `GET` with `Last-Event-ID` resumes; `DELETE` ends the
//!   session; an unknown or expired session is 404. Disconnecting does not cancel a request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode};
use axum::response::IntoResponse;
use base64::Engine;
use bytes::Bytes;
use futures::future::{AbortHandle, Abortable};
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{empty, guard, json_response, rpc_error_response, sse_event, sse_response, Shared};
use crate::limits::WRITE_TIMEOUT;
use crate::protocol::context::{Ctx, Era, Outbound, OutboundItem};
use crate::protocol::jsonrpc::{
    self, Id, Message, Parsed, RpcError, HEADER_MISMATCH, INVALID_REQUEST, PARSE_ERROR,
};
use crate::protocol::revision::{self, Legacy, META_PROTOCOL_VERSION};
use crate::protocol::subscriptions::Listener;
use crate::protocol::{lifecycle, Core};
use crate::session::{event_id, parse_event_id, Session, LIVE_BUFFER};

pub const SESSION_HEADER: &str = "mcp-session-id";
pub const VERSION_HEADER: &str = "mcp-protocol-version";

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn is_json_content_type(h: &HeaderMap) -> bool {
    const JSON: &str = "application/json";
    header(h, "content-type").is_none_or(|c| {
        c.get(..JSON.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(JSON))
    })
}

/// HTTP status for an error on each era: modern errors carry their own (404, 400); legacy
/// errors are 200 unless the message itself was bad.
fn status_for(e: &RpcError, modern: bool) -> u16 {
    if modern || matches!(e.code, PARSE_ERROR | INVALID_REQUEST) || e.http_status >= 500 {
        e.http_status
    } else {
        200
    }
}

pub async fn post(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response<Body> {
    // The headers are moved out rather than cloned (as the `HeaderMap` extractor would); the
    // body is read as the `Bytes` extractor reads it (same limit, same rejections).
    let (mut parts, body) = req.into_parts();
    let headers = std::mem::take(&mut parts.headers);
    let body = match Bytes::from_request(Request::from_parts(parts, body), &st).await {
        Ok(b) => b,
        Err(rejection) => return rejection.into_response(),
    };
    let principal = match guard(&st, &headers, peer) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if !is_json_content_type(&headers) {
        return rpc_error_response(
            415,
            None,
            &RpcError::invalid_request(
                "Unsupported Media Type: Content-Type must be application/json",
            ),
        );
    }
    st.core.metrics.received("http", 1);
    let parsed = match jsonrpc::parse(&body) {
        Ok(p) => p,
        Err(e) => return rpc_error_response(400, None, &e),
    };
    let hv = header(&headers, VERSION_HEADER);
    let has_meta = matches!(&parsed, Parsed::Single(Ok(m)) if m.meta().is_some_and(|m| m.contains_key(META_PROTOCOL_VERSION)));
    let session_id = header(&headers, SESSION_HEADER);
    let era = if session_id.is_some() && hv.is_none_or(|v| Legacy::parse(v.trim()).is_some()) {
        revision::Era::Legacy
    } else {
        revision::classify(hv, has_meta)
    };
    match era {
        revision::Era::Modern => modern_post(&st, &headers, parsed, principal).await,
        revision::Era::Legacy => legacy_post(&st, &headers, body.clone(), parsed, principal).await,
    }
}

// ---------------------------------------------------------------- modern

async fn modern_post(
    st: &Shared,
    headers: &HeaderMap,
    parsed: Parsed,
    principal: Option<String>,
) -> Response<Body> {
    let msg = match parsed {
        Parsed::Batch(_) => {
            return rpc_error_response(
                400,
                None,
                &RpcError::invalid_request(
                    "Invalid Request: batches are not part of this protocol version",
                ),
            )
        }
        Parsed::Single(Err((id, e))) => return rpc_error_response(400, id.as_ref(), &e),
        Parsed::Single(Ok(m)) => m,
    };
    if msg.is_response() {
        return rpc_error_response(
            400,
            None,
            &RpcError::invalid_request(
                "Invalid Request: clients do not send responses in this protocol version",
            ),
        );
    }
    if msg.is_notification() {
        return empty(StatusCode::ACCEPTED);
    }
    let id = msg.id.clone().expect("request id");
    let hv = header(headers, VERSION_HEADER);
    if hv.is_none() {
        return rpc_error_response(
            400,
            Some(&id),
            &RpcError::new(
                HEADER_MISMATCH,
                "Header mismatch: MCP-Protocol-Version header is required",
            ),
        );
    }
    if let Err(e) = check_headers(headers, &msg, &st.core) {
        return rpc_error_response(400, Some(&id), &e);
    }
    let meta = match lifecycle::modern_meta(&msg, hv) {
        Ok(m) => m,
        Err(e) => return rpc_error_response(e.http_status, Some(&id), &e),
    };
    if msg.method() == "subscriptions/listen" {
        return listen(st, id, &msg);
    }
    let ctx = Ctx {
        era: Era::Modern(Arc::new(meta)),
        out: Outbound::none(),
        peer: None,
        progress_token: msg.meta().and_then(|m| m.get("progressToken")).cloned(),
        principal: principal.map(Into::into),
        transport: "http",
    };
    run(st, msg, ctx, None).await
}

/// Decode a header value that may use the `=?base64?...?=` sentinel.
pub fn decode_header_value(raw: &str) -> Result<std::borrow::Cow<'_, str>, RpcError> {
    let v = raw.trim();
    if let Some(inner) = v
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(inner)
            .map_err(|_| {
                RpcError::new(
                    HEADER_MISMATCH,
                    "Header mismatch: invalid Base64 in header value",
                )
            })?;
        return String::from_utf8(bytes).map(Into::into).map_err(|_| {
            RpcError::new(
                HEADER_MISMATCH,
                "Header mismatch: Base64 header value is not UTF-8",
            )
        });
    }
    Ok(v.into())
}

fn mismatch(what: &str, header_val: &str, body_val: &str) -> RpcError {
    RpcError::new(HEADER_MISMATCH, format!("Header mismatch: {what} header value {header_val:?} does not match body value {body_val:?}"))
}

/// `Mcp-Method`, `Mcp-Name` and `Mcp-Param-*` must agree with the body (SEP-2243).
pub fn check_headers(headers: &HeaderMap, msg: &Message, core: &Core) -> Result<(), RpcError> {
    let get = |name: &str| -> Result<Option<&str>, RpcError> {
        match headers.get(name) {
            None => Ok(None),
            Some(v) => v.to_str().map(Some).map_err(|_| {
                RpcError::new(
                    HEADER_MISMATCH,
                    format!("Header mismatch: {name} contains invalid characters"),
                )
            }),
        }
    };
    let method = msg.method();
    match get("mcp-method")? {
        None => {
            return Err(RpcError::new(
                HEADER_MISMATCH,
                "Header mismatch: Mcp-Method header is required",
            ))
        }
        Some(h) if h.trim() != method => return Err(mismatch("Mcp-Method", h.trim(), method)),
        Some(_) => {}
    }
    let name_key = match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    };
    if let Some(key) = name_key {
        if let Some(body_name) = msg.param_str(key) {
            match get("mcp-name")? {
                None => {
                    return Err(RpcError::new(
                        HEADER_MISMATCH,
                        "Header mismatch: Mcp-Name header is required",
                    ))
                }
                Some(h) => {
                    let decoded = decode_header_value(h)?;
                    if decoded != body_name {
                        return Err(mismatch("Mcp-Name", &decoded, body_name));
                    }
                }
            }
        }
    }
    if method == "tools/call" {
        if let Some(tool) = msg.param_str("name").and_then(|n| core.catalog.tool(n)) {
            let args = msg.params.as_ref().and_then(|p| p.get("arguments"));
            for (prop, hdr) in &tool.header_params {
                let hname = format!("mcp-param-{}", hdr.to_ascii_lowercase());
                let body_val = args.and_then(|a| a.get(prop)).filter(|v| !v.is_null());
                let header_val = get(&hname)?;
                match (body_val, header_val) {
                    (None, None) => {}
                    (Some(_), None) => return Err(RpcError::new(HEADER_MISMATCH, format!("Header mismatch: Mcp-Param-{hdr} header is required when {prop} is given"))),
                    (None, Some(h)) => return Err(mismatch(&format!("Mcp-Param-{hdr}"), h, "(absent)")),
                    (Some(b), Some(h)) => {
                        let decoded = decode_header_value(h)?;
                        let ok = match b {
                            Value::String(s) => *s == decoded,
                            Value::Bool(x) => decoded == if *x { "true" } else { "false" },
                            Value::Number(n) => decoded.parse::<f64>().ok().zip(n.as_f64()).is_some_and(|(a, b)| a == b),
                            _ => false,
                        };
                        if !ok {
                            return Err(mismatch(&format!("Mcp-Param-{hdr}"), &decoded, &b.to_string()));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn listen(st: &Shared, id: Id, msg: &Message) -> Response<Body> {
    let params = msg.params.clone().unwrap_or_default();
    let (mut listener, ack) = match Listener::open(&st.core, id.clone(), &params) {
        Ok(x) => x,
        Err(e) => return rpc_error_response(e.http_status, Some(&id), &e),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(LIVE_BUFFER);
    let core = st.core.clone();
    let keepalive = st.keepalive;
    let retry = st.retry_ms;
    tokio::spawn(async move {
        let send = |b: Bytes| {
            let tx = tx.clone();
            async move { tx.send_timeout(b, WRITE_TIMEOUT).await.is_ok() }
        };
        if !send(sse_event(
            None,
            &serde_json::to_vec(&ack).unwrap_or_default(),
        ))
        .await
        {
            return;
        }
        let drained = core.lifecycle.drained();
        tokio::pin!(drained);
        let mut tick = tokio::time::interval(keepalive);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tx.closed() => return,
                _ = tick.tick() => if !send(Bytes::from_static(b": keepalive\n\n")).await { return },
                n = listener.next() => match n {
                    Some(v) => if !send(sse_event(None, &serde_json::to_vec(&v).unwrap_or_default())).await { return },
                    None => break,
                },
                _ = &mut drained => break,
            }
        }
        // Server-side close: tell the client when to come back, then the closing result.
        let _ = send(Bytes::from(format!("retry: {retry}\n\n"))).await;
        let result = listener.closing_result(&core);
        let _ = send(sse_event(
            None,
            &jsonrpc::result_bytes(&listener.id, &result),
        ))
        .await;
    });
    st.core
        .metrics
        .request("subscriptions/listen", "http", true, 0.0);
    sse_response(Body::from_stream(
        ReceiverStream::new(rx).map(Ok::<_, Infallible>),
    ))
}

// ---------------------------------------------------------------- shared request runner

/// Run one request: plain JSON if nothing is emitted before the result, else SSE. Modern
/// streams belong to the request (closing cancels it); legacy ones are buffered in the
/// session for resumption and the request runs on regardless.
async fn run(
    st: &Shared,
    msg: Message,
    mut ctx: Ctx,
    session: Option<Arc<Session>>,
) -> Response<Body> {
    let id = msg.id.clone().expect("request id");
    let modern = session.is_none();
    let (out, mut rx) = Outbound::channel();
    ctx.out = out;
    let core = st.core.clone();
    let limit = st.limits.in_flight.clone();
    // Only a legacy request can be cancelled by message (`notifications/cancelled`); a modern
    // one is cancelled by dropping it, so it needs no abort handle.
    let reg = session.as_ref().map(|s| {
        let (abort, reg) = AbortHandle::new_pair();
        s.in_flight.insert(id.clone(), abort);
        reg
    });
    let fut_id = id.clone();
    let fut_session = session.clone();
    let mut fut = Box::pin(async move {
        let work = async {
            let _permit = limit.acquire().await;
            core.handle_reply(&msg, &ctx).await
        };
        let r = match reg {
            None => Ok(work.await),
            Some(reg) => Abortable::new(work, reg).await,
        };
        if let Some(s) = &fut_session {
            s.in_flight.remove(&fut_id);
        }
        r.unwrap_or_else(|_| Err(RpcError::internal("Request cancelled")))
    });
    let first = tokio::select! {
        biased;
        r = &mut fut => {
            let mut queued = Vec::new();
            while let Ok(item) = rx.try_recv() {
                if let OutboundItem::Message(v) = item {
                    queued.push(v);
                }
            }
            if queued.is_empty() {
                st.core.metrics.sent("http", 1);
                let status = match &r { Ok(_) => 200, Err(e) => status_for(e, modern) };
                return json_response(StatusCode::from_u16(status).unwrap_or(StatusCode::OK), st.core.response_bytes(&id, &r));
            }
            // Emitted and finished at once: a short SSE stream.
            let mut chunks: Vec<Bytes> = queued.iter().map(|v| sse_event(None, &serde_json::to_vec(v).unwrap_or_default())).collect();
            chunks.push(sse_event(None, &st.core.response_bytes(&id, &r)));
            st.core.metrics.sent("http", chunks.len() as u64);
            return sse_response(Body::from_stream(futures::stream::iter(chunks.into_iter().map(Ok::<_, Infallible>))));
        }
        Some(v) = rx.recv() => v,
    };
    match session {
        None => {
            let (tx, brx) = mpsc::channel::<Bytes>(LIVE_BUFFER);
            let core = st.core.clone();
            let metrics = st.core.metrics.clone();
            tokio::spawn(async move {
                let send = |v: &Value| {
                    let b = sse_event(None, &serde_json::to_vec(v).unwrap_or_default());
                    let tx = tx.clone();
                    async move { tx.send_timeout(b, WRITE_TIMEOUT).await.is_ok() }
                };
                if let OutboundItem::Message(v) = &first {
                    if !send(v).await {
                        return;
                    }
                }
                loop {
                    tokio::select! {
                        biased;
                        // The client closed the stream: that cancels the request (fut dropped).
                        _ = tx.closed() => return,
                        Some(item) = rx.recv() => {
                            let OutboundItem::Message(v) = item else { continue; };
                            metrics.sent("http", 1);
                            if !send(&v).await { return; }
                        }
                        r = &mut fut => {
                            while let Ok(item) = rx.try_recv() {
                                if let OutboundItem::Message(v) = item { if !send(&v).await { return; } }
                            }
                            let _ = tx.send_timeout(sse_event(None, &core.response_bytes(&id, &r)), WRITE_TIMEOUT).await;
                            metrics.sent("http", 1);
                            return;
                        }
                    }
                }
            });
            sse_response(Body::from_stream(
                ReceiverStream::new(brx).map(Ok::<_, Infallible>),
            ))
        }
        Some(s) => {
            let stream = s.events.lock().expect("events").open();
            if s.version >= Legacy::V20251125 {
                s.events.lock().expect("events").push(stream, "".into());
            }
            let body = attached_body(&s, stream, None, st.retry_ms).unwrap_or_else(Body::empty);
            let core = st.core.clone();
            let metrics = st.core.metrics.clone();
            tokio::spawn(async move {
                let push = |s: &Session, v: &Value| {
                    let data: Arc<str> =
                        String::from_utf8(serde_json::to_vec(v).unwrap_or_default())
                            .unwrap_or_default()
                            .into();
                    s.events.lock().expect("events").push(stream, data);
                };
                let handle = |s: &Session, item: OutboundItem| match item {
                    // SEP-1699 polling: end the HTTP response now; the rest is buffered.
                    OutboundItem::CloseStream => s.events.lock().expect("events").detach(stream),
                    OutboundItem::Message(v) => {
                        metrics.sent("http", 1);
                        push(s, &v);
                    }
                };
                handle(&s, first);
                loop {
                    tokio::select! {
                        biased;
                        Some(v) = rx.recv() => handle(&s, v),
                        r = &mut fut => {
                            while let Ok(v) = rx.try_recv() { handle(&s, v); }
                            let data: Arc<str> = String::from_utf8(core.response_bytes(&id, &r).to_vec()).unwrap_or_default().into();
                            let mut ev = s.events.lock().expect("events");
                            ev.push(stream, data);
                            ev.finish(stream);
                            return;
                        }
                    }
                }
            });
            sse_response(body)
        }
    }
}

/// An SSE body replaying a session stream after `after`, then following it live.
fn attached_body(s: &Session, stream: u64, after: Option<u64>, retry_ms: u64) -> Option<Body> {
    let att = s.events.lock().expect("events").attach(stream, after)?;
    let render = move |(seq, data): (u64, Arc<str>)| -> Result<Bytes, Infallible> {
        let eid = event_id(stream, seq);
        if data.is_empty() {
            Ok(Bytes::from(format!(
                "id: {eid}\nretry: {retry_ms}\ndata: \n\n"
            )))
        } else {
            Ok(sse_event(Some(&eid), data.as_bytes()))
        }
    };
    let replay = futures::stream::iter(att.replay).map(render);
    Some(match att.live {
        Some(live) => Body::from_stream(replay.chain(ReceiverStream::new(live).map(render))),
        None => Body::from_stream(replay),
    })
}

// ---------------------------------------------------------------- legacy

fn session_not_found() -> Response<Body> {
    rpc_error_response(
        404,
        None,
        &RpcError::invalid_request(
            "Session not found: it expired or was closed; initialize a new one",
        ),
    )
}

/// Forward to the owning node through the cluster hook, when the session lives elsewhere.
async fn try_forward(
    st: &Shared,
    sid: &str,
    method: http::Method,
    headers: &HeaderMap,
    body: Bytes,
) -> Option<Response<Body>> {
    if st.core.sessions.owned_here(sid) {
        return None;
    }
    let fwd = st.core.cluster.forwarder()?;
    let owner = crate::node::session_owner(sid)?.to_string();
    let mut req = http::Request::builder().method(method).uri("/mcp");
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let req = req.body(body).ok()?;
    match fwd.forward(&owner, req).await {
        Ok(resp) => Some(resp),
        // The owner is gone: the session is as good as expired (the client re-initialises).
        Err(crate::node::ForwardError::OwnerGone) => Some(session_not_found()),
        Err(crate::node::ForwardError::Failed(e)) => {
            tracing::warn!(owner, error = %e, "forwarding to the session owner failed");
            Some(rpc_error_response(
                502,
                None,
                &RpcError::internal("The node owning this session did not answer"),
            ))
        }
    }
}

#[allow(clippy::result_large_err)] // the Err is the response itself, returned at once
fn lookup(st: &Shared, headers: &HeaderMap) -> Result<Arc<Session>, Response<Body>> {
    let sid = header(headers, SESSION_HEADER).ok_or_else(|| {
        rpc_error_response(
            400,
            None,
            &RpcError::invalid_request("Bad Request: Mcp-Session-Id header is required"),
        )
    })?;
    let s = st.core.sessions.get(sid).ok_or_else(session_not_found)?;
    if let Some(v) = header(headers, VERSION_HEADER) {
        if v.trim() != s.version.as_str() {
            return Err(rpc_error_response(
                400,
                None,
                &RpcError::invalid_request(format!(
                    "Bad Request: MCP-Protocol-Version {v:?} does not match the session's {}",
                    s.version.as_str()
                )),
            ));
        }
    }
    Ok(s)
}

async fn legacy_post(
    st: &Shared,
    headers: &HeaderMap,
    raw: Bytes,
    parsed: Parsed,
    principal: Option<String>,
) -> Response<Body> {
    if let Parsed::Single(Ok(m)) = &parsed {
        if m.method() == "initialize" && m.is_request() {
            if header(headers, SESSION_HEADER).is_some() {
                return rpc_error_response(
                    400,
                    m.id.as_ref(),
                    &RpcError::invalid_request(
                        "Bad Request: initialize must not carry Mcp-Session-Id",
                    ),
                );
            }
            let id = m.id.clone().expect("id");
            return match lifecycle::initialize(&st.core, m, "http") {
                Ok((s, result)) => {
                    st.core.metrics.request("initialize", "http", true, 0.0);
                    let mut r = json_response(StatusCode::OK, jsonrpc::result_bytes(&id, &result));
                    if let Ok(v) = HeaderValue::from_str(&s.id) {
                        r.headers_mut().insert(SESSION_HEADER, v);
                    }
                    r
                }
                Err(e) => {
                    st.core.metrics.request("initialize", "http", false, 0.0);
                    rpc_error_response(status_for(&e, false), Some(&id), &e)
                }
            };
        }
    }
    let session = match lookup(st, headers) {
        Ok(s) => s,
        Err(resp) => {
            if resp.status() == StatusCode::NOT_FOUND {
                if let Some(sid) = header(headers, SESSION_HEADER) {
                    if let Some(fwd) = try_forward(st, sid, http::Method::POST, headers, raw).await
                    {
                        return fwd;
                    }
                }
            }
            return resp;
        }
    };
    let messages = match parsed {
        Parsed::Single(m) => vec![m],
        Parsed::Batch(items) => {
            if !session.version.allows_batch() {
                return rpc_error_response(
                    400,
                    None,
                    &RpcError::invalid_request(
                        "Invalid Request: batches are not supported by this protocol version",
                    ),
                );
            }
            items
        }
    };
    let batch = messages.len() > 1;
    let mut requests = Vec::new();
    let mut errors = Vec::new();
    for m in messages {
        match m {
            Err((id, e)) => errors.push(jsonrpc::error_bytes(id.as_ref(), &e)),
            Ok(m) if m.is_response() => {
                if let Some(id) = &m.id {
                    session.peer.complete(id, m.result, m.error);
                }
            }
            Ok(m) if m.is_notification() => match m.method() {
                "notifications/initialized" => session
                    .initialized
                    .store(true, std::sync::atomic::Ordering::Relaxed),
                "notifications/cancelled" => {
                    if let Some(id) = m
                        .params
                        .as_ref()
                        .and_then(|p| p.get("requestId"))
                        .and_then(|v| serde_json::from_value::<Id>(v.clone()).ok())
                    {
                        if let Some((_, h)) = session.in_flight.remove(&id) {
                            h.abort();
                        }
                    }
                }
                _ => {}
            },
            Ok(m) => requests.push(m),
        }
    }
    if !batch && !errors.is_empty() {
        return json_response(StatusCode::BAD_REQUEST, errors.remove(0));
    }
    let make_ctx = |m: &Message| Ctx {
        era: Era::Legacy(session.clone()),
        out: Outbound::none(),
        peer: Some(session.peer.clone()),
        progress_token: m.meta().and_then(|x| x.get("progressToken")).cloned(),
        principal: principal.clone().map(Into::into),
        transport: "http",
    };
    if requests.is_empty() && errors.is_empty() {
        return empty(StatusCode::ACCEPTED);
    }
    if !batch {
        let m = requests.pop().expect("one request");
        let ctx = make_ctx(&m);
        return run(st, m, ctx, Some(session)).await;
    }
    // A 2025-03-26 batch: answer all requests together as a JSON array.
    let futs = requests.into_iter().map(|m| {
        let ctx = make_ctx(&m);
        let core = st.core.clone();
        async move {
            let r = core.handle(&m, &ctx).await;
            jsonrpc::response_bytes(m.id.as_ref().expect("id"), &r)
        }
    });
    let mut parts: Vec<Bytes> = futures::future::join_all(futs).await;
    parts.extend(errors);
    let mut out = Vec::from(&b"["[..]);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(p);
    }
    out.push(b']');
    json_response(StatusCode::OK, Bytes::from(out))
}

pub async fn get(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response<Body> {
    if let Err(r) = guard(&st, &headers, peer) {
        return r;
    }
    if header(&headers, SESSION_HEADER).is_none() {
        // The modern revision has no GET stream; legacy clients always name their session.
        let mut r = rpc_error_response(405, None, &RpcError::invalid_request("Method Not Allowed: GET needs an Mcp-Session-Id (use subscriptions/listen on the current revision)"));
        r.headers_mut().insert(
            http::header::ALLOW,
            HeaderValue::from_static("POST, DELETE"),
        );
        return r;
    }
    if !header(&headers, "accept")
        .is_some_and(|a| a.contains("text/event-stream") || a.contains("*/*"))
    {
        return rpc_error_response(
            406,
            None,
            &RpcError::invalid_request("Not Acceptable: GET requires Accept: text/event-stream"),
        );
    }
    let s = match lookup(&st, &headers) {
        Ok(s) => s,
        Err(r) => {
            if r.status() == StatusCode::NOT_FOUND {
                if let Some(sid) = header(&headers, SESSION_HEADER) {
                    if let Some(fwd) =
                        try_forward(&st, sid, http::Method::GET, &headers, Bytes::new()).await
                    {
                        return fwd;
                    }
                }
            }
            return r;
        }
    };
    if let Some(last) = header(&headers, "last-event-id") {
        let Some((stream, seq)) = parse_event_id(last) else {
            return rpc_error_response(
                400,
                None,
                &RpcError::invalid_request("Bad Request: malformed Last-Event-ID"),
            );
        };
        return match attached_body(&s, stream, Some(seq), st.retry_ms) {
            Some(b) => sse_response(b),
            None => rpc_error_response(
                404,
                None,
                &RpcError::invalid_request(
                    "Unknown stream for Last-Event-ID (it may have expired)",
                ),
            ),
        };
    }
    // A standalone stream for server-initiated notifications; it replaces any earlier one.
    let stream = s.events.lock().expect("events").open();
    if s.version >= Legacy::V20251125 {
        s.events.lock().expect("events").push(stream, "".into());
    }
    let body = attached_body(&s, stream, None, st.retry_ms).unwrap_or_else(Body::empty);
    let (abort, reg) = AbortHandle::new_pair();
    if let Some(old) = s.standalone.lock().expect("standalone").replace(abort) {
        old.abort();
    }
    let core = st.core.clone();
    let sess = s.clone();
    tokio::spawn(async move {
        let mut rx = core.events.subscribe();
        let closed = sess.closed();
        let drained = core.lifecycle.drained();
        let work = Abortable::new(
            async {
                tokio::pin!(closed);
                tokio::pin!(drained);
                loop {
                    let ev = tokio::select! {
                        ev = rx.recv() => ev,
                        _ = &mut closed => break,
                        _ = &mut drained => break,
                    };
                    let note = match ev {
                        Ok(crate::protocol::ServerEvent::ListChanged(what)) => {
                            jsonrpc::notification(
                                &format!("notifications/{what}/list_changed"),
                                serde_json::json!({}),
                            )
                        }
                        Ok(crate::protocol::ServerEvent::ResourceUpdated(uri))
                            if sess.is_subscribed(&uri) =>
                        {
                            jsonrpc::notification(
                                "notifications/resources/updated",
                                serde_json::json!({"uri": &*uri}),
                            )
                        }
                        Ok(_) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(_) => break,
                    };
                    let data: Arc<str> =
                        String::from_utf8(serde_json::to_vec(&note).unwrap_or_default())
                            .unwrap_or_default()
                            .into();
                    sess.events.lock().expect("events").push(stream, data);
                }
            },
            reg,
        );
        let _ = work.await;
        sess.events.lock().expect("events").finish(stream);
    });
    sse_response(body)
}

pub async fn delete(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response<Body> {
    if let Err(r) = guard(&st, &headers, peer) {
        return r;
    }
    let Some(sid) = header(&headers, SESSION_HEADER) else {
        let mut r = rpc_error_response(
            405,
            None,
            &RpcError::invalid_request("Method Not Allowed: DELETE needs an Mcp-Session-Id"),
        );
        r.headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    };
    if st.core.sessions.remove(sid) {
        return empty(StatusCode::OK);
    }
    if let Some(fwd) = try_forward(&st, sid, http::Method::DELETE, &headers, Bytes::new()).await {
        return fwd;
    }
    session_not_found()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_base64_sentinel() {
        assert_eq!(decode_header_value("  plain ").unwrap(), "plain");
        assert_eq!(decode_header_value("=?base64?SGVsbG8=?=").unwrap(), "Hello");
        assert!(decode_header_value("=?base64?SGVsbG8?=").is_err());
        assert!(decode_header_value("=?base64?SGVs!!!bG8=?=").is_err());
        assert_eq!(
            decode_header_value("=?base64?SGVsbG8=").unwrap(),
            "=?base64?SGVsbG8="
        );
    }
}
