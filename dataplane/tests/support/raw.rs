//! Raw-socket helpers: what an attacker's connection gets back and one JSON-RPC line for the
//! message-stream transports (`slow_clients.rs`, `hostile_release.rs`), and a legacy SSE
//! stream's endpoint (`http_edges.rs`, `session_binding.rs`).

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The server closes `sock` (EOF or reset) before `within`; the bytes it sent first.
pub async fn closed_by_server(sock: &mut TcpStream, within: Duration) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read_all)
        .await
        .expect("the server closes the connection");
    String::from_utf8_lossy(&got).into_owned()
}

/// A stateless `tools/call echo` of `text` as one newline-terminated line (TCP, stdio).
pub fn tcp_echo(id: u64, text: &str) -> Vec<u8> {
    let mut line = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": text}, "_meta": super::modern_meta()}}).to_string().into_bytes();
    line.push(b'\n');
    line
}

/// Open a 2024-11-05 `GET /sse` stream (with `authorization`, if any) and read its `endpoint`
/// event: the open stream and the `/messages?sessionId=…` path it names.
pub async fn legacy_sse_endpoint(
    addr: SocketAddr,
    authorization: Option<&str>,
) -> (TcpStream, String) {
    let mut sse = TcpStream::connect(addr).await.unwrap();
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    sse.write_all(
        format!("GET /sse HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n{auth}\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let endpoint = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let n = sse.read(&mut buf).await.unwrap();
            assert!(n > 0, "the SSE stream closed");
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen);
            if let Some(at) = text.find("/messages?sessionId=") {
                if let Some(end) = text[at..].find(['\r', '\n']) {
                    return text[at..at + end].to_string();
                }
            }
        }
    })
    .await
    .expect("endpoint event within 10 s");
    (sse, endpoint)
}
