//! Newline-delimited JSON-RPC over TCP.

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use super::conn::Conn;
use super::Shared;
use crate::protocol::jsonrpc::{self, RpcError};
use crate::session::LIVE_BUFFER;

/// With `tls`, every connection is TLS first (the client port's certificate); a handshake that
/// does not finish within the header-read timeout frees its slot.
pub async fn serve(st: Shared, listener: TcpListener, tls: Option<TlsAcceptor>) {
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
        let tls = tls.clone();
        tokio::spawn(async move {
            let idle = Some(st.limits.slow.idle);
            match tls {
                None => {
                    let (r, w) = sock.into_split();
                    serve_stream(st, r, w, "tcp", idle).await;
                }
                Some(acc) => {
                    let handshake = st.limits.slow.header_read;
                    match tokio::time::timeout(handshake, acc.accept(sock)).await {
                        Ok(Ok(stream)) => {
                            let (r, w) = tokio::io::split(stream);
                            serve_stream(st, r, w, "tcp", idle).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "tcp tls handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "tcp tls handshake timed out"),
                    }
                }
            }
            drop(permit);
        });
    }
}

/// Serve one line-oriented stream (TCP connection or stdio) until EOF, until the client stops
/// reading, or (with `idle`) until no complete line arrived for that long.
pub async fn serve_stream<R, W>(
    st: Shared,
    read: R,
    mut write: W,
    transport: &'static str,
    idle: Option<std::time::Duration>,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(LIVE_BUFFER);
    let conn: Arc<Conn> = Conn::new(st.core.clone(), transport, out_tx.clone(), None, &st.limits);
    let write_timeout = st.limits.slow.write;
    let writer = tokio::spawn(async move {
        while let Some(b) = out_rx.recv().await {
            let ok = tokio::time::timeout(write_timeout, async {
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
    let cut_off = conn.cut_off();
    tokio::pin!(cut_off);
    loop {
        buf.clear();
        let mut limited = (&mut reader).take(max as u64 + 1);
        let line = limited.read_until(b'\n', &mut buf);
        let idle_for = async {
            match idle {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let n = tokio::select! {
            r = line => match r {
                Ok(n) => n,
                Err(_) => break,
            },
            _ = idle_for => {
                tracing::debug!(transport, "no message within the idle timeout; closing");
                break;
            }
            _ = &mut cut_off => break,
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
            // At the connection's in-flight cap this waits, and nothing more is read.
            tokio::select! {
                _ = conn.on_frame(line) => {}
                _ = &mut cut_off => break,
            }
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
    let _ = tokio::time::timeout(write_timeout, writer).await;
}

fn conn_busy(c: &Conn) -> bool {
    c.in_flight_count() > 0
}

use tokio::io::AsyncReadExt as _;
