//! Over stdio a panic in a request ends the process, so a hostile resource URI must be a plain
//! error there too: the binary answers it and the requests after it.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

#[tokio::test]
async fn stdio_survives_a_template_uri_with_a_broken_escape() {
    let config = std::env::temp_dir().join(format!("erlmcp-stdio-{}.yaml", std::process::id()));
    std::fs::write(
        &config,
        "mcp:\n  resourceTemplates:\n    - uriTemplate: 'docs://c/{name}/data'\n      name: docs\n      text: 'doc {name}'\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_erlmcp"))
        .args(["serve", "--stdio", "--config"])
        .arg(&config)
        .env("ERLMCP_LOG_LEVEL", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn erlmcp");
    let lines = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "resources/read", "params": {"uri": "docs://c/%aé/data"}}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "resources/read", "params": {"uri": "docs://c/7/data"}}),
    ];
    let mut stdin = child.stdin.take().unwrap();
    for l in &lines {
        stdin.write_all(format!("{l}\n").as_bytes()).await.unwrap();
    }
    drop(stdin); // end of input: the server answers what it has and exits
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("erlmcp exits after stdin closes")
        .unwrap();
    let replies: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let by_id = |id: i64| replies.iter().find(|r| r["id"] == id);
    let bad = by_id(2).unwrap_or_else(|| panic!("no answer to the broken URI: {replies:?}"));
    assert_eq!(bad["error"]["data"]["uri"], "docs://c/%aé/data", "{bad}");
    let good = by_id(3).unwrap_or_else(|| panic!("no answer after the broken URI: {replies:?}"));
    assert!(
        good["result"]["contents"][0]["text"]
            .as_str()
            .is_some_and(|t| t == "doc 7"),
        "{good}"
    );
    let _ = std::fs::remove_file(&config);
}
