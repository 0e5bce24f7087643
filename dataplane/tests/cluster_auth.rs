//! Peers authenticate: a node with the wrong cookie, or with a certificate from another CA, is
//! refused (and counted) and never joins.

mod support;

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
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

struct Pki {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Pki {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    Pki {
        ca_pem: cert.pem(),
        issuer: Issuer::new(p, key),
    }
}

/// A leaf like the operator's: DNS names of the headless Service only (peers dial IPs).
fn leaf(pki: &Pki) -> (String, String) {
    let mut p = CertificateParams::new(vec!["*.mcp-headless.test.svc".to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "mcp.test");
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &pki.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_the_cluster_ca_only() {
    let good = ca("erlmcp cluster CA");
    let evil = ca("someone else's CA");
    let dir = log_dir("auth-tls");
    let mut nodes = three_static("auth-tls");
    for (i, n) in nodes.iter_mut().enumerate() {
        let pki = if i == 2 { &evil } else { &good };
        let (cert, key) = leaf(pki);
        let base = dir.join(format!("n{}", i + 1));
        std::fs::create_dir_all(&base).unwrap();
        std::fs::write(base.join("tls.crt"), cert).unwrap();
        std::fs::write(base.join("tls.key"), key).unwrap();
        std::fs::write(base.join("ca.crt"), &pki.ca_pem).unwrap();
        n.spec.config = Some(format!(
            "tls:\n  certFile: {b}/tls.crt\n  keyFile: {b}/tls.key\n  caFile: {b}/ca.crt\n  peerMtls: true\n",
            b = base.display()
        ));
        // Certificates alone authenticate the peers here (no cookie).
        n.unset("ERLANG_COOKIE");
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
