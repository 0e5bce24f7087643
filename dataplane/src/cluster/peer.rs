//! The peer channel and the membership view.
//!
//! Every node listens on the peer port and dials every discovered peer: one long-lived HTTP/2
//! connection per peer (TCP, or TLS with client certificates), authenticated by
//! [`super::auth`] before HTTP/2 starts. Over it:
//!
//! - `GET /peer/v1/ping`: the probe. The answer (name, incarnation, readiness, whether it is
//!   leaving, which members it reaches) is a heartbeat for the [`Detector`].
//! - `POST /peer/v1/leave`: "I am draining" (preStop / SIGTERM).
//! - `/peer/v1/fwd/<path>`: a client request for a session this node owns, replayed into the
//!   local MCP router; the response (SSE streams included) streams back over HTTP/2.
//!
//! Reachability is directional and direct: a node reports the peers it can probe itself, so a
//! cut link shows up on both of its ends (no indirect probes that would hide a partition).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use prometheus::{IntCounter, IntGauge};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use super::auth::{self, HandshakeError, Hello, PeerTls};
use super::detector::{Detector, Verdict};
use super::ClusterSettings;
use crate::node::{
    session_prefix_for, BoxFuture, ClusterView, ForwardError, Lifecycle, PeerInfo, SessionForwarder,
};
use crate::transport::Shared;

/// An HTTP/2 connection to a peer.
type PeerConn = SendRequest<Full<Bytes>>;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

const PING: &str = "/peer/v1/ping";
const LEAVE: &str = "/peer/v1/leave";
const FWD: &str = "/peer/v1/fwd";
/// Longest a starting node waits for its first membership round before turning ready.
const FIRST_ROUND: Duration = Duration::from_secs(5);
/// How long a forwarded request waits for an owner that is restarting (it answers 503 while
/// it drains) before the 503 is passed on.
const RESTART_WAIT: Duration = Duration::from_secs(20);
/// Marks a request that came over the peer channel (never forwarded again).
pub const FORWARDED_HEADER: &str = "x-erlmcp-forwarded-by";

/// A probe answer.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PingReply {
    pub name: String,
    pub member: String,
    pub incarnation: String,
    pub ready: bool,
    pub leaving: bool,
    pub sessions: usize,
    /// Members this node reaches.
    pub sees: Vec<String>,
}

struct SlotState {
    hello: Option<Hello>,
    detector: Detector,
    conn: Option<SendRequest<Full<Bytes>>>,
    last: Option<PingReply>,
    leaving: bool,
    verdict: Verdict,
    last_error: Option<String>,
    /// A first dial was attempted (readiness waits for the first round).
    attempted: bool,
}

/// One discovered peer address.
struct Slot {
    addr: String,
    st: Mutex<SlotState>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Slot {
    fn state(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.st.lock().expect("peer slot")
    }
}

/// A peer as summarised for views, status and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerSummary {
    pub addr: String,
    pub name: Option<String>,
    pub member: Option<String>,
    pub verdict: Verdict,
    pub leaving: bool,
    pub sees: Vec<String>,
}

/// This node's membership, the peer channel's both ends, and the session forwarder.
pub struct ClusterNode {
    pub settings: ClusterSettings,
    pub me: Hello,
    tls: Option<PeerTls>,
    slots: RwLock<BTreeMap<String, Arc<Slot>>>,
    self_addrs: Mutex<BTreeSet<String>>,
    /// Desired member count from the ErlmcpCluster (`spec.replicas`), or -1.
    replicas: AtomicI64,
    /// How many addresses discovery last returned (self included when it was listed).
    leaving: AtomicBool,
    /// Discovery has answered at least once.
    targets_seen: AtomicBool,
    lifecycle: Arc<Lifecycle>,
    app: OnceLock<(Router, Shared)>,
    changed: tokio::sync::watch::Sender<u64>,
    stop: tokio::sync::watch::Sender<bool>,
    pub partitioned: IntGauge,
    pub auth_refused: IntCounter,
    pub forwarded: IntCounter,
    pub forward_failed: IntCounter,
}

impl ClusterNode {
    pub fn new(settings: ClusterSettings, lifecycle: Arc<Lifecycle>) -> anyhow::Result<Arc<Self>> {
        let tls = match &settings.tls {
            Some((c, k, ca)) => Some(PeerTls::load(c, k, ca)?),
            None => None,
        };
        let me = Hello {
            name: settings.node_name.clone(),
            member: settings.member.clone(),
            incarnation: uuid::Uuid::new_v4().simple().to_string(),
        };
        Ok(Arc::new(Self {
            settings,
            me,
            tls,
            slots: RwLock::new(BTreeMap::new()),
            self_addrs: Mutex::new(BTreeSet::new()),
            replicas: AtomicI64::new(-1),
            leaving: AtomicBool::new(false),
            targets_seen: AtomicBool::new(false),
            lifecycle,
            app: OnceLock::new(),
            changed: tokio::sync::watch::channel(0).0,
            stop: tokio::sync::watch::channel(false).0,
            partitioned: IntGauge::new(
                "erlmcp_cluster_partitioned",
                "1 when this node reaches fewer cluster nodes than expected",
            )
            .expect("metric"),
            auth_refused: IntCounter::new(
                "erlmcp_cluster_peer_auth_failures_total",
                "Peer connections refused for failed authentication (cookie or certificate)",
            )
            .expect("metric"),
            forwarded: IntCounter::new(
                "erlmcp_cluster_forwarded_total",
                "Session requests forwarded to their owner node",
            )
            .expect("metric"),
            forward_failed: IntCounter::new(
                "erlmcp_cluster_forward_failures_total",
                "Session requests whose owner could not be reached",
            )
            .expect("metric"),
        }))
    }

    /// Bind the peer listener (before anything serves, like the other listeners).
    pub async fn bind(&self) -> anyhow::Result<TcpListener> {
        let addr = SocketAddr::new(self.settings.bind, self.settings.port);
        TcpListener::bind(addr).await.map_err(|e| {
            anyhow::anyhow!("cluster.port (ERLMCP_PEER_PORT): cannot listen on {addr}: {e}")
        })
    }

    /// Serve the peer channel, discover and probe peers, report status, persist sessions.
    pub fn start(self: &Arc<Self>, listener: TcpListener, router: Router, state: Shared) {
        let reg = &state.core.metrics.registry;
        for c in [
            Box::new(self.partitioned.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(self.auth_refused.clone()),
            Box::new(self.forwarded.clone()),
            Box::new(self.forward_failed.clone()),
        ] {
            let _ = reg.register(c);
        }
        let _ = self.app.set((router, state.clone()));
        // Not ready until the first membership round (see `readiness_gate`).
        self.lifecycle.set_ready(false);
        tokio::spawn(self.clone().accept_loop(listener));
        tokio::spawn(super::discovery::run(self.clone()));
        tokio::spawn(self.clone().evaluate_loop());
        tokio::spawn(self.clone().readiness_gate());
        if let Some(dir) = self.settings.session_dir.clone() {
            tokio::spawn(super::persist::run(self.clone(), dir, state.clone()));
        }
        if self.settings.report_status {
            tokio::spawn(super::status::run(self.clone(), state));
        }
        tracing::info!(node = %self.me.name, member = %self.me.member, port = self.settings.port, tls = self.tls.is_some(), cookie = self.settings.cookie.is_some(), "cluster peer channel up");
    }

    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    pub fn is_stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Stop every cluster task.
    pub fn stop(&self) {
        self.stop.send_replace(true);
        for s in self.slots.read().expect("slots").values() {
            if let Some(t) = s.task.lock().expect("task").take() {
                t.abort();
            }
        }
    }

    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn notify(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn set_replicas(&self, n: Option<i64>) {
        let old = self.replicas.swap(n.unwrap_or(-1), Ordering::Relaxed);
        if old != n.unwrap_or(-1) {
            self.notify();
        }
    }

    /// Mark this node as leaving; true the first time only.
    pub fn begin_leave(&self) -> bool {
        let first = !self.leaving.swap(true, Ordering::AcqRel);
        if first {
            self.notify();
        }
        first
    }

    pub fn is_leaving(&self) -> bool {
        self.leaving.load(Ordering::Relaxed)
    }

    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    pub fn sessions(&self) -> usize {
        self.app
            .get()
            .map(|(_, s)| s.core.sessions.len())
            .unwrap_or(0)
    }

    pub fn app_state(&self) -> Option<Shared> {
        self.app.get().map(|(_, s)| s.clone())
    }

    // ------------------------------------------------------------ membership

    /// Replace the discovered peer addresses (`host:port`).
    pub fn set_targets(self: &Arc<Self>, targets: Vec<String>) {
        if self.is_stopping() {
            return;
        }
        self.targets_seen.store(true, Ordering::Release);
        let own = self.self_addrs.lock().expect("self").clone();
        let want: BTreeSet<String> = targets.into_iter().filter(|a| !own.contains(a)).collect();
        let mut slots = self.slots.write().expect("slots");
        let mut changed = false;
        slots.retain(|addr, s| {
            let keep = want.contains(addr);
            if !keep {
                if let Some(t) = s.task.lock().expect("task").take() {
                    t.abort();
                }
                tracing::info!(peer = %addr, "peer left discovery");
                changed = true;
            }
            keep
        });
        for addr in want {
            if slots.contains_key(&addr) {
                continue;
            }
            let slot = Arc::new(Slot {
                addr: addr.clone(),
                st: Mutex::new(SlotState {
                    hello: None,
                    detector: Detector::new(self.settings.detector),
                    conn: None,
                    last: None,
                    leaving: false,
                    verdict: Verdict::Down,
                    last_error: None,
                    attempted: false,
                }),
                task: Mutex::new(None),
            });
            let task = tokio::spawn(self.clone().probe_loop(slot.clone()));
            *slot.task.lock().expect("task") = Some(task);
            tracing::info!(peer = %addr, "peer discovered");
            slots.insert(addr, slot);
            changed = true;
        }
        drop(slots);
        if changed {
            self.notify();
        }
    }

    fn mark_self(&self, addr: &str) {
        self.self_addrs
            .lock()
            .expect("self")
            .insert(addr.to_string());
        if let Some(s) = self.slots.write().expect("slots").remove(addr) {
            if let Some(t) = s.task.lock().expect("task").take() {
                t.abort();
            }
        }
        self.notify();
    }

    /// Every peer, best view per name (an address not yet identified counts once).
    pub fn summaries(&self) -> Vec<PeerSummary> {
        let now = Instant::now();
        let mut by_key: BTreeMap<String, PeerSummary> = BTreeMap::new();
        for s in self.slots.read().expect("slots").values() {
            let st = s.state();
            let verdict = if st.conn.is_some() || st.detector.last_heartbeat().is_some() {
                st.detector.verdict(now)
            } else {
                Verdict::Down
            };
            let sum = PeerSummary {
                addr: s.addr.clone(),
                name: st.hello.as_ref().map(|h| h.name.clone()),
                member: st.hello.as_ref().map(|h| h.member.clone()),
                verdict,
                leaving: st.leaving,
                sees: st.last.as_ref().map(|l| l.sees.clone()).unwrap_or_default(),
            };
            let key = sum.name.clone().unwrap_or_else(|| s.addr.clone());
            match by_key.get(&key) {
                Some(old) if rank(old.verdict) <= rank(sum.verdict) => {}
                _ => {
                    by_key.insert(key, sum);
                }
            }
        }
        by_key.into_values().collect()
    }

    /// Members this node reaches now (not itself).
    pub fn reachable_members(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .summaries()
            .into_iter()
            .filter(|p| p.verdict != Verdict::Down)
            .filter_map(|p| p.member)
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Expected size of the cluster, this node included.
    pub fn expected(&self) -> usize {
        let r = self.replicas.load(Ordering::Relaxed);
        if r >= 0 {
            return (r as usize).max(1);
        }
        1 + self.summaries().len()
    }

    /// Not ready until discovery answered and every peer was tried once (bounded by
    /// [`FIRST_ROUND`]): a fresh pod that cannot yet tell which peer owns a session would
    /// answer 404 for sessions that exist.
    async fn readiness_gate(self: Arc<Self>) {
        let t0 = Instant::now();
        loop {
            let done = self.targets_seen.load(Ordering::Acquire)
                && self
                    .slots
                    .read()
                    .expect("slots")
                    .values()
                    .all(|s| s.state().attempted);
            if done || t0.elapsed() > FIRST_ROUND {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !self.is_leaving() && !self.lifecycle.is_draining() {
            self.lifecycle.set_ready(true);
            tracing::info!(after_ms = t0.elapsed().as_millis() as u64, peers = ?self.reachable_members(), "ready (first membership round done)");
        }
    }

    async fn evaluate_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.settings.detector.interval / 2);
        let stop = self.stopped();
        tokio::pin!(stop);
        let mut last: Option<(Vec<String>, usize)> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = &mut stop => return,
            }
            let now = Instant::now();
            let mut flips = Vec::new();
            for s in self.slots.read().expect("slots").values() {
                let mut st = s.state();
                let v = if st.detector.last_heartbeat().is_some() {
                    st.detector.verdict(now)
                } else {
                    Verdict::Down
                };
                if v != st.verdict {
                    let name = st
                        .hello
                        .as_ref()
                        .map(|h| h.name.clone())
                        .unwrap_or_else(|| s.addr.clone());
                    flips.push((
                        name,
                        st.verdict,
                        v,
                        st.detector.phi(now),
                        st.last_error.clone(),
                    ));
                    st.verdict = v;
                }
            }
            for (name, from, to, phi, why) in flips {
                match to {
                    Verdict::Up => tracing::info!(peer = %name, ?from, "peer up"),
                    Verdict::Suspect => tracing::warn!(peer = %name, phi, "peer suspect"),
                    Verdict::Down => {
                        tracing::warn!(peer = %name, phi, error = ?why, "peer down")
                    }
                }
            }
            let reach = self.reachable_members();
            let expected = self.expected();
            let nodes = reach.len() + 1;
            self.partitioned.set(i64::from(nodes < expected));
            if let Some((_, s)) = self.app.get() {
                s.core.metrics.cluster_nodes.set(nodes as i64);
                s.core.metrics.cluster_nodes_expected.set(expected as i64);
            }
            let cur = (reach, expected);
            if last.as_ref() != Some(&cur) {
                if last.is_some() {
                    tracing::info!(reachable = ?cur.0, expected = cur.1, "cluster view changed");
                }
                last = Some(cur);
                self.notify();
            }
        }
    }

    // ------------------------------------------------------------ dialing and probing

    async fn dial(&self, addr: &str) -> Result<(Hello, SendRequest<Full<Bytes>>), HandshakeError> {
        let connect_timeout = self
            .settings
            .detector
            .interval
            .clamp(Duration::from_millis(200), Duration::from_secs(2));
        let tcp = tokio::time::timeout(connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| HandshakeError::Io("connect timed out".into()))?
            .map_err(|e| HandshakeError::Io(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let cookie = self.settings.cookie.as_deref();
        let fut = async {
            let mut io: Box<dyn Io> = match &self.tls {
                None => Box::new(tcp),
                Some(t) => {
                    let name = rustls::pki_types::ServerName::try_from(
                        addr.rsplit_once(':')
                            .map(|(h, _)| h)
                            .unwrap_or(addr)
                            .trim_matches(['[', ']'])
                            .to_string(),
                    )
                    .unwrap_or_else(|_| {
                        rustls::pki_types::ServerName::try_from("erlmcp-peer").expect("name")
                    });
                    let s = t.connector.connect(name, tcp).await.map_err(|e| {
                        if e.kind() == std::io::ErrorKind::InvalidData {
                            HandshakeError::Refused(format!("TLS: {e}"))
                        } else {
                            HandshakeError::Io(format!("TLS: {e}"))
                        }
                    })?;
                    Box::new(s)
                }
            };
            let hello = auth::connect(&mut io, &self.me, cookie).await?;
            Ok::<_, HandshakeError>((hello, io))
        };
        let (hello, io) = tokio::time::timeout(auth::HANDSHAKE_TIMEOUT, fut)
            .await
            .map_err(|_| HandshakeError::Io("handshake timed out".into()))??;
        let mut b = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
        b.timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(10))
            .initial_stream_window_size(1 << 20)
            .initial_connection_window_size(4 << 20);
        let (sender, conn) = b
            .handshake::<_, Full<Bytes>>(TokioIo::new(io))
            .await
            .map_err(|e| HandshakeError::Io(format!("http/2: {e}")))?;
        let peer = hello.name.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "peer connection closed");
            }
        });
        Ok((hello, sender))
    }

    async fn probe_loop(self: Arc<Self>, slot: Arc<Slot>) {
        let interval = self.settings.detector.interval;
        let mut refused_logged = false;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.is_stopping() {
                return;
            }
            let conn = {
                let st = slot.state();
                st.conn.clone().filter(|c| !c.is_closed())
            };
            let conn = match conn {
                Some(c) => c,
                None => match self.dial(&slot.addr).await.inspect_err(|_| {
                    slot.state().attempted = true;
                }) {
                    Ok((hello, sender)) => {
                        refused_logged = false;
                        let mut st = slot.state();
                        let restarted = st
                            .hello
                            .as_ref()
                            .is_some_and(|h| h.incarnation != hello.incarnation);
                        if restarted {
                            st.detector.reset();
                        }
                        tracing::info!(peer = %hello.name, addr = %slot.addr, restarted, "peer connected");
                        st.hello = Some(hello);
                        st.leaving = false;
                        st.conn = Some(sender.clone());
                        drop(st);
                        // The first ping below decides "up"; only then is the round done.
                        self.notify();
                        sender
                    }
                    Err(HandshakeError::SelfConnection) => {
                        tracing::debug!(addr = %slot.addr, "discovered address is this node");
                        self.mark_self(&slot.addr);
                        return;
                    }
                    Err(e) => {
                        if e.is_auth() {
                            self.auth_refused.inc();
                            if !refused_logged {
                                tracing::error!(addr = %slot.addr, error = %e, "peer refused: authentication failed");
                                refused_logged = true;
                            }
                        }
                        slot.state().last_error = Some(e.to_string());
                        continue;
                    }
                },
            };
            match self
                .ping(conn, interval.max(Duration::from_millis(300)))
                .await
            {
                Ok(reply) => {
                    let mut st = slot.state();
                    let now = Instant::now();
                    if st
                        .hello
                        .as_ref()
                        .is_some_and(|h| h.incarnation != reply.incarnation)
                    {
                        st.detector.reset();
                    }
                    st.detector.heartbeat(now);
                    st.attempted = true;
                    st.leaving = reply.leaving;
                    st.last_error = None;
                    let changed_view = st.last.as_ref().map(|l| (&l.sees, l.ready))
                        != Some((&reply.sees, reply.ready));
                    st.last = Some(reply);
                    drop(st);
                    if changed_view {
                        self.notify();
                    }
                }
                Err(e) => {
                    let mut st = slot.state();
                    st.conn = None;
                    st.attempted = true;
                    st.last_error = Some(e);
                }
            }
        }
    }

    async fn ping(
        &self,
        mut conn: SendRequest<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<PingReply, String> {
        let req = http::Request::get(PING)
            .body(Full::new(Bytes::new()))
            .expect("request");
        let fut = async {
            conn.ready().await.map_err(|e| e.to_string())?;
            let resp = conn.send_request(req).await.map_err(|e| e.to_string())?;
            if !resp.status().is_success() {
                return Err(format!("ping: HTTP {}", resp.status()));
            }
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            serde_json::from_slice::<PingReply>(&body).map_err(|e| e.to_string())
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| "ping timed out".to_string())?
    }

    fn ping_reply(&self) -> PingReply {
        PingReply {
            name: self.me.name.clone(),
            member: self.me.member.clone(),
            incarnation: self.me.incarnation.clone(),
            ready: self.lifecycle.is_ready(),
            leaving: self.is_leaving(),
            sessions: self.sessions(),
            sees: self.reachable_members(),
        }
    }

    /// Tell every connected peer we are leaving (bounded; best effort).
    pub async fn announce_leave(&self) {
        let conns: Vec<(String, SendRequest<Full<Bytes>>)> = self
            .slots
            .read()
            .expect("slots")
            .values()
            .filter_map(|s| s.state().conn.clone().map(|c| (s.addr.clone(), c)))
            .collect();
        let body = Bytes::from(serde_json::to_vec(&self.me).unwrap_or_default());
        let sends = conns.into_iter().map(|(addr, mut c)| {
            let body = body.clone();
            async move {
                let req = http::Request::post(LEAVE)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(body))
                    .expect("request");
                let r = tokio::time::timeout(Duration::from_secs(1), async {
                    c.ready().await?;
                    c.send_request(req).await
                })
                .await;
                if !matches!(r, Ok(Ok(_))) {
                    tracing::debug!(peer = %addr, "leave not acknowledged");
                }
            }
        });
        futures::future::join_all(sends).await;
        self.notify();
    }

    // ------------------------------------------------------------ serving

    async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        let stop = self.stopped();
        tokio::pin!(stop);
        loop {
            let (sock, remote) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "peer accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = &mut stop => return,
            };
            let _ = sock.set_nodelay(true);
            tokio::spawn(self.clone().serve_conn(sock, remote));
        }
    }

    async fn serve_conn(self: Arc<Self>, sock: TcpStream, remote: SocketAddr) {
        let cookie = self.settings.cookie.clone();
        let fut = async {
            let mut io: Box<dyn Io> = match &self.tls {
                None => Box::new(sock),
                Some(t) => Box::new(
                    t.acceptor
                        .accept(sock)
                        .await
                        .map_err(|e| HandshakeError::Refused(format!("TLS: {e}")))?,
                ),
            };
            let hello = auth::accept(&mut io, &self.me, cookie.as_deref()).await?;
            Ok::<_, HandshakeError>((hello, io))
        };
        let (hello, io) = match tokio::time::timeout(auth::HANDSHAKE_TIMEOUT, fut).await {
            Ok(Ok(x)) => x,
            Ok(Err(HandshakeError::SelfConnection)) => return,
            Ok(Err(e)) => {
                if e.is_auth() {
                    self.auth_refused.inc();
                    tracing::warn!(%remote, error = %e, "peer connection refused");
                }
                return;
            }
            Err(_) => {
                tracing::debug!(%remote, "peer handshake timed out");
                return;
            }
        };
        tracing::debug!(%remote, peer = %hello.name, "peer connection accepted");
        let node = self.clone();
        let hello = Arc::new(hello);
        let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let node = node.clone();
            let hello = hello.clone();
            async move { Ok::<_, std::convert::Infallible>(node.serve(req, &hello, remote).await) }
        });
        let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        b.timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(10))
            .max_concurrent_streams(4096)
            .initial_stream_window_size(1 << 20)
            .initial_connection_window_size(4 << 20);
        let conn = b.serve_connection(TokioIo::new(io), svc);
        let stop = self.stopped();
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => if let Err(e) = r { tracing::debug!(%remote, error = %e, "peer connection ended") },
            _ = stop => {}
        }
    }

    async fn serve(
        &self,
        req: http::Request<hyper::body::Incoming>,
        from: &Hello,
        remote: SocketAddr,
    ) -> http::Response<Body> {
        let path = req.uri().path().to_string();
        match (req.method().clone(), path.as_str()) {
            (http::Method::GET, PING) => json(200, &self.ping_reply()),
            (http::Method::POST, LEAVE) => {
                let mut hit = false;
                for s in self.slots.read().expect("slots").values() {
                    let mut st = s.state();
                    if st.hello.as_ref().is_some_and(|h| h.name == from.name) {
                        st.leaving = true;
                        hit = true;
                    }
                }
                tracing::info!(peer = %from.name, known = hit, "peer is leaving");
                self.notify();
                json(200, &serde_json::json!({"ok": true}))
            }
            (_, p) if p.starts_with(FWD) => {
                let Some((router, _)) = self.app.get() else {
                    return json(503, &serde_json::json!({"error": "starting"}));
                };
                let rest = req
                    .uri()
                    .path_and_query()
                    .map(|pq| pq.as_str()[FWD.len()..].to_string())
                    .unwrap_or_default();
                let (parts, body) = req.into_parts();
                let mut b = http::Request::builder()
                    .method(parts.method)
                    .uri(if rest.is_empty() {
                        "/mcp".to_string()
                    } else {
                        rest
                    });
                for (k, v) in &parts.headers {
                    b = b.header(k, v);
                }
                b = b.header(FORWARDED_HEADER, from.name.as_str());
                let Ok(mut r) = b.body(Body::new(body)) else {
                    return json(400, &serde_json::json!({"error": "bad forwarded request"}));
                };
                r.extensions_mut()
                    .insert(axum::extract::ConnectInfo(remote));
                match router.clone().oneshot(r).await {
                    Ok(resp) => strip_hop_by_hop_resp(resp),
                    Err(e) => match e {},
                }
            }
            _ => json(404, &serde_json::json!({"error": "not found"})),
        }
    }

    // ------------------------------------------------------------ forwarding

    /// The owner's slot (unless the detector says it is down) and its live connection, if any.
    fn owner_slot(&self, owner: &str) -> Option<(Arc<Slot>, Option<PeerConn>)> {
        let now = Instant::now();
        for s in self.slots.read().expect("slots").values() {
            let st = s.state();
            let Some(h) = &st.hello else { continue };
            if session_prefix_for(&h.name) != owner {
                continue;
            }
            if st.detector.verdict(now) == Verdict::Down {
                return None;
            }
            return Some((s.clone(), st.conn.clone().filter(|c| !c.is_closed())));
        }
        None
    }

    /// A live connection to the owner: the probe's, or a fresh one (the owner may have just
    /// restarted, faster than the detector could notice).
    async fn owner_conn(
        &self,
        owner: &str,
        fresh: bool,
    ) -> Option<(String, SendRequest<Full<Bytes>>)> {
        let (slot, conn) = self.owner_slot(owner)?;
        if let (Some(c), false) = (conn, fresh) {
            let name = slot.state().hello.as_ref().map(|h| h.name.clone())?;
            return Some((name, c));
        }
        let (hello, sender) = self.dial(&slot.addr).await.ok()?;
        if session_prefix_for(&hello.name) != owner {
            return None;
        }
        let mut st = slot.state();
        if st
            .hello
            .as_ref()
            .is_some_and(|h| h.incarnation != hello.incarnation)
        {
            st.detector.reset();
            st.detector.heartbeat(Instant::now());
        }
        st.hello = Some(hello.clone());
        st.conn = Some(sender.clone());
        Some((hello.name, sender))
    }

    async fn forward_to(
        &self,
        owner: String,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Body>, ForwardError> {
        let (parts, body) = request.into_parts();
        let pq = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/mcp".into());
        let make = || {
            let mut b = http::Request::builder()
                .method(parts.method.clone())
                .uri(format!("{FWD}{pq}"));
            for (k, v) in &parts.headers {
                if !is_hop_by_hop(k.as_str()) {
                    b = b.header(k, v);
                }
            }
            b.body(Full::new(body.clone()))
                .map_err(|e| ForwardError::Failed(e.to_string()))
        };
        // An owner that is shutting down refuses new work with 503 (nothing was done): its
        // sessions either come back with it (session volume) or are gone once it exits (404).
        // Wait for one or the other instead of passing the 503 on, within a bound.
        let deadline = Instant::now() + RESTART_WAIT;
        loop {
            let resp = self.forward_once(&owner, make()?).await?;
            if resp.status() != http::StatusCode::SERVICE_UNAVAILABLE || Instant::now() > deadline {
                return Ok(resp);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn forward_once(
        &self,
        owner: &str,
        req: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<Body>, ForwardError> {
        let Some((mut name, mut conn)) = self.owner_conn(owner, false).await else {
            self.forward_failed.inc();
            return Err(ForwardError::OwnerGone);
        };
        // A connection the owner closed (it restarted) fails before the request is sent: try
        // once more on a fresh one.
        if conn.ready().await.is_err() {
            match self.owner_conn(owner, true).await {
                Some(x) => (name, conn) = x,
                None => {
                    self.forward_failed.inc();
                    return Err(ForwardError::OwnerGone);
                }
            }
        }
        let timeout = self
            .app
            .get()
            .map(|(_, s)| s.core.request_timeout + Duration::from_secs(10))
            .unwrap_or(Duration::from_secs(60));
        let send = tokio::time::timeout(timeout, async {
            conn.ready().await?;
            conn.send_request(req).await
        });
        // If the detector declares the owner down meanwhile, stop waiting: nothing hangs on a
        // black-holed link.
        let down = async {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                if self.owner_slot(owner).is_none() {
                    return;
                }
            }
        };
        let sent = tokio::select! {
            r = send => r,
            _ = down => {
                self.forward_failed.inc();
                tracing::warn!(owner = %name, "the owner went down while a forwarded request waited");
                return Err(ForwardError::OwnerGone);
            }
        };
        match sent {
            Ok(Ok(resp)) => {
                self.forwarded.inc();
                let (parts, body) = resp.into_parts();
                Ok(strip_hop_by_hop_resp(http::Response::from_parts(
                    parts,
                    Body::new(body),
                )))
            }
            Ok(Err(e)) => {
                self.forward_failed.inc();
                tracing::warn!(owner = %name, error = %e, "forwarding failed; the owner is gone");
                Err(ForwardError::OwnerGone)
            }
            Err(_) => {
                self.forward_failed.inc();
                Err(ForwardError::Failed(format!(
                    "{name} did not answer within {}s",
                    timeout.as_secs()
                )))
            }
        }
    }
}

fn rank(v: Verdict) -> u8 {
    match v {
        Verdict::Up => 0,
        Verdict::Suspect => 1,
        Verdict::Down => 2,
    }
}

fn is_hop_by_hop(h: &str) -> bool {
    matches!(
        h,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "host"
            | "content-length"
    )
}

fn strip_hop_by_hop_resp(mut r: http::Response<Body>) -> http::Response<Body> {
    for h in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
    ] {
        r.headers_mut().remove(h);
    }
    r
}

fn json(status: u16, v: &impl Serialize) -> http::Response<Body> {
    let mut r = http::Response::new(Body::from(serde_json::to_vec(v).unwrap_or_default()));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn verdict_str(v: Verdict) -> &'static str {
    match v {
        Verdict::Up => "up",
        Verdict::Suspect => "suspect",
        Verdict::Down => "down",
    }
}

/// The cluster as the data plane sees it ([`ClusterView`]).
pub struct Handle(pub Arc<ClusterNode>);

impl ClusterView for Handle {
    fn peers(&self) -> Vec<PeerInfo> {
        self.0
            .summaries()
            .into_iter()
            .map(|p| PeerInfo {
                name: p.name.clone().unwrap_or_else(|| p.addr.clone()),
                address: p.addr,
                // A suspect peer still counts as reachable; only the detector's "down" removes it.
                state: match p.verdict {
                    Verdict::Down => "down".into(),
                    _ => "up".into(),
                },
                member: p.member,
                detector: Some(verdict_str(p.verdict).into()),
                leaving: p.leaving,
                sees: p.sees,
            })
            .collect()
    }

    fn expected_nodes(&self) -> usize {
        self.0.expected()
    }

    fn forwarder(&self) -> Option<Arc<dyn SessionForwarder>> {
        Some(Arc::new(Forwarder(self.0.clone())))
    }

    fn leave(&self) -> BoxFuture<'static, ()> {
        let node = self.0.clone();
        Box::pin(async move { super::drain::leave(&node).await })
    }
}

struct Forwarder(Arc<ClusterNode>);

impl SessionForwarder for Forwarder {
    fn forward(
        &self,
        owner: &str,
        request: http::Request<Bytes>,
    ) -> BoxFuture<'static, Result<http::Response<Body>, ForwardError>> {
        let node = self.0.clone();
        let owner = owner.to_string();
        Box::pin(async move { node.forward_to(owner, request).await })
    }
}
