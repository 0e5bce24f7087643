//! `tools/list` and `tools/call`. Arguments are validated against the tool's schema before any
//! backend runs; a validation failure is a tool error the model can read and fix.

use serde_json::{json, Value};

use super::context::Ctx;
use super::jsonrpc::RpcError;
use super::pagination::{cursor, page};
use super::{mrtr, Core};
use crate::catalog::handler::ToolCall;
use crate::catalog::{self, Backend};

pub fn list(core: &Core, params: &Value, _ctx: &Ctx) -> Result<Value, RpcError> {
    let cursor = cursor(params)?;
    let (items, next) =
        page(&core.catalog.tools, cursor, core.page_size).map_err(RpcError::invalid_params)?;
    let mut r = json!({"tools": items.iter().map(|t| t.def.clone()).collect::<Vec<_>>()});
    if let Some(n) = next {
        r["nextCursor"] = json!(n);
    }
    Ok(r)
}

pub async fn call(core: &Core, params: &Value, ctx: &Ctx) -> Result<Value, RpcError> {
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("tools/call: name is required"))?;
    let tool = core
        .catalog
        .tool(name)
        .ok_or_else(|| RpcError::invalid_params(format!("Unknown tool: {name}")))?;
    let args = match params.get("arguments") {
        None | Some(Value::Null) => &super::EMPTY_OBJECT,
        Some(a) if a.is_object() => a,
        Some(_) => {
            return Err(RpcError::invalid_params(
                "tools/call: arguments must be an object",
            ))
        }
    };
    if ctx.era.is_modern() {
        // Protocol-level shape of the MRTR fields, before any tool logic.
        mrtr::input_responses(params)?;
        mrtr::request_state(params)?;
    }
    // `is_valid` first: collecting errors costs allocations even when there are none.
    if let Some(v) = tool.validator.as_ref().filter(|v| !v.is_valid(args)) {
        let errors: Vec<String> = v
            .iter_errors(args)
            .take(5)
            .map(|e| {
                let path = e.instance_path().to_string();
                if path.is_empty() {
                    e.to_string()
                } else {
                    format!("{path}: {e}")
                }
            })
            .collect();
        if !errors.is_empty() {
            return Ok(catalog::http::tool_error(format!(
                "Invalid arguments for tool {name}: {}",
                errors.join("; ")
            )));
        }
    }
    match super::tasks::mode(tool.task_support, params, &ctx.era)? {
        super::tasks::Mode::Plain => run(core, name, args, params, ctx).await,
        super::tasks::Mode::Task { ttl_ms } => {
            super::tasks::call(core, name, args, params, ctx, ttl_ms).await
        }
    }
}

/// Call the tool's backend with arguments already validated.
pub async fn run(
    core: &Core,
    name: &str,
    args: &Value,
    params: &Value,
    ctx: &Ctx,
) -> Result<Value, RpcError> {
    let tool = core
        .catalog
        .tool(name)
        .ok_or_else(|| RpcError::invalid_params(format!("Unknown tool: {name}")))?;
    let structured = ctx.era.has_structured_output();
    match &tool.backend {
        Backend::Handler(h) => {
            h.call(ToolCall {
                name,
                args,
                params,
                ctx,
                server: core,
            })
            .await
        }
        Backend::Http(h) => Ok(h.call(args, structured).await),
        Backend::Command(c) => Ok(c.call(args, structured).await),
    }
}
