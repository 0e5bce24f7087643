//! MCP Tasks: tool calls that answer with a handle at once and run on, polled with `tasks/get`,
//! answered with `tasks/update`, cancelled with `tasks/cancel`. This is the store (what a pod
//! keeps per task, bounded per client and by TTL); [`shape`] builds the wire objects of both
//! revisions, and `protocol::tasks` serves the methods and runs the tools.
//!
//! A task id names its owner the way a session id does (`<owner>~<uuid>`), so a pod that does
//! not hold a task knows where it lives.

pub mod persist;
pub mod shape;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::sync::watch;

use crate::observe::metrics::Metrics;
use crate::wire::jsonrpc::RpcError;

/// The extension's identifier (2026-07-28), under `capabilities.extensions`.
pub const EXTENSION: &str = "io.modelcontextprotocol/tasks";
/// How often clients are told to poll.
pub const POLL_INTERVAL_MS: u64 = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Working,
    InputRequired,
    Completed,
    Failed,
    Cancelled,
}

impl Status {
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Cancelled)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Working => "working",
            Status::InputRequired => "input_required",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }
}

/// What a pod knows about one task. Finished records are what survives a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub id: String,
    /// Whose task it is (the principal, or `""` without authentication).
    pub client: String,
    pub tool: String,
    pub status: Status,
    /// Milliseconds since the epoch.
    pub created_ms: i64,
    pub updated_ms: i64,
    pub ttl_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// The tool's result (`completed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The JSON-RPC error (`failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    /// Still-unanswered input requests (`input_required`), by server-minted key.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub input_requests: Map<String, Value>,
    /// Answers gathered so far for the current round.
    #[serde(skip)]
    pub responses: Map<String, Value>,
    /// The tool's `requestState` for the next round.
    #[serde(skip)]
    pub request_state: Option<String>,
}

impl Record {
    pub fn expires_ms(&self) -> i64 {
        self.created_ms.saturating_add(self.ttl_ms as i64)
    }
}

/// One stored task: its record, a change counter waiters watch, and the handle that stops
/// its runner.
pub struct Entry {
    rec: Mutex<Record>,
    changed: watch::Sender<u64>,
    abort: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Entry {
    fn new(rec: Record) -> Arc<Self> {
        Arc::new(Self {
            rec: Mutex::new(rec),
            changed: watch::channel(0).0,
            abort: Mutex::new(None),
        })
    }
    pub fn record(&self) -> Record {
        self.rec.lock().expect("task").clone()
    }
    pub fn status(&self) -> Status {
        self.rec.lock().expect("task").status
    }
    pub fn id(&self) -> String {
        self.rec.lock().expect("task").id.clone()
    }
    pub fn set_abort(&self, h: tokio::task::AbortHandle) {
        *self.abort.lock().expect("task") = Some(h);
    }
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
    /// Change the record (unless it is terminal already) and wake the waiters; false when
    /// the task had finished.
    fn update(&self, f: impl FnOnce(&mut Record)) -> bool {
        {
            let mut r = self.rec.lock().expect("task");
            if r.status.is_terminal() {
                return false;
            }
            f(&mut r);
            r.updated_ms = now_ms();
        }
        self.changed.send_modify(|v| *v += 1);
        true
    }
    fn stop(&self) {
        if let Some(h) = self.abort.lock().expect("task").take() {
            h.abort();
        }
    }
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Bounds, from `mcp.tasks`.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_per_client: usize,
    pub max_result_bytes: usize,
    pub ttl_ms: u64,
}

impl From<&erlmcp_crds::TasksSpec> for Limits {
    fn from(s: &erlmcp_crds::TasksSpec) -> Self {
        Self {
            max_per_client: s.max_per_client.max(1) as usize,
            max_result_bytes: s.max_result_bytes as usize,
            ttl_ms: s.ttl_seconds as u64 * 1000,
        }
    }
}

/// Outcome of a task's run.
pub enum Outcome {
    Result(Value),
    Error(RpcError),
}

pub struct TaskStore {
    tasks: Mutex<HashMap<String, Arc<Entry>>>,
    pub limits: Limits,
    metrics: Arc<Metrics>,
    /// Where finished tasks are kept across restarts (the session volume), if anywhere.
    dir: Option<PathBuf>,
}

impl TaskStore {
    pub fn new(limits: Limits, metrics: Arc<Metrics>, dir: Option<PathBuf>) -> Self {
        let s = Self {
            tasks: Mutex::new(HashMap::new()),
            limits,
            metrics,
            dir,
        };
        if let Some(d) = &s.dir {
            let now = now_ms();
            let mut t = s.tasks.lock().expect("tasks");
            for r in persist::load(d) {
                if r.expires_ms() > now && r.status.is_terminal() {
                    t.insert(r.id.clone(), Entry::new(r));
                } else {
                    persist::remove(d, &r.id);
                }
            }
        }
        s
    }

    /// Drop expired tasks (stopping any still running); the caller holds the map.
    fn sweep(&self, map: &mut HashMap<String, Arc<Entry>>) {
        let now = now_ms();
        let expired: Vec<String> = map
            .iter()
            .filter(|(_, e)| e.rec.lock().expect("task").expires_ms() <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for id in expired {
            if let Some(e) = map.remove(&id) {
                // Expiry ends a running task too; marking it first keeps a late finish out.
                if e.update(|r| r.status = Status::Cancelled) {
                    self.metrics.tasks_running.dec();
                }
                e.stop();
                if let Some(d) = &self.dir {
                    persist::remove(d, &id);
                }
            }
        }
    }

    /// Store a new `working` task for `client`. At the client's cap, its oldest finished task
    /// makes room; when all of them still run, the call is refused.
    pub fn create(
        &self,
        id: String,
        client: &str,
        tool: &str,
        ttl_ms: Option<u64>,
    ) -> Result<Arc<Entry>, RpcError> {
        let mut map = self.tasks.lock().expect("tasks");
        self.sweep(&mut map);
        let mine: Vec<(i64, String, bool)> = map
            .values()
            .filter_map(|e| {
                let r = e.rec.lock().expect("task");
                (r.client == client).then(|| (r.created_ms, r.id.clone(), r.status.is_terminal()))
            })
            .collect();
        if mine.len() >= self.limits.max_per_client {
            let oldest_done = mine
                .iter()
                .filter(|(_, _, done)| *done)
                .min_by_key(|(c, _, _)| *c);
            match oldest_done {
                Some((_, old, _)) => {
                    map.remove(old);
                    if let Some(d) = &self.dir {
                        persist::remove(d, old);
                    }
                }
                None => {
                    return Err(RpcError::internal(format!(
                        "Too many tasks for this client ({} running); retry later",
                        mine.len()
                    ))
                    .with_status(429))
                }
            }
        }
        let now = now_ms();
        let ttl_ms = ttl_ms
            .filter(|t| *t > 0)
            .map_or(self.limits.ttl_ms, |t| t.min(self.limits.ttl_ms));
        let e = Entry::new(Record {
            id: id.clone(),
            client: client.into(),
            tool: tool.into(),
            status: Status::Working,
            created_ms: now,
            updated_ms: now,
            ttl_ms,
            status_message: None,
            result: None,
            error: None,
            input_requests: Map::new(),
            responses: Map::new(),
            request_state: None,
        });
        map.insert(id, e.clone());
        self.metrics.tasks_created.inc();
        self.metrics.tasks_running.inc();
        Ok(e)
    }

    /// The task `id` if it exists, has not expired and belongs to `client`: anyone else's
    /// task is as unknown as a missing one.
    pub fn get(&self, id: &str, client: &str) -> Option<Arc<Entry>> {
        let mut map = self.tasks.lock().expect("tasks");
        self.sweep(&mut map);
        map.get(id)
            .filter(|e| e.rec.lock().expect("task").client == client)
            .cloned()
    }

    /// `client`'s tasks, oldest first.
    pub fn list(&self, client: &str) -> Vec<Record> {
        let mut map = self.tasks.lock().expect("tasks");
        self.sweep(&mut map);
        let mut v: Vec<Record> = map
            .values()
            .map(|e| e.record())
            .filter(|r| r.client == client)
            .collect();
        v.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        v
    }

    /// Finish a task with its tool's outcome (unless it was cancelled meanwhile). A result
    /// over the size bound fails the task instead.
    pub fn finish(&self, e: &Entry, outcome: Outcome) {
        let outcome = match outcome {
            Outcome::Result(v) => {
                let size = serde_json::to_vec(&v)
                    .map(|b| b.len())
                    .unwrap_or(usize::MAX);
                if size > self.limits.max_result_bytes {
                    Outcome::Error(RpcError::internal(format!(
                        "task result of {size} bytes exceeds the limit of {} bytes",
                        self.limits.max_result_bytes
                    )))
                } else {
                    Outcome::Result(v)
                }
            }
            o => o,
        };
        let failed = matches!(outcome, Outcome::Error(_));
        let done = e.update(|r| {
            r.input_requests.clear();
            r.responses.clear();
            r.request_state = None;
            match outcome {
                Outcome::Result(mut v) => {
                    if let Some(o) = v.as_object_mut() {
                        o.remove("resultType");
                    }
                    r.status = Status::Completed;
                    r.result = Some(v);
                }
                Outcome::Error(err) => {
                    r.status = Status::Failed;
                    r.status_message = Some(err.message.to_string());
                    r.error = Some(err.to_value());
                }
            }
        });
        if done {
            self.metrics.tasks_running.dec();
            if failed {
                self.metrics.tasks_failed.inc();
            } else {
                self.metrics.tasks_completed.inc();
            }
            self.keep(e);
        }
    }

    /// Cancel a task: a running one stops (its runner is dropped, which kills a command
    /// backend's process group); a finished one stays as it is. Either way the answer is
    /// the same acknowledgement.
    pub fn cancel(&self, e: &Entry) {
        let cancelled = e.update(|r| {
            r.status = Status::Cancelled;
            r.status_message = Some("cancelled by the client".into());
            r.input_requests.clear();
            r.responses.clear();
        });
        if cancelled {
            e.stop();
            self.metrics.tasks_running.dec();
            self.metrics.tasks_cancelled.inc();
            self.keep(e);
        }
    }

    /// Park a task on its tool's input requests.
    pub fn need_input(&self, e: &Entry, requests: Map<String, Value>, state: Option<String>) {
        e.update(|r| {
            r.status = Status::InputRequired;
            r.input_requests = requests;
            r.responses.clear();
            r.request_state = state;
        });
    }

    /// Record answers to pending input requests (keys nobody asked for are ignored). When
    /// none is pending any more the task is `working` again and the runner resumes.
    pub fn answer(&self, e: &Entry, responses: &Map<String, Value>) {
        e.update(|r| {
            for (k, v) in responses {
                if r.input_requests.remove(k).is_some() {
                    r.responses.insert(k.clone(), v.clone());
                }
            }
            if r.status == Status::InputRequired && r.input_requests.is_empty() {
                r.status = Status::Working;
            }
        });
    }

    fn keep(&self, e: &Entry) {
        if let Some(d) = &self.dir {
            persist::save(d, &e.record());
        }
    }

    /// Counts by status, for `cluster_status` and `/status`.
    pub fn summary(&self) -> Value {
        let mut map = self.tasks.lock().expect("tasks");
        self.sweep(&mut map);
        let mut counts: HashMap<&'static str, u64> = HashMap::new();
        for e in map.values() {
            *counts.entry(e.status().as_str()).or_default() += 1;
        }
        let n = |s: Status| counts.get(s.as_str()).copied().unwrap_or(0);
        json!({
            "stored": map.len(),
            "working": n(Status::Working),
            "inputRequired": n(Status::InputRequired),
            "completed": n(Status::Completed),
            "failed": n(Status::Failed),
            "cancelled": n(Status::Cancelled),
            "maxPerClient": self.limits.max_per_client,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(max: usize) -> TaskStore {
        TaskStore::new(
            Limits {
                max_per_client: max,
                max_result_bytes: 64,
                ttl_ms: 60_000,
            },
            Arc::new(Metrics::new()),
            None,
        )
    }

    #[test]
    fn tasks_belong_to_their_client_and_finish_once() {
        let s = store(10);
        let e = s.create("n~1".into(), "alice", "t", None).unwrap();
        assert!(s.get("n~1", "bob").is_none());
        assert_eq!(s.get("n~1", "alice").unwrap().status(), Status::Working);
        s.finish(
            &e,
            Outcome::Result(json!({"resultType": "complete", "content": []})),
        );
        let r = e.record();
        assert_eq!(r.status, Status::Completed);
        assert_eq!(r.result, Some(json!({"content": []})));
        // Cancelling a finished task changes nothing.
        s.cancel(&e);
        assert_eq!(e.status(), Status::Completed);
        assert_eq!(s.metrics.tasks_completed.get(), 1);
        assert_eq!(s.metrics.tasks_cancelled.get(), 0);
        assert_eq!(s.metrics.tasks_running.get(), 0);
    }

    #[test]
    fn an_oversized_result_fails_the_task() {
        let s = store(10);
        let e = s.create("n~1".into(), "", "t", None).unwrap();
        s.finish(
            &e,
            Outcome::Result(json!({"content": [{"type": "text", "text": "x".repeat(100)}]})),
        );
        let r = e.record();
        assert_eq!(r.status, Status::Failed);
        assert!(r.result.is_none());
        assert_eq!(r.error.unwrap()["code"], -32603);
    }

    #[test]
    fn the_cap_evicts_finished_tasks_and_refuses_when_all_run() {
        let s = store(2);
        let a = s.create("n~a".into(), "c", "t", None).unwrap();
        s.create("n~b".into(), "c", "t", None).unwrap();
        assert!(s.create("n~c".into(), "c", "t", None).is_err());
        // Another client has its own bucket.
        assert!(s.create("n~x".into(), "other", "t", None).is_ok());
        s.cancel(&a);
        s.create("n~c".into(), "c", "t", None).unwrap();
        let ids: Vec<String> = s.list("c").into_iter().map(|r| r.id).collect();
        assert_eq!(ids.len(), 2);
        assert!(!ids.contains(&"n~a".to_string()));
    }

    #[test]
    fn expired_tasks_are_gone() {
        let s = store(10);
        let e = s.create("n~1".into(), "", "t", Some(1)).unwrap();
        assert_eq!(e.record().ttl_ms, 1);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(s.get("n~1", "").is_none());
        assert_eq!(s.metrics.tasks_running.get(), 0);
    }

    #[test]
    fn partial_answers_keep_the_task_waiting() {
        let s = store(10);
        let e = s.create("n~1".into(), "", "t", None).unwrap();
        let mut reqs = Map::new();
        reqs.insert("a".into(), json!({"method": "elicitation/create"}));
        reqs.insert("b".into(), json!({"method": "elicitation/create"}));
        s.need_input(&e, reqs, None);
        let mut ans = Map::new();
        ans.insert("a".into(), json!({"action": "accept"}));
        ans.insert("zzz".into(), json!({"ignored": true}));
        s.answer(&e, &ans);
        let r = e.record();
        assert_eq!(r.status, Status::InputRequired);
        assert_eq!(r.input_requests.keys().collect::<Vec<_>>(), vec!["b"]);
        let mut ans = Map::new();
        ans.insert("b".into(), json!({"action": "accept"}));
        s.answer(&e, &ans);
        let r = e.record();
        assert_eq!(r.status, Status::Working);
        assert_eq!(r.responses.len(), 2);
    }
}
