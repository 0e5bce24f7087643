//! `erlmcp drain` (the admin listener's `POST /drain`): the node leaves the ready set, refuses
//! new work with 503, and answers only once the request in flight has finished, which gets
//! its real result, not an error.

mod support;

use std::time::{Duration, Instant};

use erlmcp_dataplane::app;
use erlmcp_dataplane::limits::SlowClient;
use erlmcp_dataplane::transport::admin;
use serde_json::json;
use support::cluster;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_refuses_new_work_and_waits_for_in_flight() {
    let s = start(
        "mcp:\n  tools:\n    - name: slow\n      inputSchema: {type: object}\n      backend: {command: {command: [/bin/sh, -c, 'sleep 1; echo done'], timeoutSeconds: 20}}\n",
        &[],
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_port = listener.local_addr().unwrap().port();
    tokio::spawn(app::serve_http(
        listener,
        admin::router(s.state.clone()),
        None,
        None,
        SlowClient::default(),
        std::future::pending::<()>(),
        Duration::from_secs(1),
    ));
    let addr = s.mcp_addr;
    let slow = tokio::spawn(async move {
        modern(
            addr,
            1,
            "tools/call",
            json!({"name": "slow", "arguments": {}}),
        )
        .await
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while admin::in_flight(&s.state) == 0 {
        assert!(Instant::now() < deadline, "the slow call never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let answer = admin::request_drain(admin_port, Duration::from_secs(20))
        .await
        .expect("drain answers");
    assert_eq!(answer["status"], "drained", "{answer}");
    assert_eq!(answer["inFlight"], 0);
    // Drained means the call had finished: its result is already there.
    assert!(
        slow.is_finished(),
        "drain answered before the in-flight call ended"
    );
    let r = slow.await.unwrap();
    assert_eq!(
        r.json()["result"]["content"][0]["text"]
            .as_str()
            .map(str::trim),
        Some("done"),
        "{}",
        r.body
    );
    let refused = modern(addr, 2, "tools/list", json!({})).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(refused.header("retry-after").is_some());
    let ready = try_get(&format!("http://{}/ready", s.health_addr)).await;
    assert_eq!(ready.map(|r| r.0), Some(503));
}

#[tokio::test]
async fn drain_reports_a_timeout_when_work_outlives_its_bound() {
    let s = start(
        "mcp:\n  tools:\n    - name: slow\n      inputSchema: {type: object}\n      backend: {command: {command: [/bin/sh, -c, 'sleep 5; echo done'], timeoutSeconds: 20}}\n",
        &[],
    )
    .await;
    let addr = s.mcp_addr;
    let _slow = tokio::spawn(async move {
        modern(
            addr,
            1,
            "tools/call",
            json!({"name": "slow", "arguments": {}}),
        )
        .await
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while admin::in_flight(&s.state) == 0 {
        assert!(Instant::now() < deadline, "the slow call never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!admin::wait_idle(&s.state, Duration::from_millis(200)).await);
    assert_eq!(admin::in_flight(&s.state), 1);
}

/// The health port faces the network: it has no `/drain` (404, and the node stays ready); the
/// preStop command drains through the loopback admin listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_is_a_command_not_a_network_endpoint() {
    let mut n = cluster::Node::new(
        "drain-command",
        "n1",
        &format!("{}.1", cluster::subnet()),
        cluster::Ports::random(),
    );
    n.start();
    n.wait_ready(Duration::from_secs(20)).await;
    for method in ["GET", "POST"] {
        let r = try_request(
            method,
            &format!("{}/drain", n.health()),
            &[],
            bytes::Bytes::new(),
            Duration::from_secs(10),
        )
        .await
        .expect("health port answers");
        assert_eq!(
            r.status, 404,
            "{method} /drain on the health port: {}",
            r.body
        );
    }
    let ready = try_get(&format!("{}/ready", n.health())).await;
    assert_eq!(ready.map(|r| r.0), Some(200), "still ready");
    let (code, out) = n.drain(10).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("drained"), "{out}");
    let ready = try_get(&format!("{}/ready", n.health())).await;
    assert_eq!(ready.map(|r| r.0), Some(503), "drained: not ready");
}
