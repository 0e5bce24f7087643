//! `resources/list`, `resources/templates/list`, `resources/read`, and the legacy
//! `resources/subscribe` / `resources/unsubscribe`.

use serde_json::{json, Value};

use super::context::{Ctx, Era};
use super::jsonrpc::{RpcError, RESOURCE_NOT_FOUND_LEGACY};
use super::pagination::{cursor, page};
use super::Core;
use crate::catalog::{template, ResourceBody, TemplateBody};

pub fn list(core: &Core, params: &Value) -> Result<Value, RpcError> {
    let (items, next) = page(&core.catalog.resources, cursor(params)?, core.page_size)
        .map_err(RpcError::invalid_params)?;
    let mut r = json!({"resources": items.iter().map(|x| x.def.clone()).collect::<Vec<_>>()});
    if let Some(n) = next {
        r["nextCursor"] = json!(n);
    }
    Ok(r)
}

pub fn templates(core: &Core, params: &Value) -> Result<Value, RpcError> {
    let (items, next) = page(&core.catalog.templates, cursor(params)?, core.page_size)
        .map_err(RpcError::invalid_params)?;
    let mut r =
        json!({"resourceTemplates": items.iter().map(|x| x.def.clone()).collect::<Vec<_>>()});
    if let Some(n) = next {
        r["nextCursor"] = json!(n);
    }
    Ok(r)
}

/// Not found: -32602 on the modern revision, -32002 on legacy ones; `data.uri` either way.
fn not_found(uri: &str, era: &Era) -> RpcError {
    let code = if era.is_modern() {
        super::jsonrpc::INVALID_PARAMS
    } else {
        RESOURCE_NOT_FOUND_LEGACY
    };
    RpcError::new(code, "Resource not found").with_data(json!({"uri": uri}))
}

pub fn exists(core: &Core, uri: &str) -> bool {
    core.catalog.resource(uri).is_some() || core.catalog.template_for(uri).is_some()
}

pub async fn read(core: &Core, params: &Value, ctx: &Ctx) -> Result<Value, RpcError> {
    let uri = params
        .get("uri")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("resources/read: uri is required"))?;
    if let Some(r) = core.catalog.resource(uri) {
        let content = match &r.body {
            ResourceBody::Text(t) => json!({"uri": uri, "mimeType": r.mime, "text": t}),
            ResourceBody::Blob(b) => json!({"uri": uri, "mimeType": r.mime, "blob": b}),
            ResourceBody::File(f) => match tokio::fs::read(f).await {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(t) => json!({"uri": uri, "mimeType": r.mime, "text": t}),
                    Err(e) => {
                        use base64::Engine;
                        json!({"uri": uri, "mimeType": r.mime, "blob": base64::engine::general_purpose::STANDARD.encode(e.into_bytes())})
                    }
                },
                Err(e) => {
                    return Err(RpcError::internal(format!(
                        "cannot read resource file: {e}"
                    )))
                }
            },
            ResourceBody::NodeStatus => {
                let mut v = json!({"contents": [{"uri": uri, "mimeType": r.mime, "text": serde_json::to_string_pretty(&core.node_status()).unwrap_or_default()}]});
                if ctx.era.is_modern() {
                    // Live data: do not cache.
                    v["ttlMs"] = json!(0);
                }
                return Ok(v);
            }
        };
        return Ok(json!({"contents": [content]}));
    }
    if let Some((t, vars)) = core.catalog.template_for(uri) {
        let TemplateBody::Text(text) = &t.body;
        return Ok(
            json!({"contents": [{"uri": uri, "mimeType": t.mime, "text": template::fill(text, &vars)}]}),
        );
    }
    Err(not_found(uri, &ctx.era))
}

pub fn subscribe(core: &Core, params: &Value, ctx: &Ctx, on: bool) -> Result<Value, RpcError> {
    let uri = params
        .get("uri")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("uri is required"))?;
    let Era::Legacy(s) = &ctx.era else {
        return Err(core.not_found("resources/subscribe", true));
    };
    if on {
        if !exists(core, uri) {
            return Err(not_found(uri, &ctx.era));
        }
        s.subscriptions.insert(uri.to_string(), ());
    } else {
        s.subscriptions.remove(uri);
    }
    Ok(json!({}))
}
