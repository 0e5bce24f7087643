//! Dialing and probing: one HTTP/2 connection per peer, authenticated before HTTP/2 starts;
//! every answered ping is a heartbeat for the peer's detector.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::{ClusterNode, Io, PingReply, Slot, LEAVE, PING};
use crate::cluster::auth::{self, HandshakeError, Hello};

impl ClusterNode {
    pub(super) async fn dial(
        &self,
        addr: &str,
    ) -> Result<(Hello, SendRequest<Full<Bytes>>), HandshakeError> {
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
        let cookie = self.settings.cookie.as_ref();
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

    pub(super) async fn probe_loop(self: Arc<Self>, slot: Arc<Slot>) {
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
                            self.metrics.auth_refused.inc();
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
}
