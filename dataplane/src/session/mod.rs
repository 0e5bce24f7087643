//! Legacy-revision sessions (2025-11-25 and older): negotiated version, client capabilities,
//! log level, resource subscriptions, pending server-to-client requests, and the SSE event
//! buffers that make `Last-Event-ID` resumption work. The registry is sharded (dashmap): no
//! global lock on the request path.
//!
//! This module holds the [`Session`] itself; `registry` the node's table of them
//! ([`SessionRegistry`]), `events` the SSE event buffers, `requests` the server-to-client
//! requests awaiting an answer.

mod events;
mod registry;
mod requests;

pub use events::{event_id, parse_event_id, Attached, EventStore, LIVE_BUFFER};
pub use registry::{ClientSlot, CreateError, SessionRegistry};
pub use requests::ClientRequests;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::watch;

use crate::small_map::SmallMap;
use crate::wire::jsonrpc::Id;
use crate::wire::revision::Legacy;

pub struct Session {
    pub id: Arc<str>,
    pub version: Legacy,
    pub client_capabilities: Value,
    pub client_info: Value,
    /// Threshold index into `LEVELS`; starts at `info`.
    pub log_level: AtomicU8,
    pub initialized: AtomicBool,
    pub subscriptions: SmallMap<String, ()>,
    /// Pending server-to-client requests (the field keeps its old name until the Streamable
    /// HTTP transport's split lands).
    pub peer: Arc<ClientRequests>,
    /// In-flight requests, so `notifications/cancelled` can abort them.
    pub in_flight: SmallMap<Id, futures::future::AbortHandle>,
    pub events: Mutex<EventStore>,
    /// The standalone GET stream's driver; a new GET replaces it.
    pub standalone: Mutex<Option<futures::future::AbortHandle>>,
    /// Transport that created the session.
    pub transport: &'static str,
    last_seen_ms: AtomicU64,
    epoch: Instant,
    closed: watch::Sender<bool>,
    /// Who opened it, once the transport has claimed it ([`SessionRegistry::claim`]).
    owner: std::sync::OnceLock<Owner>,
}

/// Who opened a session: the authenticated principal it answers to, and the client address
/// whose session count it adds to.
#[derive(Debug, Clone, Default)]
pub struct Owner {
    pub principal: Option<Arc<str>>,
    pub client: Option<IpAddr>,
}

impl Session {
    /// Whether a request authenticated as `principal` may use this session. A session no
    /// transport claimed yet answers to anyone; a restored one to the principal saved with it.
    pub fn answers_to(&self, principal: Option<&str>) -> bool {
        self.owner
            .get()
            .is_none_or(|o| o.principal.as_deref() == principal)
    }

    /// The principal the session answers to (None: unauthenticated, or not claimed yet).
    pub fn principal(&self) -> Option<&str> {
        self.owner.get().and_then(|o| o.principal.as_deref())
    }

    pub fn touch(&self) {
        self.last_seen_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    /// How long since the last request of this session.
    pub fn idle_for(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_seen_ms.load(Ordering::Relaxed)))
    }
    pub fn is_subscribed(&self, uri: &str) -> bool {
        self.subscriptions.contains_key(uri)
    }
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }
    /// Resolves when the session ends (DELETE, expiry, connection close, drain).
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.closed.subscribe();
        async move {
            let _ = rx.wait_for(|c| *c).await;
        }
    }
    fn close(&self) {
        self.closed.send_replace(true);
        self.in_flight.for_each_value(|h| h.abort());
        if let Some(h) = self.standalone.lock().expect("standalone lock").take() {
            h.abort();
        }
    }
}
