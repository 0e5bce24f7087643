//! Streamable HTTP at its edges: media types (406, 415), `Last-Event-ID` that is malformed or
//! unknown (400, not the 404 that would tell a client its session is gone), and no body read
//! before the request has passed authentication (on `/mcp` and on the legacy `/messages`); a
//! modern body under a legacy `MCP-Protocol-Version` is a header mismatch.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn list() -> String {
    json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"_meta": modern_meta()}})
        .to_string()
}

#[tokio::test]
async fn media_types_are_checked_for_both_eras() {
    let s = start("", &[]).await;
    let url = mcp_url(&s);
    let modern_h = |ct: Option<&'static str>, accept: Option<&'static str>| {
        let mut h = vec![
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/list"),
        ];
        h.extend(ct.map(|c| ("content-type", c)));
        h.extend(accept.map(|a| ("accept", a)));
        h
    };
    let cases = [
        (Some("application/json"), Some("application/json"), 406),
        (Some("application/json"), Some("text/event-stream"), 406),
        (Some("application/json"), Some("text/html"), 406),
        (None, Some("application/json, text/event-stream"), 415),
        (
            Some("text/plain"),
            Some("application/json, text/event-stream"),
            415,
        ),
        (
            Some("application/json; charset=utf-8"),
            Some("application/json, text/event-stream"),
            200,
        ),
        (Some("application/json"), Some("*/*"), 200),
        (Some("application/json"), None, 200),
    ];
    for (ct, accept, want) in cases {
        let r = request("POST", &url, &modern_h(ct, accept), list()).await;
        assert_eq!(
            r.status, want,
            "content-type {ct:?}, accept {accept:?}: {}",
            r.body
        );
        if want != 200 {
            assert_eq!(r.json()["error"]["code"], -32600, "{}", r.body);
        }
    }
    // A session-era initialize is held to the same rules.
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}).to_string();
    let r = request(
        "POST",
        &url,
        &[
            ("content-type", "application/json"),
            ("accept", "application/json"),
        ],
        init,
    )
    .await;
    assert_eq!(r.status, 406, "{}", r.body);
}

#[tokio::test]
async fn last_event_id_that_is_malformed_or_unknown_is_400() {
    let s = start("", &[]).await;
    let url = mcp_url(&s);
    let (sid, _) = legacy_session(s.mcp_addr, "2025-11-25").await;
    for last in ["not-an-id", "999999-5"] {
        let mut h = legacy_headers(&sid, "2025-11-25");
        h.push(("last-event-id", last));
        let r = request("GET", &url, &h, "").await;
        assert_eq!(r.status, 400, "Last-Event-ID {last:?}: {}", r.body);
        assert_eq!(r.json()["error"]["code"], -32600);
    }
    // The session itself is still there.
    let r = legacy(s.mcp_addr, &sid, "2025-11-25", 4, "tools/list", json!({})).await;
    assert!(r.json()["result"]["tools"].is_array(), "{}", r.body);
}

#[tokio::test]
async fn an_unauthenticated_post_is_refused_before_its_body_arrives() {
    let s = start(
        "mcp:\n  auth: {mode: bearer, bearerToken: {value: t0ken}}\n",
        &[],
    )
    .await;
    let mut c = tokio::net::TcpStream::connect(s.mcp_addr).await.unwrap();
    // A head announcing a body that never comes: only a server that reads bodies before
    // authenticating would wait for it.
    c.write_all(b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 100000\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(10), c.read_exact(&mut head))
        .await
        .expect("answered without the body")
        .unwrap();
    assert_eq!(&head, b"HTTP/1.1 401");
}

/// The status line's first 12 bytes the server answers on `c` (bounded: an answer that needs the body that
/// never comes fails the test).
async fn answer_head(c: &mut tokio::net::TcpStream) -> String {
    let mut head = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(10), c.read_exact(&mut head))
        .await
        .expect("answered without the body")
        .unwrap();
    String::from_utf8_lossy(&head).into_owned()
}

/// The 2024-11-05 transport's `POST /messages`: refused (401) before its body is read, whether
/// the body is slow (announced, never sent) or larger than any limit.
#[tokio::test]
async fn an_unauthenticated_legacy_message_is_refused_before_its_body_arrives() {
    let s = start(
        "mcp:\n  auth: {mode: bearer, bearerToken: {value: t0ken}}\n",
        &[],
    )
    .await;
    // A real connection's endpoint, opened with the token.
    let (_sse, endpoint) = legacy_sse_endpoint(s.mcp_addr, Some("Bearer t0ken")).await;
    for length in ["100000", "1073741824"] {
        let mut c = tokio::net::TcpStream::connect(s.mcp_addr).await.unwrap();
        c.write_all(format!("POST {endpoint} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n{{\"jsonrpc\"").as_bytes())
            .await
            .unwrap();
        assert_eq!(
            answer_head(&mut c).await,
            "HTTP/1.1 401",
            "Content-Length {length}"
        );
    }
    // With the token, the same endpoint takes a message.
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let mut c = tokio::net::TcpStream::connect(s.mcp_addr).await.unwrap();
    c.write_all(format!("POST {endpoint} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer t0ken\r\nContent-Length: {}\r\n\r\n{ping}", ping.len()).as_bytes())
        .await
        .unwrap();
    assert_eq!(answer_head(&mut c).await, "HTTP/1.1 202");
}

/// A 2026-07-28 body (its `_meta` names the revision) under a session-era
/// `MCP-Protocol-Version` header: 400 `HeaderMismatch` (-32020), not a legacy request. A real
/// session-era request with the same header is still served.
#[tokio::test]
async fn a_modern_body_with_a_legacy_version_header_is_a_header_mismatch() {
    let s = start("", &[]).await;
    let url = mcp_url(&s);
    for legacy in ["2025-06-18", "2024-11-05", "2025-11-25"] {
        let h = [
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
            ("mcp-protocol-version", legacy),
            ("mcp-method", "tools/list"),
        ];
        let r = request("POST", &url, &h, list()).await;
        assert_eq!(r.status, 400, "header {legacy}: {}", r.body);
        assert_eq!(
            r.json()["error"]["code"],
            -32020,
            "header {legacy}: {}",
            r.body
        );
        assert_eq!(r.json()["id"], 3, "{}", r.body);
    }
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}).to_string();
    let r = request(
        "POST",
        &url,
        &[
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
            ("mcp-protocol-version", "2025-06-18"),
        ],
        init,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["result"]["protocolVersion"],
        "2025-06-18",
        "{}",
        r.body
    );
}
