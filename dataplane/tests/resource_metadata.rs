//! RFC 9728 protected-resource metadata: with JWT auth, a 401 names the metadata URL and the
//! metadata names the issuer, so OAuth-following MCP clients find the authorization server.

mod support;

use serde_json::{json, Value};
use support::*;

const JWKS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/jwt/rsa_jwks.json"
);

fn initialize() -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}).to_string()
}

async fn post_without_token(url: &str) -> Resp {
    request(
        "POST",
        url,
        &[
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ],
        initialize(),
    )
    .await
}

#[tokio::test]
async fn jwt_challenge_points_at_metadata_naming_the_issuer() {
    let yaml = format!(
        "mcp:\n  auth:\n    mode: jwt\n    jwt:\n      issuer: https://issuer.example\n      audience: erlmcp\n      jwks: {{file: '{JWKS}'}}\n"
    );
    let s = start(&yaml, &[]).await;
    let r = post_without_token(&mcp_url(&s)).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let metadata_url = format!(
        "http://{}/.well-known/oauth-protected-resource/mcp",
        s.mcp_addr
    );
    let challenge = r.header("www-authenticate").expect("challenge");
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{challenge}"
    );
    let root = format!("http://{}/.well-known/oauth-protected-resource", s.mcp_addr);
    for url in [metadata_url, root] {
        let m = request("GET", &url, &[], "").await;
        assert_eq!(m.status, 200, "{url}: {}", m.body);
        let doc: Value = serde_json::from_str(&m.body).unwrap();
        assert_eq!(doc["resource"], format!("http://{}/mcp", s.mcp_addr));
        assert_eq!(
            doc["authorization_servers"],
            json!(["https://issuer.example"])
        );
    }
}

#[tokio::test]
async fn no_metadata_without_jwt_auth() {
    let s = start(
        "mcp:\n  auth:\n    mode: bearer\n    bearerToken: {value: s3cret}\n",
        &[],
    )
    .await;
    let r = post_without_token(&mcp_url(&s)).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let challenge = r.header("www-authenticate").expect("challenge");
    assert!(!challenge.contains("resource_metadata"), "{challenge}");
    let url = format!(
        "http://{}/.well-known/oauth-protected-resource/mcp",
        s.mcp_addr
    );
    assert_eq!(request("GET", &url, &[], "").await.status, 404);
}
