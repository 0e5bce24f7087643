//! `initialize` (legacy), `server/discover` and per-request `_meta` validation (modern),
//! `logging/setLevel` (legacy).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::{json, Value};

use super::context::{level_index, Ctx, Era, ModernMeta};
use super::jsonrpc::{Message, RpcError, HEADER_MISMATCH, UNSUPPORTED_PROTOCOL_VERSION};
use super::revision::{self, Legacy};
use super::Core;
use crate::session::{CreateError, Session};

pub fn capabilities() -> Value {
    json!({
        "tools": {"listChanged": true},
        "resources": {"subscribe": true, "listChanged": true},
        "prompts": {"listChanged": true},
        "logging": {},
        "completions": {}
    })
}

/// Legacy handshake: negotiate the version and open a session.
pub fn initialize(
    core: &Core,
    msg: &Message,
    transport: &'static str,
) -> Result<(Arc<Session>, Value), RpcError> {
    let params = msg
        .params
        .as_ref()
        .filter(|p| p.is_object())
        .ok_or_else(|| RpcError::invalid_params("initialize needs params"))?;
    let requested = params
        .get("protocolVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("initialize: protocolVersion is required"))?;
    let caps = match params.get("capabilities") {
        None => json!({}),
        Some(c) if c.is_object() => c.clone(),
        Some(_) => {
            return Err(RpcError::invalid_params(
                "initialize: capabilities must be an object",
            ))
        }
    };
    let info = params.get("clientInfo").cloned().unwrap_or(Value::Null);
    let version = Legacy::negotiate(Some(requested));
    let session = core
        .sessions
        .create(version, caps, info, transport)
        .map_err(|e| match e {
            CreateError::TooMany => {
                RpcError::internal("Too many sessions on this node; retry later").with_status(503)
            }
        })?;
    let mut caps = capabilities();
    if version == Legacy::V20251125 {
        // The experimental tasks of 2025-11-25: tool calls as tasks, listed and cancelled.
        caps["tasks"] = json!({"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}});
    }
    let mut result = json!({
        "protocolVersion": version.as_str(),
        "capabilities": caps,
        "serverInfo": core.server_info,
    });
    if let Some(i) = &core.instructions {
        result["instructions"] = json!(i);
    }
    Ok((session, result))
}

pub fn discover(core: &Core) -> Value {
    let mut caps = capabilities();
    caps["extensions"] = json!({ crate::tasks::EXTENSION: {} });
    let mut r = json!({"supportedVersions": revision::ALL, "capabilities": caps});
    if let Some(i) = &core.instructions {
        r["instructions"] = json!(i);
    }
    r
}

/// Validate a modern request's `_meta` (and, on HTTP, its `MCP-Protocol-Version` header).
pub fn modern_meta(msg: &Message, header_version: Option<&str>) -> Result<ModernMeta, RpcError> {
    let bad = |m: String| RpcError::invalid_params(m).with_status(400);
    let meta = msg.meta().ok_or_else(|| bad("Invalid params: _meta with io.modelcontextprotocol/protocolVersion and clientCapabilities is required".into()))?;
    let missing: Vec<&str> = [revision::META_PROTOCOL_VERSION, revision::META_CLIENT_CAPS]
        .into_iter()
        .filter(|k| !meta.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Err(bad(format!(
            "Invalid params: missing _meta keys: {}",
            missing.join(", ")
        )));
    }
    let version = meta[revision::META_PROTOCOL_VERSION]
        .as_str()
        .ok_or_else(|| bad("Invalid params: _meta protocolVersion must be a string".into()))?;
    let caps = &meta[revision::META_CLIENT_CAPS];
    if !caps.is_object() {
        return Err(bad(
            "Invalid params: _meta clientCapabilities must be an object".into(),
        ));
    }
    if let Some(h) = header_version {
        if h.trim() != version {
            return Err(RpcError::new(HEADER_MISMATCH, format!("Header mismatch: MCP-Protocol-Version {:?} does not match _meta protocolVersion {version:?}", h.trim())));
        }
    }
    if version != revision::MODERN {
        return Err(
            RpcError::new(UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version")
                .with_data(json!({"supported": revision::ALL, "requested": version})),
        );
    }
    let log_level = match meta.get(revision::META_LOG_LEVEL) {
        None | Some(Value::Null) => None,
        Some(Value::String(l)) => Some(
            level_index(l)
                .ok_or_else(|| bad(format!("Invalid params: unknown log level {l:?}")))?,
        ),
        Some(_) => return Err(bad("Invalid params: logLevel must be a string".into())),
    };
    Ok(ModernMeta {
        protocol_version: revision::MODERN.into(),
        client_capabilities: caps.clone(),
        log_level,
    })
}

pub fn set_level(params: &Value, ctx: &Ctx) -> Result<Value, RpcError> {
    let level = params
        .get("level")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("level is required"))?;
    let idx = level_index(level)
        .ok_or_else(|| RpcError::invalid_params(format!("unknown log level {level:?}")))?;
    if let Era::Legacy(s) = &ctx.era {
        s.log_level.store(idx, Ordering::Relaxed);
    }
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::jsonrpc::{from_value, INVALID_PARAMS};

    fn msg(v: Value) -> Message {
        from_value(v).unwrap()
    }

    fn meta(version: &str) -> Value {
        json!({"io.modelcontextprotocol/protocolVersion": version, "io.modelcontextprotocol/clientCapabilities": {}})
    }

    #[test]
    fn modern_meta_errors_in_order() {
        let m = msg(json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {}}));
        let e = modern_meta(&m, Some("2026-07-28")).unwrap_err();
        assert_eq!((e.code, e.http_status), (INVALID_PARAMS, 400));
        let m = msg(
            json!({"jsonrpc": "2.0", "id": 1, "method": "x", "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}}),
        );
        assert!(modern_meta(&m, None)
            .unwrap_err()
            .message
            .contains("clientCapabilities"));
        let m = msg(
            json!({"jsonrpc": "2.0", "id": 1, "method": "x", "params": {"_meta": meta("v999")}}),
        );
        assert_eq!(
            modern_meta(&m, Some("2026-07-28")).unwrap_err().code,
            HEADER_MISMATCH
        );
        let e = modern_meta(&m, Some("v999")).unwrap_err();
        assert_eq!(e.code, UNSUPPORTED_PROTOCOL_VERSION);
        assert_eq!(e.data.as_ref().unwrap()["requested"], "v999");
        let m = msg(
            json!({"jsonrpc": "2.0", "id": 1, "method": "x", "params": {"_meta": meta("2026-07-28")}}),
        );
        let ok = modern_meta(&m, Some(" 2026-07-28 ")).unwrap();
        assert_eq!(ok.log_level, None);
    }
}
