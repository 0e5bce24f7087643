//! Session records on the session volume (`sessionDir`), so a pod that restarts under the same
//! identity keeps its sessions. What the owner must keep is small: the id, the negotiated
//! revision, the client's capabilities and info, its log level and resource subscriptions.
//! In-flight requests and SSE buffers are not kept (a client resumes by re-sending).
//!
//! The file (`sessions.json`) is rewritten atomically (temp file + rename) when the set of
//! sessions or their subscriptions change, checked once a second, and once more on shutdown.
//! Only Streamable HTTP sessions are kept: WebSocket, TCP and stdio sessions live and die
//! with their connection.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ClusterNode;
use crate::protocol::revision::Legacy;
use crate::session::SessionRegistry;
use crate::transport::Shared;

pub const FILE: &str = "sessions.json";

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
}

#[derive(Debug, Serialize, Deserialize, Default)]
struct Snapshot {
    node: String,
    sessions: Vec<Record>,
}

pub fn snapshot(reg: &SessionRegistry) -> Vec<Record> {
    let mut v: Vec<Record> = reg
        .all()
        .into_iter()
        .filter(|s| s.transport == "http" && !s.is_closed())
        .map(|s| {
            let mut subs: Vec<String> = s.subscriptions.iter().map(|e| e.key().clone()).collect();
            subs.sort();
            Record {
                id: s.id.to_string(),
                version: s.version.as_str().to_string(),
                client_capabilities: s.client_capabilities.clone(),
                client_info: s.client_info.clone(),
                log_level: s.log_level.load(Ordering::Relaxed),
                subscriptions: subs,
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

/// Restore what the file holds; returns how many sessions came back.
pub fn restore(dir: &Path, node: &str, reg: &SessionRegistry) -> usize {
    let Ok(text) = std::fs::read(dir.join(FILE)) else {
        return 0;
    };
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
    let mut n = 0;
    for r in snap.sessions {
        let Some(v) = Legacy::parse(&r.version) else {
            continue;
        };
        if let Some(s) = reg.restore(&r.id, v, r.client_capabilities, r.client_info, "http") {
            s.log_level.store(r.log_level, Ordering::Relaxed);
            for u in r.subscriptions {
                s.subscriptions.insert(u, ());
            }
            n += 1;
        }
    }
    n
}

pub async fn run(node: Arc<ClusterNode>, dir: PathBuf, state: Shared) {
    let n = restore(&dir, &node.settings.node_name, &state.core.sessions);
    if n > 0 {
        tracing::info!(sessions = n, dir = %dir.display(), "sessions restored from the session volume");
    }
    let mut last = snapshot(&state.core.sessions);
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
        if cur != last {
            if let Err(e) = write(&dir, &node.settings.node_name, &cur) {
                tracing::warn!(error = %e, dir = %dir.display(), "cannot write the session file");
            }
            last = cur;
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
}
