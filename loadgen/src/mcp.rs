//! The MCP messages the clients send and how their answers are judged. Two families: the
//! stateless 2026-07-28 revision (no initialize; each request carries its version and
//! capabilities in `_meta` and in headers) and the session revisions (initialize once, then
//! requests inside the session).

use serde_json::{json, Value};

pub const STATELESS_VERSION: &str = "2026-07-28";
pub const DEFAULT_SESSION_VERSION: &str = "2025-11-25";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// 2026-07-28: every request stands alone.
    Stateless,
    /// 2025-11-25 and older: each client initialises and keeps its session.
    Session,
}

/// What one client sends: the tool, its message, and the protocol family.
#[derive(Clone, Debug)]
pub struct Call {
    pub family: Family,
    /// The session revision to negotiate (ignored for the stateless family).
    pub version: String,
    pub tool: String,
    /// The `params` object, serialised once; each request only adds its id.
    params: String,
    pub message_bytes: usize,
}

/// A message of exactly `n` ASCII bytes (no escaping needed, so the body's size is predictable).
pub fn message(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..n)
        .map(|i| ALPHABET[i % ALPHABET.len()] as char)
        .collect()
}

pub fn stateless_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": STATELESS_VERSION,
        "io.modelcontextprotocol/clientInfo": {"name": "erlmcp-load", "version": env!("CARGO_PKG_VERSION")},
        "io.modelcontextprotocol/clientCapabilities": {},
    })
}

impl Call {
    pub fn new(family: Family, version: &str, tool: &str, message_bytes: usize) -> Self {
        let mut params = json!({"name": tool, "arguments": {"message": message(message_bytes)}});
        if family == Family::Stateless {
            params["_meta"] = stateless_meta();
        }
        Call {
            family,
            version: version.to_string(),
            tool: tool.to_string(),
            params: params.to_string(),
            message_bytes,
        }
    }

    /// The protocol version a request of this client carries.
    pub fn protocol_version(&self) -> &str {
        match self.family {
            Family::Stateless => STATELESS_VERSION,
            Family::Session => &self.version,
        }
    }

    /// `tools/call` with JSON-RPC id `id`.
    pub fn request(&self, id: u64) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{}}}"#,
            self.params
        )
    }

    /// Headers a Streamable HTTP POST of this request carries (besides the session id).
    pub fn http_headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("content-type", "application/json".to_string()),
            ("accept", "application/json, text/event-stream".to_string()),
            ("mcp-protocol-version", self.protocol_version().to_string()),
        ];
        if self.family == Family::Stateless {
            h.push(("mcp-method", "tools/call".into()));
            h.push(("mcp-name", self.tool.clone()));
        }
        h
    }
}

pub fn initialize(id: u64, version: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": version,
        "capabilities": {},
        "clientInfo": {"name": "erlmcp-load", "version": env!("CARGO_PKG_VERSION")},
    }})
    .to_string()
}

pub fn initialized() -> String {
    json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string()
}

/// The JSON-RPC id of an answer, if it has one.
pub fn answer_id(v: &Value) -> Option<u64> {
    v.get("id").and_then(Value::as_u64)
}

/// Judge an answer to `tools/call echo`: Ok, or the error kind to count it under.
pub fn check_echo(v: &Value, message_bytes: usize) -> Result<(), String> {
    if let Some(e) = v.get("error") {
        let code = e.get("code").and_then(Value::as_i64).unwrap_or(0);
        return Err(format!("jsonrpc_{code}"));
    }
    let Some(r) = v.get("result") else {
        return Err("bad_answer".into());
    };
    if r.get("isError").and_then(Value::as_bool) == Some(true) {
        return Err("tool_error".into());
    }
    let text = r
        .pointer("/content/0/text")
        .and_then(Value::as_str)
        .ok_or_else(|| "bad_answer".to_string())?;
    if text.len() != message_bytes {
        return Err("bad_echo".into());
    }
    Ok(())
}

/// The JSON-RPC answer in an HTTP response body: the body itself, or the last `data:` event
/// that carries a result or an error when the server answered with an SSE stream.
pub fn answer_in_body(content_type: &str, body: &[u8]) -> Option<Value> {
    if content_type.starts_with("text/event-stream") {
        let text = std::str::from_utf8(body).ok()?;
        return text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .rfind(|v| v.get("result").is_some() || v.get("error").is_some());
    }
    serde_json::from_slice(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_has_the_exact_size() {
        for n in [0, 1, 128, 2048] {
            assert_eq!(message(n).len(), n);
        }
    }

    #[test]
    fn stateless_requests_carry_their_version_and_no_session() {
        let c = Call::new(Family::Stateless, "ignored", "echo", 16);
        let v: Value = serde_json::from_str(&c.request(7)).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["method"], "tools/call");
        assert_eq!(v["params"]["name"], "echo");
        assert_eq!(
            v["params"]["arguments"]["message"].as_str().unwrap().len(),
            16
        );
        assert_eq!(
            v["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
            STATELESS_VERSION
        );
        let h = c.http_headers();
        assert!(h.contains(&("mcp-protocol-version", STATELESS_VERSION.into())));
        assert!(h.contains(&("mcp-method", "tools/call".into())));
        assert!(h.contains(&("mcp-name", "echo".into())));
    }

    #[test]
    fn session_requests_have_no_meta_and_the_negotiated_version() {
        let c = Call::new(Family::Session, "2025-06-18", "echo", 4);
        let v: Value = serde_json::from_str(&c.request(1)).unwrap();
        assert!(v["params"].get("_meta").is_none());
        assert_eq!(c.protocol_version(), "2025-06-18");
        assert!(!c.http_headers().iter().any(|(k, _)| *k == "mcp-method"));
        let i: Value = serde_json::from_str(&initialize(0, "2025-06-18")).unwrap();
        assert_eq!(i["params"]["protocolVersion"], "2025-06-18");
    }

    #[test]
    fn echo_answers_are_judged() {
        let ok = json!({"id": 1, "result": {"content": [{"type": "text", "text": "abcd"}]}});
        assert_eq!(check_echo(&ok, 4), Ok(()));
        assert_eq!(check_echo(&ok, 5), Err("bad_echo".into()));
        let err = json!({"id": 1, "error": {"code": -32602, "message": "x"}});
        assert_eq!(check_echo(&err, 4), Err("jsonrpc_-32602".into()));
        let tool = json!({"id": 1, "result": {"isError": true, "content": []}});
        assert_eq!(check_echo(&tool, 4), Err("tool_error".into()));
        assert_eq!(check_echo(&json!({"id": 1}), 4), Err("bad_answer".into()));
        assert_eq!(answer_id(&ok), Some(1));
    }

    #[test]
    fn answers_are_found_in_json_and_sse_bodies() {
        let j = br#"{"jsonrpc":"2.0","id":3,"result":{}}"#;
        assert_eq!(answer_in_body("application/json", j).unwrap()["id"], 3);
        let sse = b"event: message\ndata: {\"method\":\"notifications/progress\"}\n\ndata: {\"id\":3,\"result\":{}}\n\n";
        assert_eq!(answer_in_body("text/event-stream", sse).unwrap()["id"], 3);
        assert!(answer_in_body("application/json", b"{nope").is_none());
    }
}
