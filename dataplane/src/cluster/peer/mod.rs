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
//!
//! `membership` keeps the view (discovered addresses, verdicts, readiness), `probe` dials and
//! pings the peers, `serve` answers them, `forward` sends session requests to their owner.

mod forward;
mod membership;
mod probe;
mod serve;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http2::SendRequest;
use prometheus::{IntCounter, IntGauge};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use super::auth::{Hello, PeerTls};
use super::detector::{Detector, Verdict};
use super::ClusterSettings;
use crate::node::{BoxFuture, ClusterView, Lifecycle, PeerInfo, SessionForwarder};
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

/// The peer channel's metrics, registered with the data plane's registry when it starts.
pub struct PeerMetrics {
    pub partitioned: IntGauge,
    pub auth_refused: IntCounter,
    pub forwarded: IntCounter,
    pub forward_failed: IntCounter,
}

impl PeerMetrics {
    fn new() -> Self {
        Self {
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
        }
    }

    fn register(&self, reg: &prometheus::Registry) {
        for c in [
            Box::new(self.partitioned.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(self.auth_refused.clone()),
            Box::new(self.forwarded.clone()),
            Box::new(self.forward_failed.clone()),
        ] {
            let _ = reg.register(c);
        }
    }
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
    /// This node is leaving the cluster (draining); its ping answers say so.
    leaving: AtomicBool,
    /// Discovery has answered at least once.
    targets_seen: AtomicBool,
    lifecycle: Arc<Lifecycle>,
    app: OnceLock<(Router, Shared)>,
    changed: tokio::sync::watch::Sender<u64>,
    stop: tokio::sync::watch::Sender<bool>,
    pub metrics: PeerMetrics,
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
            metrics: PeerMetrics::new(),
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
        self.metrics.register(&state.core.metrics.registry);
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
        Some(Arc::new(forward::Forwarder(self.0.clone())))
    }

    fn leave(&self) -> BoxFuture<'static, ()> {
        let node = self.0.clone();
        Box::pin(async move { super::drain::leave(&node).await })
    }
}
