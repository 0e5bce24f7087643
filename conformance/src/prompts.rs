//! The fixture prompts.

use erlmcp_dataplane::catalog::handler::{PromptGet, PromptHandler};
use erlmcp_dataplane::protocol::jsonrpc::RpcError;
use erlmcp_dataplane::protocol::mrtr;
use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{json, Value};

use crate::ask::{elicit, input_required, missing_cap, PNG_1X1};

/// Every fixture prompt: one handler, dispatching on the prompt's name.
pub struct Fixtures;

impl PromptHandler for Fixtures {
    fn get<'a>(&'a self, g: PromptGet<'a>) -> BoxFuture<'a, Result<Value, RpcError>> {
        get(g).boxed()
    }
}

async fn get(g: PromptGet<'_>) -> Result<Value, RpcError> {
    let PromptGet {
        name,
        args,
        params,
        ctx,
        ..
    } = g;
    let arg = |k: &str| {
        args.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    Ok(match name {
        "test_simple_prompt" => {
            json!({"messages": [{"role": "user", "content": {"type": "text", "text": "This is a simple prompt for testing."}}]})
        }
        "test_prompt_with_arguments" => {
            json!({"messages": [{"role": "user", "content": {"type": "text", "text": format!("Prompt with arguments: arg1='{}', arg2='{}'", arg("arg1"), arg("arg2"))}}]})
        }
        "test_prompt_with_embedded_resource" => json!({"messages": [
            {"role": "user", "content": {"type": "resource", "resource": {"uri": arg("resourceUri"), "mimeType": "text/plain", "text": "Embedded resource content for testing."}}},
            {"role": "user", "content": {"type": "text", "text": "Please process the embedded resource above."}}
        ]}),
        "test_prompt_with_image" => json!({"messages": [
            {"role": "user", "content": {"type": "image", "data": PNG_1X1, "mimeType": "image/png"}},
            {"role": "user", "content": {"type": "text", "text": "Please analyze the image above."}}
        ]}),
        "test_input_required_result_prompt" => {
            let req = elicit(
                "What context should the prompt use?",
                json!({"context": {"type": "string"}}),
                &["context"],
            );
            let context = if ctx.era.is_modern() {
                if !ctx.era.has_client_capability("elicitation") {
                    return Err(missing_cap("elicitation"));
                }
                match mrtr::input_responses(params)?.and_then(|r| r.get("user_context")) {
                    Some(r) => r
                        .pointer("/content/context")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    None => return Ok(input_required(json!({"user_context": req}), None)),
                }
            } else {
                "default context".to_string()
            };
            json!({"messages": [{"role": "user", "content": {"type": "text", "text": format!("Use this context: {context}")}}]})
        }
        _ => return Err(RpcError::invalid_params(format!("Unknown prompt: {name}"))),
    })
}
