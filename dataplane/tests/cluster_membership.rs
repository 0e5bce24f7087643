//! Three real `erlmcp` processes on loopback form a cluster; one is SIGKILLed and comes back.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::cluster::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_form_a_cluster_notice_a_kill_and_rejoin() {
    let mut nodes = three_static("membership");
    start_all(&mut nodes).await;
    let formed = {
        let r: Vec<&Node> = nodes.iter().collect();
        converge(&r, 3, Duration::from_secs(20)).await
    };
    println!("cluster of 3 formed {formed:?} after all were ready");

    // Each sees the other two, by name; metrics agree with /status (the partition gauge is
    // re-evaluated every half probe interval).
    for n in &nodes {
        eventually(
            "partition gauge settles",
            Duration::from_secs(3),
            || async { n.metric("erlmcp_cluster_partitioned").await == Some(0.0) },
        )
        .await;
    }
    for (i, n) in nodes.iter().enumerate() {
        let mut want: Vec<String> = (1..=3)
            .filter(|j| *j != i + 1)
            .map(|j| format!("erlmcp@n{j}"))
            .collect();
        want.sort();
        assert_eq!(n.peers_up().await, want, "{}", n.spec.name);
        assert_eq!(n.metric("erlmcp_cluster_nodes").await, Some(3.0));
        assert_eq!(n.metric("erlmcp_cluster_nodes_expected").await, Some(3.0));
        assert_eq!(n.metric("erlmcp_cluster_partitioned").await, Some(0.0));
        assert_eq!(
            n.metric("erlmcp_cluster_peer_auth_failures_total").await,
            Some(0.0)
        );
        let s = n.status().await.unwrap();
        assert_eq!(s["expectedNodes"], 3);
        // The cluster_status tool reports the same view.
        let r = echo_like_cluster_status(n).await;
        assert_eq!(r["clusterNodes"], 3, "{r}");
    }

    // SIGKILL n3: the others notice within the detector's bound.
    let t0 = Instant::now();
    nodes[2].kill();
    let (a, b) = nodes.split_at(2);
    let _ = b;
    let detect = eventually("n1 and n2 see n3 down", Duration::from_secs(15), || async {
        a[0].cluster_nodes().await == Some(2) && a[1].cluster_nodes().await == Some(2)
    })
    .await;
    println!("SIGKILL detected after {detect:?}");
    assert!(
        detect < Duration::from_secs(8),
        "detection took {detect:?} (bound about 4 s at a 1 s probe interval)"
    );
    for n in &nodes[..2] {
        eventually("partition gauge rises", Duration::from_secs(3), || async {
            n.metric("erlmcp_cluster_partitioned").await == Some(1.0)
        })
        .await;
        assert_eq!(n.metric("erlmcp_cluster_nodes").await, Some(2.0));
        assert_eq!(n.metric("erlmcp_cluster_nodes_expected").await, Some(3.0));
        assert_eq!(n.metric("erlmcp_cluster_partitioned").await, Some(1.0));
    }
    let _ = t0;

    // It comes back under the same name and rejoins.
    nodes[2].start();
    nodes[2].wait_ready(Duration::from_secs(20)).await;
    let rejoin = {
        let r: Vec<&Node> = nodes.iter().collect();
        converge(&r, 3, Duration::from_secs(20)).await
    };
    println!("rejoined {rejoin:?} after ready");
    for n in &nodes {
        eventually("partition gauge clears", Duration::from_secs(3), || async {
            n.metric("erlmcp_cluster_partitioned").await == Some(0.0)
        })
        .await;
    }
    let out = json!({"formed_ms": formed.as_millis() as u64, "kill_detected_ms": detect.as_millis() as u64, "rejoin_ms": rejoin.as_millis() as u64});
    let path = log_dir("membership").join("membership.json");
    std::fs::write(&path, out.to_string()).unwrap();
    println!("{out}");
}

async fn echo_like_cluster_status(n: &Node) -> serde_json::Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "cluster_status", "arguments": {},
        "_meta": {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"}, "io.modelcontextprotocol/clientCapabilities": {}}
    }})
    .to_string();
    let r = try_request(
        "POST",
        &format!("http://{}/mcp", n.mcp()),
        &[
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
            ("mcp-name", "cluster_status"),
        ],
        body,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let v = r.json();
    if let Some(s) = v["result"].get("structuredContent") {
        return s.clone();
    }
    serde_json::from_str(&result_text(&v).unwrap_or_default()).unwrap_or(v)
}
