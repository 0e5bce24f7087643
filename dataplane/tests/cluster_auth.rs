//! Peers authenticate: a node with the wrong cookie, or with a certificate from another CA, is
//! refused (and counted) and never joins.

#[path = "support/pki.rs"]
mod pki;
mod support;

use std::path::Path;
use std::time::Duration;

use pki::{ca, leaf, leaf_for, Pki, CLUSTER_NAMES};
use support::cluster::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_cookie_is_refused() {
    let mut nodes = three_static("auth-cookie");
    nodes[2].env("ERLANG_COOKIE", "not-the-cluster-cookie-at-all-000000");
    start_all(&mut nodes).await;
    // n1 and n2 cluster; n3 stays alone.
    converge(&[&nodes[0], &nodes[1]], 2, Duration::from_secs(20)).await;
    eventually("refusals counted", Duration::from_secs(10), || async {
        nodes[0]
            .metric("erlmcp_cluster_peer_auth_failures_total")
            .await
            .unwrap_or(0.0)
            >= 1.0
            && nodes[2]
                .metric("erlmcp_cluster_peer_auth_failures_total")
                .await
                .unwrap_or(0.0)
                >= 1.0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(nodes[0].peers_up().await, vec!["erlmcp@n2".to_string()]);
    assert_eq!(nodes[1].peers_up().await, vec!["erlmcp@n1".to_string()]);
    assert_eq!(nodes[2].cluster_nodes().await, Some(1));
    // A session on n3 cannot be reached through n1 (n3 is not a member): 404, no leak.
    let sid = initialize(nodes[2].mcp()).await.unwrap();
    let r = echo_legacy(nodes[0].mcp(), &sid, 1, "x").await.unwrap();
    assert_eq!(r.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_the_cluster_ca_only() {
    let good = ca("erlmcp cluster CA");
    let evil = ca("someone else's CA");
    let dir = log_dir("auth-tls");
    let mut nodes = three_static("auth-tls");
    for (i, n) in nodes.iter_mut().enumerate() {
        let pki = if i == 2 { &evil } else { &good };
        mtls_node(n, &dir.join(format!("n{}", i + 1)), pki, leaf(pki));
    }
    start_all(&mut nodes).await;
    converge(&[&nodes[0], &nodes[1]], 2, Duration::from_secs(20)).await;
    eventually(
        "bad certificate refused",
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
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(nodes[0].peers_up().await, vec!["erlmcp@n2".to_string()]);
    assert_eq!(nodes[2].cluster_nodes().await, Some(1));
    // Sessions still route between the TLS peers.
    let sid = initialize(nodes[0].mcp()).await.unwrap();
    let r = echo_legacy(nodes[1].mcp(), &sid, 1, "over mTLS")
        .await
        .unwrap();
    assert_eq!(result_text(&r.json()).as_deref(), Some("over mTLS"));
}

/// Peer mTLS from `leaf` and `pki`'s CA in `base`; certificates alone authenticate (no cookie).
fn mtls_node(n: &mut Node, base: &Path, pki: &Pki, leaf: (String, String)) {
    std::fs::create_dir_all(base).unwrap();
    std::fs::write(base.join("tls.crt"), leaf.0).unwrap();
    std::fs::write(base.join("tls.key"), leaf.1).unwrap();
    std::fs::write(base.join("ca.crt"), &pki.pem).unwrap();
    n.spec.config = Some(format!(
        "tls:\n  certFile: {b}/tls.crt\n  keyFile: {b}/tls.key\n  caFile: {b}/ca.crt\n  peerMtls: true\n",
        b = base.display()
    ));
    n.unset("ERLANG_COOKIE");
}

/// One CA signs two clusters' leaves: a node whose certificate names another cluster's
/// service is refused both ways (as a server and as a client), and says why in its log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_of_another_cluster_from_the_same_ca_is_refused() {
    let shared = ca("one CA for every cluster");
    let dir = log_dir("auth-tls-san");
    let mut nodes = three_static("auth-tls-san");
    for (i, n) in nodes.iter_mut().enumerate() {
        let names: &[&str] = if i == 2 {
            &["*.other-headless.test.svc"]
        } else {
            CLUSTER_NAMES
        };
        let l = leaf_for(&shared, names, Duration::from_secs(3600));
        mtls_node(n, &dir.join(format!("n{}", i + 1)), &shared, l);
    }
    for n in &nodes {
        let _ = std::fs::remove_file(&n.spec.log);
    }
    start_all(&mut nodes).await;
    converge(&[&nodes[0], &nodes[1]], 2, Duration::from_secs(20)).await;
    eventually("refusals counted", Duration::from_secs(10), || async {
        nodes[0]
            .metric("erlmcp_cluster_peer_auth_failures_total")
            .await
            .unwrap_or(0.0)
            >= 1.0
            && nodes[2]
                .metric("erlmcp_cluster_peer_auth_failures_total")
                .await
                .unwrap_or(0.0)
                >= 1.0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(nodes[0].peers_up().await, vec!["erlmcp@n2".to_string()]);
    assert_eq!(nodes[2].cluster_nodes().await, Some(1));
    let log = std::fs::read_to_string(&nodes[0].spec.log).unwrap();
    assert!(
        log.contains("peer certificate refused") && log.contains("other-headless"),
        "n1 says why it refused n3:\n{log}"
    );
}
