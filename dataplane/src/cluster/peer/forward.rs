//! Forwarding a session request to the node that owns the session, over the peer channel,
//! waiting (within bounds) for an owner that restarts and giving up on one that goes down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http2::SendRequest;

use tracing::Instrument;

use super::{ClusterNode, PeerConn, Slot, FWD, RESTART_WAIT};
use crate::cluster::detector::Verdict;
use crate::node::{session_prefix_for, BoxFuture, ForwardError, SessionForwarder};
use crate::observe::trace;

impl ClusterNode {
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
        // The owner's spans join this trace: the forwarded request carries our span's context.
        let span = trace::forward_span(&owner);
        let make = || {
            let mut b = http::Request::builder()
                .method(parts.method.clone())
                .uri(format!("{FWD}{pq}"));
            for (k, v) in &parts.headers {
                if !is_hop_by_hop(k.as_str()) {
                    b = b.header(k, v);
                }
            }
            let mut r = b
                .body(Full::new(body.clone()))
                .map_err(|e| ForwardError::Failed(e.to_string()))?;
            trace::inject(&span, r.headers_mut());
            Ok::<_, ForwardError>(r)
        };
        // An owner that is shutting down refuses new work with 503 (nothing was done): its
        // sessions either come back with it (session volume) or are gone once it exits (404).
        // Wait for one or the other instead of passing the 503 on, within a bound.
        let deadline = Instant::now() + RESTART_WAIT;
        async {
            loop {
                let resp = self.forward_once(&owner, make()?).await?;
                if resp.status() != http::StatusCode::SERVICE_UNAVAILABLE
                    || Instant::now() > deadline
                {
                    span.record("http.response.status_code", resp.status().as_u16());
                    return Ok::<_, ForwardError>(resp);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        .instrument(span.clone())
        .await
    }

    async fn forward_once(
        &self,
        owner: &str,
        req: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<Body>, ForwardError> {
        let Some((mut name, mut conn)) = self.owner_conn(owner, false).await else {
            self.metrics.forward_failed.inc();
            return Err(ForwardError::OwnerGone);
        };
        // A connection the owner closed (it restarted) fails before the request is sent: try
        // once more on a fresh one.
        if conn.ready().await.is_err() {
            match self.owner_conn(owner, true).await {
                Some(x) => (name, conn) = x,
                None => {
                    self.metrics.forward_failed.inc();
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
                self.metrics.forward_failed.inc();
                tracing::warn!(owner = %name, "the owner went down while a forwarded request waited");
                return Err(ForwardError::OwnerGone);
            }
        };
        match sent {
            Ok(Ok(resp)) => {
                self.metrics.forwarded.inc();
                let (parts, body) = resp.into_parts();
                Ok(strip_hop_by_hop_resp(http::Response::from_parts(
                    parts,
                    Body::new(body),
                )))
            }
            Ok(Err(e)) => {
                self.metrics.forward_failed.inc();
                tracing::warn!(owner = %name, error = %e, "forwarding failed; the owner is gone");
                Err(ForwardError::OwnerGone)
            }
            Err(_) => {
                self.metrics.forward_failed.inc();
                Err(ForwardError::Failed(format!(
                    "{name} did not answer within {}s",
                    timeout.as_secs()
                )))
            }
        }
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

pub(super) fn strip_hop_by_hop_resp(mut r: http::Response<Body>) -> http::Response<Body> {
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

pub(super) struct Forwarder(pub(super) Arc<ClusterNode>);

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
