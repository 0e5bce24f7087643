//! MCP Tasks across pods (real `erlmcp` processes on loopback): a task created on A (its id
//! names A) is polled and fetched through B and cancelled through C; A's finished results
//! survive its restart with a session volume; once A is gone for good, its task ids answer
//! as unknown (-32602), as the specification says for an unknown or expired task. The tools
//! are command backends, the typical long-running task.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use support::cluster::*;

const TASKS: &str = "io.modelcontextprotocol/tasks";

fn config(session_dir: Option<&std::path::Path>) -> String {
    let mut c = String::new();
    if let Some(d) = session_dir {
        c.push_str(&format!("sessionDir: {}\n", d.display()));
    }
    c.push_str(
        r#"mcp:
  tools:
    - name: slow_ok
      description: Finishes after a second
      taskSupport: optional
      backend: {command: {command: [sh, -c, "cat >/dev/null; sleep 1; echo finished"], timeoutSeconds: 30}}
    - name: slow_long
      description: Runs until cancelled
      taskSupport: required
      backend: {command: {command: [sh, -c, "cat >/dev/null; sleep 120; echo never"], timeoutSeconds: 300}}
"#,
    );
    c
}

/// One stateless request declaring the Tasks extension; `name` goes in `Mcp-Name`.
async fn call(addr: SocketAddr, id: i64, method: &str, params: Value, name: &str) -> Value {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {"extensions": {TASKS: {}}}
    });
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
    let r = try_request(
        "POST",
        &format!("http://{addr}/mcp"),
        &[
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
            ("mcp-protocol-version", MODERN),
            ("mcp-method", method),
            ("mcp-name", name),
        ],
        body,
        Duration::from_secs(20),
    )
    .await
    .unwrap_or_else(|e| panic!("{method} to {addr}: {e}"));
    r.json()
}

async fn get(addr: SocketAddr, id: i64, task: &str) -> Value {
    call(addr, id, "tasks/get", json!({"taskId": task}), task).await
}

async fn create(addr: SocketAddr, id: i64, tool: &str) -> String {
    let r = call(
        addr,
        id,
        "tools/call",
        json!({"name": tool, "arguments": {}}),
        tool,
    )
    .await;
    assert_eq!(r["result"]["resultType"], "task", "{r}");
    r["result"]["taskId"].as_str().expect("taskId").to_string()
}

/// Poll through `addr` until the task is terminal (bounded).
async fn settle(addr: SocketAddr, task: &str) -> Value {
    let mut last = Value::Null;
    for i in 0..100 {
        last = get(addr, 1000 + i, task).await;
        let st = last["result"]["status"].as_str().unwrap_or_default();
        if ["completed", "failed", "cancelled"].contains(&st) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{task} did not finish: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_live_on_their_owner_and_survive_its_restart() {
    let mut nodes = three_static("tasks");
    let dir = log_dir("tasks").join("n1-sessions");
    let _ = std::fs::remove_dir_all(&dir);
    nodes[0].spec.config = Some(config(Some(&dir)));
    nodes[1].spec.config = Some(config(None));
    nodes[2].spec.config = Some(config(None));
    start_all(&mut nodes).await;
    {
        let r: Vec<&Node> = nodes.iter().collect();
        converge(&r, 3, Duration::from_secs(20)).await;
    }
    let (a, b, c) = (nodes[0].mcp(), nodes[1].mcp(), nodes[2].mcp());

    // Created on A: the id names A; polled and fetched through B.
    let done = create(a, 1, "slow_ok").await;
    assert!(done.starts_with("n1~"), "{done}");
    let first = get(b, 2, &done).await;
    assert_eq!(first["result"]["taskId"], done.as_str(), "{first}");
    let fin = settle(b, &done).await;
    assert_eq!(fin["result"]["status"], "completed", "{fin}");
    assert_eq!(
        fin["result"]["result"]["content"][0]["text"]
            .as_str()
            .map(str::trim),
        Some("finished"),
        "{fin}"
    );

    // A long one, cancelled through C, observed cancelled through B.
    let long = create(a, 3, "slow_long").await;
    let ack = call(c, 4, "tasks/cancel", json!({"taskId": long}), &long).await;
    assert_eq!(ack["result"]["resultType"], "complete", "{ack}");
    assert!(ack["result"].get("taskId").is_none(), "{ack}");
    let cancelled = get(b, 5, &long).await;
    assert_eq!(cancelled["result"]["status"], "cancelled", "{cancelled}");

    // The owner counts and shows them.
    assert_eq!(
        nodes[0].metric("erlmcp_tasks_created_total").await,
        Some(2.0)
    );
    assert_eq!(
        nodes[0].metric("erlmcp_tasks_completed_total").await,
        Some(1.0)
    );
    assert_eq!(
        nodes[0].metric("erlmcp_tasks_cancelled_total").await,
        Some(1.0)
    );
    assert_eq!(nodes[0].metric("erlmcp_tasks_running").await, Some(0.0));
    let st = call(
        a,
        6,
        "tools/call",
        json!({"name": "cluster_status", "arguments": {}}),
        "cluster_status",
    )
    .await;
    let tasks = &st["result"]["structuredContent"]["tasks"];
    assert_eq!(tasks["completed"], 1, "{st}");
    assert_eq!(tasks["cancelled"], 1, "{st}");

    // A killed outright and restarted under the same identity with its session volume: the
    // finished results are still there, through B.
    nodes[0].kill();
    nodes[0].start();
    nodes[0].wait_ready(Duration::from_secs(20)).await;
    {
        let r: Vec<&Node> = nodes.iter().collect();
        converge(&r, 3, Duration::from_secs(30)).await;
    }
    let again = get(b, 7, &done).await;
    assert_eq!(again["result"]["status"], "completed", "{again}");
    assert_eq!(
        again["result"]["result"], fin["result"]["result"],
        "{again}"
    );
    let again = get(b, 8, &long).await;
    assert_eq!(again["result"]["status"], "cancelled", "{again}");

    // A gone for good: its tasks are unknown wherever asked (once the others notice).
    nodes[0].kill();
    eventually(
        "A's task answers as unknown",
        Duration::from_secs(30),
        || async {
            let r = get(c, 9, &done).await;
            r["error"]["code"] == -32602
        },
    )
    .await;
}
