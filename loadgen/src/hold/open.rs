//! Opening what an idle hold holds: a socket bound to one of the source addresses (bind before
//! connect, so many client sockets fit past one address's ephemeral port range), then an HTTP/1.1
//! keep-alive connection or a WebSocket, its handshake, and later one request to prove it is
//! still there. Every wait has a timeout.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{Request, Uri};
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::mcp::{self, Family, STATELESS_VERSION};

/// The longest one exchange (connect, handshake, request) may take.
pub const EXCHANGE: Duration = Duration::from_secs(10);

/// A TCP connection from `source` (port chosen by the kernel) to `target`.
pub async fn connect(target: SocketAddr, source: Option<IpAddr>) -> Result<TcpStream, String> {
    let sock = match target {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| io_kind(&e))?;
    if let Some(ip) = source {
        sock.bind(SocketAddr::new(ip, 0)).map_err(|e| io_kind(&e))?;
    }
    let s = tokio::time::timeout(EXCHANGE, sock.connect(target))
        .await
        .map_err(|_| "connect_timeout".to_string())?
        .map_err(|e| io_kind(&e))?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// Error kinds of socket failures; running out of file descriptors or ports gets its own.
fn io_kind(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(24) => "emfile".into(),        // EMFILE: RLIMIT_NOFILE reached
        Some(99) => "eaddrnotavail".into(), // EADDRNOTAVAIL: no free local port
        Some(98) => "eaddrinuse".into(),    // EADDRINUSE
        Some(111) => "refused".into(),      // ECONNREFUSED
        _ => "connect".into(),
    }
}

/// A JSON-RPC request the hold sends on a connection.
pub fn request(family: Family, id: u64, version: &str) -> String {
    match (family, id) {
        (Family::Session, 0) => mcp::initialize(0, version),
        (Family::Session, _) => json!({"jsonrpc": "2.0", "id": id, "method": "ping"}).to_string(),
        (Family::Stateless, _) => json!({"jsonrpc": "2.0", "id": id, "method": "server/discover", "params": {"_meta": mcp::stateless_meta()}}).to_string(),
    }
}

/// One HTTP/1.1 keep-alive connection (no pool: exactly one socket per value).
pub struct Http {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
    path: String,
    /// The session this connection opened, if any, and its negotiated revision.
    pub session: Option<(String, String)>,
}

pub struct Answer {
    pub status: u16,
    pub session_id: Option<String>,
    pub body: Option<Value>,
}

impl Http {
    pub async fn open(
        uri: &Uri,
        target: SocketAddr,
        source: Option<IpAddr>,
    ) -> Result<Self, String> {
        let stream = connect(target, source).await?;
        let (sender, conn) = tokio::time::timeout(
            EXCHANGE,
            hyper::client::conn::http1::handshake(TokioIo::new(stream)),
        )
        .await
        .map_err(|_| "connect_timeout".to_string())?
        .map_err(|_| "connect".to_string())?;
        // The connection's own task: it ends when either side closes the socket.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Http {
            sender,
            authority: uri.authority().map(|a| a.to_string()).unwrap_or_default(),
            path: uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_else(|| "/".into()),
            session: None,
        })
    }

    /// The server (or the network) closed this connection.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// POST one message with the headers its family needs; the whole answer.
    pub async fn post(&mut self, family: Family, body: String) -> Result<Answer, String> {
        let mut b = Request::post(self.path.as_str())
            .header("host", self.authority.as_str())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        b = match (&self.session, family) {
            (Some((sid, version)), _) => b
                .header("mcp-session-id", sid.as_str())
                .header("mcp-protocol-version", version.as_str()),
            (None, Family::Stateless) => b
                .header("mcp-protocol-version", STATELESS_VERSION)
                .header("mcp-method", "server/discover"),
            (None, Family::Session) => b,
        };
        let req = b
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| "config".to_string())?;
        let exchange = async {
            self.sender
                .ready()
                .await
                .map_err(|_| "closed".to_string())?;
            let resp = self
                .sender
                .send_request(req)
                .await
                .map_err(|_| "transport".to_string())?;
            let status = resp.status().as_u16();
            let header = |n: &str| {
                resp.headers()
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let (ct, session_id) = (
                header("content-type").unwrap_or_default(),
                header("mcp-session-id"),
            );
            let bytes = crate::transport::http::read_body(resp).await?;
            Ok(Answer {
                status,
                session_id,
                body: mcp::answer_in_body(&ct, &bytes),
            })
        };
        tokio::time::timeout(EXCHANGE, exchange)
            .await
            .map_err(|_| "timeout".to_string())?
    }

    /// The family's handshake: `server/discover`, or `initialize` + `notifications/initialized`
    /// (the session is then kept on this value).
    pub async fn handshake(&mut self, family: Family, version: &str) -> Result<(), String> {
        let a = self.post(family, request(family, 0, version)).await?;
        if a.status != 200 || a.body.as_ref().and_then(|v| v.get("result")).is_none() {
            return Err(match family {
                Family::Stateless => format!("discover_http_{}", a.status),
                Family::Session => format!("initialize_http_{}", a.status),
            });
        }
        if family == Family::Stateless {
            return Ok(());
        }
        let negotiated = a
            .body
            .as_ref()
            .and_then(|v| v.pointer("/result/protocolVersion"))
            .and_then(Value::as_str)
            .unwrap_or(version)
            .to_string();
        let sid = a.session_id.ok_or_else(|| "initialize".to_string())?;
        self.session = Some((sid, negotiated));
        let n = self.post(family, mcp::initialized()).await?;
        if n.status != 202 && n.status != 200 {
            return Err(format!("initialized_http_{}", n.status));
        }
        Ok(())
    }

    /// One request in the connection's session (or stateless): answered with a result?
    pub async fn check(&mut self, family: Family, version: &str) -> Result<(), String> {
        let a = self.post(family, request(family, 1, version)).await?;
        match a.body {
            _ if a.status != 200 => Err(format!("http_{}", a.status)),
            Some(v) if v.get("result").is_some() => Ok(()),
            _ => Err("bad_answer".into()),
        }
    }
}

/// One WebSocket connection with small buffers (the hold measures the server, not itself).
pub struct Ws {
    ws: WebSocketStream<TcpStream>,
}

impl Ws {
    pub async fn open(
        url: &str,
        target: SocketAddr,
        source: Option<IpAddr>,
    ) -> Result<Self, String> {
        let stream = connect(target, source).await?;
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let (ws, _) = tokio::time::timeout(
            EXCHANGE,
            tokio_tungstenite::client_async_with_config(url, stream, Some(config)),
        )
        .await
        .map_err(|_| "connect_timeout".to_string())?
        .map_err(|_| "connect".to_string())?;
        Ok(Ws { ws })
    }

    /// Send `body`, wait for the answer with `id` (notifications and pings in between are
    /// skipped; tungstenite answers pings itself).
    async fn exchange(&mut self, body: String, id: u64) -> Result<Value, String> {
        let ws = &mut self.ws;
        let run = async {
            ws.send(Message::Text(body.into()))
                .await
                .map_err(|_| "closed".to_string())?;
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) => {
                        if let Ok(v) = serde_json::from_str::<Value>(&t) {
                            if mcp::answer_id(&v) == Some(id) {
                                return Ok(v);
                            }
                        }
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        return Err("closed".to_string())
                    }
                    Some(Ok(_)) => {}
                }
            }
        };
        tokio::time::timeout(EXCHANGE, run)
            .await
            .map_err(|_| "timeout".to_string())?
    }

    pub async fn handshake(&mut self, family: Family, version: &str) -> Result<(), String> {
        let v = self.exchange(request(family, 0, version), 0).await?;
        if v.get("result").is_none() {
            return Err(match family {
                Family::Stateless => "discover".into(),
                Family::Session => "initialize".into(),
            });
        }
        if family == Family::Session {
            self.ws
                .send(Message::Text(mcp::initialized().into()))
                .await
                .map_err(|_| "closed".to_string())?;
        }
        Ok(())
    }

    /// Read (and so answer pings) until `release` completes; false when the server closed the
    /// connection first.
    pub async fn idle_until(&mut self, release: impl std::future::Future<Output = ()>) -> bool {
        tokio::pin!(release);
        loop {
            tokio::select! {
                _ = &mut release => return true,
                m = self.ws.next() => match m {
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return false,
                    Some(Ok(_)) => {}
                },
            }
        }
    }

    pub async fn check(&mut self, family: Family, version: &str) -> Result<(), String> {
        let v = self.exchange(request(family, 1, version), 1).await?;
        v.get("result")
            .map(|_| ())
            .ok_or_else(|| "bad_answer".into())
    }

    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.close(None)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_and_check_requests_per_family() {
        let v: Value = serde_json::from_str(&request(Family::Session, 0, "2025-11-25")).unwrap();
        assert_eq!(v["method"], "initialize");
        assert_eq!(v["params"]["protocolVersion"], "2025-11-25");
        let v: Value = serde_json::from_str(&request(Family::Session, 1, "2025-11-25")).unwrap();
        assert_eq!(
            (v["method"].as_str(), v["id"].as_u64()),
            (Some("ping"), Some(1))
        );
        let v: Value = serde_json::from_str(&request(Family::Stateless, 1, "x")).unwrap();
        assert_eq!(v["method"], "server/discover");
        assert_eq!(
            v["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
            STATELESS_VERSION
        );
    }

    #[test]
    fn socket_errors_that_mean_a_limit_have_their_own_kind() {
        let e = |n| io_kind(&std::io::Error::from_raw_os_error(n));
        assert_eq!(e(24), "emfile");
        assert_eq!(e(99), "eaddrnotavail");
        assert_eq!(e(111), "refused");
        assert_eq!(e(5), "connect");
    }
}
