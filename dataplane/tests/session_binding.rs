//! A session id is no capability on its own: a session answers only to the principal that
//! opened it (also after a restart from the session volume), and one client address cannot
//! fill the session table.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::cluster;
use support::*;

const JWKS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/jwt/rsa_jwks.json"
);
const KEY: &[u8] = include_bytes!("fixtures/jwt/rsa_private.pem");

fn token(sub: &str) -> String {
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    h.kid = Some("rsa1".into());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"sub": sub, "iss": "https://issuer.example", "aud": "erlmcp", "exp": now + 600, "nbf": now - 60});
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(KEY).unwrap();
    format!(
        "Bearer {}",
        jsonwebtoken::encode(&h, &claims, &key).unwrap()
    )
}

fn jwt_config() -> String {
    format!(
        "mcp:\n  auth:\n    mode: jwt\n    jwt:\n      issuer: https://issuer.example\n      audience: erlmcp\n      jwks: {{file: '{JWKS}'}}\n"
    )
}

const VERSION: &str = "2025-11-25";

async fn initialize(url: &str, auth: &str) -> Resp {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}).to_string();
    request(
        "POST",
        url,
        &[
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
            ("authorization", auth),
        ],
        init,
    )
    .await
}

async fn call(url: &str, auth: &str, sid: &str, method: &str) -> Resp {
    let mut h = legacy_headers(sid, VERSION);
    h.push(("authorization", auth));
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "mine"}}}).to_string();
    let body = if method == "POST" {
        body
    } else {
        String::new()
    };
    request(method, url, &h, body).await
}

#[tokio::test]
async fn another_principal_holding_the_session_id_gets_404() {
    let s = start(&jwt_config(), &[]).await;
    let url = mcp_url(&s);
    let (alice, bob) = (token("alice"), token("bob"));
    let r = initialize(&url, &alice).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let sid = r.header("mcp-session-id").expect("session id");
    let mine = call(&url, &alice, &sid, "POST").await;
    assert_eq!(
        mine.json()["result"]["content"][0]["text"],
        "mine",
        "{}",
        mine.body
    );
    for method in ["POST", "GET", "DELETE"] {
        let r = call(&url, &bob, &sid, method).await;
        assert_eq!(
            r.status, 404,
            "bob's {method} on alice's session: {}",
            r.body
        );
        assert_eq!(r.json()["error"]["code"], -32600, "{}", r.body);
    }
    // Bob's attempts did not end or disturb it.
    let again = call(&url, &alice, &sid, "POST").await;
    assert_eq!(again.json()["result"]["content"][0]["text"], "mine");
    assert_eq!(call(&url, &alice, &sid, "DELETE").await.status, 200);
}

#[tokio::test]
async fn one_client_address_cannot_fill_the_session_table() {
    let s = start(
        "mcp:\n  sessions: {maxSessions: 100, maxSessionsPerClient: 3}\n",
        &[],
    )
    .await;
    let url = mcp_url(&s);
    let mut sids = Vec::new();
    for _ in 0..3 {
        sids.push(legacy_session(s.mcp_addr, VERSION).await.0);
    }
    let init = json!({"jsonrpc": "2.0", "id": 7, "method": "initialize", "params": {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}).to_string();
    let h = [
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];
    let refused = request("POST", &url, &h, init.clone()).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(refused.header("retry-after").is_some());
    assert_eq!(refused.json()["id"], 7);
    // Closing one frees its place.
    let d = request("DELETE", &url, &legacy_headers(&sids[0], VERSION), "").await;
    assert_eq!(d.status, 200);
    let r = request("POST", &url, &h, init).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let _: Value = r.json();
}

/// The real binary on a session volume: alice's session, restored after a SIGKILL and a
/// restart, still answers to alice only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_restored_from_the_volume_keeps_its_owner() {
    let mut node = cluster::three_static("session-owner").remove(0);
    let peer = node.peer_addr();
    node.env("ERLMCP_PEERS", &peer);
    let dir = cluster::log_dir("session-owner").join("n1-sessions");
    let _ = std::fs::remove_dir_all(&dir);
    node.spec.config = Some(format!("sessionDir: {}\n{}", dir.display(), jwt_config()));
    node.start();
    node.wait_ready(Duration::from_secs(20)).await;
    let url = format!("http://{}/mcp", node.mcp());
    let (alice, bob) = (token("alice"), token("bob"));
    let r = initialize(&url, &alice).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let sid = r.header("mcp-session-id").expect("session id");
    // Wait (bounded) for the snapshot to hold the session.
    let file = dir.join("sessions.json");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !std::fs::read_to_string(&file).is_ok_and(|t| t.contains(&sid)) {
        assert!(Instant::now() < deadline, "the session was never saved");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // SIGKILL: no shutdown snapshot, only what the volume holds.
    node.kill();
    node.start();
    node.wait_ready(Duration::from_secs(20)).await;
    let r = call(&url, &bob, &sid, "POST").await;
    assert_eq!(r.status, 404, "bob on alice's restored session: {}", r.body);
    let r = call(&url, &alice, &sid, "POST").await;
    assert_eq!(
        r.json()["result"]["content"][0]["text"],
        "mine",
        "{}",
        r.body
    );
    node.kill();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The 2024-11-05 transport: a `/messages` endpoint answers to the principal that opened its
/// `GET /sse` stream only; another token holding the URL gets 404 and its message goes nowhere.
#[tokio::test]
async fn another_principal_cannot_post_to_a_legacy_sse_connection() {
    let s = start(&jwt_config(), &[]).await;
    let (alice, bob) = (token("alice"), token("bob"));
    // The stream stays open for the whole case: its connection is what the endpoint names.
    let (_sse, endpoint) = legacy_sse_endpoint(s.mcp_addr, Some(&alice)).await;
    let url = format!("http://{}{endpoint}", s.mcp_addr);
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    let post = |auth: String| {
        let (url, ping) = (url.clone(), ping.clone());
        async move {
            request(
                "POST",
                &url,
                &[
                    ("content-type", "application/json"),
                    ("authorization", &auth),
                ],
                ping,
            )
            .await
        }
    };
    let r = post(bob).await;
    assert_eq!(r.status, 404, "bob on alice's connection: {}", r.body);
    let r = post(alice).await;
    assert_eq!(r.status, 202, "{}", r.body);
}
