//! Conformance fixtures (`erlmcp serve --fixtures`): the tools, resources and prompts the
//! official conformance suite calls, named as the SDKs' "everything" servers name them. They
//! are kept out of the default catalog. Where a fixture needs the client (sampling,
//! elicitation, roots), legacy revisions get a server-to-client request and the modern revision
//! gets an `InputRequiredResult` to retry with.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::{
    compile_schema, tool_def, Backend, Catalog, PromptBody, PromptEntry, ResourceBody,
    ResourceEntry, TemplateBody, TemplateEntry, ToolEntry,
};
use crate::protocol::context::Ctx;
use crate::protocol::jsonrpc::{RpcError, MISSING_CLIENT_CAPABILITY};
use crate::protocol::{mrtr, Core};

pub const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
pub const WAV_EMPTY: &str = "UklGRiQAAABXQVZFZm10IBAAAAABAAEARKwAAIhYAQACABAAZGF0YQAAAAA=";

/// Marker a tool sends on its outbound channel to make the transport close the response stream
/// early (SSE polling, SEP-1699); the result is delivered on resumption.
pub const CLOSE_STREAM: &str = "__erlmcp_close_stream";

const NO_ARGS: &str = r#"{"type":"object","properties":{}}"#;

fn no_args() -> Value {
    serde_json::from_str(NO_ARGS).expect("schema")
}

fn tool(name: &'static str, description: &str, input: Value) -> ToolEntry {
    let header_params = super::header_params(&input);
    ToolEntry {
        name: name.into(),
        def: tool_def(name, None, Some(description), &input, None, None),
        validator: compile_schema(&input).ok(),
        backend: Backend::Fixture(name),
        header_params,
    }
}

pub fn add(c: &mut Catalog) {
    let simple: &[(&'static str, &str)] = &[
        ("test_simple_text", "Returns simple text"),
        ("test_image_content", "Returns an image"),
        ("test_audio_content", "Returns audio"),
        ("test_embedded_resource", "Returns an embedded resource"),
        (
            "test_multiple_content_types",
            "Returns text, image and resource",
        ),
        (
            "test_tool_with_logging",
            "Logs three messages while running",
        ),
        ("test_tool_with_progress", "Reports progress while running"),
        ("test_error_handling", "Always fails with isError"),
        (
            "test_elicitation_sep1034_defaults",
            "Elicitation with defaults for every primitive type",
        ),
        (
            "test_elicitation_sep1330_enums",
            "Elicitation with every enum variant",
        ),
        (
            "test_reconnection",
            "Closes its SSE stream mid-call; the result arrives on resumption",
        ),
        (
            "test_missing_capability",
            "Needs the client's sampling capability",
        ),
        (
            "test_streaming_elicitation",
            "Streams a notification, then asks for input",
        ),
        ("test_logging_tool", "Logs when the request asks for logs"),
        ("test_trigger_tool_change", "Announces a tool list change"),
        (
            "test_trigger_prompt_change",
            "Announces a prompt list change",
        ),
        (
            "test_trigger_resource_update",
            "Announces an update of test://watched-resource",
        ),
        (
            "test_input_required_result_elicitation",
            "MRTR: asks for a name",
        ),
        (
            "test_input_required_result_sampling",
            "MRTR: asks for a sampling result",
        ),
        (
            "test_input_required_result_list_roots",
            "MRTR: asks for roots",
        ),
        (
            "test_input_required_result_request_state",
            "MRTR: round-trips requestState",
        ),
        (
            "test_input_required_result_multiple_inputs",
            "MRTR: three input requests at once",
        ),
        ("test_input_required_result_multi_round", "MRTR: two rounds"),
        (
            "test_input_required_result_tampered_state",
            "MRTR: rejects tampered state",
        ),
        (
            "test_input_required_result_capabilities",
            "MRTR: asks only for declared capabilities",
        ),
    ];
    for (n, d) in simple {
        c.add_tool(tool(n, d, no_args()));
    }
    c.add_tool(tool("test_sampling", "Asks the client's LLM", json!({"type": "object", "properties": {"prompt": {"type": "string"}}, "required": ["prompt"]})));
    c.add_tool(tool("test_elicitation", "Asks the user", json!({"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]})));
    c.add_tool(tool(
        "json_schema_2020_12_tool",
        "Tool with JSON Schema 2020-12 features",
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "$defs": {"address": {"$anchor": "addressDef", "type": "object", "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
            "properties": {
                "name": {"type": "string"},
                "address": {"$ref": "#/$defs/address"},
                "contactMethod": {"type": "string", "enum": ["phone", "email"]},
                "phone": {"type": "string"},
                "email": {"type": "string"}
            },
            "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
            "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
            "then": {"required": ["phone"]},
            "else": {"required": ["email"]},
            "additionalProperties": false
        }),
    ));
    c.add_tool(tool(
        "test_header_param",
        "Mirrors its region argument into the Mcp-Param-Region header",
        json!({"type": "object", "properties": {"region": {"type": "string", "x-mcp-header": "Region"}, "query": {"type": "string"}}, "required": ["region"]}),
    ));

    for (uri, name, mime, body) in [
        (
            "test://static-text",
            "static-text",
            "text/plain",
            ResourceBody::Text("This is the content of the static text resource.".into()),
        ),
        (
            "test://static-binary",
            "static-binary",
            "image/png",
            ResourceBody::Blob(PNG_1X1.into()),
        ),
        (
            "test://watched-resource",
            "watched-resource",
            "text/plain",
            ResourceBody::Text("Watched resource content".into()),
        ),
    ] {
        c.add_resource(ResourceEntry { def: json!({"uri": uri, "name": name, "description": format!("Fixture {name}"), "mimeType": mime}), uri: uri.into(), mime: mime.into(), body });
    }
    if c.template_for("test://template/1/data").is_none() {
        c.templates.push(TemplateEntry {
            def: json!({"uriTemplate": "test://template/{id}/data", "name": "template-data", "description": "Fixture template", "mimeType": "application/json"}),
            template: super::template::UriTemplate::parse("test://template/{id}/data").expect("template"),
            mime: "application/json".into(),
            body: TemplateBody::Text(r#"{"id":"{id}","templateTest":true,"data":"Data for ID: {id}"}"#.into()),
        });
    }

    let prompt = |name: &'static str,
                  description: &str,
                  args: &[(&str, bool)],
                  completions: &[(&str, &[&str])]| {
        let mut def = json!({"name": name, "description": description});
        if !args.is_empty() {
            def["arguments"] = Value::Array(args.iter().map(|(n, r)| json!({"name": n, "description": format!("Argument {n}"), "required": r})).collect());
        }
        PromptEntry {
            name: name.into(),
            def,
            required: args
                .iter()
                .filter(|(_, r)| *r)
                .map(|(n, _)| n.to_string())
                .collect(),
            completions: completions
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect::<HashMap<_, _>>(),
            body: PromptBody::Fixture(name),
        }
    };
    c.add_prompt(prompt(
        "test_simple_prompt",
        "A simple prompt without arguments",
        &[],
        &[],
    ));
    c.add_prompt(prompt(
        "test_prompt_with_arguments",
        "A prompt with arguments",
        &[("arg1", true), ("arg2", true)],
        &[
            ("arg1", &["paris", "park", "party"]),
            ("arg2", &["red", "green", "blue"]),
        ],
    ));
    c.add_prompt(prompt(
        "test_prompt_with_embedded_resource",
        "A prompt embedding a resource",
        &[("resourceUri", true)],
        &[],
    ));
    c.add_prompt(prompt(
        "test_prompt_with_image",
        "A prompt with an image",
        &[],
        &[],
    ));
    c.add_prompt(prompt(
        "test_input_required_result_prompt",
        "MRTR: a prompt that needs context",
        &[],
        &[],
    ));
}

fn text(t: impl Into<String>) -> Value {
    json!({"content": [{"type": "text", "text": t.into()}]})
}

fn missing_cap(cap: &str) -> RpcError {
    RpcError::new(
        MISSING_CLIENT_CAPABILITY,
        format!("This request needs the client capability {cap:?}"),
    )
    .with_data(json!({"requiredCapabilities": {cap: {}}}))
}

fn input_required(requests: Value, state: Option<String>) -> Value {
    let mut r = json!({"resultType": "input_required", "inputRequests": requests});
    if let Some(s) = state {
        r["requestState"] = json!(s);
    }
    r
}

fn elicit(message: &str, properties: Value, required: &[&str]) -> Value {
    json!({"method": "elicitation/create", "params": {"mode": "form", "message": message, "requestedSchema": {"type": "object", "properties": properties, "required": required}}})
}

fn sample(prompt: &str, max_tokens: u32) -> Value {
    json!({"method": "sampling/createMessage", "params": {"messages": [{"role": "user", "content": {"type": "text", "text": prompt}}], "maxTokens": max_tokens}})
}

fn roots() -> Value {
    json!({"method": "roots/list", "params": {}})
}

const ASK_TIMEOUT: Duration = Duration::from_secs(60);

/// Legacy: send the request to the client and wait. Modern: take it from `inputResponses`, or
/// return the `InputRequiredResult` that asks for it.
async fn ask_one(
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

fn sampled_text(v: &Value) -> String {
    v.pointer("/content/text")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

pub async fn call(
    name: &str,
    args: &Value,
    params: &Value,
    core: &Core,
    ctx: &Ctx,
) -> Result<Value, RpcError> {
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
            ctx.out.send(json!({ CLOSE_STREAM: true }));
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
            core.notify_list_changed("tools");
            text("Tool list change announced")
        }
        "test_trigger_prompt_change" => {
            core.notify_list_changed("prompts");
            text("Prompt list change announced")
        }
        "test_trigger_resource_update" => {
            core.notify_resource_updated("test://watched-resource");
            text("Resource update announced")
        }
        n if n.starts_with("test_input_required_result_") => {
            return mrtr_fixture(n, params, core, ctx).await
        }
        _ => return Err(RpcError::invalid_params(format!("Unknown tool: {name}"))),
    })
}

/// The MRTR fixtures. On legacy revisions they ask the client directly.
async fn mrtr_fixture(
    name: &str,
    params: &Value,
    core: &Core,
    ctx: &Ctx,
) -> Result<Value, RpcError> {
    let responses: Map<String, Value> = mrtr::input_responses(params)?.cloned().unwrap_or_default();
    let state = mrtr::request_state(params)?;
    let bind = format!("tools/call:{name}");
    let principal = ctx.principal.as_deref();
    let name_req = || {
        elicit(
            "What is your name?",
            json!({"name": {"type": "string"}}),
            &["name"],
        )
    };
    match name {
        "test_input_required_result_elicitation" => {
            match ask_one(ctx, params, "user_name", "elicitation", name_req()).await? {
                Ok(r) => {
                    let n = r.pointer("/content/name").and_then(Value::as_str).ok_or_else(|| RpcError::invalid_params("inputResponses.user_name: expected an accepted elicitation with content.name"))?;
                    Ok(text(format!("Hello, {n}!")))
                }
                Err(ir) => Ok(ir),
            }
        }
        "test_input_required_result_sampling" => match ask_one(
            ctx,
            params,
            "capital_question",
            "sampling",
            sample("What is the capital of France?", 100),
        )
        .await?
        {
            Ok(r) => Ok(text(format!("Sampling said: {}", sampled_text(&r)))),
            Err(ir) => Ok(ir),
        },
        "test_input_required_result_list_roots" => {
            match ask_one(ctx, params, "client_roots", "roots", roots()).await? {
                Ok(r) => {
                    let uris: Vec<&str> = r["roots"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|x| x["uri"].as_str()).collect())
                        .unwrap_or_default();
                    Ok(text(format!("Client roots: {}", uris.join(", "))))
                }
                Err(ir) => Ok(ir),
            }
        }
        "test_input_required_result_request_state"
        | "test_input_required_result_tampered_state" => {
            if !ctx.era.has_client_capability("elicitation") {
                return Err(missing_cap("elicitation"));
            }
            let confirm = elicit(
                "Please confirm",
                json!({"ok": {"type": "boolean"}}),
                &["ok"],
            );
            if !ctx.era.is_modern() {
                let r = ctx
                    .ask("elicitation/create", confirm["params"].clone(), ASK_TIMEOUT)
                    .await?;
                return Ok(text(format!(
                    "state-ok: {}",
                    r["action"].as_str().unwrap_or("?")
                )));
            }
            match state {
                None => Ok(input_required(
                    json!({"confirm": confirm}),
                    Some(core.state_key.sign(&bind, principal, json!({"round": 1}))),
                )),
                Some(s) => {
                    core.state_key.verify(s, &bind, principal)?;
                    match responses.get("confirm") {
                        Some(_) => Ok(text("state-ok: requestState verified")),
                        None => Ok(input_required(
                            json!({"confirm": confirm}),
                            Some(s.to_string()),
                        )),
                    }
                }
            }
        }
        "test_input_required_result_multiple_inputs" => {
            let reqs = json!({
                "user_name": name_req(),
                "greeting": sample("Generate a greeting", 50),
                "client_roots": roots()
            });
            for cap in ["elicitation", "sampling", "roots"] {
                if !ctx.era.has_client_capability(cap) {
                    return Err(missing_cap(cap));
                }
            }
            if !ctx.era.is_modern() {
                let n = ctx
                    .ask(
                        "elicitation/create",
                        reqs["user_name"]["params"].clone(),
                        ASK_TIMEOUT,
                    )
                    .await?;
                return Ok(text(format!("Got {}", n)));
            }
            if let Some(s) = state {
                core.state_key.verify(s, &bind, principal)?;
            }
            let missing: Map<String, Value> = reqs
                .as_object()
                .expect("object")
                .iter()
                .filter(|(k, _)| !responses.contains_key(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if missing.is_empty() {
                let n = responses["user_name"]
                    .pointer("/content/name")
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                Ok(text(format!("All inputs received for {n}")))
            } else {
                Ok(input_required(
                    Value::Object(missing),
                    Some(core.state_key.sign(&bind, principal, json!({"round": 1}))),
                ))
            }
        }
        "test_input_required_result_multi_round" => {
            if !ctx.era.has_client_capability("elicitation") {
                return Err(missing_cap("elicitation"));
            }
            let step1 = elicit(
                "Step 1: What is your name?",
                json!({"name": {"type": "string"}}),
                &["name"],
            );
            let step2 = elicit(
                "Step 2: What is your favorite color?",
                json!({"color": {"type": "string"}}),
                &["color"],
            );
            if !ctx.era.is_modern() {
                let a = ctx
                    .ask("elicitation/create", step1["params"].clone(), ASK_TIMEOUT)
                    .await?;
                let b = ctx
                    .ask("elicitation/create", step2["params"].clone(), ASK_TIMEOUT)
                    .await?;
                return Ok(text(format!("{a} {b}")));
            }
            let round = match state {
                None => 0,
                Some(s) => core.state_key.verify(s, &bind, principal)?["round"]
                    .as_u64()
                    .unwrap_or(0),
            };
            match round {
                0 => Ok(input_required(
                    json!({"step1": step1}),
                    Some(core.state_key.sign(&bind, principal, json!({"round": 1}))),
                )),
                1 => match responses
                    .get("step1")
                    .and_then(|r| r.pointer("/content/name"))
                    .and_then(Value::as_str)
                {
                    Some(n) => Ok(input_required(
                        json!({"step2": step2}),
                        Some(
                            core.state_key
                                .sign(&bind, principal, json!({"round": 2, "name": n})),
                        ),
                    )),
                    None => Ok(input_required(
                        json!({"step1": step1}),
                        state.map(str::to_string),
                    )),
                },
                _ => {
                    let st = core
                        .state_key
                        .verify(state.unwrap_or_default(), &bind, principal)?;
                    match responses
                        .get("step2")
                        .and_then(|r| r.pointer("/content/color"))
                        .and_then(Value::as_str)
                    {
                        Some(c) => Ok(text(format!(
                            "{} likes {c}",
                            st["name"].as_str().unwrap_or("?")
                        ))),
                        None => Ok(input_required(
                            json!({"step2": step2}),
                            state.map(str::to_string),
                        )),
                    }
                }
            }
        }
        "test_input_required_result_capabilities" => {
            let mut reqs = Map::new();
            if ctx.era.has_client_capability("sampling") {
                reqs.insert(
                    "capital_question".into(),
                    sample("What is the capital of France?", 100),
                );
            }
            if ctx.era.has_client_capability("elicitation") {
                reqs.insert("user_name".into(), name_req());
            }
            if ctx.era.has_client_capability("roots") {
                reqs.insert("client_roots".into(), roots());
            }
            if reqs.is_empty() {
                return Ok(text("The client declared no capability to ask with"));
            }
            if !ctx.era.is_modern() || reqs.keys().all(|k| responses.contains_key(k)) {
                return Ok(text("Capability-aware inputs complete"));
            }
            Ok(input_required(Value::Object(reqs), None))
        }
        _ => Err(RpcError::invalid_params(format!("Unknown tool: {name}"))),
    }
}

/// Fixture prompts.
pub async fn prompt(
    name: &str,
    args: &Map<String, Value>,
    params: &Value,
    ctx: &Ctx,
) -> Result<Value, RpcError> {
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
