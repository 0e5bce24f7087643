//! Multi-process cluster test bed: each node is the real `erlmcp` binary on its own loopback
//! address (`ERLMCP_BIND_ADDRESS=127.x.y.z`), like the e2e pod runner; a fault proxy can sit
//! between any two nodes and black-hole their traffic. The conformance crate's tests share this
//! file: there each node is `erlmcp-conformance` (the same server plus the fixtures).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// The shared HTTP client and MCP helpers, so a cluster test needs `support::cluster::*` only.
pub use super::client::*;
pub use super::{legacy_headers, MODERN};

/// The server binary of the crate whose tests include this file.
const SERVER_BIN: &str = match (
    option_env!("CARGO_BIN_EXE_erlmcp-conformance"),
    option_env!("CARGO_BIN_EXE_erlmcp"),
) {
    (Some(b), _) | (None, Some(b)) => b,
    (None, None) => panic!("no erlmcp server binary in this crate"),
};

pub const COOKIE: &str = "test-cookie-0123456789abcdef0123456789";
pub const LEGACY: &str = "2025-11-25";

/// Ports shared by every node of one test (each node has its own IP).
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub mcp: u16,
    pub health: u16,
    pub metrics: u16,
    pub peer: u16,
}

impl Ports {
    pub fn random() -> Self {
        let base = 20_000 + (rand_u32() % 8_000) as u16 * 4;
        Self {
            mcp: base,
            health: base + 1,
            metrics: base + 2,
            peer: base + 3,
        }
    }
}

fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    let u = uuid::Uuid::new_v4();
    b.copy_from_slice(&u.as_bytes()[..4]);
    u32::from_le_bytes(b)
}

/// A loopback port nobody listens on now (the kernel's pick, released at once).
pub fn free_loopback_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A distinct 127.a.b.0/24 for one test run.
pub fn subnet() -> String {
    let r = rand_u32();
    format!("127.{}.{}", 10 + (r % 200), 1 + ((r >> 8) % 250))
}

pub fn log_dir(test: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/cluster-tests")
        .join(test);
    let _ = std::fs::create_dir_all(&d);
    d
}

pub struct NodeSpec {
    /// The server binary; the crate's own build unless a test runs another (a release build).
    pub bin: PathBuf,
    pub name: String,
    pub ip: String,
    pub ports: Ports,
    pub env: BTreeMap<String, String>,
    pub config: Option<String>,
    pub log: PathBuf,
}

pub struct Node {
    pub spec: NodeSpec,
    child: Option<Child>,
    pub starts: u32,
}

impl Node {
    pub fn new(test: &str, name: &str, ip: &str, ports: Ports) -> Self {
        let mut env = BTreeMap::new();
        env.insert("ERLANG_COOKIE".into(), COOKIE.into());
        env.insert("ERLMCP_DRAIN_DELAY_SECONDS".into(), "1".into());
        env.insert("ERLMCP_DRAIN_SECONDS".into(), "5".into());
        // The admin listener is on 127.0.0.1 for every node: each needs its own port.
        env.insert("ERLMCP_ADMIN_PORT".into(), free_loopback_port().to_string());
        Self {
            spec: NodeSpec {
                bin: PathBuf::from(SERVER_BIN),
                name: name.into(),
                ip: ip.into(),
                ports,
                env,
                config: None,
                log: log_dir(test).join(format!("{name}.log")),
            },
            child: None,
            starts: 0,
        }
    }

    pub fn env(&mut self, k: &str, v: &str) -> &mut Self {
        self.spec.env.insert(k.into(), v.into());
        self
    }

    pub fn unset(&mut self, k: &str) -> &mut Self {
        self.spec.env.remove(k);
        self
    }

    pub fn peer_addr(&self) -> String {
        format!("{}:{}", self.spec.ip, self.spec.ports.peer)
    }
    pub fn mcp(&self) -> SocketAddr {
        format!("{}:{}", self.spec.ip, self.spec.ports.mcp)
            .parse()
            .unwrap()
    }
    pub fn health(&self) -> String {
        format!("http://{}:{}", self.spec.ip, self.spec.ports.health)
    }
    pub fn metrics_url(&self) -> String {
        format!(
            "http://{}:{}/metrics",
            self.spec.ip, self.spec.ports.metrics
        )
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.spec.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.spec.log)
            .unwrap();
        let mut cmd = Command::new(&self.spec.bin);
        cmd.arg("serve");
        if let Some(c) = &self.spec.config {
            let path = self.spec.log.with_extension("yaml");
            std::fs::write(&path, c).unwrap();
            cmd.arg("--config").arg(path);
        }
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("ERLMCP_BIND_ADDRESS", &self.spec.ip)
            .env("ERLMCP_NODE_NAME", format!("erlmcp@{}", self.spec.name))
            .env("ERLMCP_PORT", self.spec.ports.mcp.to_string())
            .env("HEALTH_PORT", self.spec.ports.health.to_string())
            .env("METRICS_PORT", self.spec.ports.metrics.to_string())
            .env("ERLMCP_PEER_PORT", self.spec.ports.peer.to_string())
            .env("ERLMCP_ENV", "development")
            .env("ERLMCP_LOG_LEVEL", "info")
            .envs(&self.spec.env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.child = Some(cmd.spawn().expect("spawn erlmcp"));
        self.starts += 1;
    }

    /// `erlmcp drain` against this node (what the preStop hook runs): its exit code and output.
    pub async fn drain(&self, timeout_seconds: u64) -> (Option<i32>, String) {
        let out = tokio::process::Command::new(SERVER_BIN)
            .args(["drain", "--timeout-seconds", &timeout_seconds.to_string()])
            .env_clear()
            .env("ERLMCP_ADMIN_PORT", &self.spec.env["ERLMCP_ADMIN_PORT"])
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(timeout_seconds + 35), out)
            .await
            .expect("erlmcp drain returns within its bound")
            .expect("run erlmcp drain");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// How the process ended, once it has (None while it runs or before it started).
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    /// SIGKILL: no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for the exit (bounded).
    pub async fn terminate(&mut self, within: Duration) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait_ready(&self, within: Duration) {
        let url = format!("{}/ready", self.health());
        let deadline = Instant::now() + within;
        loop {
            if let Some(r) = try_get(&url).await {
                if r.0 == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready within {within:?}; log: {}",
                self.spec.name,
                self.spec.log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn status(&self) -> Option<Value> {
        let (code, body) = try_get(&format!("{}/status", self.health())).await?;
        (code == 200).then(|| serde_json::from_str(&body).ok())?
    }

    /// Cluster nodes this node reaches (itself included), from `/status`.
    pub async fn cluster_nodes(&self) -> Option<u64> {
        self.status().await?["clusterNodes"].as_u64()
    }

    /// Names of peers this node sees up.
    pub async fn peers_up(&self) -> Vec<String> {
        let Some(s) = self.status().await else {
            return vec![];
        };
        let mut v: Vec<String> = s["peers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["state"] == "up")
            .filter_map(|p| p["name"].as_str().map(String::from))
            .collect();
        v.sort();
        v
    }

    pub async fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = try_get(&self.metrics_url()).await?;
        metric_value(&body, name)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (k, v) = l.rsplit_once(' ')?;
        (k == name).then(|| v.parse().ok())?
    })
}

/// Poll `f` until it returns true or `within` passes; returns the time it took.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t0 = Instant::now();
    loop {
        if f().await {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < within, "timed out after {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `initialize` + `notifications/initialized`; the session id.
pub async fn initialize(addr: SocketAddr) -> Result<String, String> {
    let url = format!("http://{addr}/mcp");
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "cluster-test", "version": "1"}}}).to_string();
    let r = try_request(
        "POST",
        &url,
        &[
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ],
        init,
        Duration::from_secs(5),
    )
    .await?;
    if r.status != 200 {
        return Err(format!("initialize: HTTP {} {}", r.status, r.body));
    }
    let sid = r.header("mcp-session-id").ok_or("no session id")?;
    let n = try_request(
        "POST",
        &url,
        &legacy_headers(&sid, LEGACY),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string(),
        Duration::from_secs(5),
    )
    .await?;
    if n.status != 202 {
        return Err(format!("initialized: HTTP {}", n.status));
    }
    Ok(sid)
}

pub async fn legacy_call(
    addr: SocketAddr,
    sid: &str,
    id: i64,
    method: &str,
    params: Value,
) -> Result<Resp, String> {
    try_request(
        "POST",
        &format!("http://{addr}/mcp"),
        &legacy_headers(sid, LEGACY),
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string(),
        Duration::from_secs(10),
    )
    .await
}

pub async fn echo_legacy(addr: SocketAddr, sid: &str, id: i64, text: &str) -> Result<Resp, String> {
    legacy_call(
        addr,
        sid,
        id,
        "tools/call",
        json!({"name": "echo", "arguments": {"message": text}}),
    )
    .await
}

/// A stateless (2026-07-28) `tools/call echo`.
pub async fn echo_modern(addr: SocketAddr, id: i64, text: &str) -> Result<Resp, String> {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": "echo", "arguments": {"message": text},
        "_meta": {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"}, "io.modelcontextprotocol/clientCapabilities": {}}
    }})
    .to_string();
    try_request(
        "POST",
        &format!("http://{addr}/mcp"),
        &[
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ],
        body,
        Duration::from_secs(10),
    )
    .await
}

/// The text of a tools/call result.
pub fn result_text(v: &Value) -> Option<String> {
    v["result"]["content"][0]["text"].as_str().map(String::from)
}

// ---------------------------------------------------------------- fault proxy

/// A TCP proxy that can black-hole traffic (packets dropped, connections left hanging), the
/// way a partition looks from both ends.
pub struct FaultProxy {
    pub listen: String,
    cut: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    pub async fn start(listen: &str, target: &str) -> Self {
        let l = TcpListener::bind(listen).await.expect("proxy bind");
        let cut = Arc::new(AtomicBool::new(false));
        let (c, target) = (cut.clone(), target.to_string());
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = l.accept().await else {
                    continue;
                };
                let (c, target) = (c.clone(), target.clone());
                tokio::spawn(async move {
                    if c.load(Ordering::Relaxed) {
                        // Accept, then say nothing: a black hole.
                        hold(inbound).await;
                        return;
                    }
                    let Ok(outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    tokio::join!(pump(ri, wo, c.clone()), pump(ro, wi, c.clone()));
                });
            }
        });
        Self {
            listen: listen.into(),
            cut,
            task,
        }
    }
    pub fn cut(&self) {
        self.cut.store(true, Ordering::Relaxed);
    }
    pub fn heal(&self) {
        self.cut.store(false, Ordering::Relaxed);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn hold(mut s: TcpStream) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

async fn pump(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    cut: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // While cut, bytes are dropped on the floor; a connection cut once stays dead.
        if cut.load(Ordering::Relaxed) {
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        }
        if w.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = w.shutdown().await;
}

/// Three nodes that address each other directly (static discovery).
pub fn three_static(test: &str) -> Vec<Node> {
    let net = subnet();
    let ports = Ports::random();
    let ips: Vec<String> = (1..=3).map(|i| format!("{net}.{i}")).collect();
    (0..3)
        .map(|i| {
            let mut n = Node::new(test, &format!("n{}", i + 1), &ips[i], ports);
            let peers: Vec<String> = ips
                .iter()
                .map(|ip| format!("{ip}:{}", ports.peer))
                .collect();
            // Every node gets the full list, itself included (as in Compose): it skips itself.
            n.env("ERLMCP_PEERS", &peers.join(","));
            n
        })
        .collect()
}

pub async fn start_all(nodes: &mut [Node]) {
    for n in nodes.iter_mut() {
        n.start();
    }
    for n in nodes.iter() {
        n.wait_ready(Duration::from_secs(20)).await;
    }
}

/// Wait until every running node reaches `want` nodes.
pub async fn converge(nodes: &[&Node], want: u64, within: Duration) -> Duration {
    eventually(&format!("all nodes see {want}"), within, || async {
        for n in nodes {
            if n.cluster_nodes().await != Some(want) {
                return false;
            }
        }
        true
    })
    .await
}
