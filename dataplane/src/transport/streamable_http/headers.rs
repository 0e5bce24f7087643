//! The request headers of Streamable HTTP: the session and version headers, the content type,
//! and the modern era's rule that `Mcp-Method`, `Mcp-Name` and `Mcp-Param-*` agree with the body.

use axum::http::{header::AsHeaderName, HeaderMap, HeaderName};
use base64::Engine;
use serde_json::Value;

use crate::protocol::jsonrpc::{Message, RpcError, HEADER_MISMATCH};
use crate::protocol::Core;

pub const SESSION_HEADER: &str = "mcp-session-id";
pub const VERSION_HEADER: &str = "mcp-protocol-version";

/// The same names as [`HeaderName`]s: looking one of these up costs no parsing of the name
/// (a `&str` name is validated and lower-cased on every lookup).
pub(super) const SESSION: HeaderName = HeaderName::from_static(SESSION_HEADER);
pub(super) const VERSION: HeaderName = HeaderName::from_static(VERSION_HEADER);
const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");

pub(super) fn header<K: AsHeaderName>(h: &HeaderMap, name: K) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// `Content-Type: application/json` (parameters such as `charset` allowed); a missing one is
/// refused too, since a POST to `/mcp` always carries a JSON-RPC body.
pub fn is_json_content_type(h: &HeaderMap) -> bool {
    header(h, http::header::CONTENT_TYPE)
        .is_some_and(|c| media_type(c).eq_ignore_ascii_case("application/json"))
}

/// Whether `Accept` lets the server answer with both JSON and an SSE stream, as a Streamable
/// HTTP POST must (the server picks one per request). No `Accept` at all means anything goes
/// (RFC 9110 §12.5.1); wildcards count, and `q=0` excludes.
pub fn accepts_json_and_sse(h: &HeaderMap) -> bool {
    let mut values = h
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .peekable();
    if values.peek().is_none() {
        return true;
    }
    // Walked in place (no list of ranges is built): every POST passes here.
    let (mut json, mut sse) = (false, false);
    for r in values.flat_map(|v| v.split(',')) {
        let mut parts = r.split(';');
        let ty = parts.next().unwrap_or("").trim();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        if refused {
            continue;
        }
        json = json || media_range_allows(ty, "application/json");
        sse = sse || media_range_allows(ty, "text/event-stream");
        if json && sse {
            return true;
        }
    }
    false
}

/// Whether the media range `ty` (`type/subtype`, `type/*` or `*/*`) covers `want`.
fn media_range_allows(ty: &str, want: &str) -> bool {
    let (top, _) = want.split_once('/').unwrap_or((want, ""));
    ty.eq_ignore_ascii_case(want)
        || ty == "*/*"
        || ty
            .strip_suffix("/*")
            .is_some_and(|t| t.eq_ignore_ascii_case(top))
}

fn media_type(v: &str) -> &str {
    v.split(';').next().unwrap_or("").trim()
}

/// Decode a header value that may use the `=?base64?...?=` sentinel.
pub fn decode_header_value(raw: &str) -> Result<std::borrow::Cow<'_, str>, RpcError> {
    let v = raw.trim();
    if let Some(inner) = v
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(inner)
            .map_err(|_| {
                RpcError::new(
                    HEADER_MISMATCH,
                    "Header mismatch: invalid Base64 in header value",
                )
            })?;
        return String::from_utf8(bytes).map(Into::into).map_err(|_| {
            RpcError::new(
                HEADER_MISMATCH,
                "Header mismatch: Base64 header value is not UTF-8",
            )
        });
    }
    Ok(v.into())
}

fn mismatch(what: &str, header_val: &str, body_val: &str) -> RpcError {
    RpcError::new(HEADER_MISMATCH, format!("Header mismatch: {what} header value {header_val:?} does not match body value {body_val:?}"))
}

/// `Mcp-Method`, `Mcp-Name` and `Mcp-Param-*` must agree with the body (SEP-2243).
pub fn check_headers(headers: &HeaderMap, msg: &Message, core: &Core) -> Result<(), RpcError> {
    let get = |name: &HeaderName| -> Result<Option<&str>, RpcError> {
        match headers.get(name) {
            None => Ok(None),
            Some(v) => v.to_str().map(Some).map_err(|_| {
                RpcError::new(
                    HEADER_MISMATCH,
                    format!("Header mismatch: {name} contains invalid characters"),
                )
            }),
        }
    };
    let method = msg.method();
    match get(&MCP_METHOD)? {
        None => {
            return Err(RpcError::new(
                HEADER_MISMATCH,
                "Header mismatch: Mcp-Method header is required",
            ))
        }
        Some(h) if h.trim() != method => return Err(mismatch("Mcp-Method", h.trim(), method)),
        Some(_) => {}
    }
    let name_key = match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        // The Tasks extension routes on the task id (SEP-2663).
        "tasks/get" | "tasks/update" | "tasks/cancel" => Some("taskId"),
        _ => None,
    };
    if let Some(key) = name_key {
        if let Some(body_name) = msg.param_str(key) {
            match get(&MCP_NAME)? {
                None => {
                    return Err(RpcError::new(
                        HEADER_MISMATCH,
                        "Header mismatch: Mcp-Name header is required",
                    ))
                }
                Some(h) => {
                    let decoded = decode_header_value(h)?;
                    if decoded != body_name {
                        return Err(mismatch("Mcp-Name", &decoded, body_name));
                    }
                }
            }
        }
    }
    if method == "tools/call" {
        if let Some(tool) = msg.param_str("name").and_then(|n| core.catalog.tool(n)) {
            let args = msg.params.as_ref().and_then(|p| p.get("arguments"));
            for (prop, hdr) in &tool.header_params {
                let hname = format!("mcp-param-{}", hdr.to_ascii_lowercase());
                let body_val = args.and_then(|a| a.get(prop)).filter(|v| !v.is_null());
                // A name that cannot be a header is one no request carries.
                let header_val = match HeaderName::try_from(hname.as_str()) {
                    Ok(n) => get(&n)?,
                    Err(_) => None,
                };
                match (body_val, header_val) {
                    (None, None) => {}
                    (Some(_), None) => return Err(RpcError::new(HEADER_MISMATCH, format!("Header mismatch: Mcp-Param-{hdr} header is required when {prop} is given"))),
                    (None, Some(h)) => return Err(mismatch(&format!("Mcp-Param-{hdr}"), h, "(absent)")),
                    (Some(b), Some(h)) => {
                        let decoded = decode_header_value(h)?;
                        let ok = match b {
                            Value::String(s) => *s == decoded,
                            Value::Bool(x) => decoded == if *x { "true" } else { "false" },
                            Value::Number(n) => decoded.parse::<f64>().ok().zip(n.as_f64()).is_some_and(|(a, b)| a == b),
                            _ => false,
                        };
                        if !ok {
                            return Err(mismatch(&format!("Mcp-Param-{hdr}"), &decoded, &b.to_string()));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &'static str, values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(name, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn accept_must_allow_json_and_sse() {
        let ok = |v: &[&'static str]| accepts_json_and_sse(&with("accept", v));
        assert!(ok(&[]), "no Accept accepts anything");
        assert!(ok(&["application/json, text/event-stream"]));
        assert!(ok(&["application/json", "text/event-stream"]));
        assert!(ok(&["*/*"]));
        assert!(ok(&["application/*;q=0.9, text/*"]));
        assert!(ok(&["Application/JSON; q=1, TEXT/EVENT-STREAM"]));
        assert!(!ok(&["application/json"]));
        assert!(!ok(&["text/event-stream"]));
        assert!(!ok(&["text/html"]));
        assert!(!ok(&["application/json, text/event-stream;q=0"]));
    }

    #[test]
    fn content_type_must_be_json() {
        let ok = |v: &[&'static str]| is_json_content_type(&with("content-type", v));
        assert!(ok(&["application/json"]));
        assert!(ok(&["application/json; charset=utf-8"]));
        assert!(ok(&["APPLICATION/JSON"]));
        assert!(!ok(&[]), "missing");
        assert!(!ok(&["text/plain"]));
        assert!(!ok(&["application/jsonx"]));
    }

    #[test]
    fn decodes_base64_sentinel() {
        assert_eq!(decode_header_value("  plain ").unwrap(), "plain");
        assert_eq!(decode_header_value("=?base64?SGVsbG8=?=").unwrap(), "Hello");
        assert!(decode_header_value("=?base64?SGVsbG8?=").is_err());
        assert!(decode_header_value("=?base64?SGVs!!!bG8=?=").is_err());
        assert_eq!(
            decode_header_value("=?base64?SGVsbG8=").unwrap(),
            "=?base64?SGVsbG8="
        );
    }
}
