//! The fixture tools other than the multi-round ones ([`crate::mrtr`]).

use std::time::Duration;

use erlmcp_dataplane::catalog::handler::{ToolCall, ToolHandler};
use erlmcp_dataplane::protocol::jsonrpc::RpcError;
use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{json, Value};

use crate::ask::{ask_one, elicit, missing_cap, sample, sampled_text, text, PNG_1X1, WAV_EMPTY};
use crate::mrtr;

/// Every fixture tool: one handler, dispatching on the tool's name.
pub struct Fixtures;

impl ToolHandler for Fixtures {
    fn call<'a>(&'a self, c: ToolCall<'a>) -> BoxFuture<'a, Result<Value, RpcError>> {
        call(c).boxed()
    }
}

async fn call(c: ToolCall<'_>) -> Result<Value, RpcError> {
    let ToolCall {
        name,
        args,
        params,
        ctx,
        server,
    } = c;
    let sleep = |ms| tokio::time::sleep(Duration::from_millis(ms));
    Ok(match name {
        "test_simple_text" => text("This is a simple text response for testing."),
        "test_image_content" => {
            json!({"content": [{"type": "image", "data": PNG_1X1, "mimeType": "image/png"}]})
        }
        "test_audio_content" => {
            json!({"content": [{"type": "audio", "data": WAV_EMPTY, "mimeType": "audio/wav"}]})
        }
        "test_embedded_resource" => {
            json!({"content": [{"type": "resource", "resource": {"uri": "test://embedded-resource", "mimeType": "text/plain", "text": "This is an embedded resource content."}}]})
        }
        "test_multiple_content_types" => json!({"content": [
            {"type": "text", "text": "Multiple content types test:"},
            {"type": "image", "data": PNG_1X1, "mimeType": "image/png"},
            {"type": "resource", "resource": {"uri": "test://mixed-content-resource", "mimeType": "application/json", "text": "{\"test\":\"data\",\"value\":123}"}}
        ]}),
        "test_tool_with_logging" | "test_logging_tool" => {
            ctx.log("info", "test_tool", json!("Tool execution started"));
            sleep(50).await;
            ctx.log("info", "test_tool", json!("Tool processing data"));
            sleep(50).await;
            ctx.log("info", "test_tool", json!("Tool execution completed"));
            text("Tool with logging executed successfully")
        }
        "test_tool_with_progress" => {
            for (i, p) in [0.0, 50.0, 100.0].into_iter().enumerate() {
                if i > 0 {
                    sleep(50).await;
                }
                ctx.progress(p, Some(100.0), Some(&format!("Completed step {p}")));
            }
            text("Tool with progress executed successfully")
        }
        "test_error_handling" => {
            json!({"content": [{"type": "text", "text": "This tool intentionally returns an error for testing"}], "isError": true})
        }
        "test_sampling" => {
            let prompt = args
                .get("prompt")
                .and_then(Value::as_str)
                .unwrap_or("Hello");
            match ask_one(ctx, params, "sampling", "sampling", sample(prompt, 100)).await? {
                Ok(r) => text(format!("LLM response: {}", sampled_text(&r))),
                Err(ir) => ir,
            }
        }
        "test_elicitation" => {
            let msg = args
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("Please provide your information");
            let req = elicit(
                msg,
                json!({"username": {"type": "string", "description": "User's response"}, "email": {"type": "string", "description": "User's email address"}}),
                &["username", "email"],
            );
            match ask_one(ctx, params, "user_input", "elicitation", req).await? {
                Ok(r) => text(format!(
                    "User response: action={}, content={}",
                    r["action"].as_str().unwrap_or("?"),
                    r.get("content").cloned().unwrap_or(Value::Null)
                )),
                Err(ir) => ir,
            }
        }
        "test_elicitation_sep1034_defaults" => {
            let req = elicit(
                "Please review and update the form fields with defaults",
                json!({
                    "name": {"type": "string", "description": "User name", "default": "John Doe"},
                    "age": {"type": "integer", "description": "User age", "default": 30},
                    "score": {"type": "number", "description": "User score", "default": 95.5},
                    "status": {"type": "string", "description": "User status", "enum": ["active", "inactive", "pending"], "default": "active"},
                    "verified": {"type": "boolean", "description": "Verification status", "default": true}
                }),
                &[],
            );
            match ask_one(ctx, params, "defaults", "elicitation", req).await? {
                Ok(r) => text(format!(
                    "Elicitation completed: action={}, content={}",
                    r["action"].as_str().unwrap_or("?"),
                    r.get("content").cloned().unwrap_or(Value::Null)
                )),
                Err(ir) => ir,
            }
        }
        "test_elicitation_sep1330_enums" => {
            let req = elicit(
                "Please select options from the enum fields",
                json!({
                    "untitledSingle": {"type": "string", "description": "Untitled single-select", "enum": ["option1", "option2", "option3"]},
                    "titledSingle": {"type": "string", "description": "Titled single-select", "oneOf": [{"const": "value1", "title": "First Option"}, {"const": "value2", "title": "Second Option"}, {"const": "value3", "title": "Third Option"}]},
                    "legacyEnum": {"type": "string", "description": "Legacy titled enum", "enum": ["opt1", "opt2", "opt3"], "enumNames": ["Option One", "Option Two", "Option Three"]},
                    "untitledMulti": {"type": "array", "description": "Untitled multi-select", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
                    "titledMulti": {"type": "array", "description": "Titled multi-select", "items": {"anyOf": [{"const": "value1", "title": "First Choice"}, {"const": "value2", "title": "Second Choice"}, {"const": "value3", "title": "Third Choice"}]}}
                }),
                &[],
            );
            match ask_one(ctx, params, "enums", "elicitation", req).await? {
                Ok(r) => text(format!(
                    "Elicitation completed: action={}, content={}",
                    r["action"].as_str().unwrap_or("?"),
                    r.get("content").cloned().unwrap_or(Value::Null)
                )),
                Err(ir) => ir,
            }
        }
        "test_reconnection" => {
            ctx.out.close_stream();
            sleep(100).await;
            text("Reconnection test completed")
        }
        "json_schema_2020_12_tool" => text(format!("Received: {args}")),
        "test_header_param" => text(format!(
            "region={}",
            args.get("region").and_then(Value::as_str).unwrap_or("")
        )),
        "test_missing_capability" => {
            if !ctx.era.has_client_capability("sampling") {
                return Err(missing_cap("sampling"));
            }
            text("The client declared sampling")
        }
        "test_streaming_elicitation" => {
            ctx.progress(0.0, None, Some("starting"));
            ctx.log(
                "info",
                "test_streaming_elicitation",
                json!("asking the user"),
            );
            let req = elicit(
                "Streaming elicitation: what is your name?",
                json!({"name": {"type": "string"}}),
                &["name"],
            );
            match ask_one(ctx, params, "stream_name", "elicitation", req).await? {
                Ok(r) => text(format!(
                    "Hello, {}!",
                    r.pointer("/content/name")
                        .and_then(Value::as_str)
                        .unwrap_or("stranger")
                )),
                Err(ir) => ir,
            }
        }
        "test_trigger_tool_change" => {
            server.notify_list_changed("tools");
            text("Tool list change announced")
        }
        "test_trigger_prompt_change" => {
            server.notify_list_changed("prompts");
            text("Prompt list change announced")
        }
        "test_trigger_resource_update" => {
            server.notify_resource_updated("test://watched-resource");
            text("Resource update announced")
        }
        n if n.starts_with("test_input_required_result_") => {
            return mrtr::call(n, params, server, ctx).await
        }
        _ => return Err(RpcError::invalid_params(format!("Unknown tool: {name}"))),
    })
}
