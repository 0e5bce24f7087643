//! Protocol tests over Streamable HTTP: the error paths of the modern revision and of the
//! session revisions. The tests that call the conformance fixtures (every method, schemas,
//! streams, server-to-client requests) are in `conformance/tests/http.rs`.

mod support;

use serde_json::{json, Value};
use support::*;

#[tokio::test]
async fn modern_error_paths() {
    let s = start("", &[]).await;
    let url = mcp_url(&s);
    let post = |headers: Vec<(&'static str, &'static str)>, body: Value| {
        let url = url.clone();
        async move { request("POST", &url, &headers, body.to_string()).await }
    };
    let base = vec![
        ("content-type", "application/json"),
        ("mcp-protocol-version", MODERN),
        ("mcp-method", "server/discover"),
    ];

    // Missing _meta, missing protocolVersion, missing capabilities: 400 -32602 with the id.
    for (id, params) in [
        (101, json!({})),
        (
            102,
            json!({"_meta": {"io.modelcontextprotocol/clientCapabilities": {}}}),
        ),
        (
            104,
            json!({"_meta": {"io.modelcontextprotocol/protocolVersion": MODERN}}),
        ),
    ] {
        let r = post(
            base.clone(),
            json!({"jsonrpc": "2.0", "id": id, "method": "server/discover", "params": params}),
        )
        .await;
        assert_eq!(
            (
                r.status,
                r.json()["error"]["code"].clone(),
                r.json()["id"].clone()
            ),
            (400, json!(-32602), json!(id))
        );
        schema_check(MODERN, "JSONRPCErrorResponse", &r.json());
    }
    let meta = |v: &str| json!({"io.modelcontextprotocol/protocolVersion": v, "io.modelcontextprotocol/clientCapabilities": {}});
    // Unsupported version: 400 -32022 listing what is supported and echoing the request.
    let r = post(vec![("content-type", "application/json"), ("mcp-protocol-version", "v999"), ("mcp-method", "server/discover")], json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": meta("v999")}})).await;
    assert_eq!(
        (
            r.status,
            r.json()["error"]["code"].clone(),
            r.json()["error"]["data"]["requested"].clone()
        ),
        (400, json!(-32022), json!("v999"))
    );
    schema_check(MODERN, "UnsupportedProtocolVersionError", &r.json());
    // Header and body disagree: 400 -32020.
    let r = post(base.clone(), json!({"jsonrpc": "2.0", "id": 2, "method": "server/discover", "params": {"_meta": meta("2099-01-01")}})).await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (400, json!(-32020))
    );
    let r = post(vec![("content-type", "application/json"), ("mcp-protocol-version", MODERN), ("mcp-method", "prompts/list")], json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"_meta": meta(MODERN)}})).await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (400, json!(-32020))
    );
    let r = post(vec![("content-type", "application/json"), ("mcp-protocol-version", MODERN)], json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list", "params": {"_meta": meta(MODERN)}})).await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (400, json!(-32020)),
        "Mcp-Method is required"
    );
    let r = post(vec![("content-type", "application/json"), ("mcp-protocol-version", MODERN), ("mcp-method", "tools/call"), ("mcp-name", "other")], json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "x"}, "_meta": meta(MODERN)}})).await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (400, json!(-32020))
    );
    // Removed and unknown methods: 404 -32601.
    for (m, id) in [
        ("initialize", 6),
        ("ping", 7),
        ("logging/setLevel", 8),
        ("resources/subscribe", 9),
        ("nope/nothing", 10),
    ] {
        let r = request(
            "POST",
            &url,
            &[
                ("content-type", "application/json"),
                ("mcp-protocol-version", MODERN),
                ("mcp-method", m),
            ],
            json!({"jsonrpc": "2.0", "id": id, "method": m, "params": {"_meta": meta(MODERN)}})
                .to_string(),
        )
        .await;
        assert_eq!(
            (
                r.status,
                r.json()["error"]["code"].clone(),
                r.json()["id"].clone()
            ),
            (404, json!(-32601), json!(id)),
            "{m}"
        );
    }
    // A notification is accepted with 202 and no body; GET/DELETE without a session are 405.
    let r = post(base.clone(), json!({"jsonrpc": "2.0", "method": "notifications/whatever", "params": {"_meta": meta(MODERN)}})).await;
    assert_eq!((r.status, r.body.as_str()), (202, ""));
    assert_eq!(
        request("GET", &url, &[("accept", "text/event-stream")], "")
            .await
            .status,
        405
    );
    assert_eq!(request("DELETE", &url, &[], "").await.status, 405);
}

#[tokio::test]
async fn legacy_session_errors_and_batches() {
    let s = start("", &[]).await;
    let a = s.mcp_addr;
    let url = mcp_url(&s);
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    assert_eq!(
        request(
            "POST",
            &url,
            &[("content-type", "application/json")],
            ping.clone()
        )
        .await
        .status,
        400,
        "no session id"
    );
    assert_eq!(
        request(
            "POST",
            &url,
            &legacy_headers("test-node~unknown", "2025-11-25"),
            ping.clone()
        )
        .await
        .status,
        404
    );
    let (sid, _) = legacy_session(a, "2025-03-26").await;
    let batch = json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, {"jsonrpc": "2.0", "method": "notifications/x"}]).to_string();
    let r = request(
        "POST",
        &url,
        &legacy_headers(&sid, "2025-03-26"),
        batch.clone(),
    )
    .await;
    let arr = r.json();
    assert_eq!(arr.as_array().map(Vec::len), Some(2), "{}", r.body);
    let (sid2, _) = legacy_session(a, "2025-11-25").await;
    assert_eq!(
        request("POST", &url, &legacy_headers(&sid2, "2025-11-25"), batch)
            .await
            .status,
        400,
        "no batches after 2025-03-26"
    );
    // Session limit: a second initialize past max_sessions is refused.
    let s2 = start("mcp:\n  sessions:\n    maxSessions: 1\n", &[]).await;
    legacy_session(s2.mcp_addr, "2025-11-25").await;
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}).to_string();
    assert_eq!(
        request(
            "POST",
            &mcp_url(&s2),
            &[("content-type", "application/json")],
            init
        )
        .await
        .status,
        503
    );
}
