//! Sessions across pods: a session lives on the node that minted it; requests that land on any
//! other node are forwarded to the owner over the peer channel (SSE included). Owner killed:
//! 404, then a clean re-initialise. Owner restarted with its session volume: the session lives.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use support::cluster::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_forwarded_to_their_owner_and_404_when_it_is_gone() {
    let mut nodes = three_static("sessions");
    let dir = log_dir("sessions").join("n1-sessions");
    let _ = std::fs::remove_dir_all(&dir);
    nodes[0].spec.config = Some(format!("sessionDir: {}\n", dir.display()));
    start_all(&mut nodes).await;
    {
        let r: Vec<&Node> = nodes.iter().collect();
        converge(&r, 3, Duration::from_secs(20)).await;
    }
    let (a, b, c) = (nodes[0].mcp(), nodes[1].mcp(), nodes[2].mcp());

    // Initialise on A; the id names A.
    let sid = initialize(a).await.unwrap();
    assert!(sid.starts_with("n1~"), "{sid}");

    // Next requests on B and C: answered by A, correctly.
    for (i, addr) in [b, c, a, c, b].into_iter().enumerate() {
        let r = echo_legacy(addr, &sid, 10 + i as i64, &format!("hi {i}"))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            result_text(&r.json()).as_deref(),
            Some(format!("hi {i}").as_str())
        );
    }
    // Session state is the owner's: setLevel through C. (That a logging tool's SSE response
    // then streams back through B needs a tool that logs: the conformance fixture
    // `test_tool_with_logging`, so that step is conformance/tests/cluster_forwarding.rs.)
    let r = legacy_call(c, &sid, 30, "logging/setLevel", json!({"level": "debug"}))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);

    // The standalone GET stream, opened on C, is A's stream: it starts with a primed event id
    // and stays open until we leave.
    let mut stream = open_stream(c, &sid).await;
    let first = next_chunk(&mut stream, Duration::from_secs(5))
        .await
        .expect("first event");
    assert!(first.contains("id: "), "{first:?}");

    // Forwarded counters tick on the entry nodes.
    let fwd_b = nodes[1]
        .metric("erlmcp_cluster_forwarded_total")
        .await
        .unwrap();
    assert!(fwd_b >= 2.0, "{fwd_b}");

    // Unknown sessions of a live owner stay 404 (no loops, no hangs).
    let bogus = "n1~00000000000000000000000000000000";
    let r = echo_legacy(b, bogus, 40, "x").await.unwrap();
    assert_eq!(r.status, 404, "{}", r.body);

    // Owner restarted under the same identity with its session volume: the session survives.
    // Wait for the once-a-second snapshot to hold the session (a fixed sleep races on a loaded
    // machine), bounded: the kill below is a SIGKILL, so no shutdown snapshot follows.
    let file = dir.join("sessions.json");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !std::fs::read_to_string(&file).is_ok_and(|t| t.contains(sid.as_str())) {
        assert!(
            Instant::now() < deadline,
            "no snapshot of {sid} in {}",
            file.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(stream);
    nodes[0].kill();
    nodes[0].start();
    nodes[0].wait_ready(Duration::from_secs(20)).await;
    {
        let r: Vec<&Node> = nodes.iter().collect();
        converge(&r, 3, Duration::from_secs(20)).await;
    }
    let r = echo_legacy(b, &sid, 50, "still here").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(result_text(&r.json()).as_deref(), Some("still here"));

    // Owner killed for good: B answers 404 promptly (before and after the detector notices),
    // and the client re-initialises cleanly on B.
    nodes[0].kill();
    let t0 = Instant::now();
    let r = echo_legacy(b, &sid, 60, "anyone?").await.unwrap();
    let first_404 = t0.elapsed();
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(first_404 < Duration::from_secs(3), "404 took {first_404:?}");
    eventually("B sees A down", Duration::from_secs(15), || async {
        nodes[1].cluster_nodes().await == Some(2)
    })
    .await;
    let r = echo_legacy(c, &sid, 61, "anyone?").await.unwrap();
    assert_eq!(r.status, 404, "{}", r.body);
    let sid2 = initialize(b).await.unwrap();
    assert!(sid2.starts_with("n2~"), "{sid2}");
    let r = echo_legacy(c, &sid2, 62, "again").await.unwrap();
    assert_eq!(result_text(&r.json()).as_deref(), Some("again"));
    // DELETE is forwarded too.
    let r = try_request(
        "DELETE",
        &format!("http://{c}/mcp"),
        &legacy_headers(&sid2, LEGACY),
        Bytes::new(),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let r = echo_legacy(b, &sid2, 63, "gone").await.unwrap();
    assert_eq!(r.status, 404);
    println!("first 404 after owner SIGKILL: {first_404:?}");
}

type Stream = hyper::body::Incoming;

async fn open_stream(addr: std::net::SocketAddr, sid: &str) -> Stream {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = http::Request::get(format!("http://{addr}/mcp"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", sid)
        .header("mcp-protocol-version", LEGACY)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    resp.into_body()
}

async fn next_chunk(s: &mut Stream, within: Duration) -> Option<String> {
    loop {
        let f = tokio::time::timeout(within, s.frame()).await.ok()??.ok()?;
        if let Ok(d) = f.into_data() {
            return Some(String::from_utf8_lossy(&d).into_owned());
        }
    }
}
