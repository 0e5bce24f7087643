//! Runs a plan: keeps as many clients connected as the scenario asks for at each moment
//! (round-robin over the given URLs), scrapes the servers, shows progress, and hands the
//! recorded data to the report builder.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use indicatif::ProgressBar;
use tokio::task::JoinHandle;

use crate::client::{self, Shared};
use crate::mcp::{Call, Family};
use crate::recorder::Recorder;
use crate::report::{self, Report, Setup};
use crate::scenarios::Plan;
use crate::scrape;
use crate::transport::Endpoint;

pub struct Options {
    pub plan: Plan,
    pub endpoints: Vec<Endpoint>,
    pub urls: Vec<String>,
    pub family: Family,
    pub session_version: String,
    pub tool: String,
    pub sse: bool,
    pub metrics_urls: Vec<String>,
    pub scrape_interval: Duration,
    pub max_in_flight: usize,
    pub timeout: Duration,
    pub drain: Duration,
    pub max_requests: u64,
    /// Session family on HTTP: initialize here, send the requests to the client's endpoint.
    pub handshake_url: Option<String>,
}

/// How often the driver adjusts the number of clients and redraws progress.
const TICK: Duration = Duration::from_millis(100);

struct Running {
    stop: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

pub async fn run(o: Options, bar: ProgressBar) -> Report {
    let start = Instant::now();
    let started_at_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let total = o.plan.total();
    let deadline = start + total;
    let recorder = Arc::new(Recorder::new(
        start,
        o.plan.bounds().iter().map(|b| b.2).collect(),
    ));
    let call = Call::new(
        o.family,
        &o.session_version,
        &o.tool,
        o.plan.profile.message_bytes,
    );
    let sh = Arc::new(Shared {
        plan: o.plan.clone(),
        call: call.clone(),
        recorder: recorder.clone(),
        sse: o.sse,
        max_in_flight: o.max_in_flight.max(1),
        timeout: o.timeout,
        drain: o.drain,
        deadline,
        budget: AtomicU64::new(o.max_requests),
        handshake_url: o.handshake_url.clone(),
    });
    // Scrape through the drain too, so the server's state after the load is on the timeline.
    let scrape_until = deadline + o.drain + Duration::from_secs(1);
    let rounds = (scrape_until - start).as_secs_f64() / o.scrape_interval.as_secs_f64().max(0.01);
    let scrape_stop = Arc::new(AtomicBool::new(false));
    let scraper = tokio::spawn(scrape::run(
        o.metrics_urls.clone(),
        start,
        o.scrape_interval,
        scrape_until,
        rounds.ceil() as u64 + 1,
        scrape_stop.clone(),
    ));

    bar.set_length(total.as_millis() as u64);
    let mut clients: Vec<Running> = Vec::new();
    let mut next_index: u32 = 0;
    let ticks = total.as_millis() / TICK.as_millis() + 2;
    for _ in 0..ticks {
        let now = start.elapsed();
        if now >= total {
            break;
        }
        let target = o.plan.clients_at(now) as usize;
        recorder.target(target as u32);
        clients.retain(|c| !c.task.is_finished());
        while clients.len() < target {
            let ep = o.endpoints[next_index as usize % o.endpoints.len()].clone();
            let stop = Arc::new(AtomicBool::new(false));
            let task = tokio::spawn(client::run(sh.clone(), next_index, ep, stop.clone()));
            clients.push(Running { stop, task });
            next_index += 1;
        }
        // Cooling down: the newest clients leave first.
        while clients.len() > target {
            if let Some(c) = clients.pop() {
                c.stop.store(true, Ordering::Relaxed);
            }
        }
        let (ok, err, p99) = recorder.progress();
        bar.set_position(now.as_millis() as u64);
        bar.set_message(format!(
            "{} | clients {}/{target} | ok {ok} | errors {err} | p99 {p99:.2} ms",
            o.plan.phases[o.plan.phase_at(now).0].name,
            recorder.connections(),
        ));
        tokio::time::sleep(TICK).await;
    }
    bar.set_position(total.as_millis() as u64);
    bar.set_message("draining");
    for c in &clients {
        c.stop.store(true, Ordering::Relaxed);
    }
    // Clients end after their drain; anything still running well past it is cut off.
    let grace = o.drain + o.timeout.min(Duration::from_secs(5)) + Duration::from_secs(2);
    let cut = tokio::time::Instant::now() + grace;
    for c in clients {
        let abort = c.task.abort_handle();
        if tokio::time::timeout_at(cut, c.task).await.is_err() {
            abort.abort();
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let snap = recorder.finish();
    scrape_stop.store(true, Ordering::Relaxed);
    let samples = scraper.await.unwrap_or_default();
    bar.finish_and_clear();
    let mut transports: Vec<String> = o
        .endpoints
        .iter()
        .map(|e| {
            serde_json::to_value(e.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        })
        .collect();
    transports.dedup();
    let setup = Setup {
        family: format!("{:?}", o.family).to_lowercase(),
        protocol_version: call.protocol_version().to_string(),
        transports,
        urls: o.urls,
        metrics_urls: o.metrics_urls,
        tool: o.tool,
        sse: o.sse,
        max_in_flight_per_client: o.max_in_flight,
        timeout_ms: o.timeout.as_millis() as u64,
        started_at_unix_ms,
        handshake_url: o.handshake_url,
    };
    report::build(&o.plan, setup, &snap, samples, elapsed)
}
