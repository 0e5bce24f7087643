//! Rolling restart of all three nodes with a load generator running.
//!
//! The "Service" is simulated the way kube-proxy behaves: a readiness poller (every 200 ms, as
//! a readiness probe would) keeps the set of ready nodes, and every request goes to a random
//! ready node, with no stickiness. Each node is restarted as the StatefulSet would: preStop
//! (`erlmcp drain`), then SIGTERM, wait for the exit, start again under the same identity, wait
//! until it is ready and the cluster has converged.
//!
//! Stateless (2026-07-28) clients must see no failure. Session clients may only see 404s for
//! sessions whose owner went away, answered by re-initialising; anything else is a failure.
//! Counts go to `target/cluster-tests/rolling/rolling.json`.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::json;
use support::cluster::*;

#[derive(Default)]
struct Counts {
    stateless_ok: AtomicU64,
    stateless_failed: AtomicU64,
    session_ok: AtomicU64,
    session_failed: AtomicU64,
    reinitialised: AtomicU64,
    no_endpoint: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Counts {
    fn fail(&self, c: &AtomicU64, what: String) {
        c.fetch_add(1, Ordering::Relaxed);
        let mut e = self.errors.lock().unwrap();
        if e.len() < 50 {
            e.push(what);
        }
    }
}

struct Lb {
    addrs: Vec<SocketAddr>,
    ready: RwLock<Vec<bool>>,
}

impl Lb {
    fn pick(&self, n: u64) -> Option<SocketAddr> {
        let r = self.ready.read().unwrap();
        let up: Vec<SocketAddr> = self
            .addrs
            .iter()
            .zip(r.iter())
            .filter(|(_, ok)| **ok)
            .map(|(a, _)| *a)
            .collect();
        if up.is_empty() {
            return None;
        }
        Some(up[(n as usize) % up.len()])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_under_load() {
    let mut nodes = three_static("rolling");
    for n in nodes.iter_mut() {
        n.env("ERLMCP_DRAIN_DELAY_SECONDS", "2");
    }
    start_all(&mut nodes).await;
    {
        let r: Vec<&Node> = nodes.iter().collect();
        converge(&r, 3, Duration::from_secs(20)).await;
    }
    let lb = Arc::new(Lb {
        addrs: nodes.iter().map(|n| n.mcp()).collect(),
        ready: RwLock::new(vec![true; 3]),
    });
    let health: Vec<String> = nodes
        .iter()
        .map(|n| format!("{}/ready", n.health()))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());

    // Readiness poller = the endpoints controller.
    let poller = {
        let (lb, stop) = (lb.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                for (i, url) in health.iter().enumerate() {
                    let ok = matches!(try_get(url).await, Some((200, _)));
                    lb.ready.write().unwrap()[i] = ok;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    let mut workers = Vec::new();
    for w in 0..3u64 {
        let (lb, stop, counts) = (lb.clone(), stop.clone(), counts.clone());
        workers.push(tokio::spawn(async move {
            let mut n = w * 7919;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let Some(addr) = lb.pick(n) else {
                    counts.fail(&counts.no_endpoint, "no ready endpoint".into());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let text = format!("s{w}-{n}");
                match echo_modern(addr, n as i64, &text).await {
                    Ok(r)
                        if r.status == 200 && result_text(&r.json()).as_deref() == Some(&text) =>
                    {
                        counts.stateless_ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => counts.fail(
                        &counts.stateless_failed,
                        format!("stateless {addr}: HTTP {} {}", r.status, r.body),
                    ),
                    Err(e) => {
                        counts.fail(&counts.stateless_failed, format!("stateless {addr}: {e}"))
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    for w in 0..3u64 {
        let (lb, stop, counts) = (lb.clone(), stop.clone(), counts.clone());
        workers.push(tokio::spawn(async move {
            let mut n = w * 104_729 + 1;
            let mut sid: Option<String> = None;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let Some(addr) = lb.pick(n) else {
                    counts.fail(&counts.no_endpoint, "no ready endpoint".into());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let Some(s) = sid.clone() else {
                    match initialize(addr).await {
                        Ok(s) => sid = Some(s),
                        Err(e) => {
                            counts.fail(&counts.session_failed, format!("initialize {addr}: {e}"))
                        }
                    }
                    continue;
                };
                let text = format!("c{w}-{n}");
                match echo_legacy(addr, &s, n as i64, &text).await {
                    Ok(r)
                        if r.status == 200 && result_text(&r.json()).as_deref() == Some(&text) =>
                    {
                        counts.session_ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) if r.status == 404 => {
                        counts.reinitialised.fetch_add(1, Ordering::Relaxed);
                        sid = None;
                    }
                    Ok(r) => counts.fail(
                        &counts.session_failed,
                        format!("session {addr} {s}: HTTP {} {}", r.status, r.body),
                    ),
                    Err(e) => {
                        counts.fail(&counts.session_failed, format!("session {addr} {s}: {e}"))
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    let t0 = Instant::now();
    let mut per_node = Vec::new();
    for i in 0..3 {
        let t = Instant::now();
        // preStop, then SIGTERM (kubelet's order), then the StatefulSet starts it again.
        let (code, out) = nodes[i].drain(20).await;
        assert_eq!(
            code,
            Some(0),
            "erlmcp drain on {}: {out}",
            nodes[i].spec.name
        );
        let code = nodes[i].terminate(Duration::from_secs(30)).await;
        assert_eq!(code, Some(0), "{} exit code", nodes[i].spec.name);
        nodes[i].start();
        nodes[i].wait_ready(Duration::from_secs(20)).await;
        {
            let r: Vec<&Node> = nodes.iter().collect();
            converge(&r, 3, Duration::from_secs(20)).await;
        }
        per_node.push(t.elapsed().as_millis() as u64);
    }
    let rollout = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let _ = poller.await;

    let c = &counts;
    let out = json!({
        "rollout_ms": rollout.as_millis() as u64,
        "per_node_ms": per_node,
        "stateless": {"ok": c.stateless_ok.load(Ordering::Relaxed), "failed": c.stateless_failed.load(Ordering::Relaxed)},
        "session": {"ok": c.session_ok.load(Ordering::Relaxed), "failed": c.session_failed.load(Ordering::Relaxed), "reinitialised": c.reinitialised.load(Ordering::Relaxed)},
        "no_ready_endpoint": c.no_endpoint.load(Ordering::Relaxed),
        "errors": *c.errors.lock().unwrap(),
    });
    let path = log_dir("rolling").join("rolling.json");
    std::fs::write(&path, serde_json::to_string_pretty(&out).unwrap()).unwrap();
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
    assert!(
        c.stateless_ok.load(Ordering::Relaxed) > 100,
        "the load generator ran"
    );
    assert!(
        c.session_ok.load(Ordering::Relaxed) > 100,
        "the session clients ran"
    );
    assert_eq!(
        c.stateless_failed.load(Ordering::Relaxed),
        0,
        "stateless failures: {out}"
    );
    assert_eq!(
        c.session_failed.load(Ordering::Relaxed),
        0,
        "session failures: {out}"
    );
    assert_eq!(c.no_endpoint.load(Ordering::Relaxed), 0);
}
