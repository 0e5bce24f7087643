//! Newline-delimited JSON-RPC over TCP.

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::conn::Conn;
use super::Shared;
use crate::limits::WRITE_TIMEOUT;
use crate::protocol::jsonrpc::{self, RpcError};
use crate::session::LIVE_BUFFER;

pub async fn serve(st: Shared, listener: TcpListener) {
    let drained = st.core.lifecycle.drained();
    tokio::pin!(drained);
    loop {
        let (sock, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "tcp accept failed");
                    continue;
                }
            },
            _ = &mut drained => return,
        };
        let Ok(permit) = st.limits.connections.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection limit reached; refusing tcp client");
            continue;
        };
        if st.limits.rate.check(&peer.ip().to_string()).is_err() {
            continue;
        }
        let _ = sock.set_nodelay(true);
        let st = st.clone();
        tokio::spawn(async move {
            let (r, w) = sock.into_split();
            serve_stream(st, r, w, "tcp").await;
            drop(permit);
        });
    }
}

/// Serve one line-oriented stream (TCP connection or stdio) until EOF.
pub async fn serve_stream<R, W>(st: Shared, read: R, mut write: W, transport: &'static str)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(LIVE_BUFFER);
    let conn: Arc<Conn> = Conn::new(
        st.core.clone(),
        transport,
        out_tx.clone(),
        None,
        st.limits.in_flight.clone(),
    );
    let writer = tokio::spawn(async move {
        while let Some(b) = out_rx.recv().await {
            let ok = tokio::time::timeout(WRITE_TIMEOUT, async {
                write.write_all(&b).await?;
                write.write_all(b"\n").await?;
                write.flush().await
            })
            .await;
            if !matches!(ok, Ok(Ok(()))) {
                break;
            }
        }
    });
    let max = st.limits.max_body;
    let mut reader = BufReader::new(read);
    let mut buf = Vec::with_capacity(4096);
    loop {
        buf.clear();
        let n = match (&mut reader)
            .take(max as u64 + 1)
            .read_until(b'\n', &mut buf)
            .await
        {
            Ok(n) => n,
            Err(_) => break,
        };
        if n == 0 {
            break;
        }
        if buf.len() > max && buf.last() != Some(&b'\n') {
            let e = RpcError::invalid_request(format!("message larger than {max} bytes"));
            let _ = out_tx.send(jsonrpc::error_bytes(None, &e)).await;
            break;
        }
        let line = buf.trim_ascii();
        if !line.is_empty() {
            conn.on_frame(line);
        }
    }
    // Let in-flight answers go out before closing (stdio clients read until EOF).
    drop(out_tx);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while conn_busy(&conn) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    conn.close();
    drop(conn);
    let _ = tokio::time::timeout(WRITE_TIMEOUT, writer).await;
}

fn conn_busy(c: &Conn) -> bool {
    c.in_flight_count() > 0
}

use tokio::io::AsyncReadExt as _;
