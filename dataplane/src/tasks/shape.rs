//! The wire objects of a task, per revision. 2026-07-28 (the Tasks extension, SEP-2663): a
//! flat `CreateTaskResult` (`resultType: "task"` beside the task's fields), a `DetailedTask`
//! on `tasks/get` with the result, error or input requests inlined, `ttlMs` and
//! `pollIntervalMs`. 2025-11-25 (experimental tasks): `{task: Task}` on creation, `ttl` and
//! `pollInterval`, the result fetched with `tasks/result`.

use chrono::{TimeZone, Utc};
use serde_json::{json, Map, Value};

use super::{Record, Status, POLL_INTERVAL_MS};

pub const RELATED_TASK: &str = "io.modelcontextprotocol/related-task";

fn iso(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_else(Utc::now)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn base(r: &Record, ttl_key: &str, poll_key: &str) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("taskId".into(), json!(r.id));
    o.insert("status".into(), json!(r.status.as_str()));
    o.insert("createdAt".into(), json!(iso(r.created_ms)));
    o.insert("lastUpdatedAt".into(), json!(iso(r.updated_ms)));
    o.insert(ttl_key.into(), json!(r.ttl_ms));
    if !r.status.is_terminal() {
        o.insert(poll_key.into(), json!(POLL_INTERVAL_MS));
    }
    if let Some(m) = &r.status_message {
        o.insert("statusMessage".into(), json!(m));
    }
    o
}

/// 2026-07-28 `CreateTaskResult`: the task's fields at the top level, nothing inlined.
pub fn create_result(r: &Record) -> Value {
    let mut o = base(r, "ttlMs", "pollIntervalMs");
    o.insert("resultType".into(), json!("task"));
    Value::Object(o)
}

/// 2026-07-28 `tasks/get`: the task, with its result (completed), error (failed) or pending
/// input requests (input_required).
pub fn detailed(r: &Record) -> Value {
    let mut o = base(r, "ttlMs", "pollIntervalMs");
    match r.status {
        Status::Completed => {
            if let Some(v) = &r.result {
                o.insert("result".into(), v.clone());
            }
        }
        Status::Failed => {
            if let Some(e) = &r.error {
                o.insert("error".into(), e.clone());
            }
        }
        Status::InputRequired => {
            o.insert(
                "inputRequests".into(),
                Value::Object(r.input_requests.clone()),
            );
        }
        Status::Working | Status::Cancelled => {}
    }
    Value::Object(o)
}

/// 2025-11-25 `Task`.
pub fn legacy_task(r: &Record) -> Value {
    Value::Object(base(r, "ttl", "pollInterval"))
}

/// 2025-11-25 `CreateTaskResult`.
pub fn legacy_create_result(r: &Record) -> Value {
    json!({"task": legacy_task(r)})
}

/// 2025-11-25 `tasks/result` of a completed task: the tool's result, tagged with its task.
pub fn legacy_payload(r: &Record) -> Value {
    let mut v = r.result.clone().unwrap_or_else(|| json!({"content": []}));
    if let Some(o) = v.as_object_mut() {
        let meta = o.entry("_meta").or_insert_with(|| json!({}));
        if let Some(m) = meta.as_object_mut() {
            m.insert(RELATED_TASK.into(), json!({"taskId": r.id}));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(status: Status) -> Record {
        Record {
            id: "n~1".into(),
            client: String::new(),
            tool: "t".into(),
            status,
            created_ms: 1_700_000_000_000,
            updated_ms: 1_700_000_000_500,
            ttl_ms: 60_000,
            status_message: None,
            result: Some(json!({"content": [{"type": "text", "text": "done"}]})),
            error: None,
            input_requests: Map::new(),
            responses: Map::new(),
            request_state: Some("secret".into()),
        }
    }

    #[test]
    fn create_result_is_flat_and_carries_no_payload() {
        let v = create_result(&rec(Status::Working));
        assert_eq!(v["resultType"], "task");
        assert_eq!(v["taskId"], "n~1");
        assert_eq!(v["createdAt"], "2023-11-14T22:13:20.000Z");
        assert_eq!(v["ttlMs"], 60_000);
        assert_eq!(v["pollIntervalMs"], POLL_INTERVAL_MS);
        for k in [
            "task",
            "result",
            "error",
            "inputRequests",
            "requestState",
            "ttl",
            "pollInterval",
        ] {
            assert!(v.get(k).is_none(), "{k} must be absent");
        }
    }

    #[test]
    fn detailed_inlines_by_status() {
        let done = detailed(&rec(Status::Completed));
        assert_eq!(done["result"]["content"][0]["text"], "done");
        assert!(done.get("pollIntervalMs").is_none());
        let mut f = rec(Status::Failed);
        f.result = None;
        f.error = Some(json!({"code": -32603, "message": "boom"}));
        let failed = detailed(&f);
        assert_eq!(failed["error"]["code"], -32603);
        assert!(failed.get("result").is_none());
        let mut w = rec(Status::InputRequired);
        w.input_requests
            .insert("k".into(), json!({"method": "elicitation/create"}));
        let waiting = detailed(&w);
        assert_eq!(
            waiting["inputRequests"]["k"]["method"],
            "elicitation/create"
        );
        assert!(waiting.get("result").is_none() && waiting.get("requestState").is_none());
    }

    #[test]
    fn legacy_shapes_use_the_old_names() {
        let v = legacy_create_result(&rec(Status::Working));
        assert_eq!(v["task"]["ttl"], 60_000);
        assert_eq!(v["task"]["pollInterval"], POLL_INTERVAL_MS);
        let p = legacy_payload(&rec(Status::Completed));
        assert_eq!(p["_meta"][RELATED_TASK]["taskId"], "n~1");
    }
}
