//! Finished tasks on the session volume (`<sessionDir>/tasks/`, one JSON file per task), so a
//! pod that restarts under the same identity still answers `tasks/get` with the result. A task
//! that was still running when the pod went away is not kept: its work is lost with the
//! process, and its id then answers as unknown, as the specification says for a task the
//! server no longer has.

use std::path::{Path, PathBuf};

use super::Record;

fn file_for(dir: &Path, id: &str) -> PathBuf {
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("{safe}.json"))
}

/// Write `r` atomically (temp file + rename); errors are logged, the task stays in memory.
pub fn save(dir: &Path, r: &Record) {
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let path = file_for(dir, &r.id);
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(r).map_err(std::io::Error::other)?)?;
        std::fs::rename(tmp, path)
    };
    if let Err(e) = write() {
        tracing::warn!(task = %r.id, dir = %dir.display(), "cannot keep the finished task: {e}");
    }
}

pub fn remove(dir: &Path, id: &str) {
    let _ = std::fs::remove_file(file_for(dir, id));
}

/// Every readable record in `dir` (unreadable files are skipped and logged).
pub fn load(dir: &Path) -> Vec<Record> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for f in rd.flatten() {
        let p = f.path();
        if p.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        match std::fs::read(&p).map(|b| serde_json::from_slice::<Record>(&b)) {
            Ok(Ok(r)) => out.push(r),
            _ => tracing::warn!(file = %p.display(), "skipping an unreadable task record"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{Record, Status};
    use super::*;
    use serde_json::{json, Map};

    #[test]
    fn records_round_trip_through_the_directory() {
        let dir = std::env::temp_dir().join(format!("erlmcp-tasks-{}", uuid::Uuid::new_v4()));
        let r = Record {
            id: "erlmcp-0~abc".into(),
            client: "alice".into(),
            tool: "slow".into(),
            status: Status::Completed,
            created_ms: 1,
            updated_ms: 2,
            ttl_ms: 3,
            status_message: None,
            result: Some(json!({"content": []})),
            error: None,
            input_requests: Map::new(),
            responses: Map::new(),
            request_state: None,
        };
        save(&dir, &r);
        assert_eq!(load(&dir), vec![r.clone()]);
        remove(&dir, &r.id);
        assert!(load(&dir).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
