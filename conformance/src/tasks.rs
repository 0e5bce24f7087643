//! The Tasks fixtures the conformance suite calls (SEP-2663 scenarios): `greet` (never a
//! task), `slow_compute`, `failing_job`, `protocol_error_job`, `confirm_delete`, `multi_input`
//! and `test_tool_with_task`. Whether a call becomes a task is the server's decision (a tool
//! that has to wait becomes one), so the fixtures that must run as tasks wait a moment first.

use std::sync::Arc;
use std::time::Duration;

use erlmcp_dataplane::catalog::handler::{ToolCall, ToolHandler};
use erlmcp_dataplane::catalog::{Catalog, TaskSupport, ToolDescription, ToolEntry};
use erlmcp_dataplane::protocol::{self, jsonrpc::RpcError};
use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{json, Map, Value};

use crate::ask::{elicit, input_required, text};

struct Fixtures;

/// Long enough that the call cannot finish on its first poll, so it becomes a task.
const SETTLE: Duration = Duration::from_millis(50);

pub fn register(c: &mut Catalog) {
    let tools: &[(&'static str, &str, Value, TaskSupport)] = &[
        (
            "greet",
            "Says hello (never a task)",
            json!({"type": "object", "properties": {"name": {"type": "string"}}}),
            TaskSupport::Forbidden,
        ),
        (
            "slow_compute",
            "Sleeps `seconds`, then answers",
            json!({"type": "object", "properties": {"seconds": {"type": "number", "minimum": 0, "maximum": 600}, "label": {"type": "string"}}}),
            TaskSupport::Optional,
        ),
        (
            "failing_job",
            "Fails with a tool error after a second",
            json!({"type": "object", "properties": {}}),
            TaskSupport::Required,
        ),
        (
            "protocol_error_job",
            "Fails with a protocol error",
            json!({"type": "object", "properties": {}}),
            TaskSupport::Optional,
        ),
        (
            "confirm_delete",
            "Asks to confirm, then answers",
            json!({"type": "object", "properties": {"filename": {"type": "string"}}}),
            TaskSupport::Optional,
        ),
        (
            "multi_input",
            "Asks two questions at once",
            json!({"type": "object", "properties": {}}),
            TaskSupport::Optional,
        ),
        (
            "test_tool_with_task",
            "Asks a name synchronously, then finishes as a task",
            json!({"type": "object", "properties": {}}),
            TaskSupport::Required,
        ),
    ];
    for (name, description, input, ts) in tools {
        c.add_tool(
            ToolEntry::with_handler(
                ToolDescription {
                    name,
                    title: None,
                    description,
                    input: input.clone(),
                    output: None,
                    annotations: None,
                },
                Arc::new(Fixtures),
            )
            .with_task_support(*ts),
        );
    }
}

impl ToolHandler for Fixtures {
    fn call<'a>(&'a self, c: ToolCall<'a>) -> BoxFuture<'a, Result<Value, RpcError>> {
        call(c).boxed()
    }
}

fn answers(params: &Value) -> Result<Map<String, Value>, RpcError> {
    Ok(protocol::mrtr::input_responses(params)?
        .cloned()
        .unwrap_or_default())
}

fn accepted_name(v: Option<&Value>) -> Option<&str> {
    v.and_then(|r| r.pointer("/content/name"))
        .and_then(Value::as_str)
}

async fn call(c: ToolCall<'_>) -> Result<Value, RpcError> {
    let ToolCall {
        name, args, params, ..
    } = c;
    let settle = || tokio::time::sleep(SETTLE);
    Ok(match name {
        "greet" => text(format!(
            "Hello, {}!",
            args["name"].as_str().unwrap_or("World")
        )),
        "slow_compute" => {
            let secs = args["seconds"].as_f64().unwrap_or(1.0).clamp(0.0, 600.0);
            if secs > 0.0 {
                tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            }
            let label = args["label"].as_str().unwrap_or("job");
            text(format!("computed {label} after {secs}s"))
        }
        "failing_job" => {
            tokio::time::sleep(Duration::from_secs(1)).await;
            json!({"isError": true, "content": [{"type": "text", "text": "failing_job: the job failed"}]})
        }
        "protocol_error_job" => {
            settle().await;
            return Err(RpcError::internal("protocol_error_job: the job crashed"));
        }
        "confirm_delete" => {
            let file = args["filename"].as_str().unwrap_or("file");
            let a = answers(params)?;
            match a.get("confirm") {
                None => {
                    settle().await;
                    input_required(
                        json!({"confirm": elicit(&format!("Delete {file}?"), json!({"confirm": {"type": "boolean"}}), &["confirm"])}),
                        None,
                    )
                }
                Some(r) if r.pointer("/content/confirm") == Some(&json!(true)) => {
                    text(format!("Deleted {file}"))
                }
                Some(_) => text(format!("Kept {file}")),
            }
        }
        "multi_input" => {
            let a = answers(params)?;
            if a.contains_key("name") && a.contains_key("confirm") {
                let n = accepted_name(a.get("name")).unwrap_or("someone");
                text(format!("Both answered ({n})"))
            } else {
                settle().await;
                input_required(
                    json!({
                        "name": elicit("Your name?", json!({"name": {"type": "string"}}), &["name"]),
                        "confirm": elicit("Proceed?", json!({"confirm": {"type": "boolean"}}), &["confirm"]),
                    }),
                    None,
                )
            }
        }
        "test_tool_with_task" => {
            let a = answers(params)?;
            match accepted_name(a.get("user_name")) {
                // Round 1 answers at once (a plain InputRequiredResult, no task yet).
                None => input_required(
                    json!({"user_name": elicit("What is your name?", json!({"name": {"type": "string"}}), &["name"])}),
                    None,
                ),
                Some(n) => {
                    let n = n.to_string();
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    text(format!("Hello, {n}! (finished as a task)"))
                }
            }
        }
        _ => return Err(RpcError::invalid_params(format!("Unknown tool: {name}"))),
    })
}
