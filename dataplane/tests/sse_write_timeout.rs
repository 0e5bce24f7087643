//! A Streamable HTTP SSE response obeys the configured write timeout
//! (`limits.writeTimeoutSeconds`), the same knob as TCP, WebSocket and legacy SSE: a client that
//! stops reading an SSE stream is cut off after it, and its request cancelled, instead of after
//! a fixed 10 s.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use erlmcp_dataplane::catalog::handler::{ToolCall, ToolHandler};
use erlmcp_dataplane::catalog::{Catalog, ToolDescription, ToolEntry};
use erlmcp_dataplane::wire::jsonrpc::RpcError;
use futures::future::BoxFuture;
use serde_json::{json, Value};
use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;
use tokio::time::Instant;

/// Progress notifications the flood sends at most (bounded: 32 MiB in all).
const NOTES: usize = 1024;
const NOTE_BYTES: usize = 32 * 1024;

static SENT: AtomicUsize = AtomicUsize::new(0);
static CANCELLED: AtomicBool = AtomicBool::new(false);

/// Set when the flood's call is dropped (its stream cut off).
struct OnDrop;
impl Drop for OnDrop {
    fn drop(&mut self) {
        CANCELLED.store(true, Ordering::SeqCst);
    }
}

/// Emits big progress notifications, then waits (bounded) for a result nobody reads.
struct Flood;
impl ToolHandler for Flood {
    fn call<'a>(&'a self, c: ToolCall<'a>) -> BoxFuture<'a, Result<Value, RpcError>> {
        Box::pin(async move {
            let _guard = OnDrop;
            let note = "x".repeat(NOTE_BYTES);
            for i in 0..NOTES {
                c.ctx.progress(i as f64, None, Some(&note));
                SENT.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(json!({"content": [{"type": "text", "text": "done"}]}))
        })
    }
}

fn register(c: &mut Catalog) {
    c.add_tool(ToolEntry::with_handler(
        ToolDescription {
            name: "flood",
            title: None,
            description: "progress notifications until the client stops reading",
            input: json!({"type": "object"}),
            output: None,
            annotations: None,
        },
        Arc::new(Flood),
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_an_sse_stream_is_cut_after_the_write_timeout() {
    let s = start_with(
        "mcp:\n  limits: {writeTimeoutSeconds: 1}\n",
        &[],
        Some(register),
    )
    .await;
    let mut meta = modern_meta();
    meta["progressToken"] = json!("p");
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "flood", "arguments": {}, "_meta": meta}})
    .to_string();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nhost: {a}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\nmcp-protocol-version: {MODERN}\r\nmcp-method: tools/call\r\nmcp-name: flood\r\ncontent-length: {n}\r\n\r\n",
        a = s.mcp_addr,
        n = body.len()
    );
    // A small receive window, and nothing is ever read.
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut attacker = sock.connect(s.mcp_addr).await.unwrap();
    attacker.write_all(head.as_bytes()).await.unwrap();
    attacker.write_all(body.as_bytes()).await.unwrap();

    // The old fixed timeout was 10 s; the configured one is 1 s. Well before 10 s have
    // passed, the stream must be cut and the call cancelled.
    let started = Instant::now();
    let bound = Duration::from_secs(8);
    while !CANCELLED.load(Ordering::SeqCst) {
        assert!(
            started.elapsed() < bound,
            "the non-reading SSE client still holds its stream ({} of {NOTES} notifications queued)",
            SENT.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // An honest client is still served.
    let r = modern(
        s.mcp_addr,
        2,
        "tools/call",
        json!({"name": "echo", "arguments": {"message": "hi"}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    drop(attacker);
}
