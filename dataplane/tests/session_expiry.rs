//! Saved sessions carry their last activity, and a pod that comes back on an old volume (a
//! claim retained across a scale-down, for weeks) does not bring dead sessions back: the real
//! binary, SIGKILLed and restarted on the same session directory, restores the session that was
//! recently active and drops the one whose last activity is past the idle timeout.

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::cluster::*;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The saved file, once it holds every id in `ids` (bounded wait: the snapshot runs each second).
async fn saved_with(file: &std::path::Path, ids: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(text) = std::fs::read_to_string(file) {
            if ids.iter().all(|id| text.contains(id)) {
                return serde_json::from_str(&text).unwrap();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} never held {ids:?}",
            file.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_an_old_volume_restores_live_sessions_only() {
    let mut node = three_static("session-expiry").remove(0);
    let peer = node.peer_addr();
    node.env("ERLMCP_PEERS", &peer);
    let dir = log_dir("session-expiry").join("n1-sessions");
    let _ = std::fs::remove_dir_all(&dir);
    node.spec.config = Some(format!(
        "sessionDir: {}\nmcp:\n  sessions: {{idleTimeoutSeconds: 600}}\n",
        dir.display()
    ));
    node.start();
    node.wait_ready(Duration::from_secs(20)).await;
    let addr = node.mcp();
    let stale = initialize(addr).await.unwrap();
    let fresh = initialize(addr).await.unwrap();

    let file = dir.join("sessions.json");
    let mut saved = saved_with(&file, &[&stale, &fresh]).await;
    let now = unix_now();
    for s in saved["sessions"].as_array().unwrap() {
        let at = s["lastActive"].as_u64().expect("lastActive saved");
        assert!(now.saturating_sub(60) <= at && at <= now + 1, "{s}");
    }

    // SIGKILL: no shutdown snapshot. Then age one session by two weeks, as a volume retained
    // across a long scale-down would hold it.
    node.kill();
    for s in saved["sessions"].as_array_mut().unwrap() {
        if s["id"] == stale.as_str() {
            s["lastActive"] = (now - 14 * 24 * 3600).into();
        }
    }
    std::fs::write(&file, serde_json::to_vec(&saved).unwrap()).unwrap();

    node.start();
    node.wait_ready(Duration::from_secs(20)).await;
    let r = echo_legacy(addr, &fresh, 1, "still here").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(result_text(&r.json()).as_deref(), Some("still here"));
    let r = echo_legacy(addr, &stale, 2, "gone?").await.unwrap();
    assert_eq!(
        r.status, 404,
        "an expired session is not restored: {}",
        r.body
    );
    node.kill();
    let _ = std::fs::remove_dir_all(&dir);
}
