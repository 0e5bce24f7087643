//! A small MCP client for the suites: the session revision's `initialize` and `tools/call echo`
//! over Streamable HTTP, and the JSON-RPC message of an answer. TEST TOOLING, not product.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};

use crate::http::{self, Response};

/// How long one HTTP exchange with a pod may take.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
pub const SESSION_REVISION: &str = "2025-11-25";
const ACCEPT: (&str, &str) = ("Accept", "application/json, text/event-stream");

/// The JSON-RPC message of a response body, JSON or SSE.
pub fn rpc_message(body: &str) -> Result<Value> {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        return Ok(v);
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v.get("id").is_some())
        .with_context(|| format!("no JSON-RPC response in {body:?}"))
}

/// POST one JSON-RPC message to `/mcp`, in `session` when given.
pub async fn post(addr: SocketAddr, session: Option<&str>, body: &Value) -> Result<Response> {
    let mut headers = vec![ACCEPT];
    if let Some(s) = session {
        headers.extend([
            ("Mcp-Session-Id", s),
            ("MCP-Protocol-Version", SESSION_REVISION),
        ]);
    }
    http::request(addr, "POST", "/mcp", &headers, Some(body), HTTP_TIMEOUT).await
}

/// A session-revision client: `initialize` on `addr` (as `client`), then
/// `notifications/initialized`; returns the session id.
pub async fn initialize(addr: SocketAddr, client: &str) -> Result<String> {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": SESSION_REVISION, "capabilities": {},
        "clientInfo": {"name": client, "version": "1"}}});
    let r = post(addr, None, &init).await?;
    ensure!(
        r.status == 200,
        "initialize answered {}: {}",
        r.status,
        r.body
    );
    let msg = rpc_message(&r.body)?;
    ensure!(
        msg["result"]["protocolVersion"] == SESSION_REVISION,
        "{msg}"
    );
    let session = r
        .headers
        .get("mcp-session-id")
        .cloned()
        .context("no Mcp-Session-Id")?;
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let r = post(addr, Some(&session), &note).await?;
    ensure!(
        r.status == 202,
        "notifications/initialized answered {}",
        r.status
    );
    Ok(session)
}

/// `tools/call echo` in `session` on any pod: HTTP 200, the same id, no error; returns the
/// result.
pub async fn session_echo(
    addr: SocketAddr,
    session: &str,
    id: u64,
    message: &str,
) -> Result<Value> {
    let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                      "params": {"name": "echo", "arguments": {"message": message}}});
    let r = post(addr, Some(session), &call).await?;
    ensure!(
        r.status == 200,
        "tools/call on {addr} answered {}: {}",
        r.status,
        r.body
    );
    let msg = rpc_message(&r.body)?;
    ensure!(msg["id"] == id && msg.get("error").is_none(), "{msg}");
    Ok(msg["result"].clone())
}

/// The text an `echo` result carries.
pub fn echoed(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_message_reads_json_and_sse_bodies() {
        assert_eq!(rpc_message(r#"{"id":1}"#).unwrap()["id"], 1);
        let sse = "event: message\ndata: {\"method\":\"x\"}\ndata: {\"id\":2,\"result\":{}}\n\n";
        assert_eq!(
            rpc_message(sse).unwrap()["id"],
            2,
            "the answer, not a notification"
        );
        assert!(rpc_message("data: nope\n").is_err());
    }
}
