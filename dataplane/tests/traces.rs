//! OpenTelemetry traces across pods, against a real collector (Jaeger v2 built from its Go
//! module, on loopback): a session request sent to B with the client's `traceparent` is
//! forwarded to its owner A, and Jaeger holds ONE trace, the client's, with spans from both
//! nodes, A's hanging under B's forward span; A's call to an HTTP tool backend carries a
//! `traceparent` naming A's backend span; and a log line written while serving a traced request
//! carries that request's trace id. No Jaeger, no pass: the test fails.

mod support;

#[path = "../../telemetry/testsupport/jaeger.rs"]
mod jaeger;

use std::time::Duration;

use serde_json::Value;
use support::cluster::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A one-request HTTP backend on loopback: answers `{"ok":true}` and hands over the request's
/// `traceparent` header.
async fn backend() -> (String, tokio::sync::oneshot::Receiver<Option<String>>) {
    backend_answering("200 OK").await
}

/// [`backend`] with another status line (a 5xx makes the server log the failure).
async fn backend_answering(
    status: &'static str,
) -> (String, tokio::sync::oneshot::Receiver<Option<String>>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/lookup", l.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let Ok(Ok((mut s, _))) = tokio::time::timeout(Duration::from_secs(60), l.accept()).await
        else {
            return;
        };
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => break,
            }
        }
        let head = String::from_utf8_lossy(&buf).to_string();
        let tp = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("traceparent")
                .then(|| v.trim().to_string())
        });
        let body = r#"{"ok":true}"#;
        let _ = s
            .write_all(
                format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .await;
        let _ = tx.send(tp);
    });
    (url, rx)
}

fn fresh_traceparent() -> (String, String, String) {
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let span_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_string();
    let tp = format!("00-{trace_id}-{span_id}-01");
    (trace_id, span_id, tp)
}

async fn call_via(
    addr: std::net::SocketAddr,
    sid: &str,
    traceparent: &str,
    tool: &str,
    args: Value,
) -> Resp {
    let mut headers = legacy_headers(sid, LEGACY);
    headers.push(("traceparent", traceparent));
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": tool, "arguments": args}});
    let r = try_request(
        "POST",
        &format!("http://{addr}/mcp"),
        &headers,
        body.to_string(),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r
}

fn span_where<'a>(trace: &'a Value, key: &str, value: &str) -> Option<&'a Value> {
    trace["spans"]
        .as_array()?
        .iter()
        .find(|s| jaeger::tag(s, key).as_deref() == Some(value))
}

fn span_with<'a>(trace: &'a Value, key: &str) -> Option<&'a Value> {
    trace["spans"]
        .as_array()?
        .iter()
        .find(|s| jaeger::tag(s, key).is_some())
}

fn instance_of(trace: &Value, span: &Value) -> Option<String> {
    jaeger::tag(jaeger::process_of(trace, span), "service.instance.id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_session_request_is_one_trace_across_both_nodes() {
    let dir = log_dir("traces");
    let collector = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || jaeger::Jaeger::start(&dir)
    })
    .await
    .unwrap();

    let net = subnet();
    let ports = Ports::random();
    let ips = [format!("{net}.1"), format!("{net}.2")];
    let peers = ips
        .iter()
        .map(|ip| format!("{ip}:{}", ports.peer))
        .collect::<Vec<_>>()
        .join(",");
    let (backend_url, backend_saw) = backend().await;
    let config = format!(
        "mcp:\n  tools:\n    - name: lookup\n      backend:\n        http:\n          url: {backend_url}\n"
    );
    let mut nodes: Vec<Node> = ["n1", "n2"]
        .iter()
        .zip(&ips)
        .map(|(name, ip)| {
            let mut n = Node::new("traces", name, ip, ports);
            n.env("ERLMCP_PEERS", &peers)
                .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.otlp_endpoint)
                .env("OTEL_SERVICE_NAME", "erlmcp")
                .env(
                    "OTEL_RESOURCE_ATTRIBUTES",
                    &format!("service.instance.id={name}"),
                )
                // Export within a fraction of a second instead of the default 5s.
                .env("OTEL_BSP_SCHEDULE_DELAY", "100");
            n.spec.config = Some(config.clone());
            n
        })
        .collect();
    start_all(&mut nodes).await;
    converge(
        &nodes.iter().collect::<Vec<_>>(),
        2,
        Duration::from_secs(20),
    )
    .await;
    let (a, b) = (nodes[0].mcp(), nodes[1].mcp());

    let sid = initialize(a).await.unwrap();
    assert!(sid.starts_with("n1~"), "{sid}");

    // The client starts the trace: a fresh id, so nothing else can answer for it.
    let (trace_id, client_span, traceparent) = fresh_traceparent();
    let client_span = client_span.as_str();
    let r = call_via(
        b,
        &sid,
        &traceparent,
        "echo",
        serde_json::json!({"message": "traced"}),
    )
    .await;
    assert_eq!(result_text(&r.json()).as_deref(), Some("traced"));
    // A second trace: the owner calls the HTTP backend, passing the context on.
    let (backend_trace, _, tp2) = fresh_traceparent();
    call_via(b, &sid, &tp2, "lookup", serde_json::json!({"q": 1})).await;
    let seen = tokio::time::timeout(Duration::from_secs(10), backend_saw)
        .await
        .expect("the backend was called")
        .unwrap()
        .expect("the backend request carried a traceparent");
    let parts: Vec<&str> = seen.split('-').collect();
    assert_eq!(parts.len(), 4, "{seen}");
    assert_eq!(
        parts[1], backend_trace,
        "the backend joined the client's trace"
    );
    let backend_parent = parts[2].to_string();

    let (trace, backend_trace) = tokio::task::spawn_blocking(move || {
        let t = collector.wait_for(
            "the forwarded request's trace with spans from both nodes",
            Duration::from_secs(30),
            |j| {
                let t = j.trace(&trace_id)?;
                // Complete once the owner's request span and the entry node's forward are in.
                span_where(&t, "mcp.method.name", "tools/call")?;
                span_with(&t, "erlmcp.owner")?;
                Some(t)
            },
        );
        let bt = collector.wait_for("the backend call's trace", Duration::from_secs(30), |j| {
            let t = j.trace(&backend_trace)?;
            span_with(&t, "url.full")?;
            Some(t)
        });
        drop(collector);
        (t, bt)
    })
    .await
    .unwrap();

    // B: the HTTP exchange (child of the client's span) and the forward to A under it.
    let forward = span_with(&trace, "erlmcp.owner").unwrap();
    assert_eq!(instance_of(&trace, forward).as_deref(), Some("n2"));
    let b_http = trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| jaeger::parent_of(s).as_deref() == Some(client_span))
        .expect("a span of B whose parent is the client's");
    assert_eq!(instance_of(&trace, b_http).as_deref(), Some("n2"));

    // A: the forwarded exchange hangs under B's forward span, the MCP request under it.
    let a_http = span_where(&trace, "erlmcp.forwarded_by", "erlmcp@n2")
        .expect("A's span of the forwarded exchange");
    assert_eq!(instance_of(&trace, a_http).as_deref(), Some("n1"));
    assert_eq!(
        jaeger::parent_of(a_http).as_deref(),
        forward["spanID"].as_str()
    );
    let request = span_where(&trace, "mcp.method.name", "tools/call").unwrap();
    assert_eq!(instance_of(&trace, request).as_deref(), Some("n1"));
    assert_eq!(jaeger::tag(request, "mcp.target").as_deref(), Some("echo"));
    assert_eq!(jaeger::tag(request, "mcp.session").as_deref(), Some("true"));
    assert_eq!(
        jaeger::tag(request, "mcp.protocol.version").as_deref(),
        Some(LEGACY)
    );
    assert_eq!(
        jaeger::tag(request, "mcp.transport").as_deref(),
        Some("http")
    );

    // The backend's parent is A's backend span, in the second trace.
    let call = span_with(&backend_trace, "url.full").unwrap();
    assert_eq!(call["spanID"].as_str(), Some(backend_parent.as_str()));
    assert_eq!(instance_of(&backend_trace, call).as_deref(), Some("n1"));
    assert_eq!(
        jaeger::tag(call, "http.response.status_code").as_deref(),
        Some("200")
    );

    for n in nodes.iter_mut() {
        n.terminate(Duration::from_secs(10)).await;
    }
}

/// Logs carry the trace id: with traces on, a JSON log line written inside a request (here the
/// warning about a failing tool backend) lists the request's span with the client's trace id,
/// the same trace the collector holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_line_of_a_traced_request_carries_its_trace_id() {
    let dir = log_dir("trace-logs");
    let collector = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || jaeger::Jaeger::start(&dir)
    })
    .await
    .unwrap();
    let (backend_url, _saw) = backend_answering("503 Service Unavailable").await;
    let mut node = Node::new(
        "trace-logs",
        "n1",
        &format!("{}.1", subnet()),
        Ports::random(),
    );
    node.env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.otlp_endpoint)
        .env("OTEL_SERVICE_NAME", "erlmcp")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("ERLMCP_LOG_FORMAT", "json");
    node.spec.config = Some(format!(
        "mcp:\n  tools:\n    - name: lookup\n      backend:\n        http:\n          url: {backend_url}\n"
    ));
    start_all(std::slice::from_mut(&mut node)).await;
    let sid = initialize(node.mcp()).await.unwrap();
    let (trace_id, _, traceparent) = fresh_traceparent();
    call_via(
        node.mcp(),
        &sid,
        &traceparent,
        "lookup",
        serde_json::json!({"q": 1}),
    )
    .await;

    let trace_of = |line: &Value| -> Vec<String> {
        line["spans"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["trace_id"].as_str().map(str::to_string))
            .collect()
    };
    let log = node.spec.log.clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let line = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let found = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["message"] == "tool backend failed");
        if let Some(l) = found {
            break l;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no backend failure logged in {}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        trace_of(&line).contains(&trace_id),
        "the log line names the request's trace {trace_id}: {line}"
    );
    let held = tokio::task::spawn_blocking(move || {
        collector.wait_for("the request's trace", Duration::from_secs(30), |j| {
            j.trace(&trace_id)
        })
    })
    .await
    .unwrap();
    assert!(
        span_where(&held, "mcp.method.name", "tools/call").is_some(),
        "{held}"
    );
}
