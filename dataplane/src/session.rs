//! Legacy-revision sessions (2025-11-25 and older): negotiated version, client capabilities,
//! log level, resource subscriptions, pending server-to-client requests, and the SSE event
//! buffers that make `Last-Event-ID` resumption work. The registry is sharded (dashmap): no
//! global lock on the request path.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use crate::node::NodeIdentity;
use crate::observe::metrics::Metrics;
use crate::small_map::SmallMap;
use crate::wire::jsonrpc::{Id, RpcError};
use crate::wire::revision::Legacy;

/// Events kept per stream for resumption; older ones are dropped.
const MAX_EVENTS_PER_STREAM: usize = 1024;
/// Streams kept per session; the oldest finished one is evicted beyond this.
const MAX_STREAMS_PER_SESSION: usize = 64;
/// Live-delivery buffer per SSE connection: a client that falls this far behind is cut off
/// (it can resume from the buffer with `Last-Event-ID`).
pub const LIVE_BUFFER: usize = 256;

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

/// Our requests to one client (a legacy session or a connection) that await its answer.
#[derive(Default)]
pub struct ClientRequests {
    next_id: AtomicI64,
    pending: SmallMap<Id, oneshot::Sender<Result<Value, RpcError>>>,
}

impl ClientRequests {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
    /// A fresh request id and where its answer will arrive.
    pub fn register(&self) -> (Id, oneshot::Receiver<Result<Value, RpcError>>) {
        let id = Id::Str(format!(
            "srv-{}",
            self.next_id.fetch_add(1, Ordering::Relaxed)
        ));
        let (tx, rx) = oneshot::channel();
        self.pending.insert(id.clone(), tx);
        (id, rx)
    }
    /// Stop waiting for `id` (not sent, or timed out).
    pub fn forget(&self, id: &Id) {
        self.pending.remove(id);
    }
    /// A client's response to one of our requests. False if nobody waits for that id.
    pub fn complete(&self, id: &Id, result: Option<Value>, error: Option<Value>) -> bool {
        match self.pending.remove(id) {
            Some((_, tx)) => {
                let r = match (result, error) {
                    (Some(v), _) => Ok(v),
                    (None, Some(e)) => Err(RpcError::new(
                        e.get("code").and_then(Value::as_i64).unwrap_or(-32603) as i32,
                        e.get("message")
                            .and_then(Value::as_str)
                            .unwrap_or("client error")
                            .to_string(),
                    )),
                    (None, None) => Err(RpcError::internal("empty response")),
                };
                let _ = tx.send(r);
                true
            }
            None => false,
        }
    }
}

/// One SSE stream's buffered events.
struct StreamBuf {
    next_seq: u64,
    events: VecDeque<(u64, Arc<str>)>,
    live: Option<mpsc::Sender<(u64, Arc<str>)>>,
    done: bool,
}

#[derive(Default)]
pub struct EventStore {
    next_stream: u64,
    streams: HashMap<u64, StreamBuf>,
    order: VecDeque<u64>,
}

/// `<stream>-<seq>`: the SSE event id.
pub fn event_id(stream: u64, seq: u64) -> String {
    format!("{stream}-{seq}")
}

pub fn parse_event_id(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.trim().split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// What attaching to a stream yields: events to replay, then live ones.
pub struct Attached {
    pub replay: Vec<(u64, Arc<str>)>,
    pub live: Option<mpsc::Receiver<(u64, Arc<str>)>>,
}

impl EventStore {
    pub fn open(&mut self) -> u64 {
        self.next_stream += 1;
        let id = self.next_stream;
        self.streams.insert(
            id,
            StreamBuf {
                next_seq: 0,
                events: VecDeque::new(),
                live: None,
                done: false,
            },
        );
        self.order.push_back(id);
        while self.order.len() > MAX_STREAMS_PER_SESSION {
            if let Some(old) = self.order.pop_front() {
                self.streams.remove(&old);
            }
        }
        id
    }

    /// Append an event; deliver it live if a connection is attached and keeping up.
    pub fn push(&mut self, stream: u64, data: Arc<str>) -> Option<u64> {
        let s = self.streams.get_mut(&stream)?;
        let seq = s.next_seq;
        s.next_seq += 1;
        s.events.push_back((seq, data.clone()));
        if s.events.len() > MAX_EVENTS_PER_STREAM {
            s.events.pop_front();
        }
        if let Some(live) = &s.live {
            if live.try_send((seq, data)).is_err() {
                // Slow or gone: detach; the client resumes from the buffer.
                s.live = None;
            }
        }
        Some(seq)
    }

    /// No more events on this stream; live receivers end after draining.
    pub fn finish(&mut self, stream: u64) {
        if let Some(s) = self.streams.get_mut(&stream) {
            s.done = true;
            s.live = None;
        }
    }

    /// Detach the live connection (the server closes the HTTP response but keeps buffering).
    pub fn detach(&mut self, stream: u64) {
        if let Some(s) = self.streams.get_mut(&stream) {
            s.live = None;
        }
    }

    /// Attach a connection: events after `after` (all if None), then live delivery unless done.
    pub fn attach(&mut self, stream: u64, after: Option<u64>) -> Option<Attached> {
        let s = self.streams.get_mut(&stream)?;
        let replay: Vec<_> = s
            .events
            .iter()
            .filter(|(seq, _)| after.is_none_or(|a| *seq > a))
            .cloned()
            .collect();
        let live = if s.done {
            None
        } else {
            let (tx, rx) = mpsc::channel(LIVE_BUFFER);
            s.live = Some(tx);
            Some(rx)
        };
        Some(Attached { replay, live })
    }
}

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

    #[tokio::test]
    async fn event_store_replays_after_last_event_id() {
        let mut es = EventStore::default();
        let s = es.open();
        es.push(s, "a".into());
        es.push(s, "b".into());
        let at = es.attach(s, Some(0)).unwrap();
        assert_eq!(
            at.replay
                .iter()
                .map(|(_, d)| d.to_string())
                .collect::<Vec<_>>(),
            vec!["b"]
        );
        let mut live = at.live.unwrap();
        es.push(s, "c".into());
        assert_eq!(&*live.recv().await.unwrap().1, "c");
        es.finish(s);
        assert!(live.recv().await.is_none());
        assert_eq!(parse_event_id(&event_id(3, 9)), Some((3, 9)));
        assert!(es.attach(999, None).is_none());
    }
}
