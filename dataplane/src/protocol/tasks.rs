//! Tool calls as MCP Tasks and the `tasks/*` methods.
//!
//! A call to a task-supporting tool from a client that supports tasks runs the tool once in
//! place: an answer on that first poll (a quick result, or an `InputRequiredResult` of a
//! multi-round call that gathers input before the slow part) goes back as it is; a tool that
//! has to wait becomes a task, its runner spawned, and the client gets the task at once.
//! The runner answers the tool's later input requests by parking the task (`input_required`)
//! until `tasks/update` has answered them all, then calls the tool again with the answers.
//!
//! 2026-07-28 gates everything on the client declaring the extension in its per-request
//! capabilities; 2025-11-25 on the request's `task` parameter.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use erlmcp_crds::TaskSupport;
use futures::FutureExt;
use serde_json::{json, Map, Value};

use super::context::{Ctx, Era, Outbound};
use super::jsonrpc::{RpcError, MISSING_CLIENT_CAPABILITY};
use super::pagination::{cursor, page};
use super::revision::Legacy;
use super::{tools, Core};
use crate::tasks::{shape, Entry, Outcome, Status, EXTENSION};

/// How a `tools/call` is to run.
#[derive(Debug, PartialEq)]
pub enum Mode {
    Plain,
    /// As a task, with the TTL the client asked for (2025-11-25 `task.ttl`).
    Task {
        ttl_ms: Option<u64>,
    },
}

/// Whether this request's client supports tasks (the extension, or 2025-11-25's `task` param).
fn client_supports(params: &Value, era: &Era) -> bool {
    match era {
        Era::Modern(m) => m
            .client_capabilities
            .get("extensions")
            .and_then(|e| e.get(EXTENSION))
            .is_some_and(|v| !v.is_null()),
        Era::Legacy(s) => s.version == Legacy::V20251125 && params.get("task").is_some(),
    }
}

/// Decide how a call to a tool with `support` runs (pure; the errors are the specification's).
pub fn mode(support: TaskSupport, params: &Value, era: &Era) -> Result<Mode, RpcError> {
    let supports = client_supports(params, era);
    Ok(match (support, supports) {
        // A v1 `task` hint on a tool that never runs as a task is tolerated and ignored.
        (TaskSupport::Forbidden, _) | (TaskSupport::Optional, false) => Mode::Plain,
        (TaskSupport::Required, false) => return Err(required_error(era)),
        (_, true) => Mode::Task {
            ttl_ms: params.pointer("/task/ttl").and_then(Value::as_u64),
        },
    })
}

fn required_error(era: &Era) -> RpcError {
    if era.is_modern() {
        RpcError::new(
            MISSING_CLIENT_CAPABILITY,
            format!(
                "This tool runs only as a task: the client must declare the {EXTENSION} extension"
            ),
        )
        .with_data(json!({"requiredCapabilities": {"extensions": {EXTENSION: {}}}}))
        .with_status(400)
    } else {
        RpcError::method_not_found("tools/call").with_data(
            json!({"reason": "this tool requires task-augmented execution (params.task)"}),
        )
    }
}

/// Run a validated call as a task (see the module comment).
pub async fn call(
    core: &Core,
    name: &str,
    args: &Value,
    params: &Value,
    ctx: &Ctx,
    ttl_ms: Option<u64>,
) -> Result<Value, RpcError> {
    let shared = core
        .me
        .upgrade()
        .ok_or_else(|| RpcError::internal("tasks are unavailable in this server"))?;
    // The task outlives the request: nothing may go to the request's stream.
    let task_ctx = Ctx {
        out: Outbound::none(),
        progress_token: None,
        peer: None,
        ..ctx.clone()
    };
    let mut params = params.clone();
    if let Some(o) = params.as_object_mut() {
        o.remove("task");
    }
    let (tool, args2, ctx2) = (name.to_string(), args.clone(), task_ctx.clone());
    let core2 = shared.clone();
    let params2 = params.clone();
    let mut first: Run = Box::pin(async move {
        AssertUnwindSafe(tools::run(&core2, &tool, &args2, &params2, &ctx2))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(RpcError::internal("the tool panicked")))
    });
    if let std::task::Poll::Ready(r) = futures::poll!(first.as_mut()) {
        return r;
    }
    let client = client_of(ctx);
    let entry = core
        .tasks
        .create(core.node.new_session_id(), &client, name, ttl_ms)?;
    let record = entry.record();
    let runner = tokio::spawn(run(
        shared,
        entry.clone(),
        first,
        name.to_string(),
        args.clone(),
        params,
        task_ctx,
    ));
    entry.set_abort(runner.abort_handle());
    Ok(if ctx.era.is_modern() {
        shape::create_result(&record)
    } else {
        shape::legacy_create_result(&record)
    })
}

type Run = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, RpcError>> + Send>>;

/// Drive the tool to its end: park on its input requests, call it again with the answers.
async fn run(
    core: Arc<Core>,
    entry: Arc<Entry>,
    first: Run,
    name: String,
    args: Value,
    mut params: Value,
    ctx: Ctx,
) {
    let mut next: Run = first;
    // Every task ends by its TTL at the latest, even if nobody looks at the store.
    let rec = entry.record();
    let left = (rec.expires_ms() - crate::tasks::now_ms()).max(0) as u64;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(left);
    loop {
        let Ok(r) = tokio::time::timeout_at(deadline, next).await else {
            let e = RpcError::internal("the task ran past its TTL");
            return core.tasks.finish(&entry, Outcome::Error(e));
        };
        let v = match r {
            Err(e) => return core.tasks.finish(&entry, Outcome::Error(e)),
            Ok(v) if v.get("resultType").and_then(Value::as_str) != Some("input_required") => {
                return core.tasks.finish(&entry, Outcome::Result(v))
            }
            Ok(v) => v,
        };
        let requests = v
            .get("inputRequests")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let state = v
            .get("requestState")
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut changes = entry.subscribe();
        core.tasks.need_input(&entry, requests, state);
        let answered = loop {
            let r = entry.record();
            match r.status {
                Status::Working => break r,
                Status::InputRequired => {}
                _ => return,
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                _ => return core.tasks.cancel(&entry),
            }
        };
        if let Some(o) = params.as_object_mut() {
            o.insert("inputResponses".into(), Value::Object(answered.responses));
            match answered.request_state {
                Some(s) => o.insert("requestState".into(), json!(s)),
                None => o.remove("requestState"),
            };
        }
        let (c, n, a, p, x) = (
            core.clone(),
            name.clone(),
            args.clone(),
            params.clone(),
            ctx.clone(),
        );
        next = Box::pin(async move {
            AssertUnwindSafe(tools::run(&c, &n, &a, &p, &x))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Err(RpcError::internal("the tool panicked")))
        });
    }
}

/// Whose tasks a request may see: its principal, or the one unauthenticated bucket.
fn client_of(ctx: &Ctx) -> String {
    ctx.principal.as_deref().unwrap_or_default().to_string()
}

fn task_id(params: &Value) -> Result<&str, RpcError> {
    params
        .get("taskId")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("taskId is required"))
}

/// A task this client may see, or the specification's answer for an unknown or expired one.
fn find(core: &Core, params: &Value, ctx: &Ctx) -> Result<Arc<Entry>, RpcError> {
    let id = task_id(params)?;
    core.tasks
        .get(id, &client_of(ctx))
        .ok_or_else(|| RpcError::invalid_params(format!("Unknown or expired task: {id}")))
}

/// 2026-07-28 methods need the extension in the request's capabilities.
fn gate(ctx: &Ctx) -> Result<(), RpcError> {
    if ctx.era.is_modern() && !client_supports(&Value::Null, &ctx.era) {
        return Err(RpcError::new(
            MISSING_CLIENT_CAPABILITY,
            format!("tasks/* needs the {EXTENSION} extension in the client capabilities"),
        )
        .with_data(json!({"requiredCapabilities": {"extensions": {EXTENSION: {}}}}))
        .with_status(400));
    }
    Ok(())
}

/// Which `tasks/*` methods this era has.
pub fn has_method(method: &str, era: &Era) -> bool {
    match era {
        Era::Modern(_) => matches!(method, "tasks/get" | "tasks/update" | "tasks/cancel"),
        Era::Legacy(s) => {
            s.version == Legacy::V20251125
                && matches!(
                    method,
                    "tasks/get" | "tasks/result" | "tasks/cancel" | "tasks/list"
                )
        }
    }
}

pub async fn dispatch(
    core: &Core,
    method: &str,
    params: &Value,
    ctx: &Ctx,
) -> Result<Value, RpcError> {
    gate(ctx)?;
    let modern = ctx.era.is_modern();
    match method {
        "tasks/get" => {
            let r = find(core, params, ctx)?.record();
            Ok(if modern {
                shape::detailed(&r)
            } else {
                shape::legacy_task(&r)
            })
        }
        "tasks/update" => {
            let e = find(core, params, ctx)?;
            let responses: Map<String, Value> = match params.get("inputResponses") {
                Some(Value::Object(m)) => m.clone(),
                _ => {
                    return Err(RpcError::invalid_params(
                        "tasks/update: inputResponses must be an object",
                    ))
                }
            };
            core.tasks.answer(&e, &responses);
            Ok(json!({}))
        }
        "tasks/cancel" => {
            let e = find(core, params, ctx)?;
            if !modern && e.status().is_terminal() {
                return Err(RpcError::invalid_params(format!(
                    "Task {} is already {}",
                    e.id(),
                    e.status().as_str()
                )));
            }
            core.tasks.cancel(&e);
            Ok(if modern {
                json!({})
            } else {
                shape::legacy_task(&e.record())
            })
        }
        "tasks/result" => legacy_result(core, params, ctx).await,
        "tasks/list" => {
            let all = core.tasks.list(&client_of(ctx));
            let (items, next) =
                page(&all, cursor(params)?, core.page_size).map_err(RpcError::invalid_params)?;
            let mut r = json!({"tasks": items.iter().map(shape::legacy_task).collect::<Vec<_>>()});
            if let Some(n) = next {
                r["nextCursor"] = json!(n);
            }
            Ok(r)
        }
        m => Err(RpcError::method_not_found(m)),
    }
}

/// 2025-11-25 `tasks/result`: wait for the task to end (within the request timeout), then
/// its result, its error, or an error for a cancelled task.
async fn legacy_result(core: &Core, params: &Value, ctx: &Ctx) -> Result<Value, RpcError> {
    let e = find(core, params, ctx)?;
    let mut changes = e.subscribe();
    loop {
        let r = e.record();
        match r.status {
            Status::Completed => return Ok(shape::legacy_payload(&r)),
            Status::Failed => {
                let err = r.error.unwrap_or_default();
                let mut out = RpcError::new(
                    err["code"].as_i64().unwrap_or(-32603) as i32,
                    err["message"].as_str().unwrap_or("task failed").to_string(),
                );
                if let Some(d) = err.get("data") {
                    out = out.with_data(d.clone());
                }
                return Err(out);
            }
            Status::Cancelled => {
                return Err(RpcError::invalid_params(format!(
                    "Task {} was cancelled",
                    r.id
                )))
            }
            Status::Working | Status::InputRequired => {}
        }
        if changes.changed().await.is_err() {
            return Err(RpcError::internal("task vanished"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::ModernMeta;

    fn modern(caps: Value) -> Era {
        Era::Modern(Arc::new(ModernMeta {
            protocol_version: "2026-07-28".into(),
            client_capabilities: caps,
            log_level: None,
        }))
    }

    #[test]
    fn mode_follows_tool_support_and_client_capability() {
        let with = modern(json!({"extensions": {EXTENSION: {}}}));
        let without = modern(json!({}));
        let p = json!({"name": "t"});
        assert_eq!(
            mode(TaskSupport::Optional, &p, &with).unwrap(),
            Mode::Task { ttl_ms: None }
        );
        assert_eq!(
            mode(TaskSupport::Optional, &p, &without).unwrap(),
            Mode::Plain
        );
        assert_eq!(
            mode(TaskSupport::Forbidden, &p, &with).unwrap(),
            Mode::Plain
        );
        let e = mode(TaskSupport::Required, &p, &without).unwrap_err();
        assert_eq!(e.code, MISSING_CLIENT_CAPABILITY);
        assert!(e.to_value()["data"]["requiredCapabilities"]["extensions"][EXTENSION].is_object());
        // A v1 `task` hint never promotes a forbidden tool.
        let hinted = json!({"name": "t", "task": {"ttl": 1000}});
        assert_eq!(
            mode(TaskSupport::Forbidden, &hinted, &with).unwrap(),
            Mode::Plain
        );
    }

    #[test]
    fn the_modern_era_has_no_result_or_list_method() {
        let era = modern(json!({}));
        assert!(has_method("tasks/get", &era));
        assert!(!has_method("tasks/result", &era));
        assert!(!has_method("tasks/list", &era));
    }
}
