//! Hostile input: each gets the right error and the server keeps serving others.

mod support;

use serde_json::{json, Value};
use support::*;

async fn still_serving(addr: std::net::SocketAddr) {
    let r = modern(
        addr,
        999,
        "tools/call",
        json!({"name": "echo", "arguments": {"message": "alive"}}),
    )
    .await;
    assert_eq!(r.json()["result"]["content"][0]["text"], "alive");
}

#[tokio::test]
async fn malformed_and_oversized_bodies() {
    let s = start("mcp:\n  limits:\n    maxRequestBytes: 4096\n", &[]).await;
    let url = mcp_url(&s);
    let h = [
        ("content-type", "application/json"),
        ("mcp-protocol-version", MODERN),
        ("mcp-method", "tools/list"),
    ];
    let cases: Vec<(&str, String, u16, i64)> = vec![
        (
            "malformed JSON",
            "{\"jsonrpc\": \"2.0\", \"id\": 1,".into(),
            400,
            -32700,
        ),
        ("not an object", "42".into(), 400, -32600),
        (
            "wrong jsonrpc",
            json!({"jsonrpc": "1.0", "id": 1, "method": "tools/list"}).to_string(),
            400,
            -32600,
        ),
        (
            "null id",
            json!({"jsonrpc": "2.0", "id": null, "method": "tools/list"}).to_string(),
            400,
            -32600,
        ),
        (
            "method not a string",
            json!({"jsonrpc": "2.0", "id": 1, "method": 7}).to_string(),
            400,
            -32600,
        ),
        (
            "params not an object",
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": "x"}).to_string(),
            400,
            -32600,
        ),
        (
            "deep nesting",
            format!("{}{}", "[".repeat(2000), "]".repeat(2000)),
            400,
            -32700,
        ),
    ];
    for (what, body, status, code) in cases {
        let r = request("POST", &url, &h, body).await;
        assert_eq!(
            (r.status, r.json()["error"]["code"].as_i64()),
            (status, Some(code)),
            "{what}: {}",
            r.body
        );
    }
    let huge = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"pad": "x".repeat(10_000)}}).to_string();
    assert_eq!(request("POST", &url, &h, huge).await.status, 413);
    let r = request("POST", &url, &[("content-type", "text/plain")], "{}").await;
    assert_eq!(r.status, 415);
    still_serving(s.mcp_addr).await;
}

#[tokio::test]
async fn bad_origin_and_unknown_sessions() {
    let s = start("", &[]).await;
    let url = mcp_url(&s);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}}).to_string();
    let r = request(
        "POST",
        &url,
        &[
            ("content-type", "application/json"),
            ("origin", "http://evil.example.com"),
            ("host", "evil.example.com"),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = request(
        "POST",
        &url,
        &[
            ("content-type", "application/json"),
            ("origin", "http://localhost:1234"),
        ],
        body,
    )
    .await;
    assert_eq!(r.status, 200);
    for sid in ["test-node~nope", "other-node~0000", "no-owner-at-all"] {
        let r = request(
            "POST",
            &url,
            &legacy_headers(sid, "2025-11-25"),
            json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string(),
        )
        .await;
        assert!(r.status == 404 || r.status == 400, "{sid}: {}", r.status);
    }
    let r = request(
        "GET",
        &url,
        &[
            ("mcp-session-id", "test-node~nope"),
            ("accept", "text/event-stream"),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 404);
    still_serving(s.mcp_addr).await;
}

#[tokio::test]
async fn bearer_auth_rejects_bad_tokens() {
    let s = start(
        "mcp:\n  auth:\n    mode: bearer\n    bearerToken:\n      value: t0ken\n",
        &[],
    )
    .await;
    let url = mcp_url(&s);
    let mut p = json!({});
    p["_meta"] = modern_meta();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": p}).to_string();
    let h = |auth: &'static str| {
        vec![
            ("content-type", "application/json"),
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/list"),
            ("authorization", auth),
        ]
    };
    let none = request(
        "POST",
        &url,
        &[("content-type", "application/json")],
        body.clone(),
    )
    .await;
    assert_eq!(none.status, 401);
    assert!(none
        .header("www-authenticate")
        .unwrap()
        .starts_with("Bearer"));
    assert_eq!(
        request("POST", &url, &h("Bearer wrong"), body.clone())
            .await
            .status,
        401
    );
    let ok = request("POST", &url, &h("Bearer t0ken"), body).await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.json()["result"]["cacheScope"],
        "private",
        "authenticated results are private"
    );
}

#[tokio::test]
async fn flood_past_the_rate_limit() {
    let s = start(
        "",
        &[
            ("RATE_LIMIT_ENABLED", "true"),
            ("RATE_LIMIT_PER_SECOND", "5"),
        ],
    )
    .await;
    let mut limited = 0;
    let mut last: Option<Value> = None;
    for i in 0..40 {
        let r = modern(s.mcp_addr, i, "tools/list", json!({})).await;
        if r.status == 429 {
            limited += 1;
            assert!(r.header("retry-after").is_some());
            last = Some(r.json());
        }
    }
    assert!(limited >= 25, "only {limited} of 40 limited");
    assert!(last.unwrap()["error"]["data"]["retryAfterMs"].is_u64());
    // Health and metrics are on their own ports and unaffected.
    let h = request("GET", &format!("http://{}/health", s.health_addr), &[], "").await;
    assert_eq!(h.status, 200);
    let m = request(
        "GET",
        &format!("http://{}/metrics", s.metrics_addr),
        &[],
        "",
    )
    .await;
    assert!(m.body.contains("erlmcp_rate_limited_total"));
    // The bucket refills.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    still_serving(s.mcp_addr).await;
}

/// `docs://c/%aé` used to panic in the template matcher (slicing inside `é`), which over stdio
/// ends the process; a broken escape is now "resource not found" and the server keeps serving.
#[tokio::test]
async fn template_uri_with_a_broken_escape_is_not_found() {
    let s = start(
        "mcp:\n  resourceTemplates:\n    - uriTemplate: 'docs://c/{name}'\n      name: docs\n      text: 'doc {name}'\n",
        &[],
    )
    .await;
    let (sid, _) = legacy_session(s.mcp_addr, "2025-11-25").await;
    for (i, uri) in ["docs://c/%aé", "docs://c/%é", "docs://c/%", "docs://c/%C3"]
        .into_iter()
        .enumerate()
    {
        let r = legacy(
            s.mcp_addr,
            &sid,
            "2025-11-25",
            i as i64 + 1,
            "resources/read",
            json!({"uri": uri}),
        )
        .await;
        assert_eq!(r.status, 200, "{uri}: {}", r.body);
        assert_eq!(r.json()["error"]["data"]["uri"], uri, "{uri}: {}", r.body);
    }
    let r = legacy(
        s.mcp_addr,
        &sid,
        "2025-11-25",
        99,
        "resources/read",
        json!({"uri": "docs://c/caf%C3%A9"}),
    )
    .await;
    assert_eq!(
        r.json()["result"]["contents"][0]["text"],
        "doc café",
        "{}",
        r.body
    );
    still_serving(s.mcp_addr).await;
}

/// A 2025-03-26 batch used to run every call at once, past `maxConcurrentRequests`. With one
/// permit the calls must run one after the other: each writes "start" then "end" to a shared
/// file, so an overlap shows as two starts in a row (an order, not a timing, is asserted).
#[tokio::test]
async fn a_batch_takes_one_in_flight_permit_per_call() {
    let log = std::env::temp_dir().join(format!("erlmcp-batch-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let script = format!(
        "echo start >> {0}; sleep 0.2; echo end >> {0}; echo '{{}}'",
        log.display()
    );
    let yaml = format!(
        "mcp:\n  limits: {{maxConcurrentRequests: 1}}\n  tools:\n    - name: step\n      inputSchema: {{type: object}}\n      backend: {{command: {{command: [/bin/sh, -c, {script:?}], timeoutSeconds: 20}}}}\n"
    );
    let s = start(&yaml, &[]).await;
    let (sid, _) = legacy_session(s.mcp_addr, "2025-03-26").await;
    let calls: Vec<Value> = (1..=4)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "step", "arguments": {}}}))
        .collect();
    let r = request(
        "POST",
        &mcp_url(&s),
        &legacy_headers(&sid, "2025-03-26"),
        Value::Array(calls).to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let answers = r.json();
    assert_eq!(answers.as_array().map(Vec::len), Some(4), "{answers}");
    for a in answers.as_array().unwrap() {
        assert!(a["result"]["isError"].is_null(), "{a}");
    }
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines, ["start", "end"].repeat(4), "calls overlapped");
    let _ = std::fs::remove_file(&log);
    still_serving(s.mcp_addr).await;
}
