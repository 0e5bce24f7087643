//! Built-ins served with no configuration: tool `echo`, tool `cluster_status`, resource
//! `erlmcp://node/status`.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{json, Value};

use super::handler::{ToolCall, ToolHandler};
use super::{ToolDescription, ToolEntry};
use crate::wire::jsonrpc::RpcError;

pub const NODE_STATUS_URI: &str = "erlmcp://node/status";

/// `echo`: returns its message.
struct Echo;

/// `cluster_status`: this node and its peers.
struct ClusterStatus;

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
        ToolEntry::with_handler(
            ToolDescription {
                name: "echo",
                title: Some("Echo"),
                description: "Returns its message argument unchanged",
                input: echo_in,
                output: Some(echo_out),
                annotations: Some(
                    json!({"readOnlyHint": true, "idempotentHint": true, "openWorldHint": false}),
                ),
            },
            Arc::new(Echo),
        ),
        ToolEntry::with_handler(
            ToolDescription {
                name: "cluster_status",
                title: Some("Cluster status"),
                description: "This node and its peers, as this node sees them",
                input: status_in,
                output: Some(status_out),
                annotations: Some(json!({"readOnlyHint": true, "openWorldHint": false})),
            },
            Arc::new(ClusterStatus),
        ),
    ]
}

/// Text content, plus `structuredContent` where the revision knows it.
fn result(text: &str, structured: Value, with_structured: bool) -> Value {
    if with_structured {
        json!({"content": [{"type": "text", "text": text}], "structuredContent": structured})
    } else {
        json!({"content": [{"type": "text", "text": text}]})
    }
}

impl ToolHandler for Echo {
    fn call<'a>(&'a self, c: ToolCall<'a>) -> BoxFuture<'a, Result<Value, RpcError>> {
        let msg = c
            .args
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let r = result(
            msg,
            json!({"message": msg}),
            c.ctx.era.has_structured_output(),
        );
        futures::future::ready(Ok(r)).boxed()
    }
}

impl ToolHandler for ClusterStatus {
    fn call<'a>(&'a self, c: ToolCall<'a>) -> BoxFuture<'a, Result<Value, RpcError>> {
        let s = c.server.node_status();
        let text = serde_json::to_string_pretty(&s).unwrap_or_default();
        let r = result(&text, s, c.ctx.era.has_structured_output());
        futures::future::ready(Ok(r)).boxed()
    }
}
