//! Built-ins served with no configuration: tool `echo`, tool `cluster_status`, resource
//! `erlmcp://node/status`.

use serde_json::{json, Value};

use super::{compile_schema, tool_def, Backend, ToolEntry};
use crate::protocol::context::Ctx;
use crate::protocol::Core;

pub const NODE_STATUS_URI: &str = "erlmcp://node/status";

#[derive(Debug, Clone, Copy)]
pub enum Builtin {
    Echo,
    ClusterStatus,
}

pub fn tools() -> Vec<ToolEntry> {
    let echo_in = json!({
        "type": "object",
        "properties": {"message": {"type": "string", "description": "Text to send back"}},
        "required": ["message"]
    });
    let echo_out = json!({"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]});
    let status_in = json!({"type": "object", "properties": {}});
    let status_out = json!({
        "type": "object",
        "properties": {
            "node": {"type": "string"},
            "peers": {"type": "array"},
            "expectedNodes": {"type": "integer"},
            "uptimeSeconds": {"type": "number"},
            "ready": {"type": "boolean"}
        },
        "required": ["node", "peers"]
    });
    vec![
        ToolEntry {
            name: "echo".into(),
            def: tool_def(
                "echo",
                Some("Echo"),
                Some("Returns its message argument unchanged"),
                &echo_in,
                Some(&echo_out),
                Some(
                    &json!({"readOnlyHint": true, "idempotentHint": true, "openWorldHint": false}),
                ),
            ),
            validator: compile_schema(&echo_in).ok(),
            backend: Backend::Builtin(Builtin::Echo),
            header_params: Vec::new(),
        },
        ToolEntry {
            name: "cluster_status".into(),
            def: tool_def(
                "cluster_status",
                Some("Cluster status"),
                Some("This node and its peers, as this node sees them"),
                &status_in,
                Some(&status_out),
                Some(&json!({"readOnlyHint": true, "openWorldHint": false})),
            ),
            validator: compile_schema(&status_in).ok(),
            backend: Backend::Builtin(Builtin::ClusterStatus),
            header_params: Vec::new(),
        },
    ]
}

/// Whether the request's revision knows `structuredContent`.
pub fn structured_ok(ctx: &Ctx) -> bool {
    ctx.era
        .legacy_version()
        .is_none_or(|v| v.has_structured_output())
}

pub fn call(b: Builtin, args: &Value, core: &Core, ctx: &Ctx) -> Value {
    match b {
        Builtin::Echo => {
            let msg = args
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if structured_ok(ctx) {
                json!({"content": [{"type": "text", "text": msg}], "structuredContent": {"message": msg}})
            } else {
                json!({"content": [{"type": "text", "text": msg}]})
            }
        }
        Builtin::ClusterStatus => {
            let s = core.node_status();
            let text = serde_json::to_string_pretty(&s).unwrap_or_default();
            if structured_ok(ctx) {
                json!({"content": [{"type": "text", "text": text}], "structuredContent": s})
            } else {
                json!({"content": [{"type": "text", "text": text}]})
            }
        }
    }
}
