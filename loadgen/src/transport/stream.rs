//! Message-stream transports, WebSocket and newline-delimited TCP: one connection per client,
//! requests multiplexed by JSON-RPC id. Each connection becomes a pair of channels served by a
//! writer task and a reader task; the reader pauses before each read for slow clients, so the
//! server really sees a slow reader (its socket fills up).

use std::time::Duration;

use anyhow::{Context, Result};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::{Endpoint, Kind};

/// Outgoing messages in, incoming messages out. Dropping `tx` closes the connection.
pub struct Duplex {
    pub tx: mpsc::Sender<String>,
    pub rx: mpsc::Receiver<String>,
}

const CHANNEL: usize = 1024;

pub async fn connect(ep: &Endpoint, read_delay: Duration) -> Result<Duplex> {
    let timeout = Duration::from_secs(5);
    match ep.kind {
        Kind::Websocket => {
            let (ws, _) =
                tokio::time::timeout(timeout, tokio_tungstenite::connect_async(&ep.target))
                    .await
                    .context("websocket connect timed out")??;
            if let tokio_tungstenite::MaybeTlsStream::Plain(s) = ws.get_ref() {
                let _ = s.set_nodelay(true);
            }
            let (mut sink, mut source) = ws.split();
            let (tx, mut out) = mpsc::channel::<String>(CHANNEL);
            let (inc, rx) = mpsc::channel::<String>(CHANNEL);
            tokio::spawn(async move {
                while let Some(m) = out.recv().await {
                    if sink.send(Message::Text(m.into())).await.is_err() {
                        return;
                    }
                }
                let _ = sink.close().await;
            });
            tokio::spawn(async move {
                loop {
                    if !read_delay.is_zero() {
                        tokio::time::sleep(read_delay).await;
                    }
                    match source.next().await {
                        Some(Ok(Message::Text(t))) => {
                            if inc.send(t.to_string()).await.is_err() {
                                return;
                            }
                        }
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                        Some(Ok(_)) => {}
                    }
                }
            });
            Ok(Duplex { tx, rx })
        }
        Kind::Tcp => {
            let sock = tokio::time::timeout(timeout, TcpStream::connect(&ep.target))
                .await
                .context("tcp connect timed out")??;
            sock.set_nodelay(true)?;
            let (r, w) = sock.into_split();
            let (tx, mut out) = mpsc::channel::<String>(CHANNEL);
            let (inc, rx) = mpsc::channel::<String>(CHANNEL);
            tokio::spawn(async move {
                let mut w = BufWriter::new(w);
                while let Some(m) = out.recv().await {
                    if w.write_all(m.as_bytes()).await.is_err() || w.write_all(b"\n").await.is_err()
                    {
                        return;
                    }
                    // Flush when nothing else is queued: batches bursts, never holds a lone request.
                    if out.is_empty() && w.flush().await.is_err() {
                        return;
                    }
                }
                let _ = w.shutdown().await;
            });
            tokio::spawn(async move {
                let mut lines = BufReader::new(r).lines();
                loop {
                    if !read_delay.is_zero() {
                        tokio::time::sleep(read_delay).await;
                    }
                    match lines.next_line().await {
                        Ok(Some(l)) => {
                            if inc.send(l).await.is_err() {
                                return;
                            }
                        }
                        _ => return,
                    }
                }
            });
            Ok(Duplex { tx, rx })
        }
        Kind::Http => anyhow::bail!("{} is an HTTP endpoint, not a stream", ep.target),
    }
}
