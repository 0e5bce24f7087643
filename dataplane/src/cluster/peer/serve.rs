//! Serving the peer channel: accept and authenticate peer connections, then answer pings,
//! leave notices and forwarded session requests (replayed into the local MCP router).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use super::forward::strip_hop_by_hop_resp;
use super::{ClusterNode, Io, PingReply, FORWARDED_HEADER, FWD, LEAVE, PING};
use crate::cluster::auth::{self, HandshakeError, Hello};
use crate::transport::{ForwardedPrincipal, PRINCIPAL_HEADER};

impl ClusterNode {
    pub(super) async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
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
            let hello = auth::accept(&mut io, &self.me, cookie.as_ref()).await?;
            Ok::<_, HandshakeError>((hello, io))
        };
        let (hello, io) = match tokio::time::timeout(auth::HANDSHAKE_TIMEOUT, fut).await {
            Ok(Ok(x)) => x,
            Ok(Err(HandshakeError::SelfConnection)) => return,
            Ok(Err(e)) => {
                if e.is_auth() {
                    self.metrics.auth_refused.inc();
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
                    if k != PRINCIPAL_HEADER {
                        b = b.header(k, v);
                    }
                }
                b = b.header(FORWARDED_HEADER, from.name.as_str());
                let Ok(mut r) = b.body(Body::new(body)) else {
                    return json(400, &serde_json::json!({"error": "bad forwarded request"}));
                };
                r.extensions_mut()
                    .insert(axum::extract::ConnectInfo(remote));
                if let Some(p) = self.forwarded_principal(&parts.headers) {
                    r.extensions_mut().insert(p);
                }
                match router.clone().oneshot(r).await {
                    Ok(resp) => strip_hop_by_hop_resp(resp),
                    Err(e) => match e {},
                }
            }
            _ => json(404, &serde_json::json!({"error": "not found"})),
        }
    }

    /// The principal the entry node authenticated, believed only when the peer channel itself
    /// is authenticated (cookie or mutual TLS): on an open peer port anyone could claim one.
    /// Without it the owner authenticates the request itself.
    fn forwarded_principal(&self, headers: &http::HeaderMap) -> Option<ForwardedPrincipal> {
        if self.settings.cookie.is_none() && self.tls.is_none() {
            return None;
        }
        let raw = headers.get(PRINCIPAL_HEADER)?.to_str().ok()?;
        let p = String::from_utf8(hex::decode(raw).ok()?).ok()?;
        Some(ForwardedPrincipal(p))
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
