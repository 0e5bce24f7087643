//! The multi-round (MRTR, `InputRequiredResult`) fixture tools: `test_input_required_result_*`.

use erlmcp_dataplane::catalog::handler::Server;
use erlmcp_dataplane::protocol::{self, context::Ctx, jsonrpc::RpcError};
use serde_json::{json, Map, Value};

use crate::ask::{
    ask_one, elicit, input_required, missing_cap, roots, sample, sampled_text, text, ASK_TIMEOUT,
};

/// The MRTR fixtures. On legacy revisions they ask the client directly.
pub async fn call(
    name: &str,
    params: &Value,
    server: &dyn Server,
    ctx: &Ctx,
) -> Result<Value, RpcError> {
    let responses: Map<String, Value> = protocol::mrtr::input_responses(params)?
        .cloned()
        .unwrap_or_default();
    let state = protocol::mrtr::request_state(params)?;
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
                    Some(
                        server
                            .state_key()
                            .sign(&bind, principal, json!({"round": 1})),
                    ),
                )),
                Some(s) => {
                    server.state_key().verify(s, &bind, principal)?;
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
                server.state_key().verify(s, &bind, principal)?;
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
                    Some(
                        server
                            .state_key()
                            .sign(&bind, principal, json!({"round": 1})),
                    ),
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
                Some(s) => server.state_key().verify(s, &bind, principal)?["round"]
                    .as_u64()
                    .unwrap_or(0),
            };
            match round {
                0 => Ok(input_required(
                    json!({"step1": step1}),
                    Some(
                        server
                            .state_key()
                            .sign(&bind, principal, json!({"round": 1})),
                    ),
                )),
                1 => match responses
                    .get("step1")
                    .and_then(|r| r.pointer("/content/name"))
                    .and_then(Value::as_str)
                {
                    Some(n) => Ok(input_required(
                        json!({"step2": step2}),
                        Some(server.state_key().sign(
                            &bind,
                            principal,
                            json!({"round": 2, "name": n}),
                        )),
                    )),
                    None => Ok(input_required(
                        json!({"step1": step1}),
                        state.map(str::to_string),
                    )),
                },
                _ => {
                    let st =
                        server
                            .state_key()
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
