//! A partition: every node reaches every other through a fault proxy; cutting the two proxies
//! between n1 and n2 black-holes their traffic (no RST: probes time out, as on a real split).
//! Both ends report it, n3 (which still sees both) shows each side's view; then it heals.

mod support;

use std::time::Duration;

use serde_json::json;
use support::cluster::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_link_is_reported_by_both_ends_and_heals() {
    let net = subnet();
    let ports = Ports::random();
    let ip = |i: usize| format!("{net}.{i}");
    // Proxy i->j listens on .(10*i+j) and forwards to node j.
    let mut proxies = std::collections::BTreeMap::new();
    for i in 1..=3usize {
        for j in 1..=3usize {
            if i != j {
                let p = FaultProxy::start(
                    &format!("{}:{}", ip(10 * i + j), ports.peer),
                    &format!("{}:{}", ip(j), ports.peer),
                )
                .await;
                proxies.insert((i, j), p);
            }
        }
    }
    let mut nodes: Vec<Node> = (1..=3usize)
        .map(|i| {
            let mut n = Node::new("partition", &format!("n{i}"), &ip(i), ports);
            let peers: Vec<String> = (1..=3usize)
                .filter(|j| *j != i)
                .map(|j| format!("{}:{}", ip(10 * i + j), ports.peer))
                .collect();
            n.env("ERLMCP_PEERS", &peers.join(","));
            n
        })
        .collect();
    start_all(&mut nodes).await;
    {
        let r: Vec<&Node> = nodes.iter().collect();
        converge(&r, 3, Duration::from_secs(20)).await;
    }

    // Cut n1 <-> n2 (both directions).
    proxies[&(1, 2)].cut();
    proxies[&(2, 1)].cut();
    let split = eventually(
        "n1 and n2 lose each other",
        Duration::from_secs(20),
        || async {
            nodes[0].peers_up().await == vec!["erlmcp@n3".to_string()]
                && nodes[1].peers_up().await == vec!["erlmcp@n3".to_string()]
        },
    )
    .await;
    println!("partition reported after {split:?}");
    for n in &nodes[..2] {
        eventually("partition gauge", Duration::from_secs(3), || async {
            n.metric("erlmcp_cluster_partitioned").await == Some(1.0)
        })
        .await;
        assert_eq!(n.metric("erlmcp_cluster_nodes").await, Some(2.0));
    }
    // n3 still reaches both, and through its peers' views the split is visible.
    assert_eq!(nodes[2].cluster_nodes().await, Some(3));
    let s3 = nodes[2].status().await.unwrap();
    let sees = |name: &str| -> Vec<String> {
        s3["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| serde_json::from_value(p["sees"].clone()).unwrap())
            .unwrap_or_default()
    };
    eventually(
        "n3 sees the split in its peers' views",
        Duration::from_secs(5),
        || async {
            let s3 = nodes[2].status().await.unwrap();
            let v = |name: &str| -> Vec<String> {
                s3["peers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p["name"] == name)
                    .map(|p| serde_json::from_value(p["sees"].clone()).unwrap())
                    .unwrap_or_default()
            };
            v("erlmcp@n1") == vec!["n3"] && v("erlmcp@n2") == vec!["n3"]
        },
    )
    .await;
    let _ = sees;

    // A session owned by n1, reached through n2 while n1 is unreachable from n2: a prompt
    // 404 (the client re-initialises on its side), never a hang.
    let sid = initialize(nodes[0].mcp()).await.unwrap();
    let t0 = std::time::Instant::now();
    let r = echo_legacy(nodes[1].mcp(), &sid, 1, "x").await.unwrap();
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    // ...while n3 still forwards it fine.
    let r = echo_legacy(nodes[2].mcp(), &sid, 2, "via n3")
        .await
        .unwrap();
    assert_eq!(result_text(&r.json()).as_deref(), Some("via n3"));

    // Heal.
    proxies[&(1, 2)].heal();
    proxies[&(2, 1)].heal();
    let healed = {
        let r: Vec<&Node> = nodes.iter().collect();
        converge(&r, 3, Duration::from_secs(30)).await
    };
    println!("healed after {healed:?}");
    for n in &nodes {
        eventually("gauge clears", Duration::from_secs(3), || async {
            n.metric("erlmcp_cluster_partitioned").await == Some(0.0)
        })
        .await;
    }
    let out = json!({"partition_detected_ms": split.as_millis() as u64, "heal_ms": healed.as_millis() as u64});
    std::fs::write(log_dir("partition").join("partition.json"), out.to_string()).unwrap();
    println!("{out}");
}
