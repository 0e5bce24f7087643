//! The fuzz harnesses: one function per target, shared by the libFuzzer entry points
//! (`fuzz_targets/`, nightly, `cargo fuzz`) and the stable tests (`tests/harness.rs`: the seed
//! corpus plus proptest inputs). Each takes arbitrary bytes, must never panic, and asserts
//! the invariants that hold for every input.

use std::collections::BTreeMap;

use erlmcp_dataplane::catalog::template::{percent_decode, percent_encode, UriTemplate};
use erlmcp_dataplane::cluster::auth::{self, Hello};
use erlmcp_dataplane::config;
use erlmcp_dataplane::session::{event_id, parse_event_id};
use erlmcp_dataplane::transport::streamable_http::{
    accepts_json_and_sse, decode_header_value, is_json_content_type,
};
use erlmcp_dataplane::wire::jsonrpc::{self, Parsed, MAX_BATCH};
use erlmcp_dataplane::wire::revision;

/// Split at the first NUL: two inputs from one.
fn halves(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// JSON-RPC framing and classification: a body is a message, a batch, or an error; never a
/// panic, never a batch larger than the cap, and re-serialised errors are valid JSON.
pub fn jsonrpc_frame(data: &[u8]) {
    match jsonrpc::parse(data) {
        Err(e) => {
            let v: serde_json::Value =
                serde_json::from_slice(&jsonrpc::error_bytes(None, &e)).expect("error is JSON");
            assert!(v["error"]["code"].is_i64());
        }
        Ok(Parsed::Single(m)) => classify(m),
        Ok(Parsed::Batch(items)) => {
            assert!(!items.is_empty() && items.len() <= MAX_BATCH);
            items.into_iter().for_each(classify);
        }
    }
}

fn classify(m: Result<jsonrpc::Message, (Option<jsonrpc::Id>, jsonrpc::RpcError)>) {
    let Ok(m) = m else { return };
    let _ = m.method();
    let has_meta = m
        .meta()
        .is_some_and(|x| x.contains_key(revision::META_PROTOCOL_VERSION));
    let header = m.param_str("protocolVersion");
    let _ = revision::classify(header, has_meta);
    if m.is_request() {
        let id = m.id.clone().expect("a request has an id");
        let _ = jsonrpc::result_bytes(&id, &serde_json::json!({}));
    }
}

/// Header values a client controls: `Accept`, `Content-Type`, the Base64 sentinel of
/// `Mcp-Name`/`Mcp-Param-*`, and `Last-Event-ID`.
pub fn http_headers(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(v) = http::HeaderValue::from_str(text) {
        for name in ["accept", "content-type"] {
            let mut h = http::HeaderMap::new();
            h.insert(name, v.clone());
            let _ = accepts_json_and_sse(&h);
            let _ = is_json_content_type(&h);
        }
    }
    let _ = decode_header_value(text);
    if let Some((stream, seq)) = parse_event_id(text) {
        // What parses renders back to an id that parses the same.
        assert_eq!(parse_event_id(&event_id(stream, seq)), Some((stream, seq)));
    }
}

/// URI templates: parsing a template, matching a URI against it, percent-decoding the values.
/// A match yields non-empty values without `/`; decoding what was encoded gives it back.
pub fn uri_template(data: &[u8]) {
    let (t, uri) = halves(data);
    let (Ok(t), Ok(uri)) = (std::str::from_utf8(t), std::str::from_utf8(uri)) else {
        return;
    };
    if let Ok(tpl) = UriTemplate::parse(t) {
        if let Some(vars) = tpl.matches(uri) {
            for (name, value) in &vars {
                assert!(tpl.variables().any(|v| v == name));
                assert!(!value.is_empty() && !value.contains('/'), "{value:?}");
            }
            let _ = tpl.expand(&vars);
        }
    }
    let _ = percent_decode(uri);
    assert_eq!(percent_decode(&percent_encode(uri)).as_deref(), Some(uri));
}

struct NoEnv;
impl config::Env for NoEnv {
    fn get(&self, _: &str) -> Option<String> {
        None
    }
}

/// The configuration file: any text is a configuration or a list of errors naming fields.
pub fn config_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = config::parse_file(text) else {
        return;
    };
    if let Err(errs) = config::from_parts(file, &NoEnv) {
        assert!(errs.0.iter().all(|e| !e.field.is_empty()), "{errs}");
    }
}

/// The peer handshake, accepting side: whatever a dialler sends (the bytes after our server
/// hello), a node without the cookie proof is refused, never let in, and nothing panics.
pub fn peer_handshake(data: &[u8]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    // Larger inputs than the pipe holds add nothing: the node stops reading at its frame cap.
    let data = &data[..data.len().min(32 * 1024)];
    rt.block_on(async {
        use tokio::io::AsyncWriteExt;
        // Room for everything either side writes, so neither blocks on the other.
        let (mut server, mut client) = tokio::io::duplex(128 * 1024);
        let me = Hello {
            name: "erlmcp@fuzz".into(),
            member: "fuzz".into(),
            incarnation: "1".into(),
        };
        // Mid-rotation, so proofs of either cookie would count: none can be forged.
        let cookies = auth::Cookies::new(
            b"a-cookie-of-sixteen-bytes".as_slice(),
            Some(b"the-previous-cookie-bytes".to_vec()),
        );
        client.write_all(data).await.expect("fits the pipe");
        client.shutdown().await.expect("shutdown");
        let verdict = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            auth::accept(&mut server, &me, Some(&cookies)),
        )
        .await;
        if let Ok(Ok(peer)) = verdict {
            panic!("a dialler without the cookie got in as {peer:?}");
        }
        drop(client);
    });
}

/// Seeds per target (also written to `corpus/<target>/` for cargo fuzz).
pub fn seeds() -> BTreeMap<&'static str, Vec<Vec<u8>>> {
    let mut m = BTreeMap::new();
    m.insert(
        "jsonrpc_frame",
        vec![
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.to_vec(),
            br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"}]"#.to_vec(),
            br#"{"jsonrpc":"2.0","id":null,"method":7}"#.to_vec(),
            br#"{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"echo","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#.to_vec(),
            b"[]".to_vec(),
            b"{".to_vec(),
        ],
    );
    m.insert(
        "http_headers",
        vec![
            b"application/json, text/event-stream".to_vec(),
            b"application/*;q=0.5, text/*;q=0".to_vec(),
            b"=?base64?SGVsbG8=?=".to_vec(),
            b"12-34".to_vec(),
            b"-".to_vec(),
        ],
    );
    m.insert(
        "uri_template",
        vec![
            b"docs://{name}/raw\0docs://readme/raw".to_vec(),
            "docs://c/{x}\0docs://c/%a\u{e9}".as_bytes().to_vec(),
            b"a{b}{c}\0abc".to_vec(),
            b"{x}\0%C3%A9".to_vec(),
        ],
    );
    m.insert(
        "config_file",
        vec![
            b"mcp:\n  limits: {maxConnections: 2}\n".to_vec(),
            b"mcp:\n  tools:\n    - name: t\n      backend: {command: {command: [cat]}}\n".to_vec(),
            b"cluster:\n  discovery: {mode: dns, name: x, intervalSeconds: 0}\n".to_vec(),
            b": : :".to_vec(),
        ],
    );
    m.insert(
        "peer_handshake",
        vec![
            [&12u32.to_be_bytes()[..], br#"{"name":"x"}"#].concat(),
            [&1_000_000u32.to_be_bytes()[..]].concat(),
            br#"{"name":"erlmcp@fuzz","member":"fuzz","incarnation":"2","nonce":"n","proof":"00"}"#
                .to_vec(),
        ],
    );
    m
}
