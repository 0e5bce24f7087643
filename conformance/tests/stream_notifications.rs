//! Change notifications on the message-stream transports (TCP here; WebSocket, stdio and the
//! legacy HTTP+SSE transport share the same connection engine): a session revision's client
//! gets `list_changed` and, for a URI it subscribed to, `resources/updated`, as the Streamable
//! HTTP GET stream does.

#[path = "../../dataplane/tests/support/mod.rs"]
mod support;

use std::time::Duration;

use erlmcp_dataplane::catalog::Register;
use serde_json::{json, Value};
use support::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const FIXTURE_YAML: &str = include_str!("../../config/conformance.yaml");
const FIXTURES: Option<Register> = Some(erlmcp_conformance::register);

struct Line {
    lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    w: tokio::net::tcp::OwnedWriteHalf,
}

impl Line {
    async fn send(&mut self, v: Value) {
        self.w.write_all(format!("{v}\n").as_bytes()).await.unwrap();
    }
    async fn next(&mut self) -> Value {
        let l = tokio::time::timeout(Duration::from_secs(10), self.lines.next_line())
            .await
            .expect("a message within 10 s")
            .unwrap()
            .expect("connection open");
        serde_json::from_str(&l).unwrap()
    }
    /// Messages up to and including the first that `done` accepts (at most 32, each within 10 s).
    async fn until(&mut self, what: &str, done: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut seen = Vec::new();
        for _ in 0..32 {
            let v = self.next().await;
            let last = done(&v);
            seen.push(v);
            if last {
                return seen;
            }
        }
        panic!("no {what} in {seen:?}");
    }

    /// Messages up to and including the response with `id`.
    async fn until_response(&mut self, id: i64) -> Vec<Value> {
        self.until(&format!("response {id}"), |v| {
            v["id"] == json!(id) && v.get("method").is_none()
        })
        .await
    }

    /// Messages until one with `method` arrives (it comes from another task than the
    /// responses, so it may come before or after the response that caused it).
    async fn until_method(&mut self, method: &str) -> Vec<Value> {
        self.until(method, |v| v["method"] == method).await
    }
}

fn methods(msgs: &[Value]) -> Vec<String> {
    msgs.iter()
        .filter_map(|m| m["method"].as_str().map(String::from))
        .collect()
}

#[tokio::test]
async fn tcp_sessions_get_change_notifications() {
    let s = start_with(FIXTURE_YAML, &[("ERLMCP_TCP_PORT", "4")], FIXTURES).await;
    let sock = tokio::net::TcpStream::connect(s.tcp_addr.unwrap())
        .await
        .unwrap();
    let (r, w) = sock.into_split();
    let mut c = Line {
        lines: BufReader::new(r).lines(),
        w,
    };
    c.send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}}),
    )
    .await;
    assert!(c.next().await["result"]["serverInfo"].is_object());
    c.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;

    let call = |id: i64, name: &str| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": name, "arguments": {}}})
    };
    c.send(call(2, "test_trigger_tool_change")).await;
    c.until_method("notifications/tools/list_changed").await;

    // Not subscribed yet: the resource update is not sent. Events reach the connection in
    // order, so once the next tool change is here, an update would have come before it.
    // Requests run concurrently: wait for each answer so the events keep this order.
    c.send(call(3, "test_trigger_resource_update")).await;
    let mut got = c.until_response(3).await;
    c.send(call(4, "test_trigger_tool_change")).await;
    got.extend(c.until_method("notifications/tools/list_changed").await);
    assert!(
        !methods(&got).contains(&"notifications/resources/updated".into()),
        "an update of a resource nobody subscribed to: {got:?}"
    );

    c.send(
        json!({"jsonrpc": "2.0", "id": 5, "method": "resources/subscribe",
        "params": {"uri": "test://watched-resource"}}),
    )
    .await;
    c.send(call(6, "test_trigger_resource_update")).await;
    let got = c.until_method("notifications/resources/updated").await;
    let update = got.last().unwrap();
    assert_eq!(
        update["params"]["uri"], "test://watched-resource",
        "{got:?}"
    );
}
