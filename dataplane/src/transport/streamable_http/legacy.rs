//! The session eras (2025-11-25 .. 2024-11-05): `initialize` mints an `Mcp-Session-Id`; `GET`
//! opens or resumes (`Last-Event-ID`) a session stream; `DELETE` ends the session. A request
//! for a session another node owns is forwarded there.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode};
use bytes::Bytes;
use futures::future::{AbortHandle, Abortable};
use std::net::SocketAddr;

use super::headers::{header, SESSION, SESSION_HEADER, VERSION};
use super::stream::{attached_body, run, status_for};
use crate::protocol::context::{Ctx, Era, Outbound};
use crate::protocol::jsonrpc::{self, Id, Message, Parsed, RpcError};
use crate::protocol::lifecycle;
use crate::protocol::revision::Legacy;
use crate::session::{parse_event_id, Session};
use crate::transport::{
    empty, guard_forwardable, json_response, sse_response, ForwardedPrincipal, HttpError, Shared,
    PRINCIPAL_HEADER,
};

fn session_not_found() -> HttpError {
    HttpError::new(
        404,
        RpcError::invalid_request(
            "Session not found: it expired or was closed; initialize a new one",
        ),
    )
}

/// Forward to the owning node through the cluster hook, when the session lives elsewhere. The
/// owner gets the principal authenticated here, never the client's credentials.
async fn try_forward(
    st: &Shared,
    sid: &str,
    principal: Option<&str>,
    method: http::Method,
    headers: &HeaderMap,
    body: Bytes,
) -> Option<Result<Response<Body>, HttpError>> {
    if st.core.sessions.owned_here(sid) {
        return None;
    }
    let fwd = st.core.cluster.forwarder()?;
    let owner = crate::node::session_owner(sid)?.to_string();
    let mut req = http::Request::builder().method(method).uri("/mcp");
    for (k, v) in headers {
        if k != http::header::AUTHORIZATION && k != PRINCIPAL_HEADER {
            req = req.header(k, v);
        }
    }
    if let Some(p) = principal {
        req = req.header(PRINCIPAL_HEADER, hex::encode(p));
    }
    let req = req.body(body).ok()?;
    match fwd.forward(&owner, req).await {
        Ok(resp) => Some(Ok(resp)),
        // The owner is gone: the session is as good as expired (the client re-initialises).
        Err(crate::node::ForwardError::OwnerGone) => Some(Err(session_not_found())),
        Err(crate::node::ForwardError::Failed(e)) => {
            tracing::warn!(owner, error = %e, "forwarding to the session owner failed");
            Some(Err(HttpError::new(
                502,
                RpcError::internal("The node owning this session did not answer"),
            )))
        }
    }
}

/// The session named by the headers. A session opened by another principal is "not found"
/// (its id is no capability on its own).
fn lookup(
    st: &Shared,
    headers: &HeaderMap,
    principal: Option<&str>,
) -> Result<Arc<Session>, HttpError> {
    let sid = header(headers, &SESSION).ok_or_else(|| {
        HttpError::new(
            400,
            RpcError::invalid_request("Bad Request: Mcp-Session-Id header is required"),
        )
    })?;
    let s = st
        .core
        .sessions
        .get(sid)
        .filter(|s| s.answers_to(principal))
        .ok_or_else(session_not_found)?;
    if let Some(v) = header(headers, &VERSION) {
        if v.trim() != s.version.as_str() {
            return Err(HttpError::new(
                400,
                RpcError::invalid_request(format!(
                    "Bad Request: MCP-Protocol-Version {v:?} does not match the session's {}",
                    s.version.as_str()
                )),
            ));
        }
    }
    Ok(s)
}

/// Where a request for a session is answered.
enum Route {
    Here(Arc<Session>),
    /// The owning node answered it.
    Forwarded(Response<Body>),
}

/// The session named by the headers, or, when it is not here, the owner's answer.
async fn route(
    st: &Shared,
    headers: &HeaderMap,
    principal: Option<&str>,
    method: http::Method,
    body: Bytes,
) -> Result<Route, HttpError> {
    match lookup(st, headers, principal) {
        Ok(s) => Ok(Route::Here(s)),
        Err(e) if e.status == StatusCode::NOT_FOUND => {
            if let Some(sid) = header(headers, &SESSION) {
                if let Some(fwd) = try_forward(st, sid, principal, method, headers, body).await {
                    return fwd.map(Route::Forwarded);
                }
            }
            Err(e)
        }
        Err(e) => Err(e),
    }
}

pub(super) async fn post(
    st: &Shared,
    headers: &HeaderMap,
    raw: Bytes,
    parsed: Parsed,
    principal: Option<String>,
    peer: SocketAddr,
) -> Result<Response<Body>, HttpError> {
    if let Parsed::Single(Ok(m)) = &parsed {
        if m.method() == "initialize" && m.is_request() {
            if header(headers, &SESSION).is_some() {
                return Err(HttpError::new(
                    400,
                    RpcError::invalid_request(
                        "Bad Request: initialize must not carry Mcp-Session-Id",
                    ),
                )
                .for_id(m.id.as_ref()));
            }
            let id = m.id.clone().expect("id");
            let Some(slot) = st.core.sessions.reserve_client(peer.ip()) else {
                return Err(HttpError::new(
                    503,
                    RpcError::internal("Too many sessions open from this client address"),
                )
                .for_id(Some(&id))
                .with_header(http::header::RETRY_AFTER, HeaderValue::from_static("5")));
            };
            return match lifecycle::initialize(&st.core, m, "http") {
                Ok((s, result)) => {
                    st.core
                        .sessions
                        .claim(&s, principal.map(Into::into), Some(slot));
                    st.core.metrics.request("initialize", "http", true, 0.0);
                    let mut r = json_response(StatusCode::OK, jsonrpc::result_bytes(&id, &result));
                    if let Ok(v) = HeaderValue::from_str(&s.id) {
                        r.headers_mut().insert(SESSION_HEADER, v);
                    }
                    Ok(r)
                }
                Err(e) => {
                    st.core.metrics.request("initialize", "http", false, 0.0);
                    Err(HttpError::new(status_for(&e, false), e).for_id(Some(&id)))
                }
            };
        }
    }
    let session = match route(st, headers, principal.as_deref(), http::Method::POST, raw).await? {
        Route::Here(s) => s,
        Route::Forwarded(r) => return Ok(r),
    };
    let make_ctx = |m: &Message| Ctx {
        era: Era::Legacy(session.clone()),
        out: Outbound::none(),
        peer: Some(session.peer.clone()),
        progress_token: m.meta().and_then(|x| x.get("progressToken")).cloned(),
        principal: principal.clone().map(Into::into),
        transport: "http",
    };
    let (one, items) = match parsed {
        Parsed::Single(m) => (Some(m), Vec::new()),
        Parsed::Batch(mut items) => {
            if !session.version.allows_batch() {
                return Err(HttpError::new(
                    400,
                    RpcError::invalid_request(
                        "Invalid Request: batches are not supported by this protocol version",
                    ),
                ));
            }
            (if items.len() == 1 { items.pop() } else { None }, items)
        }
    };
    // One message (a batch of one included) is answered on its own, with no lists.
    if let Some(m) = one {
        return match m {
            Err((id, e)) => Err(HttpError::new(400, e).for_id(id.as_ref())),
            Ok(m) => Ok(match take_request(&session, m) {
                Some(m) => {
                    let ctx = make_ctx(&m);
                    run(st, m, ctx, Some(session.clone())).await
                }
                None => empty(StatusCode::ACCEPTED),
            }),
        };
    }
    let mut requests = Vec::new();
    let mut errors: Vec<(Option<Id>, RpcError)> = Vec::new();
    for m in items {
        match m {
            Err(e) => errors.push(e),
            Ok(m) => requests.extend(take_request(&session, m)),
        }
    }
    if requests.is_empty() && errors.is_empty() {
        return Ok(empty(StatusCode::ACCEPTED));
    }
    // A 2025-03-26 batch: answer all requests together as a JSON array. Each request takes an
    // in-flight permit like a single one, so a batch cannot run past maxConcurrentRequests.
    let futs = requests.into_iter().map(|m| {
        let ctx = make_ctx(&m);
        let core = st.core.clone();
        let limit = st.limits.in_flight.clone();
        async move {
            let r = {
                let _permit = limit.acquire().await;
                core.handle(&m, &ctx).await
            };
            jsonrpc::response_bytes(m.id.as_ref().expect("id"), &r)
        }
    });
    let mut parts: Vec<Bytes> = futures::future::join_all(futs).await;
    parts.extend(
        errors
            .iter()
            .map(|(id, e)| jsonrpc::error_bytes(id.as_ref(), e)),
    );
    let mut out = Vec::from(&b"["[..]);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(p);
    }
    out.push(b']');
    Ok(json_response(StatusCode::OK, Bytes::from(out)))
}

/// A response or notification is taken in here (None); a request is handed back to be run.
fn take_request(session: &Session, m: Message) -> Option<Message> {
    if m.is_response() {
        if let Some(id) = &m.id {
            session.peer.complete(id, m.result, m.error);
        }
        return None;
    }
    if m.is_notification() {
        match m.method() {
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
        }
        return None;
    }
    Some(m)
}

pub async fn get(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    fwd: Option<Extension<ForwardedPrincipal>>,
    headers: HeaderMap,
) -> Result<Response<Body>, HttpError> {
    let principal = guard_forwardable(&st, &headers, peer, fwd.as_deref())?;
    if header(&headers, SESSION_HEADER).is_none() {
        // The modern revision has no GET stream; legacy clients always name their session.
        return Err(HttpError::new(405, RpcError::invalid_request("Method Not Allowed: GET needs an Mcp-Session-Id (use subscriptions/listen on the current revision)"))
            .with_header(http::header::ALLOW, HeaderValue::from_static("POST, DELETE")));
    }
    if !header(&headers, "accept")
        .is_some_and(|a| a.contains("text/event-stream") || a.contains("*/*"))
    {
        return Err(HttpError::new(
            406,
            RpcError::invalid_request("Not Acceptable: GET requires Accept: text/event-stream"),
        ));
    }
    let s = match route(
        &st,
        &headers,
        principal.as_deref(),
        http::Method::GET,
        Bytes::new(),
    )
    .await?
    {
        Route::Here(s) => s,
        Route::Forwarded(r) => return Ok(r),
    };
    if let Some(last) = header(&headers, "last-event-id") {
        let (stream, seq) = parse_event_id(last).ok_or_else(|| {
            HttpError::new(
                400,
                RpcError::invalid_request("Bad Request: malformed Last-Event-ID"),
            )
        })?;
        let body = attached_body(&s, stream, Some(seq), st.retry_ms).ok_or_else(|| {
            // 400, not 404: a 404 tells the client its whole session is gone.
            HttpError::new(
                400,
                RpcError::invalid_request(
                    "Bad Request: unknown Last-Event-ID (the stream may have expired)",
                ),
            )
        })?;
        return Ok(sse_response(body));
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
                        Ok(ev) => match crate::protocol::session_notification(&ev, &sess) {
                            Some(n) => n,
                            None => continue,
                        },
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
    Ok(sse_response(body))
}

pub async fn delete(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    fwd: Option<Extension<ForwardedPrincipal>>,
    headers: HeaderMap,
) -> Result<Response<Body>, HttpError> {
    let principal = guard_forwardable(&st, &headers, peer, fwd.as_deref())?;
    let Some(sid) = header(&headers, SESSION_HEADER) else {
        return Err(HttpError::new(
            405,
            RpcError::invalid_request("Method Not Allowed: DELETE needs an Mcp-Session-Id"),
        )
        .with_header(http::header::ALLOW, HeaderValue::from_static("POST")));
    };
    if let Some(s) = st.core.sessions.get(sid) {
        if !s.answers_to(principal.as_deref()) {
            return Err(session_not_found());
        }
        if st.core.sessions.remove(sid) {
            return Ok(empty(StatusCode::OK));
        }
    }
    if let Some(fwd) = try_forward(
        &st,
        sid,
        principal.as_deref(),
        http::Method::DELETE,
        &headers,
        Bytes::new(),
    )
    .await
    {
        return fwd;
    }
    Err(session_not_found())
}
