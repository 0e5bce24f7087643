//! What `/readyz` and `/healthz` report: ready once the API server is discovered and every
//! running controller has finished the first LIST of its watch (a follower runs none, and is
//! ready once connected); not live when a controller stalled (its first sync never came, or its
//! stream ended while it should run), so the kubelet restarts the process.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a controller may take for its first sync before it counts as stalled.
pub const SYNC_DEADLINE: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
struct Scope {
    started: Instant,
    synced: bool,
    /// The controller stream ended without being asked to stop.
    ended: bool,
}

#[derive(Debug, Default)]
pub struct Health {
    discovered: AtomicBool,
    /// Running controllers by scope (a namespace, or "" for all).
    scopes: Mutex<BTreeMap<String, Scope>>,
}

impl Health {
    pub fn discovered(&self) {
        self.discovered.store(true, Ordering::Relaxed);
    }

    /// A controller for `scope` starts watching at `now`.
    pub fn controller_started(&self, scope: &str, now: Instant) {
        self.lock().insert(
            scope.to_string(),
            Scope {
                started: now,
                synced: false,
                ended: false,
            },
        );
    }

    /// Its watch delivered the first complete LIST.
    pub fn controller_synced(&self, scope: &str) {
        if let Some(s) = self.lock().get_mut(scope) {
            s.synced = true;
        }
    }

    /// Its stream ended: asked to (shutdown, leadership lost) or not (stalled).
    pub fn controller_stopped(&self, scope: &str, asked: bool) {
        let mut scopes = self.lock();
        if asked {
            scopes.remove(scope);
        } else if let Some(s) = scopes.get_mut(scope) {
            s.ended = true;
        }
    }

    /// Ready: discovered, and every running controller synced and still running.
    pub fn ready(&self) -> bool {
        self.discovered.load(Ordering::Relaxed)
            && self.lock().values().all(|s| s.synced && !s.ended)
    }

    /// Live unless a controller ended on its own or missed its first sync by `SYNC_DEADLINE`.
    pub fn live(&self, now: Instant) -> bool {
        self.lock().values().all(|s| {
            !s.ended && (s.synced || now.saturating_duration_since(s.started) < SYNC_DEADLINE)
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Scope>> {
        self.scopes.lock().expect("health lock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_waits_for_discovery_and_every_first_sync() {
        let h = Health::default();
        let t0 = Instant::now();
        assert!(!h.ready(), "not before discovery");
        h.discovered();
        assert!(h.ready(), "a follower runs no controller");
        h.controller_started("a", t0);
        h.controller_started("b", t0);
        h.controller_synced("a");
        assert!(!h.ready(), "b has not listed yet");
        h.controller_synced("b");
        assert!(h.ready());
        h.controller_stopped("a", true);
        assert!(h.ready() && h.live(t0), "a requested stop is fine");
    }

    #[test]
    fn a_stalled_controller_fails_liveness() {
        let h = Health::default();
        h.discovered();
        let t0 = Instant::now();
        h.controller_started("a", t0);
        assert!(h.live(t0 + Duration::from_secs(10)), "still listing");
        assert!(!h.live(t0 + SYNC_DEADLINE), "no first sync by the deadline");
        h.controller_synced("a");
        assert!(h.live(t0 + SYNC_DEADLINE));
        h.controller_stopped("a", false);
        assert!(
            !h.live(t0 + SYNC_DEADLINE) && !h.ready(),
            "ended on its own"
        );
    }
}
