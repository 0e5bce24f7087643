//! The deprecated HTTP+SSE transport (2024-11-05): `GET /sse` opens an event stream whose first
//! event names the POST endpoint (`/messages?sessionId=...`); client messages are POSTed there
//! and every server message, responses included, flows back on the stream.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, Query, Request, State};
use axum::http::{HeaderMap, Response, StatusCode};
use axum::response::IntoResponse;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::conn::Conn;
use super::{empty, guard, sse_event, sse_response, HttpError, Shared};
use crate::protocol::jsonrpc::RpcError;
use crate::session::LIVE_BUFFER;

pub async fn open(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response<Body> {
    let principal = match guard(&st, &headers, peer) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let (out_tx, out_rx) = mpsc::channel::<Bytes>(LIVE_BUFFER);
    let conn = Conn::new(
        st.core.clone(),
        "sse",
        out_tx.clone(),
        principal,
        &st.limits,
    );
    let key = uuid::Uuid::new_v4().simple().to_string();
    st.sse_conns.insert(key.clone(), conn.clone());
    let endpoint = Bytes::from(format!(
        "event: endpoint\ndata: /messages?sessionId={key}\n\n"
    ));
    let (body_tx, body_rx) = mpsc::channel::<Bytes>(LIVE_BUFFER);
    let st2 = st.clone();
    tokio::spawn(async move {
        let mut out_rx = out_rx;
        let drained = st2.core.lifecycle.drained();
        tokio::pin!(drained);
        if body_tx.send(endpoint).await.is_ok() {
            loop {
                tokio::select! {
                    _ = body_tx.closed() => break,
                    _ = &mut drained => {
                        let _ = body_tx.send(Bytes::from(format!("retry: {}\n\n", st2.retry_ms))).await;
                        break;
                    }
                    m = out_rx.recv() => match m {
                        Some(b) => if body_tx.send_timeout(sse_event(None, &b), st2.limits.slow.write).await.is_err() { break },
                        None => break,
                    },
                }
            }
        }
        st2.sse_conns.remove(&key);
        conn.close();
    });
    drop(out_tx);
    sse_response(Body::from_stream(
        ReceiverStream::new(body_rx).map(Ok::<_, Infallible>),
    ))
}

/// `POST /messages?sessionId=...`: Origin, authentication and the rate limit pass, and the
/// connection exists and belongs to the caller's principal, before any of the body is read (an unauthenticated client cannot make
/// the server buffer or wait for a body).
pub async fn message(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> Response<Body> {
    let principal = match guard(&st, req.headers(), peer) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    // A connection answers to the principal that opened it: to anyone else it does not exist.
    let Some(conn) = q
        .get("sessionId")
        .and_then(|k| st.sse_conns.get(k).map(|c| c.clone()))
        .filter(|c| c.principal() == principal.as_deref())
    else {
        return HttpError::new(
            404,
            RpcError::invalid_request("Unknown sessionId: open GET /sse first"),
        )
        .into_response();
    };
    // Read as the `Bytes` extractor reads it (the size limit and the body deadline apply).
    let body = match Bytes::from_request(req, &st).await {
        Ok(b) => b,
        Err(rejection) => return rejection.into_response(),
    };
    // At the connection's in-flight cap this POST waits for a free slot.
    conn.on_frame(&body).await;
    empty(StatusCode::ACCEPTED)
}
