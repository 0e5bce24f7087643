//! What the fixtures share: content builders, the client requests they make (elicitation,
//! sampling, roots) and how they ask (a server-to-client request on legacy revisions, an
//! `InputRequiredResult` on the modern one).

use std::time::Duration;

use erlmcp_dataplane::protocol::context::Ctx;
use erlmcp_dataplane::protocol::jsonrpc::{RpcError, MISSING_CLIENT_CAPABILITY};
use erlmcp_dataplane::protocol::mrtr;
use serde_json::{json, Value};

pub const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
pub const WAV_EMPTY: &str = "UklGRiQAAABXQVZFZm10IBAAAAABAAEARKwAAIhYAQACABAAZGF0YQAAAAA=";

pub fn text(t: impl Into<String>) -> Value {
    json!({"content": [{"type": "text", "text": t.into()}]})
}

pub fn missing_cap(cap: &str) -> RpcError {
    RpcError::new(
        MISSING_CLIENT_CAPABILITY,
        format!("This request needs the client capability {cap:?}"),
    )
    .with_data(json!({"requiredCapabilities": {cap: {}}}))
}

pub fn input_required(requests: Value, state: Option<String>) -> Value {
    let mut r = json!({"resultType": "input_required", "inputRequests": requests});
    if let Some(s) = state {
        r["requestState"] = json!(s);
    }
    r
}

pub fn elicit(message: &str, properties: Value, required: &[&str]) -> Value {
    json!({"method": "elicitation/create", "params": {"mode": "form", "message": message, "requestedSchema": {"type": "object", "properties": properties, "required": required}}})
}

pub fn sample(prompt: &str, max_tokens: u32) -> Value {
    json!({"method": "sampling/createMessage", "params": {"messages": [{"role": "user", "content": {"type": "text", "text": prompt}}], "maxTokens": max_tokens}})
}

pub fn roots() -> Value {
    json!({"method": "roots/list", "params": {}})
}

pub const ASK_TIMEOUT: Duration = Duration::from_secs(60);

/// Legacy: send the request to the client and wait. Modern: take it from `inputResponses`, or
/// return the `InputRequiredResult` that asks for it.
pub async fn ask_one(
    ctx: &Ctx,
    params: &Value,
    key: &str,
    cap: &str,
    request: Value,
) -> Result<Result<Value, Value>, RpcError> {
    if !ctx.era.has_client_capability(cap) {
        return Err(missing_cap(cap));
    }
    if ctx.era.is_modern() {
        let responses = mrtr::input_responses(params)?;
        return Ok(match responses.and_then(|r| r.get(key)) {
            Some(v) => Ok(v.clone()),
            None => Err(input_required(json!({ key: request }), None)),
        });
    }
    let method = request["method"].as_str().unwrap_or_default().to_string();
    ctx.ask(&method, request["params"].clone(), ASK_TIMEOUT)
        .await
        .map(Ok)
}

pub fn sampled_text(v: &Value) -> String {
    v.pointer("/content/text")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}
