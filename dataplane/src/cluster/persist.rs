//! Session records on the session volume (`sessionDir`), so a pod that restarts under the same
//! identity keeps its sessions. What the owner must keep is small: the id, the negotiated
//! revision, the client's capabilities and info, its log level and resource subscriptions.
//! In-flight requests and SSE buffers are not kept (a client resumes by re-sending).
//!
//! Each record carries the session's last activity (Unix seconds), so a volume kept for weeks
//! (a scaled-down pod's claim is retained) does not bring dead sessions back: on restore a
//! session past the idle timeout is dropped, and the others resume with the idle time they had.
//! Files written before that field existed count from the file's modification time.
//!
//! The file (`sessions.json`) is rewritten atomically (temp file + rename) when the set of
//! sessions or their subscriptions change, checked once a second; when only activity moved, at
//! most every [`ACTIVITY_WRITE_EVERY`]; and once more on shutdown.
//! Only Streamable HTTP sessions are kept: WebSocket, TCP and stdio sessions live and die
//! with their connection.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ClusterNode;
use crate::protocol::revision::Legacy;
use crate::session::SessionRegistry;
use crate::transport::Shared;

pub const FILE: &str = "sessions.json";
/// Activity alone rewrites the file at most this often: a restore's idle time can be this late.
pub const ACTIVITY_WRITE_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub id: String,
    pub version: String,
    #[serde(default)]
    pub client_capabilities: Value,
    #[serde(default)]
    pub client_info: Value,
    #[serde(default)]
    pub log_level: u8,
    #[serde(default)]
    pub subscriptions: Vec<String>,
    /// Last request of the session, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_active: Option<u64>,
    /// The authenticated principal that opened the session: after a restart it still answers
    /// to that principal only. A record without one answers to unauthenticated requests only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
}

impl Record {
    /// The same session state, whatever its activity.
    fn same_state(&self, other: &Record) -> bool {
        Record {
            last_active: None,
            ..self.clone()
        } == Record {
            last_active: None,
            ..other.clone()
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[derive(Debug, Serialize, Deserialize, Default)]
struct Snapshot {
    node: String,
    sessions: Vec<Record>,
}

pub fn snapshot(reg: &SessionRegistry) -> Vec<Record> {
    let now = unix_now();
    let mut v: Vec<Record> = reg
        .all()
        .into_iter()
        .filter(|s| s.transport == "http" && !s.is_closed())
        .map(|s| {
            let mut subs: Vec<String> = s.subscriptions.keys();
            subs.sort();
            Record {
                id: s.id.to_string(),
                version: s.version.as_str().to_string(),
                client_capabilities: s.client_capabilities.clone(),
                client_info: s.client_info.clone(),
                log_level: s.log_level.load(Ordering::Relaxed),
                subscriptions: subs,
                last_active: Some(now.saturating_sub(s.idle_for().as_secs())),
                principal: s.principal().map(str::to_string),
            }
        })
        .collect();
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

pub fn write(dir: &Path, node: &str, records: &[Record]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{FILE}.tmp"));
    let body = serde_json::to_vec(&Snapshot {
        node: node.to_string(),
        sessions: records.to_vec(),
    })
    .map_err(std::io::Error::other)?;
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, dir.join(FILE))
}

/// Whether two snapshots hold the same sessions in the same state, activity aside.
fn same_sessions(a: &[Record], b: &[Record]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_state(y))
}

/// Restore what the file holds; returns how many sessions came back. Sessions idle past the
/// registry's timeout are dropped.
pub fn restore(dir: &Path, node: &str, reg: &SessionRegistry) -> usize {
    let path = dir.join(FILE);
    let Ok(text) = std::fs::read(&path) else {
        return 0;
    };
    // Records from before `lastActive` existed were active at the latest when the file was written.
    let written = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let now = unix_now();
    let snap: Snapshot = match serde_json::from_slice(&text) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring unreadable session file");
            return 0;
        }
    };
    if snap.node != node {
        tracing::warn!(file_node = %snap.node, "session file belongs to another node; ignored");
        return 0;
    }
    let (mut n, mut expired) = (0, 0);
    for r in snap.sessions {
        let Some(v) = Legacy::parse(&r.version) else {
            continue;
        };
        let idle = Duration::from_secs(now.saturating_sub(r.last_active.unwrap_or(written)));
        if idle > reg.idle_timeout() {
            expired += 1;
            continue;
        }
        let principal = r.principal.map(Arc::from);
        if let Some(s) = reg.restore(
            &r.id,
            v,
            r.client_capabilities,
            r.client_info,
            "http",
            idle,
            principal,
        ) {
            s.log_level.store(r.log_level, Ordering::Relaxed);
            for u in r.subscriptions {
                s.subscriptions.insert(u, ());
            }
            n += 1;
        }
    }
    if expired > 0 {
        tracing::info!(
            sessions = expired,
            "saved sessions past the idle timeout were not restored"
        );
    }
    n
}

pub async fn run(node: Arc<ClusterNode>, dir: PathBuf, state: Shared) {
    let n = restore(&dir, &node.settings.node_name, &state.core.sessions);
    if n > 0 {
        tracing::info!(sessions = n, dir = %dir.display(), "sessions restored from the session volume");
    }
    let mut last = snapshot(&state.core.sessions);
    let mut written = Instant::now();
    let stop = node.stopped();
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut stop => return,
        }
        if state.core.lifecycle.is_draining() {
            // Shutdown closes every session; `flush` wrote the last good snapshot.
            return;
        }
        let cur = snapshot(&state.core.sessions);
        let changed = !same_sessions(&cur, &last);
        let activity_due = cur != last && written.elapsed() >= ACTIVITY_WRITE_EVERY;
        if changed || activity_due {
            if let Err(e) = write(&dir, &node.settings.node_name, &cur) {
                tracing::warn!(error = %e, dir = %dir.display(), "cannot write the session file");
            }
            last = cur;
            written = Instant::now();
        }
    }
}

/// The final write before shutdown closes the sessions.
pub fn flush(node: &ClusterNode) {
    let (Some(dir), Some(state)) = (&node.settings.session_dir, node.app_state()) else {
        return;
    };
    let cur = snapshot(&state.core.sessions);
    match write(dir, &node.settings.node_name, &cur) {
        Ok(()) => tracing::info!(sessions = cur.len(), "sessions saved to the session volume"),
        Err(e) => tracing::warn!(error = %e, "cannot write the session file"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeIdentity;
    use crate::observe::metrics::Metrics;

    fn reg(name: &str) -> SessionRegistry {
        SessionRegistry::new(
            NodeIdentity::new(name),
            100,
            Duration::from_secs(60),
            Arc::new(Metrics::new()),
        )
    }

    #[test]
    fn sessions_survive_a_restart_under_the_same_name() {
        let dir = std::env::temp_dir().join(format!("erlmcp-persist-{}", uuid::Uuid::new_v4()));
        let a = reg("erlmcp@n1");
        let s = a
            .create(
                Legacy::LATEST,
                serde_json::json!({"roots": {}}),
                serde_json::json!({"name": "c"}),
                "http",
            )
            .unwrap();
        s.subscriptions.insert("file:///x".into(), ());
        a.create(Legacy::LATEST, Value::Null, Value::Null, "websocket")
            .unwrap();
        let snap = snapshot(&a);
        assert_eq!(snap.len(), 1, "connection-bound sessions are not kept");
        write(&dir, "erlmcp@n1", &snap).unwrap();

        let b = reg("erlmcp@n1");
        assert_eq!(restore(&dir, "erlmcp@n1", &b), 1);
        let back = b.get(&s.id).expect("restored");
        assert_eq!(back.version, Legacy::LATEST);
        assert!(back.is_subscribed("file:///x"));
        assert_eq!(restore(&dir, "erlmcp@n1", &b), 0, "no duplicates");

        // Another node's file is not adopted.
        assert_eq!(restore(&dir, "erlmcp@n2", &reg("erlmcp@n2")), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn record(id: &str, last_active: Option<u64>) -> Record {
        Record {
            id: id.into(),
            version: Legacy::LATEST.as_str().into(),
            client_capabilities: Value::Null,
            client_info: Value::Null,
            log_level: 1,
            subscriptions: Vec::new(),
            last_active,
            principal: None,
        }
    }

    #[test]
    fn a_restored_session_answers_to_its_principal_only() {
        let dir = std::env::temp_dir().join(format!("erlmcp-persist-{}", uuid::Uuid::new_v4()));
        let a = reg("erlmcp@n1");
        let mine = a
            .create(Legacy::LATEST, Value::Null, Value::Null, "http")
            .unwrap();
        a.claim(&mine, Some("alice".into()), None);
        let open = a
            .create(Legacy::LATEST, Value::Null, Value::Null, "http")
            .unwrap();
        a.claim(&open, None, None);
        write(&dir, "erlmcp@n1", &snapshot(&a)).unwrap();

        let b = reg("erlmcp@n1");
        assert_eq!(restore(&dir, "erlmcp@n1", &b), 2);
        let back = b.get(&mine.id).expect("restored");
        assert!(back.answers_to(Some("alice")));
        assert!(!back.answers_to(Some("bob")), "another principal");
        assert!(!back.answers_to(None), "no principal");
        // Opened without authentication: it stays so.
        let back = b.get(&open.id).expect("restored");
        assert!(back.answers_to(None));
        assert!(!back.answers_to(Some("alice")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sessions_idle_past_the_timeout_are_not_restored() {
        let dir = std::env::temp_dir().join(format!("erlmcp-persist-{}", uuid::Uuid::new_v4()));
        let (fresh, stale) = (
            "n1~0123456789abcdef0123456789abcdef",
            "n1~fedcba9876543210fedcba9876543210",
        );
        let now = unix_now();
        write(
            &dir,
            "erlmcp@n1",
            &[
                record(fresh, Some(now - 10)),
                record(stale, Some(now - 3600 * 24 * 14)),
            ],
        )
        .unwrap();
        let b = reg("erlmcp@n1");
        assert_eq!(restore(&dir, "erlmcp@n1", &b), 1);
        assert!(b.get(stale).is_none(), "two weeks idle: expired");
        let back = b.all().pop().unwrap();
        assert_eq!(&*back.id, fresh);
        assert!(
            back.idle_for() >= Duration::from_secs(10),
            "keeps its idle time"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn files_without_activity_count_from_when_they_were_written() {
        let dir = std::env::temp_dir().join(format!("erlmcp-persist-{}", uuid::Uuid::new_v4()));
        let id = "n1~0123456789abcdef0123456789abcdef";
        write(&dir, "erlmcp@n1", &[record(id, None)]).unwrap();
        assert_eq!(
            restore(&dir, "erlmcp@n1", &reg("erlmcp@n1")),
            1,
            "just written"
        );
        let old = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(dir.join(FILE))
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(
            restore(&dir, "erlmcp@n1", &reg("erlmcp@n1")),
            0,
            "an hour old"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn activity_alone_is_not_a_change_of_state() {
        let a = [record("n1~a", Some(1))];
        let b = [record("n1~a", Some(2))];
        assert!(same_sessions(&a, &b));
        assert!(!same_sessions(&a, &[record("n1~b", Some(1))]));
        assert!(!same_sessions(&a, &[]));
    }
}
