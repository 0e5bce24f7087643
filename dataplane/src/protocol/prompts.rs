//! `prompts/list` and `prompts/get` with argument substitution (`{{name}}`).

use serde_json::{json, Map, Value};

use super::context::Ctx;
use super::jsonrpc::RpcError;
use super::pagination::{cursor, page};
use super::Core;
use crate::catalog::handler::PromptGet;
use crate::catalog::PromptBody;

pub fn list(core: &Core, params: &Value) -> Result<Value, RpcError> {
    let (items, next) = page(&core.catalog.prompts, cursor(params)?, core.page_size)
        .map_err(RpcError::invalid_params)?;
    let mut r = json!({"prompts": items.iter().map(|x| x.def.clone()).collect::<Vec<_>>()});
    if let Some(n) = next {
        r["nextCursor"] = json!(n);
    }
    Ok(r)
}

pub async fn get(core: &Core, params: &Value, ctx: &Ctx) -> Result<Value, RpcError> {
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("prompts/get: name is required"))?;
    let p = core
        .catalog
        .prompt(name)
        .ok_or_else(|| RpcError::invalid_params(format!("Unknown prompt: {name}")))?;
    let empty = Map::new();
    let args = match params.get("arguments") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(RpcError::invalid_params(
                "prompts/get: arguments must be an object",
            ))
        }
    };
    if let Some((k, _)) = args.iter().find(|(_, v)| !v.is_string()) {
        return Err(RpcError::invalid_params(format!(
            "prompts/get: argument {k:?} must be a string"
        )));
    }
    let missing: Vec<&str> = p
        .required
        .iter()
        .filter(|r| !args.contains_key(r.as_str()))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(RpcError::invalid_params(format!(
            "prompts/get: missing required arguments: {}",
            missing.join(", ")
        )));
    }
    match &p.body {
        PromptBody::Handler(h) => {
            h.get(PromptGet {
                name,
                args,
                params,
                ctx,
                server: core,
            })
            .await
        }
        PromptBody::Spec(spec) => {
            let messages: Vec<Value> = spec
                .messages
                .iter()
                .map(|m| {
                    let mut text = m.text.clone();
                    for (k, v) in args {
                        text =
                            text.replace(&format!("{{{{{k}}}}}"), v.as_str().unwrap_or_default());
                    }
                    json!({"role": m.role, "content": {"type": "text", "text": text}})
                })
                .collect();
            let mut r = json!({"messages": messages});
            if let Some(d) = &spec.description {
                r["description"] = json!(d);
            }
            Ok(r)
        }
    }
}
