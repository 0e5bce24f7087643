//! JSON-RPC over WebSocket on `/ws`: one text message per JSON-RPC message.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Response};
use axum::response::IntoResponse;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::conn::Conn;
use super::{guard, Shared};
use crate::limits::WRITE_TIMEOUT;
use crate::session::LIVE_BUFFER;

pub async fn upgrade(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response<Body> {
    let principal = match guard(&st, &headers, peer) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let max = st.limits.max_body;
    ws.max_message_size(max)
        .max_frame_size(max)
        .protocols(["mcp"])
        .on_upgrade(move |socket| serve(st, socket, principal))
        .into_response()
}

async fn serve(st: Shared, socket: WebSocket, principal: Option<String>) {
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(LIVE_BUFFER);
    let conn = Conn::new(
        st.core.clone(),
        "websocket",
        out_tx,
        principal,
        st.limits.in_flight.clone(),
    );
    let writer = tokio::spawn(async move {
        while let Some(b) = out_rx.recv().await {
            let text = String::from_utf8(b.to_vec()).unwrap_or_default();
            match tokio::time::timeout(WRITE_TIMEOUT, sink.send(WsMessage::Text(text.into()))).await
            {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
        let _ = sink.close().await;
    });
    let drained = st.core.lifecycle.drained();
    tokio::pin!(drained);
    loop {
        tokio::select! {
            m = stream.next() => match m {
                Some(Ok(WsMessage::Text(t))) => conn.on_frame(t.as_bytes()),
                Some(Ok(WsMessage::Binary(b))) => conn.on_frame(&b),
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = &mut drained => break,
        }
    }
    conn.close();
    drop(conn);
    let _ = tokio::time::timeout(WRITE_TIMEOUT, writer).await;
}
