//! `completion/complete`: values for prompt arguments (from configuration) and resource
//! template variables.

use serde_json::{json, Value};

use super::jsonrpc::RpcError;
use super::Core;

pub fn complete(core: &Core, params: &Value) -> Result<Value, RpcError> {
    let r = params
        .get("ref")
        .ok_or_else(|| RpcError::invalid_params("completion/complete: ref is required"))?;
    let arg = params
        .get("argument")
        .ok_or_else(|| RpcError::invalid_params("completion/complete: argument is required"))?;
    let arg_name = arg
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("argument.name is required"))?;
    let prefix = arg
        .get("value")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_lowercase();
    let candidates: Vec<String> = match r.get("type").and_then(Value::as_str) {
        Some("ref/prompt") => {
            let name = r
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| RpcError::invalid_params("ref.name is required"))?;
            let p = core
                .catalog
                .prompt(name)
                .ok_or_else(|| RpcError::invalid_params(format!("Unknown prompt: {name}")))?;
            p.completions.get(arg_name).cloned().unwrap_or_default()
        }
        Some("ref/resource") => {
            let uri = r
                .get("uri")
                .and_then(Value::as_str)
                .ok_or_else(|| RpcError::invalid_params("ref.uri is required"))?;
            if !core
                .catalog
                .templates
                .iter()
                .any(|t| t.def["uriTemplate"] == uri)
            {
                return Err(RpcError::invalid_params(format!(
                    "Unknown resource template: {uri}"
                )));
            }
            Vec::new()
        }
        _ => {
            return Err(RpcError::invalid_params(
                "ref.type must be ref/prompt or ref/resource",
            ))
        }
    };
    let matching: Vec<String> = candidates
        .into_iter()
        .filter(|c| c.to_lowercase().starts_with(&prefix))
        .collect();
    let total = matching.len();
    let values: Vec<String> = matching.into_iter().take(100).collect();
    Ok(json!({"completion": {"values": values, "total": total, "hasMore": total > 100}}))
}
