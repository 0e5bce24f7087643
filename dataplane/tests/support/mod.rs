//! Test support for the single-node and the cluster integration tests: an in-process server
//! and its request helpers (here), a small HTTP client ([`client`]), and the multi-process
//! cluster test bed ([`cluster`]).

#![allow(dead_code)]

mod client;
pub mod cluster;
mod raw;

pub use client::*;
// Not every suite that includes this module uses them.
#[allow(unused_imports)]
pub use raw::*;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use erlmcp_dataplane::app::{self, Listeners, Running};
use erlmcp_dataplane::catalog::Register;
use erlmcp_dataplane::config;
use erlmcp_dataplane::node::{Lifecycle, SingleNode};
use serde_json::{json, Value};
use tokio::net::TcpListener;

pub const MODERN: &str = "2026-07-28";

/// The product server on loopback ports, configured by `yaml` and `env`.
pub async fn start(yaml: &str, env: &[(&str, &str)]) -> Running {
    start_with(yaml, env, None).await
}

/// [`start`] with extra catalog entries (the conformance crate's tests register its fixtures).
pub async fn start_with(yaml: &str, env: &[(&str, &str)], register: Option<Register>) -> Running {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let file = config::parse_file(yaml).expect("yaml");
    let mut e: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    e.entry("ERLMCP_NODE_NAME".into())
        .or_insert("erlmcp@test-node".into());
    // Ports in the config must be distinct and valid; the real listeners are port 0 below.
    e.entry("ERLMCP_PORT".into()).or_insert("1".into());
    e.entry("HEALTH_PORT".into()).or_insert("2".into());
    e.entry("METRICS_PORT".into()).or_insert("3".into());
    let cfg = config::from_parts(file, &e).expect("config");
    let l = |_: ()| async { TcpListener::bind("127.0.0.1:0").await.unwrap() };
    let listeners = Listeners {
        mcp: l(()).await,
        health: l(()).await,
        metrics: l(()).await,
        tcp: if cfg.file.mcp.transports.tcp.enabled {
            Some(l(()).await)
        } else {
            None
        },
    };
    app::start_with(
        cfg,
        Arc::new(SingleNode),
        Arc::new(Lifecycle::new()),
        listeners,
        register,
    )
    .await
    .expect("start")
}

pub fn mcp_url(r: &Running) -> String {
    format!("http://{}/mcp", r.mcp_addr)
}

pub fn modern_meta() -> Value {
    json!({"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"}, "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}, "sampling": {}, "roots": {}}})
}

/// A well-formed modern request: body `_meta` and matching headers.
pub async fn modern(addr: SocketAddr, id: i64, method: &str, mut params: Value) -> Resp {
    params["_meta"] = modern_meta();
    let name = params
        .get("name")
        .or_else(|| params.get("uri"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
    let mut h = vec![
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", MODERN),
        ("mcp-method", method),
    ];
    if let Some(n) = &name {
        h.push(("mcp-name", n.as_str()));
    }
    request("POST", &format!("http://{addr}/mcp"), &h, body).await
}

/// A legacy client: initialize, initialized; returns the session id.
pub async fn legacy_session(addr: SocketAddr, version: &str) -> (String, Value) {
    let url = format!("http://{addr}/mcp");
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": version, "capabilities": {"sampling": {}, "elicitation": {}}, "clientInfo": {"name": "t", "version": "1"}}}).to_string();
    let r = request(
        "POST",
        &url,
        &[
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ],
        init,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let sid = r.header("mcp-session-id").expect("session id");
    let n = request(
        "POST",
        &url,
        &legacy_headers(&sid, version),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string(),
    )
    .await;
    assert_eq!(n.status, 202);
    (sid, r.json()["result"].clone())
}

pub fn legacy_headers<'a>(sid: &'a str, version: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-session-id", sid),
        ("mcp-protocol-version", version),
    ]
}

pub async fn legacy(
    addr: SocketAddr,
    sid: &str,
    version: &str,
    id: i64,
    method: &str,
    params: Value,
) -> Resp {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
    request(
        "POST",
        &format!("http://{addr}/mcp"),
        &legacy_headers(sid, version),
        body,
    )
    .await
}

/// Validate `value` against definition `def` of a revision's schema. The schemas are found
/// next to this file, so the conformance crate's tests (which share it) find them too.
pub fn schema_check(revision: &str, def: &str, value: &Value) {
    let text = match revision {
        "2025-11-25" => include_str!("../schemas/schema-2025-11-25.json"),
        "2026-07-28" => include_str!("../schemas/schema-2026-07-28.json"),
        r => panic!("no schema for revision {r}"),
    };
    let mut schema: Value = serde_json::from_str(text).unwrap();
    schema["$ref"] = json!(format!("#/$defs/{def}"));
    let v = jsonschema::options()
        .build(&schema)
        .expect("schema compiles");
    let errors: Vec<String> = v
        .iter_errors(value)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{def} ({revision}) invalid: {errors:?}\n{value:#}"
    );
}
