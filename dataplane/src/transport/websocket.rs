//! JSON-RPC over WebSocket on `/ws`: one text message per JSON-RPC message. A WebSocket keeps
//! the `maxConnections` slot of the HTTP connection it upgraded, and is closed after
//! `limits.connectionIdleTimeoutSeconds` without a message from the client.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::{HeaderMap, Response};
use axum::response::IntoResponse;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::conn::Conn;
use super::{guard, ConnSlot, Shared};
use crate::session::LIVE_BUFFER;

/// Bytes read from the socket at a time, per connection.
const READ_BUFFER: usize = 8 * 1024;

pub async fn upgrade(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    slot: Option<Extension<ConnSlot>>,
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
        // tungstenite allocates its read buffer up front (128 KiB by default): at 16k idle
        // connections that was 2.2 GiB (bench/scale.sh). Larger messages take more reads.
        .read_buffer_size(READ_BUFFER)
        .protocols(["mcp"])
        .on_upgrade(move |socket| async move {
            let _slot = slot.and_then(|Extension(s)| s.take());
            serve(st, socket, principal).await
        })
        .into_response()
}

async fn serve(st: Shared, socket: WebSocket, principal: Option<String>) {
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(LIVE_BUFFER);
    let conn = Conn::new(st.core.clone(), "websocket", out_tx, principal, &st.limits);
    let write_timeout = st.limits.slow.write;
    let writer = tokio::spawn(async move {
        while let Some(b) = out_rx.recv().await {
            let text = String::from_utf8(b.to_vec()).unwrap_or_default();
            match tokio::time::timeout(write_timeout, sink.send(WsMessage::Text(text.into()))).await
            {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
        let _ = sink.close().await;
    });
    let drained = st.core.lifecycle.drained();
    tokio::pin!(drained);
    let cut_off = conn.cut_off();
    tokio::pin!(cut_off);
    let idle = st.limits.slow.idle;
    loop {
        let frame = tokio::select! {
            m = stream.next() => match m {
                Some(Ok(WsMessage::Text(t))) => Bytes::from(t),
                Some(Ok(WsMessage::Binary(b))) => b,
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => continue,
            },
            _ = tokio::time::sleep(idle) => {
                tracing::debug!("websocket idle past its timeout; closing");
                break;
            }
            _ = &mut drained => break,
            _ = &mut cut_off => break,
        };
        // At the connection's in-flight cap this waits, and nothing more is read.
        tokio::select! {
            _ = conn.on_frame(&frame) => {}
            _ = &mut cut_off => break,
        }
    }
    conn.close();
    drop(conn);
    let _ = tokio::time::timeout(write_timeout, writer).await;
}
