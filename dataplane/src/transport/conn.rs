//! The message-stream engine behind WebSocket, TCP, stdio and the legacy HTTP+SSE transport:
//! one connection carries many requests in both directions. Requests run concurrently; what
//! they emit (notifications, server-to-client requests, the response) is queued in order and
//! written by one pump with a write deadline, so a client that stops reading is cut off
//! instead of growing memory. At most `limits.maxInFlightPerConnection` requests run per
//! connection: the next frame is not taken (so the transport stops reading) until one ends.

use std::sync::{Arc, Mutex};

use crate::small_map::SmallMap;
use bytes::Bytes;
use futures::future::{AbortHandle, Abortable};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::limits::Limits;
use crate::protocol::context::{Ctx, Era, Outbound, OutboundItem};
use crate::protocol::jsonrpc::{self, Id, Message, Parsed, RpcError};
use crate::protocol::revision::META_PROTOCOL_VERSION;
use crate::protocol::subscriptions::Listener;
use crate::protocol::{lifecycle, Core};
use crate::session::{ClientRequests, Session};

pub struct Conn {
    core: Arc<Core>,
    transport: &'static str,
    tx: mpsc::UnboundedSender<OutboundItem>,
    session: Mutex<Option<Arc<Session>>>,
    peer: Arc<ClientRequests>,
    in_flight: SmallMap<Id, AbortHandle>,
    principal: Option<Arc<str>>,
    /// Global cap on requests in progress (they wait in line beyond it).
    limit: Arc<tokio::sync::Semaphore>,
    /// This connection's own cap on requests in progress.
    slots: Arc<tokio::sync::Semaphore>,
    /// Set when the client stopped reading (a write timed out): the transport closes.
    cut: Arc<tokio::sync::watch::Sender<bool>>,
    /// Room for responses between the handlers and the pump. A handler holds its slot until it
    /// gets a permit, the pump gives one back per message it hands on: without it a finished
    /// request freed its slot at once and a client that never reads grew the (unbounded)
    /// queue by a response per request (issue 12: 14 MiB to 700 MiB).
    backlog: Arc<tokio::sync::Semaphore>,
}

/// Responses that may wait for the pump, per connection.
const BACKLOG: usize = crate::session::LIVE_BUFFER;

impl Conn {
    /// A connection whose outgoing messages are written to `out` (bounded: the writer's pace).
    pub fn new(
        core: Arc<Core>,
        transport: &'static str,
        out: mpsc::Sender<Bytes>,
        principal: Option<String>,
        limits: &Limits,
    ) -> Arc<Self> {
        let (tx, mut rx) = mpsc::unbounded_channel::<OutboundItem>();
        let metrics = core.metrics.clone();
        let cut = Arc::new(tokio::sync::watch::Sender::new(false));
        let cut_pump = cut.clone();
        let write_timeout = limits.slow.write;
        let backlog = Arc::new(tokio::sync::Semaphore::new(BACKLOG));
        let backlog_pump = backlog.clone();
        tokio::spawn(async move {
            while let Some(item) = rx.recv().await {
                // A connection has no per-request stream to close.
                let OutboundItem::Message(v) = item else {
                    continue;
                };
                let bytes = Bytes::from(serde_json::to_vec(&v).unwrap_or_default());
                if out.send_timeout(bytes, write_timeout).await.is_err() {
                    tracing::debug!(transport, "client not reading or gone; closing");
                    cut_pump.send_replace(true);
                    break;
                }
                metrics.sent(transport, 1);
                // Never above BACKLOG: notifications take no permit but hand one back too.
                if backlog_pump.available_permits() < BACKLOG {
                    backlog_pump.add_permits(1);
                }
            }
        });
        core.connections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        core.metrics.connection(transport);
        Arc::new(Self {
            core,
            transport,
            tx,
            session: Mutex::new(None),
            peer: ClientRequests::new(),
            in_flight: SmallMap::new(),
            principal: principal.map(Into::into),
            limit: limits.in_flight.clone(),
            slots: Arc::new(tokio::sync::Semaphore::new(limits.per_connection)),
            cut,
            backlog,
        })
    }

    /// Resolves once the client has stopped reading (its output timed out).
    pub fn cut_off(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.cut.subscribe();
        async move {
            let _ = rx.wait_for(|c| *c).await;
        }
    }

    /// Use an existing legacy session (the HTTP+SSE transport creates it at `GET /sse`).
    pub fn bind_session(&self, s: Arc<Session>) {
        self.forward_events(s.clone());
        *self.session.lock().expect("session lock") = Some(s);
    }

    /// Change notifications (`list_changed`, `resources/updated` of subscribed URIs) reach the
    /// session over this connection, as the HTTP GET stream carries them, until the session or
    /// the connection ends. Each waits for room in the backlog like a response, so a client that
    /// does not read holds at most that many (the broadcast drops what it lags behind) until the
    /// pump's write timeout cuts it off.
    fn forward_events(&self, s: Arc<Session>) {
        let mut rx = self.core.events.subscribe();
        let tx = self.tx.clone();
        let backlog = self.backlog.clone();
        let closed = s.closed();
        let cut = self.cut_off();
        let drained = self.core.lifecycle.drained();
        tokio::spawn(async move {
            tokio::pin!(closed, cut, drained);
            loop {
                let ev = tokio::select! {
                    ev = rx.recv() => ev,
                    _ = &mut closed => break,
                    _ = &mut cut => break,
                    _ = &mut drained => break,
                };
                match ev {
                    Ok(ev) => {
                        if let Some(n) = crate::protocol::session_notification(&ev, &s) {
                            let room = tokio::select! {
                                r = backlog.acquire() => r,
                                _ = &mut cut => break,
                            };
                            if let Ok(room) = room {
                                room.forget();
                            }
                            if tx.send(OutboundItem::Message(n)).is_err() {
                                break;
                            }
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => break,
                }
            }
        });
    }

    pub fn session(&self) -> Option<Arc<Session>> {
        self.session.lock().expect("session lock").clone()
    }

    fn send(&self, v: Value) {
        let _ = self.tx.send(OutboundItem::Message(v));
    }

    fn send_error(&self, id: Option<&Id>, e: &RpcError) {
        if let Ok(v) = serde_json::from_slice(&jsonrpc::error_bytes(id, e)) {
            self.send(v);
        }
    }

    /// One inbound frame (a line, a WebSocket text message, a POST body).
    /// Waits while the connection is at its in-flight cap, which is what stops the reading.
    /// The principal that opened the connection (None: opened without authentication).
    pub fn principal(&self) -> Option<&str> {
        self.principal.as_deref()
    }

    pub async fn on_frame(self: &Arc<Self>, raw: &[u8]) {
        self.core.metrics.received(self.transport, 1);
        match jsonrpc::parse(raw) {
            Err(e) => self.send_error(None, &e),
            Ok(Parsed::Single(m)) => self.on_message(m).await,
            Ok(Parsed::Batch(items)) => {
                let allowed = self.session().is_some_and(|s| s.version.allows_batch());
                if !allowed {
                    self.send_error(
                        None,
                        &RpcError::invalid_request(
                            "Invalid Request: batches are not supported by this protocol version",
                        ),
                    );
                    return;
                }
                for m in items {
                    self.on_message(m).await;
                }
            }
        }
    }

    async fn on_message(self: &Arc<Self>, m: Result<Message, (Option<Id>, RpcError)>) {
        let msg = match m {
            Ok(m) => m,
            Err((id, e)) => return self.send_error(id.as_ref(), &e),
        };
        if msg.is_response() {
            if let Some(id) = &msg.id {
                let peer = self
                    .session()
                    .map(|s| s.peer.clone())
                    .unwrap_or_else(|| self.peer.clone());
                peer.complete(id, msg.result, msg.error);
            }
            return;
        }
        if msg.is_notification() {
            match msg.method() {
                "notifications/initialized" => {
                    if let Some(s) = self.session() {
                        s.initialized
                            .store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                "notifications/cancelled" => {
                    if let Some(id) = msg
                        .params
                        .as_ref()
                        .and_then(|p| p.get("requestId"))
                        .and_then(|v| serde_json::from_value::<Id>(v.clone()).ok())
                    {
                        if let Some((_, h)) = self.in_flight.remove(&id) {
                            h.abort();
                        }
                        if let Some(s) = self.session() {
                            if let Some((_, h)) = s.in_flight.remove(&id) {
                                h.abort();
                            }
                        }
                    }
                }
                _ => {}
            }
            return;
        }
        let id = msg.id.clone().expect("request has id");
        let modern = msg
            .meta()
            .is_some_and(|m| m.contains_key(META_PROTOCOL_VERSION));
        let era =
            if modern {
                match lifecycle::modern_meta(&msg, None) {
                    Ok(meta) => Era::Modern(Arc::new(meta)),
                    Err(e) => return self.send_error(Some(&id), &e),
                }
            } else if msg.method() == "initialize" {
                if self.session().is_some() {
                    return self
                        .send_error(Some(&id), &RpcError::invalid_request("Already initialized"));
                }
                match lifecycle::initialize(&self.core, &msg, self.transport) {
                    Ok((s, result)) => {
                        self.bind_session(s);
                        self.core
                            .metrics
                            .request("initialize", self.transport, true, 0.0);
                        self.send(
                            serde_json::from_slice(&jsonrpc::result_bytes(&id, &result))
                                .unwrap_or_default(),
                        );
                    }
                    Err(e) => self.send_error(Some(&id), &e),
                }
                return;
            } else {
                match self.session() {
                    Some(s) => {
                        s.touch();
                        Era::Legacy(s)
                    }
                    None => return self.send_error(
                        Some(&id),
                        &RpcError::invalid_request(
                            "Not initialized: send initialize first (or modern per-request _meta)",
                        ),
                    ),
                }
            };

        let Ok(slot) = self.slots.clone().acquire_owned().await else {
            return;
        };
        let (abort, reg) = AbortHandle::new_pair();
        self.in_flight.insert(id.clone(), abort);
        let conn = self.clone();
        if modern && msg.method() == "subscriptions/listen" {
            let params = msg.params.clone().unwrap_or_default();
            match Listener::open(&self.core, id.clone(), &params) {
                Err(e) => {
                    self.in_flight.remove(&id);
                    self.send_error(Some(&id), &e);
                }
                Ok((mut listener, ack)) => {
                    self.send(ack);
                    tokio::spawn(Abortable::new(
                        async move {
                            let _slot = slot;
                            let drained = conn.core.lifecycle.drained();
                            tokio::pin!(drained);
                            loop {
                                tokio::select! {
                                    n = listener.next() => match n {
                                        Some(v) => conn.send(v),
                                        None => break,
                                    },
                                    _ = &mut drained => break,
                                }
                            }
                            let result = listener.closing_result(&conn.core);
                            conn.send(
                                serde_json::from_slice(&jsonrpc::result_bytes(
                                    &listener.id,
                                    &result,
                                ))
                                .unwrap_or_default(),
                            );
                            conn.in_flight.remove(&listener.id);
                        },
                        reg,
                    ));
                }
            }
            return;
        }
        let progress_token = msg.meta().and_then(|m| m.get("progressToken")).cloned();
        let ctx = Ctx {
            era,
            out: Outbound {
                tx: Some(self.tx.clone()),
            },
            peer: Some(
                self.session()
                    .map(|s| s.peer.clone())
                    .unwrap_or_else(|| self.peer.clone()),
            ),
            progress_token,
            principal: self.principal.clone(),
            transport: self.transport,
        };
        tokio::spawn(Abortable::new(
            async move {
                let _slot = slot;
                let _permit = conn.limit.clone().acquire_owned().await;
                let r = conn.core.handle(&msg, &ctx).await;
                drop(_permit);
                // The slot is kept until the response has room: that is what stops reading.
                if let Ok(room) = conn.backlog.acquire().await {
                    room.forget();
                }
                conn.in_flight.remove(&id);
                conn.send(
                    serde_json::from_slice(&jsonrpc::response_bytes(&id, &r)).unwrap_or_default(),
                );
            },
            reg,
        ));
    }

    pub fn in_flight_count(&self) -> usize {
        self.in_flight.len()
    }

    /// The connection ended: abort its work and end its session.
    pub fn close(&self) {
        self.in_flight.for_each_value(|h| h.abort());
        if let Some(s) = self.session.lock().expect("session lock").take() {
            self.core.sessions.remove(&s.id);
        }
        self.core
            .connections
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}
