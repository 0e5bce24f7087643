//! [`SessionRegistry`]: all sessions of this node (sharded, no global lock), with the session
//! limit, the per-client-address cap ([`ClientSlot`]), idle expiry and restore after a restart.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use serde_json::Value;
use tokio::sync::watch;

use super::{ClientRequests, EventStore, Owner, Session};
use crate::node::NodeIdentity;
use crate::observe::metrics::Metrics;
use crate::small_map::SmallMap;
use crate::wire::revision::Legacy;

/// Why a session could not be created.
#[derive(Debug, PartialEq, Eq)]
pub enum CreateError {
    TooMany,
}

/// One client address's place in the session table, taken before `initialize` runs and handed
/// to the session by [`SessionRegistry::claim`]; dropped unclaimed, it gives the place back.
pub struct ClientSlot {
    counts: Arc<DashMap<IpAddr, usize>>,
    client: IpAddr,
    armed: bool,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if self.armed {
            release(&self.counts, self.client);
        }
    }
}

fn release(counts: &DashMap<IpAddr, usize>, client: IpAddr) {
    if let dashmap::Entry::Occupied(mut e) = counts.entry(client) {
        *e.get_mut() -= 1;
        if *e.get() == 0 {
            e.remove();
        }
    }
}

/// All sessions of this node.
pub struct SessionRegistry {
    sessions: DashMap<Arc<str>, Arc<Session>>,
    node: NodeIdentity,
    max_sessions: usize,
    idle_timeout: Duration,
    metrics: Arc<Metrics>,
    /// Open sessions per client address, so one client cannot take the whole table.
    per_client: Arc<DashMap<IpAddr, usize>>,
    max_per_client: usize,
}

impl SessionRegistry {
    pub fn new(
        node: NodeIdentity,
        max_sessions: usize,
        idle_timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            sessions: DashMap::new(),
            node,
            max_sessions,
            idle_timeout,
            metrics,
            per_client: Arc::new(DashMap::new()),
            max_per_client: usize::MAX,
        }
    }

    /// Cap the sessions one client address may hold open (`sessions.maxSessionsPerClient`).
    pub fn with_max_per_client(mut self, max: usize) -> Self {
        self.max_per_client = max;
        self
    }

    /// A place for one more session from `client`, or None when it holds its cap already.
    pub fn reserve_client(&self, client: IpAddr) -> Option<ClientSlot> {
        let mut n = self.per_client.entry(client).or_insert(0);
        if *n >= self.max_per_client {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            counts: self.per_client.clone(),
            client,
            armed: true,
        })
    }

    /// Bind a new session to the principal that opened it and to its client's slot.
    pub fn claim(&self, s: &Session, principal: Option<Arc<str>>, slot: Option<ClientSlot>) {
        let client = slot.map(|mut slot| {
            slot.armed = false;
            slot.client
        });
        if s.owner.set(Owner { principal, client }).is_err() {
            // Already claimed: a second claim must not count the client twice.
            if let Some(c) = client {
                release(&self.per_client, c);
            }
        }
    }

    /// Sessions open from `client`.
    pub fn client_sessions(&self, client: IpAddr) -> usize {
        self.per_client.get(&client).map(|n| *n).unwrap_or(0)
    }

    pub fn create(
        &self,
        version: Legacy,
        client_capabilities: Value,
        client_info: Value,
        transport: &'static str,
    ) -> Result<Arc<Session>, CreateError> {
        if self.sessions.len() >= self.max_sessions {
            return Err(CreateError::TooMany);
        }
        let epoch = Instant::now();
        let s = Arc::new(Session {
            id: self.node.new_session_id().into(),
            version,
            client_capabilities,
            client_info,
            log_level: AtomicU8::new(1),
            initialized: AtomicBool::new(false),
            subscriptions: SmallMap::new(),
            peer: ClientRequests::new(),
            in_flight: SmallMap::new(),
            events: Mutex::new(EventStore::default()),
            standalone: Mutex::new(None),
            transport,
            last_seen_ms: AtomicU64::new(0),
            epoch,
            closed: watch::channel(false).0,
            owner: std::sync::OnceLock::new(),
        });
        self.sessions.insert(s.id.clone(), s.clone());
        self.metrics.sessions_created.inc();
        self.metrics.sessions_active.set(self.sessions.len() as i64);
        Ok(s)
    }

    /// Sessions idle longer than this expire.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// Re-create a session under its old id (its owner restarted with the session volume), idle
    /// for as long as it was before: it expires when it would have had the pod not restarted.
    /// It answers to `principal` only, the one that opened it (None: opened without
    /// authentication). Refused for ids another node owns, ids already present, sessions
    /// already past the idle timeout, or beyond the session limit.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        &self,
        id: &str,
        version: Legacy,
        client_capabilities: Value,
        client_info: Value,
        transport: &'static str,
        idle: Duration,
        principal: Option<Arc<str>>,
    ) -> Option<Arc<Session>> {
        let now = Instant::now();
        // An Instant that far back may not exist (shortly after boot): count from now then.
        let epoch = now.checked_sub(idle).unwrap_or(now);
        if idle > self.idle_timeout
            || !self.owned_here(id)
            || crate::node::session_owner(id).is_none()
            || self.sessions.contains_key(id)
            || self.sessions.len() >= self.max_sessions
        {
            return None;
        }
        let s = Arc::new(Session {
            id: id.into(),
            version,
            client_capabilities,
            client_info,
            log_level: AtomicU8::new(1),
            initialized: AtomicBool::new(true),
            subscriptions: SmallMap::new(),
            peer: ClientRequests::new(),
            in_flight: SmallMap::new(),
            events: Mutex::new(EventStore::default()),
            standalone: Mutex::new(None),
            transport,
            last_seen_ms: AtomicU64::new(0),
            epoch,
            closed: watch::channel(false).0,
            owner: std::sync::OnceLock::from(Owner {
                principal,
                client: None,
            }),
        });
        self.sessions.insert(s.id.clone(), s.clone());
        self.metrics.sessions_active.set(self.sessions.len() as i64);
        Some(s)
    }

    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        let s = self.sessions.get(id)?.clone();
        if s.idle_for() > self.idle_timeout {
            self.remove(id);
            return None;
        }
        s.touch();
        Some(s)
    }

    pub fn remove(&self, id: &str) -> bool {
        match self.sessions.remove(id) {
            Some((_, s)) => {
                s.close();
                if let Some(c) = s.owner.get().and_then(|o| o.client) {
                    release(&self.per_client, c);
                }
                self.metrics.sessions_closed.inc();
                self.metrics.sessions_active.set(self.sessions.len() as i64);
                true
            }
            None => false,
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Sessions whose id names another node as owner (for the cluster's forwarding hook).
    pub fn owned_here(&self, id: &str) -> bool {
        crate::node::session_owner(id).is_none_or(|o| o == self.node.session_prefix)
    }

    /// Drop sessions idle longer than the timeout. Returns how many.
    pub fn reap(&self) -> usize {
        let expired: Vec<Arc<str>> = self
            .sessions
            .iter()
            .filter(|e| e.value().idle_for() > self.idle_timeout)
            .map(|e| e.key().clone())
            .collect();
        for id in &expired {
            self.remove(id);
        }
        expired.len()
    }

    pub fn close_all(&self) {
        let ids: Vec<Arc<str>> = self.sessions.iter().map(|e| e.key().clone()).collect();
        for id in ids {
            self.remove(&id);
        }
    }

    pub fn all(&self) -> Vec<Arc<Session>> {
        self.sessions.iter().map(|e| e.value().clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(max: usize, idle: Duration) -> SessionRegistry {
        SessionRegistry::new(
            NodeIdentity::new("erlmcp@n1"),
            max,
            idle,
            Arc::new(Metrics::new()),
        )
    }

    #[test]
    fn creates_limits_and_removes() {
        let r = reg(2, Duration::from_secs(60));
        let a = r
            .create(Legacy::LATEST, Value::Null, Value::Null, "http")
            .unwrap();
        assert!(a.id.starts_with("n1~"));
        r.create(Legacy::LATEST, Value::Null, Value::Null, "http")
            .unwrap();
        assert_eq!(
            r.create(Legacy::LATEST, Value::Null, Value::Null, "http")
                .err(),
            Some(CreateError::TooMany)
        );
        assert!(r.get(&a.id).is_some());
        assert!(r.remove(&a.id));
        assert!(a.is_closed());
        assert!(r.get(&a.id).is_none());
    }

    #[test]
    fn sessions_answer_to_their_principal_and_count_per_client() {
        let r = reg(10, Duration::from_secs(60)).with_max_per_client(2);
        let ip: IpAddr = "127.0.0.7".parse().unwrap();
        let other: IpAddr = "127.0.0.8".parse().unwrap();
        let open = |who: &str| {
            let slot = r.reserve_client(ip);
            let s = r
                .create(Legacy::LATEST, Value::Null, Value::Null, "http")
                .unwrap();
            r.claim(&s, Some(who.into()), slot);
            s
        };
        let a = open("alice");
        assert!(a.answers_to(Some("alice")));
        assert!(!a.answers_to(Some("bob")));
        assert!(!a.answers_to(None));
        open("alice");
        assert!(r.reserve_client(ip).is_none(), "the third from one address");
        assert!(
            r.reserve_client(other).is_some(),
            "other addresses are unaffected"
        );
        assert_eq!(
            r.client_sessions(other),
            0,
            "an unclaimed slot gives its place back"
        );
        r.remove(&a.id);
        assert_eq!(r.client_sessions(ip), 1);
        assert!(
            r.reserve_client(ip).is_some(),
            "a closed session frees its place"
        );
        let unclaimed = r
            .create(Legacy::LATEST, Value::Null, Value::Null, "http")
            .unwrap();
        assert!(unclaimed.answers_to(Some("anyone")));
    }

    #[test]
    fn idle_sessions_expire() {
        let r = reg(10, Duration::from_millis(0));
        let a = r
            .create(Legacy::LATEST, Value::Null, Value::Null, "http")
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(r.get(&a.id).is_none());
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn restored_sessions_keep_their_idle_time() {
        let r = reg(10, Duration::from_secs(60));
        let id = "n1~0123456789abcdef0123456789abcdef";
        let expired = r.restore(
            id,
            Legacy::LATEST,
            Value::Null,
            Value::Null,
            "http",
            Duration::from_secs(61),
            None,
        );
        assert!(expired.is_none(), "past the idle timeout: not restored");
        let s = r
            .restore(
                id,
                Legacy::LATEST,
                Value::Null,
                Value::Null,
                "http",
                Duration::from_secs(59),
                None,
            )
            .expect("within the idle timeout");
        assert!(
            s.idle_for() >= Duration::from_secs(59),
            "{:?}",
            s.idle_for()
        );
    }
}
