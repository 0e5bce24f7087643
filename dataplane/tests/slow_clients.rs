//! Clients that are slow on purpose: slowloris headers and bodies, a pipelining client that
//! never reads, WebSockets past `maxConnections` or left idle, HTTP/2 without limits. Each
//! attack gets the server's answer (a closed connection, a refused one) and an honest client
//! is still served afterwards. Every wait is bounded; the bounds are generous multiples of
//! the configured timeouts, so they assert behaviour, not speed.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::json;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

/// Long enough for any 1-second server timeout to have fired, on a loaded machine.
const BOUND: Duration = Duration::from_secs(20);

async fn honest(addr: SocketAddr) -> Result<Resp, String> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "honest"}, "_meta": modern_meta()}}).to_string();
    try_request(
        "POST",
        &format!("http://{addr}/mcp"),
        &[
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ],
        body,
        Duration::from_secs(3),
    )
    .await
}

/// An honest request is answered before `BOUND` runs out (retrying refused connections).
async fn served_within_bound(addr: SocketAddr) -> Resp {
    let deadline = Instant::now() + BOUND;
    loop {
        match honest(addr).await {
            Ok(r) => return r,
            Err(e) if Instant::now() >= deadline => panic!("honest client not served: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test]
async fn slowloris_headers_lose_their_slots() {
    let s = start(
        "mcp:\n  limits: {maxConnections: 2, headerReadTimeoutSeconds: 1}\n",
        &[],
    )
    .await;
    // One client says nothing at all (not even enough to tell HTTP/1 from HTTP/2), the other
    // sends half a request head and stops.
    let mut silent = TcpStream::connect(s.mcp_addr).await.unwrap();
    let mut partial = TcpStream::connect(s.mcp_addr).await.unwrap();
    partial
        .write_all(b"POST /mcp HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    closed_by_server(&mut silent, BOUND).await;
    closed_by_server(&mut partial, BOUND).await;
    let r = served_within_bound(s.mcp_addr).await;
    assert_eq!(r.json()["result"]["content"][0]["text"], "honest");
}

#[tokio::test]
async fn slow_bodies_are_cut_and_their_slots_freed() {
    let s = start(
        "mcp:\n  limits: {maxConnections: 2, bodyReadTimeoutSeconds: 1}\n",
        &[],
    )
    .await;
    let head = "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n{";
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(s.mcp_addr).await.unwrap();
        c.write_all(head.as_bytes()).await.unwrap();
        slow.push(c);
    }
    // A byte now and then: never idle, never done (bounded: at most 100 bytes each).
    let dribble = async {
        for _ in 0..100 {
            for c in &mut slow {
                if c.write_all(b" ").await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let _ = timeout(Duration::from_secs(3), dribble).await;
    for c in &mut slow {
        let answer = closed_by_server(c, BOUND).await;
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "a cut body is answered 408: {answer:?}"
        );
    }
    let r = served_within_bound(s.mcp_addr).await;
    assert_eq!(r.json()["result"]["content"][0]["text"], "honest");
}

#[tokio::test]
async fn a_pipelining_client_that_never_reads_is_stopped_and_closed() {
    let s = start(
        "mcp:\n  transports: {tcp: {enabled: true}}\n  limits: {maxInFlightPerConnection: 4, writeTimeoutSeconds: 1}\n",
        &[],
    )
    .await;
    let addr = s.tcp_addr.expect("tcp listener");
    let mut attacker = TcpStream::connect(addr).await.unwrap();
    let big = "x".repeat(16 * 1024);
    // 64 MiB of echo calls at most: a server that keeps reading takes them all (and keeps
    // every answer in memory); one that stops reading at the cap makes this write block.
    let mut written = 0usize;
    let mut stopped = false;
    for id in 0..4096 {
        match timeout(
            Duration::from_secs(3),
            attacker.write_all(&tcp_echo(id, &big)),
        )
        .await
        {
            Ok(Ok(())) => written += 1,
            Ok(Err(_)) | Err(_) => {
                stopped = true;
                break;
            }
        }
    }
    assert!(
        stopped,
        "the server read all {written} pipelined calls of a client that never reads"
    );
    // Its answers cannot be written: after the write timeout the server hangs up.
    closed_by_server(&mut attacker, BOUND).await;
    // An honest TCP client is served.
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(&tcp_echo(1, "honest")).await.unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    timeout(BOUND, async {
        while c.read_exact(&mut byte).await.is_ok() && byte[0] != b'\n' {
            line.push(byte[0]);
        }
    })
    .await
    .expect("answer");
    let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(v["result"]["content"][0]["text"], "honest");
}

async fn ws(addr: SocketAddr) -> Result<WsClient, String> {
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{addr}/ws"),
    )
    .unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", "mcp".parse().unwrap());
    timeout(
        Duration::from_secs(3),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .map_err(|_| "websocket: no answer".to_string())?
    .map(|(c, _)| c)
    .map_err(|e| e.to_string())
}

type WsClient =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[tokio::test]
async fn websockets_count_against_max_connections() {
    let s = start("mcp:\n  limits: {maxConnections: 2}\n", &[]).await;
    let a = ws(s.mcp_addr).await.expect("first websocket");
    let _b = ws(s.mcp_addr).await.expect("second websocket");
    // Give the server time to finish both upgrades (a bounded pause, not a timing assertion).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        honest(s.mcp_addr).await.is_err(),
        "two open websockets fill maxConnections: 2"
    );
    assert!(ws(s.mcp_addr).await.is_err(), "and a third websocket too");
    drop(a);
    let r = served_within_bound(s.mcp_addr).await;
    assert_eq!(r.json()["result"]["content"][0]["text"], "honest");
}

#[tokio::test]
async fn an_idle_websocket_is_closed() {
    let s = start("mcp:\n  limits: {connectionIdleTimeoutSeconds: 1}\n", &[]).await;
    let mut c = ws(s.mcp_addr).await.expect("websocket");
    let ended = timeout(BOUND, async {
        loop {
            match c.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(m)) if m.is_close() => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "an idle websocket is closed by the server");
    // A busy one is not: a request answered on a fresh socket.
    let mut busy = ws(s.mcp_addr).await.expect("websocket");
    let call = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "ws"}, "_meta": modern_meta()}});
    busy.send(tokio_tungstenite::tungstenite::Message::Text(
        call.to_string().into(),
    ))
    .await
    .unwrap();
    let answer = timeout(BOUND, busy.next())
        .await
        .expect("answer")
        .expect("frame")
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(answer.to_text().unwrap()).unwrap();
    assert_eq!(v["result"]["content"][0]["text"], "ws");
}

/// One HTTP/2 frame: (type, flags, payload).
async fn h2_frame(c: &mut TcpStream) -> (u8, u8, Vec<u8>) {
    let mut head = [0u8; 9];
    c.read_exact(&mut head).await.expect("frame header");
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    c.read_exact(&mut payload).await.expect("frame payload");
    (head[3], head[4], payload)
}

const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const ACK: u8 = 0x1;
const MAX_CONCURRENT_STREAMS: u16 = 0x3;

#[tokio::test]
async fn http2_advertises_its_stream_cap_and_pings_idle_clients() {
    let s = start(
        "mcp:\n  limits: {http2MaxConcurrentStreams: 7, http2KeepAliveSeconds: 1, headerReadTimeoutSeconds: 60}\n",
        &[],
    )
    .await;
    let mut c = TcpStream::connect(s.mcp_addr).await.unwrap();
    // h2c with prior knowledge: the preface and an empty SETTINGS frame.
    c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    c.write_all(&[0, 0, 0, SETTINGS, 0, 0, 0, 0, 0])
        .await
        .unwrap();
    let (ty, _, payload) = timeout(BOUND, h2_frame(&mut c)).await.expect("settings");
    assert_eq!(ty, SETTINGS, "the server speaks first with SETTINGS");
    let streams = payload
        .chunks_exact(6)
        .find(|s| u16::from_be_bytes([s[0], s[1]]) == MAX_CONCURRENT_STREAMS)
        .map(|s| u32::from_be_bytes([s[2], s[3], s[4], s[5]]));
    assert_eq!(streams, Some(7), "SETTINGS_MAX_CONCURRENT_STREAMS");
    c.write_all(&[0, 0, 0, SETTINGS, ACK, 0, 0, 0, 0])
        .await
        .unwrap();
    // An idle connection gets a keep-alive PING (answered, so the connection stays up).
    let ping = timeout(BOUND, async {
        loop {
            let (ty, flags, payload) = h2_frame(&mut c).await;
            if ty == PING && flags & ACK == 0 {
                return payload;
            }
        }
    })
    .await
    .expect("a keep-alive ping");
    assert_eq!(ping.len(), 8);
}
