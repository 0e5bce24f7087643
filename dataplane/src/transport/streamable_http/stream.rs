//! The request runner both eras share: a response is plain JSON unless the handler emits
//! something before its result, then SSE. Modern streams belong to the request (closing one
//! cancels it); legacy ones are buffered in the session so `Last-Event-ID` can resume them.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Response, StatusCode};
use bytes::Bytes;
use futures::future::{AbortHandle, Abortable};
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::protocol::context::{Ctx, Outbound, OutboundItem};
use crate::protocol::jsonrpc::{Message, RpcError, INVALID_REQUEST, PARSE_ERROR};
use crate::protocol::revision::Legacy;
use crate::session::{event_id, Session, LIVE_BUFFER};
use crate::transport::{json_response, sse_event, sse_response, Shared};

/// HTTP status for an error on each era: modern errors carry their own (404, 400); legacy
/// errors are 200 unless the message itself was bad.
pub(super) fn status_for(e: &RpcError, modern: bool) -> u16 {
    if modern || matches!(e.code, PARSE_ERROR | INVALID_REQUEST) || e.http_status >= 500 {
        e.http_status
    } else {
        200
    }
}

/// Run one request: plain JSON if nothing is emitted before the result, else SSE. Modern
/// streams belong to the request (closing cancels it); legacy ones are buffered in the
/// session for resumption and the request runs on regardless.
pub(super) async fn run(
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
            // The configured write timeout, as on every transport: a client that stops
            // reading is cut off (and its request cancelled) after it.
            let write = st.limits.slow.write;
            tokio::spawn(async move {
                let send = |v: &Value| {
                    let b = sse_event(None, &serde_json::to_vec(v).unwrap_or_default());
                    let tx = tx.clone();
                    async move { tx.send_timeout(b, write).await.is_ok() }
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
                            let _ = tx.send_timeout(sse_event(None, &core.response_bytes(&id, &r)), write).await;
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
pub(super) fn attached_body(
    s: &Session,
    stream: u64,
    after: Option<u64>,
    retry_ms: u64,
) -> Option<Body> {
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
