//! One simulated client: connect, handshake (initialize for the session family, `server/discover`
//! for the stateless one), send `tools/call echo` on its open-loop schedule, drain, close.
//! Every loop ends on the client's stop flag, the run's deadline or its count limit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::mcp::{self, Call, Family};
use crate::recorder::Recorder;
use crate::scenarios::Plan;
use crate::schedule::{self, Ticker};
use crate::transport::http::HttpConn;
use crate::transport::stream::{self, Duplex};
use crate::transport::{Endpoint, Kind};

/// What every client of a run shares.
pub struct Shared {
    pub plan: Plan,
    pub call: Call,
    pub recorder: Arc<Recorder>,
    /// Open a GET (SSE) stream per session client on Streamable HTTP.
    pub sse: bool,
    pub max_in_flight: usize,
    pub timeout: Duration,
    pub drain: Duration,
    /// End of the schedule: nothing is sent after it.
    pub deadline: Instant,
    /// Requests the whole run may still send (the global count limit).
    pub budget: AtomicU64,
    /// Session family on HTTP: where each client initialises (its requests go to its endpoint).
    pub handshake_url: Option<String>,
}

const HANDSHAKE_ID: u64 = 0;
const CONNECT_ATTEMPTS: u32 = 3;
/// The longest a client sleeps before it looks at its stop flag again.
const WAKE: Duration = Duration::from_millis(100);

fn take_budget(sh: &Shared) -> bool {
    sh.budget
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
        .is_ok()
}

fn stopped(sh: &Shared, stop: &AtomicBool) -> bool {
    stop.load(Ordering::Relaxed) || Instant::now() >= sh.deadline
}

/// Run client `index` against `ep` until stopped.
pub async fn run(sh: Arc<Shared>, index: u32, ep: Endpoint, stop: Arc<AtomicBool>) {
    let rec = sh.recorder.clone();
    for attempt in 0..CONNECT_ATTEMPTS {
        if stopped(&sh, &stop) {
            return;
        }
        let res = match ep.kind {
            Kind::Http => http_client(&sh, index, &ep, &stop).await,
            Kind::Websocket | Kind::Tcp => stream_client(&sh, index, &ep, &stop).await,
        };
        match res {
            Ok(()) => return,
            Err(kind) => {
                rec.connect_failed(&kind);
                if attempt + 1 < CONNECT_ATTEMPTS {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// The send loop shared by all transports: `send` is called for each request at (or, when the
/// client fell behind, just after) its scheduled time, with an in-flight permit.
async fn send_loop<F, Fut>(
    sh: &Shared,
    index: u32,
    stop: &AtomicBool,
    permits: Arc<Semaphore>,
    mut send: F,
) where
    F: FnMut(u64, Instant, OwnedSemaphorePermit) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = sh.recorder.start();
    let rate = |d: Duration| sh.plan.pace_at(d);
    // Stagger by the profile's own rate, not the phase's: a paused or slow first phase must not
    // push a client's first request past the phases that follow.
    let p = &sh.plan.profile;
    let first = start.elapsed() + schedule::stagger(index, p.clients.max(1), p.rate_per_client);
    let mut ticker = Ticker::new(first, sh.plan.max_requests_per_client());
    let mut id = HANDSHAKE_ID;
    let deadline = tokio::time::Instant::from_std(sh.deadline);
    while !stopped(sh, stop) {
        let Some(due) = ticker.next_due() else { return };
        let wake = (start + due).min(Instant::now() + WAKE);
        tokio::time::sleep_until(tokio::time::Instant::from_std(wake)).await;
        while let Some(d) = ticker.take_due(start.elapsed(), rate) {
            let scheduled = start + d;
            if scheduled >= sh.deadline || stop.load(Ordering::Relaxed) {
                return;
            }
            if !take_budget(sh) {
                return;
            }
            // Waiting for a permit delays the send, never the schedule: the latency of this
            // request still counts from `scheduled`.
            let permit = tokio::select! {
                // A free slot wins even when the deadline has passed meanwhile: the request was due.
                biased;
                p = permits.clone().acquire_owned() => p.expect("semaphore open"),
                _ = tokio::time::sleep_until(deadline) => {
                    let behind = 1 + ticker.overdue(sh.deadline - start, rate);
                    sh.recorder.errors("not_sent", behind, None);
                    return;
                }
            };
            id += 1;
            sh.recorder.sent(1);
            if !send(id, scheduled, permit).await {
                return;
            }
        }
    }
}

fn judge(rec: &Recorder, v: Option<&Value>, bytes: usize, scheduled: Instant) {
    match v.map(|v| mcp::check_echo(v, bytes)) {
        Some(Ok(())) => rec.ok(scheduled),
        Some(Err(kind)) => rec.error(&kind, Some(scheduled)),
        None => rec.error("bad_answer", Some(scheduled)),
    }
}

fn discover_request() -> String {
    json!({"jsonrpc": "2.0", "id": HANDSHAKE_ID, "method": "server/discover", "params": {"_meta": mcp::stateless_meta()}}).to_string()
}

async fn http_client(
    sh: &Arc<Shared>,
    index: u32,
    ep: &Endpoint,
    stop: &AtomicBool,
) -> Result<(), String> {
    let rec = &sh.recorder;
    let profile = &sh.plan.profile;
    let mut conn = HttpConn::new(
        &ep.target,
        &sh.call.http_headers(),
        sh.max_in_flight,
        profile.read_delay,
    )
    .map_err(|_| "config".to_string())?;
    // The session may be opened elsewhere (`--handshake-url`): its owner then is another node.
    let opener = match &sh.handshake_url {
        Some(u) => Some(
            HttpConn::new(u, &sh.call.http_headers(), 1, Duration::ZERO)
                .map_err(|_| "config".to_string())?,
        ),
        None => None,
    };
    let hs = Duration::from_secs(5);
    let handshake = async {
        let conn = opener.as_ref().unwrap_or(&conn);
        match sh.call.family {
            Family::Stateless => {
                let a = conn
                    .post_with(
                        discover_request(),
                        &[("mcp-method", Some("server/discover")), ("mcp-name", None)],
                    )
                    .await?;
                if a.status != 200 {
                    return Err(format!("discover_http_{}", a.status));
                }
                Ok(None)
            }
            Family::Session => {
                let init = mcp::initialize(HANDSHAKE_ID, &sh.call.version);
                let a = conn
                    .post_with(init, &[("mcp-protocol-version", None)])
                    .await?;
                let v = mcp::answer_in_body(&a.content_type, &a.body);
                let version = v
                    .as_ref()
                    .and_then(|v| v.pointer("/result/protocolVersion"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                match (a.status, a.session_id, version) {
                    (200, Some(sid), Some(version)) => Ok(Some((sid, version))),
                    (200, _, _) => Err("initialize".into()),
                    (s, _, _) => Err(format!("initialize_http_{s}")),
                }
            }
        }
    };
    let session = tokio::time::timeout(hs, handshake)
        .await
        .map_err(|_| "connect_timeout".to_string())??;
    if let Some((sid, version)) = &session {
        conn.set_session(sid)
            .map_err(|_| "initialize".to_string())?;
        conn.set_header("mcp-protocol-version", version)
            .map_err(|_| "initialize".to_string())?;
        let mut first = opener.unwrap_or_else(|| conn.clone());
        first
            .set_session(sid)
            .and_then(|()| first.set_header("mcp-protocol-version", version))
            .map_err(|_| "initialize".to_string())?;
        let n = first.post(mcp::initialized()).await?;
        if n.status != 202 && n.status != 200 {
            return Err(format!("initialized_http_{}", n.status));
        }
    }
    rec.connected();
    let listener = (sh.sse && session.is_some()).then(|| {
        let (c, r) = (conn.clone(), rec.clone());
        let until = tokio::time::Instant::from_std(sh.deadline);
        tokio::spawn(async move {
            if let Err(kind) = c.listen(until, || r.sse_event()).await {
                r.error(&kind, None);
            }
        })
    });

    let permits = Arc::new(Semaphore::new(sh.max_in_flight));
    let mut tasks = JoinSet::new();
    let bytes = profile.message_bytes;
    send_loop(sh, index, stop, permits, |id, scheduled, permit| {
        let (c, r, body, t) = (conn.clone(), rec.clone(), sh.call.request(id), sh.timeout);
        tasks.spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(t, c.post(body)).await {
                Err(_) => r.error("timeout", Some(scheduled)),
                Ok(Err(kind)) => r.error(&kind, Some(scheduled)),
                Ok(Ok(a)) if a.status != 200 => {
                    r.error(&format!("http_{}", a.status), Some(scheduled))
                }
                Ok(Ok(a)) => judge(
                    &r,
                    mcp::answer_in_body(&a.content_type, &a.body).as_ref(),
                    bytes,
                    scheduled,
                ),
            }
        });
        while tasks.try_join_next().is_some() {}
        async { true }
    })
    .await;
    let drained = tokio::time::timeout(sh.drain, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        // Whatever is still running past the drain is cut off and counted; tasks that finished
        // meanwhile have already recorded their own outcome.
        tasks.abort_all();
        let mut cut = 0;
        while let Some(r) = tasks.join_next().await {
            cut += u64::from(r.is_err());
        }
        rec.errors("timeout", cut, None);
    }
    if let Some(l) = listener {
        l.abort();
    }
    if session.is_some() {
        conn.delete().await;
    }
    rec.disconnected();
    Ok(())
}

/// Requests sent on a stream and not answered yet: id -> (scheduled time, in-flight permit).
type Pending = Arc<Mutex<HashMap<u64, (Instant, OwnedSemaphorePermit)>>>;

/// Wait for the answer with `id` (handshakes), dropping anything else.
async fn answer(d: &mut Duplex, id: u64) -> Result<Value, String> {
    let wait = async {
        while let Some(line) = d.rx.recv().await {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if mcp::answer_id(&v) == Some(id) {
                    return Ok(v);
                }
            }
        }
        Err("closed".to_string())
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .map_err(|_| "connect_timeout".to_string())?
}

async fn stream_client(
    sh: &Arc<Shared>,
    index: u32,
    ep: &Endpoint,
    stop: &AtomicBool,
) -> Result<(), String> {
    let rec = sh.recorder.clone();
    let mut d = stream::connect(ep, sh.plan.profile.read_delay)
        .await
        .map_err(|_| "connect".to_string())?;
    let send = |d: &Duplex, m: String| {
        let tx = d.tx.clone();
        async move { tx.send(m).await.map_err(|_| "closed".to_string()) }
    };
    match sh.call.family {
        Family::Stateless => {
            send(&d, discover_request()).await?;
            if answer(&mut d, HANDSHAKE_ID).await?.get("result").is_none() {
                return Err("discover".into());
            }
        }
        Family::Session => {
            send(&d, mcp::initialize(HANDSHAKE_ID, &sh.call.version)).await?;
            if answer(&mut d, HANDSHAKE_ID).await?.get("result").is_none() {
                return Err("initialize".into());
            }
            send(&d, mcp::initialized()).await?;
        }
    }
    rec.connected();
    let Duplex { tx, mut rx } = d;
    let pending: Pending = Arc::default();
    let closed = Arc::new(AtomicBool::new(false));
    let bytes = sh.plan.profile.message_bytes;
    let timeout = sh.timeout;
    let reader = {
        let (pending, closed, rec) = (pending.clone(), closed.clone(), rec.clone());
        tokio::spawn(async move {
            let mut sweep = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    line = rx.recv() => {
                        let Some(line) = line else { break };
                        let Ok(v) = serde_json::from_str::<Value>(&line) else {
                            rec.error("bad_answer", None);
                            continue;
                        };
                        // Notifications and answers nobody waits for any more are not counted.
                        let Some(id) = mcp::answer_id(&v) else { continue };
                        let entry = pending.lock().unwrap().remove(&id);
                        if let Some((scheduled, _permit)) = entry {
                            judge(&rec, Some(&v), bytes, scheduled);
                        }
                    }
                    _ = sweep.tick() => {
                        let mut p = pending.lock().unwrap();
                        let late: Vec<u64> = p.iter().filter(|(_, (s, _))| s.elapsed() > timeout).map(|(id, _)| *id).collect();
                        for id in late {
                            if let Some((s, _)) = p.remove(&id) {
                                rec.error("timeout", Some(s));
                            }
                        }
                    }
                }
            }
            closed.store(true, Ordering::Relaxed);
            let left: Vec<_> = pending.lock().unwrap().drain().collect();
            rec.errors("closed", left.len() as u64, None);
        })
    };
    let permits = Arc::new(Semaphore::new(sh.max_in_flight));
    send_loop(sh, index, stop, permits, |id, scheduled, permit| {
        pending.lock().unwrap().insert(id, (scheduled, permit));
        let (tx, body, closed, rec, pending) = (
            tx.clone(),
            sh.call.request(id),
            closed.clone(),
            rec.clone(),
            pending.clone(),
        );
        async move {
            if closed.load(Ordering::Relaxed) || tx.send(body).await.is_err() {
                if pending.lock().unwrap().remove(&id).is_some() {
                    rec.error("closed", Some(scheduled));
                }
                return false;
            }
            true
        }
    })
    .await;
    // Drain: answers to what was sent, up to the drain time.
    let until = Instant::now() + sh.drain;
    while !pending.lock().unwrap().is_empty()
        && Instant::now() < until
        && !closed.load(Ordering::Relaxed)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let left: Vec<_> = pending.lock().unwrap().drain().collect();
    rec.errors("timeout", left.len() as u64, None);
    drop(tx);
    reader.abort();
    rec.disconnected();
    Ok(())
}
