//! Cookie rotation without a split: the cluster rolls from the old cookie to `{new, previous:
//! old}` and then to the new cookie alone, one node at a time (as the StatefulSet rolls), and
//! at every step every node sees every other and sessions route through any node, the
//! restarted ones included.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::cluster::*;

const OLD: &str = "old-cookie-0123456789abcdef0123456789";
const NEW: &str = "new-cookie-fedcba9876543210fedcba9876";

/// A session and the node that owns it.
struct Session {
    sid: String,
    owner: usize,
}

/// Every session answers through every node (forwarded to its owner when needed).
async fn all_routed(nodes: &[Node], sessions: &[Session], step: &str) {
    let addrs: Vec<SocketAddr> = nodes.iter().map(Node::mcp).collect();
    for (i, s) in sessions.iter().enumerate() {
        for (j, addr) in addrs.iter().enumerate() {
            let text = format!("{step}: session of n{} via n{}", s.owner + 1, j + 1);
            let r = echo_legacy(*addr, &s.sid, (i * 10 + j) as i64, &text)
                .await
                .unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(r.status, 200, "{text}");
            assert_eq!(result_text(&r.json()).as_deref(), Some(text.as_str()));
        }
    }
}

async fn no_refusals(nodes: &[Node], step: &str) {
    for n in nodes {
        let refused = n
            .metric("erlmcp_cluster_peer_auth_failures_total")
            .await
            .unwrap_or(0.0);
        assert_eq!(refused, 0.0, "{step}: {} refused a peer", n.spec.name);
    }
}

/// Restart every node, highest first, with `cookies` (primary, previous).
async fn roll(nodes: &mut [Node], sessions: &mut Vec<Session>, cookies: (&str, Option<&str>)) {
    for k in (0..nodes.len()).rev() {
        let step = format!("{} -> {cookies:?}", nodes[k].spec.name);
        nodes[k].terminate(Duration::from_secs(15)).await;
        nodes[k].env("ERLANG_COOKIE", cookies.0);
        match cookies.1 {
            Some(p) => nodes[k].env("ERLANG_COOKIE_PREVIOUS", p),
            None => nodes[k].unset("ERLANG_COOKIE_PREVIOUS"),
        };
        nodes[k].start();
        nodes[k].wait_ready(Duration::from_secs(20)).await;
        let all: Vec<&Node> = nodes.iter().collect();
        converge(&all, nodes.len() as u64, Duration::from_secs(20)).await;
        // Its sessions died with it; the others must still route, through it too.
        sessions.retain(|s| s.owner != k);
        sessions.push(Session {
            sid: initialize(nodes[k].mcp()).await.unwrap(),
            owner: k,
        });
        all_routed(nodes, sessions, &step).await;
        no_refusals(nodes, &step).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_roll_keeps_the_cluster_whole() {
    let mut nodes = three_static("cookie-rotation");
    for n in nodes.iter_mut() {
        n.env("ERLANG_COOKIE", OLD);
    }
    start_all(&mut nodes).await;
    let all: Vec<&Node> = nodes.iter().collect();
    converge(&all, 3, Duration::from_secs(20)).await;
    let mut sessions = Vec::new();
    for (owner, n) in nodes.iter().enumerate() {
        sessions.push(Session {
            sid: initialize(n.mcp()).await.unwrap(),
            owner,
        });
    }
    all_routed(&nodes, &sessions, "before").await;

    // Step 1: new primary, old kept as previous. Old and new nodes share the old cookie.
    roll(&mut nodes, &mut sessions, (NEW, Some(OLD))).await;
    // Step 2: drop the previous cookie. Every node shares the new one.
    roll(&mut nodes, &mut sessions, (NEW, None)).await;

    // The old cookie is now refused: a node holding only it stays alone.
    let net = nodes[0].spec.ip.rsplit_once('.').unwrap().0.to_string();
    let mut stale = Node::new(
        "cookie-rotation",
        "n4",
        &format!("{net}.4"),
        nodes[0].spec.ports,
    );
    let peers = nodes[0].spec.env["ERLMCP_PEERS"].clone();
    stale.env("ERLMCP_PEERS", &peers).env("ERLANG_COOKIE", OLD);
    stale.start();
    stale.wait_ready(Duration::from_secs(20)).await;
    eventually(
        "the stale node is refused",
        Duration::from_secs(10),
        || async {
            nodes[0]
                .metric("erlmcp_cluster_peer_auth_failures_total")
                .await
                .unwrap_or(0.0)
                >= 1.0
        },
    )
    .await;
    assert_eq!(stale.cluster_nodes().await, Some(1));
    let all: Vec<&Node> = nodes.iter().collect();
    converge(&all, 3, Duration::from_secs(5)).await;
    stale.kill();
    for n in nodes.iter_mut() {
        n.kill();
    }
}
