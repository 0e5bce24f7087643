//! Idle hold: what idle clients cost a server, rather than how fast it answers.
//!
//! `connections`: open N sockets (HTTP/1.1 keep-alive or WebSocket), each does its family's
//! handshake once (`server/discover`, or `initialize` + `notifications/initialized`), then says
//! nothing until the hold ends. `sessions`: initialise N 2025-11-25 sessions over a few
//! keep-alive connections, then leave them idle. Either way the server's memory is scraped
//! before anything opens, once everything is open (after a settle time), and each second of the
//! hold; at the end one request on each held connection (or in each held session) proves it is
//! still there. Client sockets are spread over `--source-addrs` (bind before connect), since one
//! source address reaches one server port through at most its ephemeral port range (~28k).
//!
//! Bounded: N items, at most `open_limit` to open them, the hold's length, and a timeout on
//! every exchange and on the final check.

pub mod open;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::mcp::Family;
use crate::scrape::{self, Sample};
use crate::transport::{Endpoint, Kind};
use open::{Http, Ws};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HoldKind {
    /// N connections, each handshakes once and then idles.
    Connections,
    /// N sessions initialised over a few connections, then idle.
    Sessions,
}

pub struct HoldOptions {
    pub kind: HoldKind,
    pub endpoint: Endpoint,
    pub url: String,
    pub family: Family,
    pub session_version: String,
    /// Connections or sessions to hold.
    pub count: u32,
    /// Connections the sessions are opened over (sessions only).
    pub connections: u32,
    pub source_addrs: Vec<IpAddr>,
    /// Handshakes in progress at once (connections only; sessions use one per connection).
    pub open_concurrency: usize,
    /// The longest the opening may take; what is not open by then counts as `open_limit`.
    pub open_limit: Duration,
    /// Pause between the last open and the "held" memory scrape.
    pub settle: Duration,
    pub hold: Duration,
    /// The most held items checked at the end, spread evenly.
    pub check: u32,
    pub metrics_url: Option<String>,
}

/// The JSON result (`hold.json`, schema `erlmcp-load-hold/1`); fields in loadgen/README.md.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HoldReport {
    pub schema: String,
    pub tool_version: String,
    pub kind: String,
    pub transport: String,
    pub family: String,
    pub protocol_version: String,
    pub url: String,
    pub metrics_url: Option<String>,
    pub source_addrs: Vec<String>,
    pub requested: u32,
    pub sockets: u64,
    pub opened: u64,
    pub open_errors: u64,
    pub open_errors_by_kind: BTreeMap<String, u64>,
    pub open_s: f64,
    pub open_per_s: f64,
    pub hold_s: f64,
    pub rss_before_bytes: Option<f64>,
    pub rss_held_bytes: Option<f64>,
    pub rss_end_bytes: Option<f64>,
    pub rss_peak_bytes: Option<f64>,
    pub rss_growth_bytes: Option<f64>,
    pub rss_per_item_bytes: Option<f64>,
    pub sessions_active_held: Option<f64>,
    pub closed_during_hold: u64,
    pub checked: u64,
    pub check_ok: u64,
    pub check_errors_by_kind: BTreeMap<String, u64>,
    pub samples: Vec<Sample>,
    pub elapsed_s: f64,
}

#[derive(Default)]
struct Tally {
    sockets: AtomicU64,
    opened: AtomicU64,
    failed: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    closed: AtomicU64,
    checked: AtomicU64,
    check_ok: AtomicU64,
    check_errors: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn fail(&self, kind: &str, n: u64) {
        self.failed.fetch_add(n, Ordering::Relaxed);
        *self.errors.lock().unwrap().entry(kind.into()).or_default() += n;
    }
    fn checked(&self, r: Result<(), String>) {
        self.checked.fetch_add(1, Ordering::Relaxed);
        match r {
            Ok(()) => {
                self.check_ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(k) => *self.check_errors.lock().unwrap().entry(k).or_default() += 1,
        }
    }
    fn done(&self) -> u64 {
        self.opened.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }
}

/// `127.0.0.2,127.0.0.3` or a last-octet range `127.0.0.2-9` (or both, comma-separated).
pub fn parse_source_addrs(s: &str) -> Result<Vec<IpAddr>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((first, last)) = part.split_once('-') {
            let a: std::net::Ipv4Addr = first
                .parse()
                .with_context(|| format!("{first:?} is not an IPv4 address"))?;
            let end: u8 = last.parse().with_context(|| {
                format!("{part:?}: the range ends in a last octet, e.g. 127.0.0.2-9")
            })?;
            let [o1, o2, o3, start] = a.octets();
            if end < start {
                bail!("{part:?}: the range is empty");
            }
            out.extend((start..=end).map(|o| IpAddr::from([o1, o2, o3, o])));
        } else {
            out.push(
                part.parse()
                    .with_context(|| format!("{part:?} is not an IP address"))?,
            );
        }
    }
    if out.is_empty() {
        bail!("--source-addrs names no address");
    }
    Ok(out)
}

/// The soft `Max open files` of a `/proc/<pid>/limits` text (None for unlimited or unreadable).
pub fn parse_open_files_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// How many ports `ip_local_port_range` ("32768\t60999") offers one source address.
pub fn parse_port_range(text: &str) -> Option<u64> {
    let mut it = text.split_whitespace().map(|v| v.parse::<u64>().ok());
    let (lo, hi) = (it.next()??, it.next()??);
    (hi >= lo).then(|| hi - lo + 1)
}

/// Sockets this hold opens at once.
pub fn sockets_needed(kind: HoldKind, count: u32, connections: u32) -> u64 {
    match kind {
        HoldKind::Connections => u64::from(count),
        HoldKind::Sessions => u64::from(connections.min(count)),
    }
}

/// Refuse a hold the machine cannot open: file descriptors (`RLIMIT_NOFILE`) and local ports
/// per source address. The messages say what to change.
pub fn preflight(
    sockets: u64,
    sources: usize,
    open_files: Option<u64>,
    ports: Option<u64>,
) -> Result<()> {
    const SPARE: u64 = 64;
    if let Some(limit) = open_files {
        if sockets + SPARE > limit {
            bail!(
                "{sockets} sockets need about {} file descriptors, RLIMIT_NOFILE is {limit}: raise it \
                 (`ulimit -n {}`, root or a higher hard limit) or hold fewer",
                sockets + SPARE,
                sockets + 1024
            );
        }
    }
    if let Some(p) = ports {
        let per = sockets.div_ceil(sources.max(1) as u64);
        // Leave room for the machine's other connections.
        if per > p * 9 / 10 {
            bail!(
                "{sockets} sockets over {sources} source address(es) is {per} local ports each, \
                 the ephemeral range has {p}: give more --source-addrs (e.g. 127.0.0.2-9)"
            );
        }
    }
    Ok(())
}

/// RSS growth per held item.
pub fn per_item(before: Option<f64>, held: Option<f64>, items: u64) -> Option<f64> {
    (items > 0).then_some(())?;
    Some((held? - before?) / items as f64)
}

/// Which of a worker's `n` items are checked when `check` of `total` may be: every k-th.
pub fn check_stride(total: u64, check: u32) -> u64 {
    if check == 0 {
        return u64::MAX;
    }
    total.div_ceil(u64::from(check)).max(1)
}

async fn resolve(ep: &Endpoint) -> Result<SocketAddr> {
    let authority = match ep.kind {
        Kind::Tcp => ep.target.clone(),
        _ => {
            let uri: http::Uri = ep.target.parse()?;
            let a = uri.authority().context("the URL has no host")?;
            format!("{}:{}", a.host(), a.port_u16().unwrap_or(80))
        }
    };
    let first = tokio::net::lookup_host(&authority).await?.next();
    first.with_context(|| format!("{authority} does not resolve"))
}

pub async fn run(o: HoldOptions) -> Result<HoldReport> {
    if o.endpoint.kind == Kind::Tcp {
        bail!("--hold drives http:// and ws:// endpoints");
    }
    if o.kind == HoldKind::Sessions
        && (o.endpoint.kind != Kind::Http || o.family != Family::Session)
    {
        bail!("--hold sessions needs an http:// URL and --family session");
    }
    let sockets = sockets_needed(o.kind, o.count, o.connections);
    let open_files = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| parse_open_files_limit(&t));
    let ports = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| parse_port_range(&t));
    preflight(sockets, o.source_addrs.len(), open_files, ports)?;
    let target = resolve(&o.endpoint).await?;

    let start = Instant::now();
    let scraper = scrape::client();
    let metrics_url = o.metrics_url.clone();
    let scrape_now = |t: Instant| {
        let (c, url) = (&scraper, metrics_url.clone());
        async move {
            match url {
                Some(u) => Some(scrape::once(c, &u, t.elapsed().as_secs_f64()).await),
                None => None,
            }
        }
    };
    let before = scrape_now(start).await;

    let tally = Arc::new(Tally::default());
    let (release, released) = watch::channel(false);
    let mut set = JoinSet::new();
    let o = Arc::new(o);
    match o.kind {
        HoldKind::Connections => spawn_connections(&o, target, &tally, &released, &mut set),
        HoldKind::Sessions => spawn_sessions(&o, target, &tally, &released, &mut set),
    }
    let tick = Duration::from_millis(100);
    for _ in 0..(o.open_limit.as_millis() / tick.as_millis() + 1) {
        if tally.done() >= u64::from(o.count) {
            break;
        }
        tokio::time::sleep(tick).await;
    }
    let open_s = start.elapsed().as_secs_f64();
    let late = u64::from(o.count).saturating_sub(tally.done());
    tokio::time::sleep(o.settle).await;
    let held = scrape_now(start).await;

    let mut samples: Vec<Sample> = before.iter().chain(held.iter()).cloned().collect();
    let hold_start = Instant::now();
    for _ in 0..o.hold.as_secs() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.extend(scrape_now(start).await);
    }
    let hold_s = hold_start.elapsed().as_secs_f64();
    let end = samples.last().cloned();
    let _ = release.send(true);
    // Every check has its exchange timeout; anything still running after this is cut off.
    let cut = tokio::time::Instant::now() + open::EXCHANGE * 3;
    while let Ok(Some(_)) = tokio::time::timeout_at(cut, set.join_next()).await {}
    set.abort_all();
    if late > 0 {
        tally.fail("open_limit", late);
    }

    let rss = |s: &Option<Sample>| s.as_ref().and_then(|s| s.rss_bytes);
    let opened = tally.opened.load(Ordering::Relaxed);
    let (rss_before, rss_held) = (rss(&before), rss(&held));
    let open_errors_by_kind = tally.errors.lock().unwrap().clone();
    let check_errors_by_kind = tally.check_errors.lock().unwrap().clone();
    let report = HoldReport {
        schema: "erlmcp-load-hold/1".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        kind: format!("{:?}", o.kind).to_lowercase(),
        transport: serde_json::to_value(o.endpoint.kind)?
            .as_str()
            .unwrap_or_default()
            .into(),
        family: format!("{:?}", o.family).to_lowercase(),
        protocol_version: match o.family {
            Family::Session => o.session_version.clone(),
            Family::Stateless => crate::mcp::STATELESS_VERSION.into(),
        },
        url: o.url.clone(),
        metrics_url: o.metrics_url.clone(),
        source_addrs: o.source_addrs.iter().map(|a| a.to_string()).collect(),
        requested: o.count,
        sockets: tally.sockets.load(Ordering::Relaxed),
        opened,
        open_errors: tally.failed.load(Ordering::Relaxed),
        open_errors_by_kind,
        open_s,
        open_per_s: opened as f64 / open_s.max(1e-9),
        hold_s,
        rss_before_bytes: rss_before,
        rss_held_bytes: rss_held,
        rss_end_bytes: rss(&end),
        rss_peak_bytes: samples.iter().filter_map(|s| s.rss_bytes).reduce(f64::max),
        rss_growth_bytes: rss_held.zip(rss_before).map(|(h, b)| h - b),
        rss_per_item_bytes: per_item(rss_before, rss_held, opened),
        sessions_active_held: held.as_ref().and_then(|s| s.sessions_active),
        closed_during_hold: tally.closed.load(Ordering::Relaxed),
        checked: tally.checked.load(Ordering::Relaxed),
        check_ok: tally.check_ok.load(Ordering::Relaxed),
        check_errors_by_kind,
        samples,
        elapsed_s: start.elapsed().as_secs_f64(),
    };
    Ok(report)
}

async fn released(mut r: watch::Receiver<bool>) {
    let _ = r.wait_for(|v| *v).await;
}

fn spawn_connections(
    o: &Arc<HoldOptions>,
    target: SocketAddr,
    tally: &Arc<Tally>,
    release: &watch::Receiver<bool>,
    set: &mut JoinSet<()>,
) {
    let permits = Arc::new(Semaphore::new(o.open_concurrency.max(1)));
    let stride = check_stride(u64::from(o.count), o.check);
    for i in 0..o.count {
        let (o, tally, permits, release) =
            (o.clone(), tally.clone(), permits.clone(), release.clone());
        let source = o
            .source_addrs
            .get(i as usize % o.source_addrs.len().max(1))
            .copied();
        let check = u64::from(i).is_multiple_of(stride);
        set.spawn(async move {
            let Ok(permit) = permits.acquire_owned().await else {
                return;
            };
            let (family, version) = (o.family, o.session_version.as_str());
            match o.endpoint.kind {
                Kind::Http => {
                    let uri: http::Uri = match o.url.parse() {
                        Ok(u) => u,
                        Err(_) => return tally.fail("config", 1),
                    };
                    let mut h = match Http::open(&uri, target, source).await {
                        Ok(h) => h,
                        Err(k) => return tally.fail(&k, 1),
                    };
                    tally.sockets.fetch_add(1, Ordering::Relaxed);
                    if let Err(k) = h.handshake(family, version).await {
                        return tally.fail(&k, 1);
                    }
                    tally.opened.fetch_add(1, Ordering::Relaxed);
                    drop(permit);
                    released(release).await;
                    if h.is_closed() {
                        tally.closed.fetch_add(1, Ordering::Relaxed);
                    }
                    if check {
                        tally.checked(h.check(family, version).await);
                    }
                }
                _ => {
                    let mut w = match Ws::open(&o.url, target, source).await {
                        Ok(w) => w,
                        Err(k) => return tally.fail(&k, 1),
                    };
                    tally.sockets.fetch_add(1, Ordering::Relaxed);
                    if let Err(k) = w.handshake(family, version).await {
                        return tally.fail(&k, 1);
                    }
                    tally.opened.fetch_add(1, Ordering::Relaxed);
                    drop(permit);
                    if !w.idle_until(released(release)).await {
                        tally.closed.fetch_add(1, Ordering::Relaxed);
                    }
                    if check {
                        tally.checked(w.check(family, version).await);
                    }
                    w.close().await;
                }
            }
        });
    }
}

fn spawn_sessions(
    o: &Arc<HoldOptions>,
    target: SocketAddr,
    tally: &Arc<Tally>,
    release: &watch::Receiver<bool>,
    set: &mut JoinSet<()>,
) {
    let workers = o.connections.clamp(1, o.count.max(1));
    let stride = check_stride(u64::from(o.count), o.check);
    let Ok(uri) = o.url.parse::<http::Uri>() else {
        return tally.fail("config", u64::from(o.count));
    };
    for w in 0..workers {
        let (o, tally, release, uri) = (o.clone(), tally.clone(), release.clone(), uri.clone());
        let source = o
            .source_addrs
            .get(w as usize % o.source_addrs.len().max(1))
            .copied();
        // Worker w opens sessions w, w + workers, w + 2 workers, ...
        let share = o.count / workers + u32::from(w < o.count % workers);
        set.spawn(async move {
            let version = o.session_version.as_str();
            let mut conn: Option<Http> = None;
            let mut sessions = Vec::with_capacity(share as usize);
            let mut failures_in_a_row = 0;
            for k in 0..share {
                if failures_in_a_row >= 3 {
                    tally.fail("gave_up", u64::from(share - k));
                    break;
                }
                if conn.as_ref().is_none_or(|c| c.is_closed()) {
                    match Http::open(&uri, target, source).await {
                        Ok(c) => {
                            tally.sockets.fetch_add(1, Ordering::Relaxed);
                            conn = Some(c)
                        }
                        Err(kind) => {
                            failures_in_a_row += 1;
                            tally.fail(&kind, 1);
                            continue;
                        }
                    }
                }
                let Some(c) = conn.as_mut() else { continue };
                c.session = None;
                match c.handshake(Family::Session, version).await {
                    Ok(()) => {
                        failures_in_a_row = 0;
                        tally.opened.fetch_add(1, Ordering::Relaxed);
                        sessions.extend(c.session.take());
                    }
                    Err(kind) => {
                        failures_in_a_row += 1;
                        tally.fail(&kind, 1);
                    }
                }
            }
            released(release).await;
            let Some(mut c) = conn else { return };
            for (k, s) in sessions.into_iter().enumerate() {
                // The session's index in the whole hold.
                let global = u64::from(w) + k as u64 * u64::from(workers);
                if !global.is_multiple_of(stride) {
                    continue;
                }
                if c.is_closed() {
                    match Http::open(&uri, target, source).await {
                        Ok(n) => c = n,
                        Err(kind) => return tally.checked(Err(kind)),
                    }
                }
                c.session = Some(s);
                tally.checked(c.check(Family::Session, version).await);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_are_lists_and_ranges() {
        let v = parse_source_addrs("127.0.0.2-4, 127.0.1.1").unwrap();
        let s: Vec<String> = v.iter().map(|a| a.to_string()).collect();
        assert_eq!(s, ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.1.1"]);
        assert!(parse_source_addrs("127.0.0.9-2").is_err());
        assert!(parse_source_addrs("localhost").is_err());
        assert!(parse_source_addrs(" , ").is_err());
    }

    #[test]
    fn limits_and_port_ranges_are_read() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max processes             95000                95000                processes\n\
                      Max open files            20000                65536                files\n";
        assert_eq!(parse_open_files_limit(limits), Some(20000));
        assert_eq!(
            parse_open_files_limit("Max open files  unlimited unlimited files"),
            None
        );
        assert_eq!(parse_port_range("32768\t60999\n"), Some(28232));
        assert_eq!(parse_port_range("nonsense"), None);
    }

    #[test]
    fn preflight_names_the_limit_that_is_too_small() {
        let e = preflight(50_000, 8, Some(20_000), Some(28_232)).unwrap_err();
        assert!(e.to_string().contains("RLIMIT_NOFILE"), "{e}");
        let e = preflight(50_000, 1, Some(200_000), Some(28_232)).unwrap_err();
        assert!(e.to_string().contains("--source-addrs"), "{e}");
        preflight(50_000, 8, Some(200_000), Some(28_232)).unwrap();
        preflight(10, 1, None, None).unwrap();
        // Sessions open over a few connections: the count is not the socket count.
        assert_eq!(sockets_needed(HoldKind::Sessions, 100_000, 64), 64);
        assert_eq!(sockets_needed(HoldKind::Sessions, 10, 64), 10);
        assert_eq!(sockets_needed(HoldKind::Connections, 50_000, 64), 50_000);
    }

    #[test]
    fn growth_per_item_and_the_check_sample() {
        assert_eq!(per_item(Some(1e6), Some(3e6), 1000), Some(2000.0));
        assert_eq!(per_item(None, Some(3e6), 1000), None);
        assert_eq!(per_item(Some(1e6), Some(3e6), 0), None);
        assert_eq!(check_stride(100_000, 1000), 100);
        assert_eq!(check_stride(50_000, 100_000), 1);
        assert_eq!(check_stride(10, 0), u64::MAX);
    }
}
