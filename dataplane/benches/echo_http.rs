//! `cargo bench -p erlmcp-dataplane --bench echo_http`: `tools/call` on `echo` over Streamable
//! HTTP with keep-alive, against a plain hyper "hello" server measured in the same run as the
//! ceiling. Writes requests/s and p50/p99 latency to a JSON file (BENCH_OUT, default
//! target/bench/echo_http.json).
//!
//! Phases: saturation with C keep-alive connections (closed loop) for the ceiling and for erlmcp
//! (modern stateless requests, and legacy requests inside a session), then erlmcp at about half
//! the ceiling's rate to read p99 at half load. Half load is a closed loop with fewer
//! connections: the lowest count whose short probe reaches the target rate. (Pacing each
//! connection with a timer instead does not work here: tokio's timer has 1 ms granularity, so
//! sub-millisecond intervals release requests in bursts, and the bursts set p99.)
//!
//! `BENCH_PROFILE=modern|legacy|hello BENCH_REQUESTS=N` runs only N requests of one kind, for
//! instruction counts under callgrind.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use erlmcp_dataplane::app::{self, Listeners};
use erlmcp_dataplane::config;
use erlmcp_dataplane::node::{Lifecycle, SingleNode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

const CONNS: usize = 32;

#[derive(Clone)]
struct Req {
    headers: Vec<(&'static str, String)>,
    body: Bytes,
}

struct Stats {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    requests: usize,
    errors: usize,
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize] as f64
}

async fn worker(addr: SocketAddr, req: Req, until: Instant, max: usize) -> (Vec<u32>, usize) {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut send, conn) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut lat = Vec::with_capacity(200_000);
    let mut errors = 0;
    while lat.len() < max && Instant::now() < until {
        let mut b = http::Request::post("/mcp").header("host", "127.0.0.1");
        for (k, v) in &req.headers {
            b = b.header(*k, v.as_str());
        }
        let t = Instant::now();
        match send
            .send_request(b.body(Full::new(req.body.clone())).unwrap())
            .await
        {
            Ok(resp) => {
                let ok = resp.status().is_success();
                let _ = resp.into_body().collect().await;
                if !ok {
                    errors += 1;
                }
            }
            Err(_) => {
                errors += 1;
                break;
            }
        }
        lat.push(t.elapsed().as_micros() as u32);
    }
    (lat, errors)
}

async fn run(addr: SocketAddr, req: Req, secs: f64, conns: usize) -> Stats {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let tasks: Vec<_> = (0..conns)
        .map(|_| tokio::spawn(worker(addr, req.clone(), until, usize::MAX)))
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    Stats {
        rps: all.len() as f64 / elapsed,
        p50_us: percentile(&all, 0.50),
        p99_us: percentile(&all, 0.99),
        requests: all.len(),
        errors,
    }
}

/// About `target` requests/s: a closed loop at the lowest connection count whose 1 s probe
/// reaches the target (all C connections if none does).
async fn at_rate(addr: SocketAddr, req: Req, secs: f64, target: f64) -> (usize, Stats) {
    let mut conns = CONNS;
    for c in [1, 2, 3, 4, 6, 8, 12, 16, 24] {
        if run(addr, req.clone(), 1.0, c).await.rps >= target {
            conns = c;
            break;
        }
    }
    (conns, run(addr, req, secs, conns).await)
}

async fn hello_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            s.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    |_req: http::Request<hyper::body::Incoming>| async {
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::from_static(b"hello"),
                        )))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

fn stats_json(s: &Stats) -> serde_json::Value {
    json!({"requestsPerSecond": (s.rps * 10.0).round() / 10.0, "p50Ms": s.p50_us / 1000.0, "p99Ms": s.p99_us / 1000.0, "requests": s.requests, "errors": s.errors})
}

fn main() {
    // `cargo test --all-targets` runs this binary without `--bench`: nothing to measure then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("echo_http: run with `cargo bench -p erlmcp-dataplane --bench echo_http`");
        return;
    }
    let secs: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5.0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut env = std::collections::BTreeMap::new();
        for (k, v) in [("ERLMCP_PORT", "1"), ("HEALTH_PORT", "2"), ("METRICS_PORT", "3"), ("ERLMCP_NODE_NAME", "erlmcp@bench")] {
            env.insert(k.to_string(), v.to_string());
        }
        let cfg = config::from_parts(Default::default(), &env).unwrap();
        let bind = || async { TcpListener::bind("127.0.0.1:0").await.unwrap() };
        let listeners = Listeners { mcp: bind().await, health: bind().await, metrics: bind().await, tcp: None };
        let running = app::start(cfg, Arc::new(SingleNode), Arc::new(Lifecycle::new()), listeners).await.unwrap();
        let mcp = running.mcp_addr;
        let hello = hello_server().await;

        let modern_body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "hello"}, "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}});
        let modern = Req {
            headers: vec![("content-type", "application/json".into()), ("accept", "application/json, text/event-stream".into()), ("mcp-protocol-version", "2026-07-28".into()), ("mcp-method", "tools/call".into()), ("mcp-name", "echo".into())],
            body: Bytes::from(modern_body.to_string()),
        };
        // One legacy session shared by the legacy phase.
        let sid = {
            let stream = TcpStream::connect(mcp).await.unwrap();
            let (mut send, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream)).await.unwrap();
            tokio::spawn(conn);
            let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}});
            let r = send.send_request(http::Request::post("/mcp").header("host", "x").header("content-type", "application/json").body(Full::new(Bytes::from(init.to_string()))).unwrap()).await.unwrap();
            r.headers()["mcp-session-id"].to_str().unwrap().to_string()
        };
        let legacy = Req {
            headers: vec![("content-type", "application/json".into()), ("accept", "application/json, text/event-stream".into()), ("mcp-protocol-version", "2025-11-25".into()), ("mcp-session-id", sid)],
            body: Bytes::from(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "hello"}}}).to_string()),
        };
        let hello_req = Req { headers: vec![], body: Bytes::new() };

        // Profiling mode: a fixed number of requests of one kind and nothing else, so an
        // instruction count (callgrind) divided by BENCH_REQUESTS is repeatable on a noisy box.
        if let Ok(kind) = std::env::var("BENCH_PROFILE") {
            let n: usize = std::env::var("BENCH_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
            let (addr, req) = match kind.as_str() {
                "modern" => (mcp, modern),
                "legacy" => (mcp, legacy),
                _ => (hello, hello_req),
            };
            let far = Instant::now() + Duration::from_secs(3600);
            let per = n.div_ceil(CONNS);
            let tasks: Vec<_> = (0..CONNS).map(|_| tokio::spawn(worker(addr, req.clone(), far, per))).collect();
            let mut errors = 0;
            for t in tasks {
                errors += t.await.unwrap().1;
            }
            println!("profile {kind}: {} requests, {errors} errors", per * CONNS);
            std::process::exit(0);
        }

        // Warm up both servers.
        run(hello, hello_req.clone(), 1.0, CONNS).await;
        run(mcp, modern.clone(), 1.0, CONNS).await;
        let ceiling = run(hello, hello_req, secs, CONNS).await;
        let sat = run(mcp, modern.clone(), secs, CONNS).await;
        let sat_legacy = run(mcp, legacy, secs, CONNS).await;
        let half_rate = ceiling.rps / 2.0;
        let (half_conns, half) = at_rate(mcp, modern.clone(), secs, half_rate).await;
        let (half_own_conns, half_own) = at_rate(mcp, modern, secs, sat.rps / 2.0).await;

        let report = json!({
            "benchmark": "tools/call echo over Streamable HTTP/1.1 keep-alive",
            "connections": CONNS,
            "secondsPerPhase": secs,
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "note": "load generator and servers share the machine",
            "halfLoadMethod": "closed loop (no pacing timer) at the lowest connection count whose 1 s probe reaches the target rate; p99 is read at the rate that count achieves",
            "ceilingHyperHello": stats_json(&ceiling),
            "erlmcpModernSaturated": stats_json(&sat),
            "erlmcpLegacySessionSaturated": stats_json(&sat_legacy),
            "erlmcpModernAtHalfCeilingRate": {"targetRps": half_rate.round(), "connections": half_conns, "result": stats_json(&half)},
            "erlmcpModernAtHalfOwnMax": {"targetRps": (sat.rps / 2.0).round(), "connections": half_own_conns, "result": stats_json(&half_own)},
            "ratioToCeiling": ((sat.rps / ceiling.rps) * 1000.0).round() / 1000.0,
            "targets": {"atLeastHalfCeiling": sat.rps >= ceiling.rps / 2.0, "p99UnderOneMsAtHalfLoad": half.p99_us < 1000.0},
        });
        let out = std::env::var("BENCH_OUT").unwrap_or_else(|_| format!("{}/../target/bench/echo_http.json", env!("CARGO_MANIFEST_DIR")));
        if let Some(dir) = std::path::Path::new(&out).parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(&out, serde_json::to_string_pretty(&report).unwrap()).unwrap();
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
        println!("written to {out}");
        std::process::exit(0);
    });
}
