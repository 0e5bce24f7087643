//! The modern (stateless) era: every POST is self-describing and its headers must agree with
//! the body; `subscriptions/listen` answers with a long-lived SSE stream.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Response, StatusCode};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::headers::{check_headers, header, VERSION};
use super::stream::run;
use crate::protocol::context::{Ctx, Era, Outbound};
use crate::protocol::jsonrpc::{self, Id, Message, Parsed, RpcError, HEADER_MISMATCH};
use crate::protocol::lifecycle;
use crate::protocol::subscriptions::Listener;
use crate::session::LIVE_BUFFER;
use crate::transport::{empty, sse_event, sse_response, HttpError, Shared};

pub(super) async fn post(
    st: &Shared,
    headers: &HeaderMap,
    parsed: Parsed,
    principal: Option<String>,
) -> Result<Response<Body>, HttpError> {
    let msg = match parsed {
        Parsed::Batch(_) => {
            return Err(HttpError::new(
                400,
                RpcError::invalid_request(
                    "Invalid Request: batches are not part of this protocol version",
                ),
            ))
        }
        Parsed::Single(Err((id, e))) => return Err(HttpError::new(400, e).for_id(id.as_ref())),
        Parsed::Single(Ok(m)) => m,
    };
    if msg.is_response() {
        return Err(HttpError::new(
            400,
            RpcError::invalid_request(
                "Invalid Request: clients do not send responses in this protocol version",
            ),
        ));
    }
    if msg.is_notification() {
        return Ok(empty(StatusCode::ACCEPTED));
    }
    let id = msg.id.clone().expect("request id");
    let hv = header(headers, &VERSION);
    if hv.is_none() {
        return Err(HttpError::new(
            400,
            RpcError::new(
                HEADER_MISMATCH,
                "Header mismatch: MCP-Protocol-Version header is required",
            ),
        )
        .for_id(Some(&id)));
    }
    check_headers(headers, &msg, &st.core).map_err(|e| HttpError::new(400, e).for_id(Some(&id)))?;
    let meta =
        lifecycle::modern_meta(&msg, hv).map_err(|e| HttpError::from_rpc(e).for_id(Some(&id)))?;
    if msg.method() == "subscriptions/listen" {
        return listen(st, id, &msg);
    }
    if let Some(r) = super::task_route::forward(st, headers, &msg).await {
        return r;
    }
    let ctx = Ctx {
        era: Era::Modern(Arc::new(meta)),
        out: Outbound::none(),
        peer: None,
        progress_token: msg.meta().and_then(|m| m.get("progressToken")).cloned(),
        principal: principal.map(Into::into),
        transport: "http",
    };
    Ok(run(st, msg, ctx, None).await)
}

fn listen(st: &Shared, id: Id, msg: &Message) -> Result<Response<Body>, HttpError> {
    let params = msg.params.clone().unwrap_or_default();
    let (mut listener, ack) = Listener::open(&st.core, id.clone(), &params)
        .map_err(|e| HttpError::from_rpc(e).for_id(Some(&id)))?;
    let (tx, rx) = mpsc::channel::<Bytes>(LIVE_BUFFER);
    let core = st.core.clone();
    let keepalive = st.keepalive;
    let retry = st.retry_ms;
    let write = st.limits.slow.write;
    tokio::spawn(async move {
        let send = |b: Bytes| {
            let tx = tx.clone();
            async move { tx.send_timeout(b, write).await.is_ok() }
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
    Ok(sse_response(Body::from_stream(
        ReceiverStream::new(rx).map(Ok::<_, Infallible>),
    )))
}
