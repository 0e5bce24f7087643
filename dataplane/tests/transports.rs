//! WebSocket, TCP, the legacy HTTP+SSE transport, health, metrics and draining.

mod support;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use support::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn init(id: i64, v: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {"protocolVersion": v, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}).to_string()
}

#[tokio::test]
async fn websocket_serves_both_eras() {
    let s = start("", &[]).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", s.mcp_addr))
        .await
        .unwrap();
    use tokio_tungstenite::tungstenite::Message;
    let next = async |ws: &mut tokio_tungstenite::WebSocketStream<_>| -> Value {
        loop {
            if let Some(Ok(Message::Text(t))) = ws.next().await {
                return serde_json::from_str(&t).unwrap();
            }
        }
    };
    ws.send(Message::Text(init(1, "2025-06-18").into()))
        .await
        .unwrap();
    assert_eq!(
        next(&mut ws).await["result"]["protocolVersion"],
        "2025-06-18"
    );
    ws.send(Message::Text(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "ws"}}}).to_string().into())).await.unwrap();
    assert_eq!(next(&mut ws).await["result"]["content"][0]["text"], "ws");
    let mut p = json!({"name": "echo", "arguments": {"message": "modern"}});
    p["_meta"] = modern_meta();
    ws.send(Message::Text(
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": p})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let r = next(&mut ws).await;
    assert_eq!(
        (
            r["result"]["content"][0]["text"].clone(),
            r["result"]["resultType"].clone()
        ),
        (json!("modern"), json!("complete"))
    );
    ws.send(Message::Text("{broken".into())).await.unwrap();
    assert_eq!(next(&mut ws).await["error"]["code"], -32700);
}

#[tokio::test]
async fn tcp_newline_json_rpc() {
    let s = start(
        "mcp:\n  transports:\n    tcp:\n      enabled: true\n      port: 4\n",
        &[],
    )
    .await;
    let sock = tokio::net::TcpStream::connect(s.tcp_addr.unwrap())
        .await
        .unwrap();
    let (r, mut w) = sock.into_split();
    let mut lines = BufReader::new(r).lines();
    w.write_all(format!("{}\n", init(1, "2025-11-25")).as_bytes())
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(v["result"]["serverInfo"]["name"], "erlmcp");
    w.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}\n")
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(
        (v["id"].clone(), v["result"].clone()),
        (json!(2), json!({}))
    );
    w.write_all(b"[]\n").await.unwrap();
    let v: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(v["error"]["code"], -32600);
}

#[tokio::test]
async fn legacy_http_sse_transport() {
    let s = start("", &[]).await;
    let client = reqwest_like(s.mcp_addr).await;
    assert!(client.starts_with("/messages?sessionId="), "{client}");
}

/// Open GET /sse, read the endpoint event, POST initialize there, read the response event.
async fn reqwest_like(addr: std::net::SocketAddr) -> String {
    use http_body_util::BodyExt;
    let c: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let resp = c
        .request(
            http::Request::get(format!("http://{addr}/sse"))
                .header("accept", "text/event-stream")
                .body(Default::default())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = resp.into_body();
    let mut text = String::new();
    while !text.contains("\n\n") {
        let f = body.frame().await.unwrap().unwrap();
        text.push_str(&String::from_utf8_lossy(f.data_ref().unwrap()));
    }
    let endpoint = text
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap()
        .trim()
        .to_string();
    let r = request(
        "POST",
        &format!("http://{addr}{endpoint}"),
        &[("content-type", "application/json")],
        init(1, "2024-11-05"),
    )
    .await;
    assert_eq!(r.status, 202);
    let mut rest = String::new();
    while sse_data(&rest).is_empty() {
        let f = body.frame().await.unwrap().unwrap();
        rest.push_str(&String::from_utf8_lossy(f.data_ref().unwrap()));
    }
    assert_eq!(
        sse_data(&rest)[0]["result"]["protocolVersion"],
        "2024-11-05"
    );
    endpoint
}

#[tokio::test]
async fn health_metrics_and_drain() {
    let s = start("", &[("ERLMCP_NODE_NAME", "erlmcp@drain-node")]).await;
    let health = |p: &'static str| {
        let a = s.health_addr;
        async move { request("GET", &format!("http://{a}{p}"), &[], "").await }
    };
    assert_eq!(health("/ready").await.status, 200);
    assert_eq!(health("/live").await.status, 200);
    assert!(health("/health").await.body.contains("healthy"));
    let st = health("/status").await.json();
    assert_eq!(
        (st["node"].clone(), st["sessions"].clone()),
        (json!("erlmcp@drain-node"), json!(0))
    );
    legacy_session(s.mcp_addr, "2025-11-25").await;
    modern(
        s.mcp_addr,
        1,
        "tools/call",
        json!({"name": "echo", "arguments": {"message": "x"}}),
    )
    .await;
    let m = request(
        "GET",
        &format!("http://{}/metrics", s.metrics_addr),
        &[],
        "",
    )
    .await
    .body;
    for name in [
        "erlmcp_up 1",
        "erlmcp_ready 1",
        "erlmcp_sessions_active 1",
        "erlmcp_sessions_created_total 1",
        "erlmcp_requests_total{method=\"tools/call\",status=\"ok\",transport=\"http\"} 1",
        "erlmcp_request_duration_seconds_bucket",
        "erlmcp_memory_total",
        "erlmcp_cluster_nodes 1",
        "erlmcp_cluster_nodes_expected 1",
    ] {
        assert!(m.contains(name), "missing {name}");
    }
    // Drain: not ready at once, new MCP work refused with a retry hint.
    s.state.core.lifecycle.begin_drain();
    assert_eq!(health("/ready").await.status, 503);
    let r = modern(s.mcp_addr, 2, "tools/list", json!({})).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
    let t = std::time::Instant::now();
    s.shutdown(std::time::Duration::from_secs(2)).await;
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
}
