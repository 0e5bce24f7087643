//! This node's identity, its view of the cluster, and its lifecycle state: the seams the
//! clustering module plugs into without touching transports.
//!
//! - [`NodeIdentity`] names the node and mints session ids that name their owner
//!   (`<owner>~<random>`), so any pod can tell which pod owns a session.
//! - [`ClusterView`] is what the data plane asks of the cluster: peers for `cluster_status` and
//!   `/status`, and a [`SessionForwarder`] for requests whose session lives on another node.
//! - [`Lifecycle`] is the readiness/draining state anyone can flip (SIGTERM, the cluster's
//!   failure detector, tests).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde::Serialize;

/// Separates the owner prefix from the random part of a session id.
pub const SESSION_OWNER_SEP: char = '~';

#[derive(Debug, Clone)]
pub struct NodeIdentity {
    /// Full node name (`ERLMCP_NODE_NAME`, e.g. `erlmcp@erlmcp-0`).
    pub name: String,
    /// Short, header-safe form used as the session id prefix (e.g. `erlmcp-0`).
    pub session_prefix: String,
}

impl NodeIdentity {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            session_prefix: session_prefix_for(name),
        }
    }

    /// A fresh session id owned by this node. Visible ASCII only (MCP requires 0x21-0x7E).
    pub fn new_session_id(&self) -> String {
        format!(
            "{}{}{}",
            self.session_prefix,
            SESSION_OWNER_SEP,
            uuid::Uuid::new_v4().simple()
        )
    }
}

/// The owner prefix of a session id, if it has one.
pub fn session_owner(session_id: &str) -> Option<&str> {
    session_id.split_once(SESSION_OWNER_SEP).map(|(p, _)| p)
}

/// `erlmcp@erlmcp-0.erlmcp-headless` → `erlmcp-0.erlmcp-headless`; characters outside
/// `[A-Za-z0-9.-]` dropped so the id stays a safe header value.
pub fn session_prefix_for(node_name: &str) -> String {
    let host = node_name
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(node_name);
    let s: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .take(63)
        .collect();
    if s.is_empty() {
        "node".into()
    } else {
        s
    }
}

/// A peer as this node sees it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PeerInfo {
    pub name: String,
    pub address: String,
    /// `up` or `down`, as the failure detector judges (a suspect peer is still `up`).
    pub state: String,
    /// Member (pod) name, once the peer has introduced itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// The detector's finer verdict: `up`, `suspect` or `down`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detector: Option<String>,
    /// The peer announced it is draining.
    #[serde(default)]
    pub leaving: bool,
    /// Members the peer itself reaches (its side of any split).
    #[serde(default)]
    pub sees: Vec<String>,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a request could not be forwarded to its session's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardError {
    /// The owner is not a reachable member (gone, down, unknown): the session is as good as
    /// expired, and the client gets the revision's answer for that (404) and re-initialises.
    OwnerGone,
    /// The owner is there but the exchange failed (e.g. timed out).
    Failed(String),
}

/// Forwards an HTTP request for a session owned by `owner` to that node and returns its
/// response, streamed (SSE included). Implemented by the cluster module; absent on a single
/// node.
pub trait SessionForwarder: Send + Sync {
    fn forward(
        &self,
        owner: &str,
        request: http::Request<Bytes>,
    ) -> BoxFuture<'static, Result<http::Response<axum::body::Body>, ForwardError>>;
}

/// What the data plane needs to know about the cluster.
pub trait ClusterView: Send + Sync {
    /// Peers other than this node.
    fn peers(&self) -> Vec<PeerInfo>;
    /// How many nodes the cluster should have (this one included).
    fn expected_nodes(&self) -> usize {
        1
    }
    /// Who forwards requests for sessions owned elsewhere, if anyone.
    fn forwarder(&self) -> Option<Arc<dyn SessionForwarder>> {
        None
    }
    /// Leave the cluster before draining (preStop `erlmcp drain`, SIGTERM): tell peers, give load
    /// balancers time to notice. Idempotent; a lone node has nothing to do.
    fn leave(&self) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

/// A node alone.
pub struct SingleNode;

impl ClusterView for SingleNode {
    fn peers(&self) -> Vec<PeerInfo> {
        Vec::new()
    }
}

/// Readiness and draining. Ready is false while starting and once draining begins.
pub struct Lifecycle {
    started: Instant,
    ready: AtomicBool,
    draining: tokio::sync::watch::Sender<bool>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

impl Lifecycle {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            ready: AtomicBool::new(false),
            draining: tokio::sync::watch::channel(false).0,
        }
    }
    pub fn uptime_seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.is_draining()
    }
    /// Start draining: not ready from now on; open streams are told to close.
    pub fn begin_drain(&self) {
        self.ready.store(false, Ordering::Release);
        self.draining.send_replace(true);
    }
    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }
    /// Resolves when draining starts (at once if it already has).
    pub fn drained(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.draining.subscribe();
        async move {
            let _ = rx.wait_for(|d| *d).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_name_their_owner() {
        let n = NodeIdentity::new("erlmcp@erlmcp-2.erlmcp-headless");
        let id = n.new_session_id();
        assert_eq!(session_owner(&id), Some("erlmcp-2.erlmcp-headless"));
        assert!(id.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        assert_eq!(session_prefix_for("we!rd name"), "werdname");
        assert_eq!(session_prefix_for("@@"), "node");
    }

    #[tokio::test]
    async fn drain_flips_readiness() {
        let l = Lifecycle::new();
        assert!(!l.is_ready());
        l.set_ready(true);
        assert!(l.is_ready());
        let waiter = l.drained();
        l.begin_drain();
        waiter.await;
        assert!(!l.is_ready() && l.is_draining());
    }
}
