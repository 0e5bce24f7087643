//! The attacks of issue 12, each against a RELEASE build of `erlmcp` run as its own process on
//! loopback: every case asserts the attacker's answer and that an honest client is served at
//! the same time. The binary is `ERLMCP_RELEASE_BIN`, else `target/release/erlmcp`; without it
//! the suite fails (never skips). `dataplane/tests/hostile_release.sh` builds it and runs this.
//! Every loop is bounded in count and in time; the bounds are generous multiples of the
//! configured timeouts, so they assert behaviour, not speed.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use support::cluster::{echo_modern, eventually, result_text, subnet, Node, Ports};
use support::{closed_by_server, legacy, legacy_session, tcp_echo};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

/// Long enough for any few-second server timeout to have fired, on a loaded machine.
const BOUND: Duration = Duration::from_secs(30);

/// The release binary under test; a missing one fails the suite with what to do about it.
fn release_bin() -> PathBuf {
    let bin = std::env::var_os("ERLMCP_RELEASE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/erlmcp")
        });
    assert!(
        bin.is_file(),
        "no release erlmcp at {}: build it with `cargo build --release -p erlmcp-dataplane --bin erlmcp` \
         (or run dataplane/tests/hostile_release.sh), or set ERLMCP_RELEASE_BIN",
        bin.display()
    );
    bin
}

/// A release node on its own loopback address, started with `config` and ready.
async fn release_node(test: &str, config: &str) -> Node {
    let mut n = unstarted(test, config);
    n.start();
    n.wait_ready(BOUND).await;
    n
}

fn unstarted(test: &str, config: &str) -> Node {
    let mut n = Node::new(test, "n1", &format!("{}.1", subnet()), Ports::random());
    n.spec.bin = release_bin();
    n.spec.config = Some(config.to_string());
    // A fresh log: a case that reads it must not see an earlier run's lines.
    let _ = std::fs::remove_file(&n.spec.log);
    n
}

/// An honest stateless echo is answered (retrying refused or cut connections) before `within`.
async fn honest_served(addr: SocketAddr, within: Duration) -> Result<String, String> {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    while Instant::now() < deadline {
        match echo_modern(addr, 7, "honest").await {
            Ok(r) if result_text(&r.json()).as_deref() == Some("honest") => {
                return Ok("honest".into())
            }
            Ok(r) => last = format!("HTTP {}: {}", r.status, r.body),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!(
        "honest client not served within {within:?}: {last}"
    ))
}

fn tcp_addr(n: &Node, port: u16) -> SocketAddr {
    format!("{}:{port}", n.spec.ip).parse().unwrap()
}

/// One honest echo over TCP, answered on its own line.
async fn honest_tcp(addr: SocketAddr) -> Value {
    let mut c = TcpStream::connect(addr).await.expect("honest tcp connect");
    c.write_all(&tcp_echo(1, "honest")).await.unwrap();
    let mut line = String::new();
    timeout(BOUND, BufReader::new(c).read_line(&mut line))
        .await
        .expect("honest tcp answer in time")
        .expect("honest tcp read");
    serde_json::from_str(&line).unwrap_or(Value::Null)
}

/// Resident memory of a process, in KiB, from /proc/<pid>/status.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// The highest RSS of `pid` seen every 50 ms until `stop` is set (at most 2400 samples).
fn sample_peak_rss(pid: u32, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut peak = 0;
        for _ in 0..2400 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            peak = peak.max(rss_kib(pid));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        peak
    })
}

/// With bearer auth on, TCP (which carries no credential) is refused: the server will not
/// start with it, says which field and why, and never listens on the port. The same
/// configuration without TCP serves a token holder while a tokenless client gets 401.
#[tokio::test]
async fn tcp_without_a_credential_is_refused_when_auth_is_on() {
    let auth = "mcp:\n  auth: {mode: bearer, bearerToken: {value: t0ken}}\n";
    let mut refused = unstarted(
        "hostile_release_tcp_auth",
        &format!("{auth}  transports: {{tcp: {{enabled: true}}}}\n"),
    );
    let tcp_port = refused.spec.ports.peer + 100;
    refused.env("ERLMCP_TCP_PORT", &tcp_port.to_string());
    refused.start();
    let deadline = Instant::now() + BOUND;
    let status = loop {
        if let Some(st) = refused.exit_status() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "erlmcp kept running with TCP and auth"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        !status.success(),
        "a refused start exits non-zero: {status}"
    );
    let log = std::fs::read_to_string(&refused.spec.log).unwrap();
    assert!(
        log.contains("mcp.transports.tcp.enabled") && log.contains("carries no credential"),
        "the refusal names the field and says why: {log}"
    );
    let attacker = TcpStream::connect(tcp_addr(&refused, tcp_port)).await;
    assert!(attacker.is_err(), "nothing listens on the TCP port");

    let n = release_node("hostile_release_tcp_auth_http", auth).await;
    let tokenless = async {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": support::modern_meta()}}).to_string();
        support::try_request(
            "POST",
            &format!("http://{}/mcp", n.mcp()),
            &[
                ("content-type", "application/json"),
                ("accept", "application/json, text/event-stream"),
                ("mcp-protocol-version", support::MODERN),
                ("mcp-method", "tools/list"),
            ],
            body,
            BOUND,
        )
        .await
    };
    let holder = async {
        let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "honest"}, "_meta": support::modern_meta()}}).to_string();
        support::try_request(
            "POST",
            &format!("http://{}/mcp", n.mcp()),
            &[
                ("content-type", "application/json"),
                ("accept", "application/json, text/event-stream"),
                ("mcp-protocol-version", support::MODERN),
                ("mcp-method", "tools/call"),
                ("mcp-name", "echo"),
                ("authorization", "Bearer t0ken"),
            ],
            body,
            BOUND,
        )
        .await
    };
    let (tokenless, holder) = tokio::join!(tokenless, holder);
    assert_eq!(tokenless.expect("tokenless answered").status, 401);
    let holder = holder.expect("token holder answered");
    assert_eq!(
        result_text(&holder.json()).as_deref(),
        Some("honest"),
        "{}",
        holder.body
    );
}

/// Tool processes that record when they run: each appends "start", sleeps, appends "end" to
/// one log (O_APPEND lines do not interleave). The largest count of starts not yet ended,
/// read in the log's order, is how many ran at once.
fn max_overlap(log: &str) -> (usize, usize) {
    let (mut now, mut max, mut starts) = (0usize, 0usize, 0usize);
    for l in log.lines() {
        match l {
            "start" => {
                now += 1;
                starts += 1;
                max = max.max(now);
            }
            "end" => now = now.saturating_sub(1),
            other => panic!("unexpected line {other:?} in the tool log"),
        }
    }
    (max, starts)
}

/// A 2025-03-26 batch of 12 calls under `maxConcurrentRequests: 2` runs at most two tool
/// processes at once, answers all 12, and an honest client is answered meanwhile.
#[tokio::test]
async fn a_batch_of_twelve_runs_at_most_two_tools_at_once() {
    let log = std::env::temp_dir().join(format!("erlmcp-release-batch-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let script = format!(
        "echo start >> {0}; sleep 0.3; echo end >> {0}; echo '{{}}'",
        log.display()
    );
    let n = release_node(
        "hostile_release_batch",
        &format!(
            "mcp:\n  limits: {{maxConcurrentRequests: 2}}\n  tools:\n    - name: step\n      inputSchema: {{type: object}}\n      backend: {{command: {{command: [/bin/sh, -c, {script:?}], timeoutSeconds: 20}}}}\n"
        ),
    )
    .await;
    let (sid, _) = legacy_session(n.mcp(), "2025-03-26").await;
    let calls: Vec<Value> = (1..=12)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "step", "arguments": {}}}))
        .collect();
    let url = format!("http://{}/mcp", n.mcp());
    let headers = support::legacy_headers(&sid, "2025-03-26");
    let batch = support::try_request(
        "POST",
        &url,
        &headers,
        Value::Array(calls).to_string(),
        BOUND,
    );
    // The honest client asks once the batch's first tool has started.
    let log_path = &log;
    let honest = async {
        eventually("the batch starts a tool", BOUND, || async move {
            std::fs::read_to_string(log_path).is_ok_and(|l| l.contains("start"))
        })
        .await;
        honest_served(n.mcp(), BOUND).await
    };
    let (batch, honest) = tokio::join!(batch, honest);
    honest.expect("honest client during the batch");
    let batch = batch.expect("batch answered");
    assert_eq!(batch.status, 200, "{}", batch.body);
    let answers = batch.json();
    let answers = answers.as_array().expect("an array for an array");
    assert_eq!(answers.len(), 12, "{answers:?}");
    for a in answers {
        assert!(
            a["result"].is_object() && a["result"]["isError"].is_null(),
            "{a}"
        );
    }
    let (max, starts) = max_overlap(&std::fs::read_to_string(&log).unwrap());
    assert_eq!(starts, 12, "every call ran its tool once");
    assert!(max <= 2, "{max} tool processes ran at once");
    let _ = std::fs::remove_file(&log);
}

/// A TCP client that pipelines 16 KB echo calls and never reads: the server stops reading it,
/// its memory stays within +64 MiB, it closes the client after the write timeout (default
/// limits otherwise), and an honest TCP client is served while the attacker is connected.
#[tokio::test]
async fn a_pipelining_client_that_never_reads_cannot_grow_the_server() {
    let mut n = unstarted(
        "hostile_release_pipeline",
        "mcp:\n  transports: {tcp: {enabled: true}}\n  limits: {writeTimeoutSeconds: 3}\n",
    );
    let tcp_port = n.spec.ports.peer + 100;
    n.env("ERLMCP_TCP_PORT", &tcp_port.to_string());
    n.start();
    n.wait_ready(BOUND).await;
    let addr = tcp_addr(&n, tcp_port);
    let pid = n.pid().expect("pid");
    assert_eq!(
        result_text(&honest_tcp(addr).await).as_deref(),
        Some("honest")
    );
    let baseline = rss_kib(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_peak_rss(pid, stop.clone());
    let mut attacker = TcpStream::connect(addr).await.unwrap();
    let big = "x".repeat(16 * 1024);
    // At most 4096 calls (64 MiB): a server that kept reading would take them all.
    let mut stopped = false;
    for id in 0..4096u64 {
        match timeout(
            Duration::from_secs(3),
            attacker.write_all(&tcp_echo(id, &big)),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => {
                stopped = true;
                break;
            }
        }
    }
    assert!(
        stopped,
        "the server read every call of a client that never reads"
    );
    let honest = honest_tcp(addr).await;
    assert_eq!(result_text(&honest).as_deref(), Some("honest"), "{honest}");
    closed_by_server(&mut attacker, BOUND).await;
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.await.unwrap().max(rss_kib(pid));
    let grown_mib = peak.saturating_sub(baseline) / 1024;
    assert!(
        grown_mib <= 64,
        "RSS grew by {grown_mib} MiB ({baseline} KiB -> {peak} KiB)"
    );
    assert!(n.is_running(), "the server survived");
    assert_eq!(
        result_text(&honest_tcp(addr).await).as_deref(),
        Some("honest")
    );
}

/// Two clients that send a request body a byte a second hold both slots of
/// `maxConnections: 2` only until the body timeout: each is answered 408 and closed, and an
/// honest client is served within a few body timeouts (the dribblers would hold on for 30 s).
#[tokio::test]
async fn slow_bodies_under_max_connections_free_their_slots() {
    let body_timeout = 3;
    let n = release_node(
        "hostile_release_slow_body",
        &format!("mcp:\n  limits: {{maxConnections: 2, bodyReadTimeoutSeconds: {body_timeout}}}\n"),
    )
    .await;
    let head = "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 4096\r\n\r\n{";
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(n.mcp()).await.unwrap();
        c.write_all(head.as_bytes()).await.unwrap();
        slow.push(c);
    }
    // One byte a second each, 30 at most; each stops at the server's answer or hang-up.
    let dribble = |mut c: TcpStream| async move {
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        for _ in 0..30 {
            if c.write_all(b" ").await.is_err() {
                break;
            }
            match timeout(Duration::from_secs(1), c.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(k)) => answer.extend_from_slice(&buf[..k]),
                Err(_) => {}
            }
        }
        let rest = closed_by_server(&mut c, BOUND).await;
        format!("{}{rest}", String::from_utf8_lossy(&answer))
    };
    let mut slow = slow.into_iter();
    let (a, b) = (slow.next().unwrap(), slow.next().unwrap());
    let honest = async {
        // Both slots are held first: let the server accept the two slow connections.
        tokio::time::sleep(Duration::from_millis(300)).await;
        // A few body timeouts, well under the 30 s the dribblers keep writing: only a cut
        // body frees a slot in time.
        honest_served(n.mcp(), Duration::from_secs(4 * body_timeout)).await
    };
    let (a, b, honest) = tokio::join!(dribble(a), dribble(b), honest);
    for answer in [a, b] {
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "a cut body is answered 408: {answer:?}"
        );
    }
    honest.expect("honest client beside two slow bodies");
}

/// `resources/read` of `docs://c/%aé` (a broken escape before a multi-byte character) is a
/// clear error naming the URI, over HTTP and over stdio, and the process keeps serving.
#[tokio::test]
async fn a_broken_escape_in_a_template_uri_is_a_clear_error() {
    let config = "mcp:\n  resourceTemplates:\n    - uriTemplate: 'docs://c/{name}'\n      name: docs\n      text: 'doc {name}'\n";
    let mut n = release_node("hostile_release_template", config).await;
    let (sid, _) = legacy_session(n.mcp(), "2025-11-25").await;
    let attack = legacy(
        n.mcp(),
        &sid,
        "2025-11-25",
        1,
        "resources/read",
        json!({"uri": "docs://c/%aé"}),
    );
    let (attack, honest) = tokio::join!(attack, honest_served(n.mcp(), BOUND));
    assert_eq!(attack.status, 200, "{}", attack.body);
    let err = attack.json();
    assert_eq!(err["error"]["data"]["uri"], "docs://c/%aé", "{err}");
    assert!(err["error"]["message"].is_string(), "{err}");
    honest.expect("honest client beside the broken URI");
    let ok = legacy(
        n.mcp(),
        &sid,
        "2025-11-25",
        2,
        "resources/read",
        json!({"uri": "docs://c/caf%C3%A9"}),
    )
    .await;
    assert_eq!(
        ok.json()["result"]["contents"][0]["text"],
        "doc café",
        "{}",
        ok.body
    );
    assert!(n.is_running(), "the HTTP server process is alive");

    // Over stdio a panic would end the process: it answers, then answers the next request.
    let path = n.spec.log.with_extension("stdio.yaml");
    std::fs::write(&path, config).unwrap();
    let mut child = tokio::process::Command::new(release_bin())
        .args(["serve", "--stdio", "--config"])
        .arg(&path)
        .env("ERLMCP_LOG_LEVEL", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn release erlmcp --stdio");
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    for v in [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "resources/read", "params": {"uri": "docs://c/%aé"}}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "honest"}}}),
    ] {
        stdin.write_all(format!("{v}\n").as_bytes()).await.unwrap();
    }
    let mut replies: Vec<Value> = Vec::new();
    // Three answers (initialize, the read, the call; requests run concurrently, so in any
    // order); at most 50 lines, within BOUND.
    timeout(BOUND, async {
        for _ in 0..50 {
            let Ok(Some(l)) = out.next_line().await else {
                return;
            };
            if let Ok(v) = serde_json::from_str::<Value>(&l) {
                replies.push(v);
            }
            let answered = |id: i64| replies.iter().any(|r| r["id"] == id);
            if answered(2) && answered(3) {
                return;
            }
        }
    })
    .await
    .expect("stdio answers in time");
    let by_id = |id: i64| replies.iter().find(|r| r["id"] == id);
    let bad = by_id(2).unwrap_or_else(|| panic!("no answer to the broken URI: {replies:?}"));
    assert_eq!(bad["error"]["data"]["uri"], "docs://c/%aé", "{bad}");
    let next = by_id(3).unwrap_or_else(|| panic!("no answer after the broken URI: {replies:?}"));
    assert_eq!(result_text(next).as_deref(), Some("honest"), "{next}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the stdio process is alive"
    );
    drop(stdin);
    let _ = timeout(BOUND, child.wait()).await;
    let _ = std::fs::remove_file(&path);
}
