//! Certificates that renew without a restart. Nodes start with leaves that expire within
//! seconds; the files are replaced on disk the way the operator's CA roll does it (trust both
//! CAs, then new leaves, then the new CA alone), and new connections use the new material: a
//! node that knows only the new CA joins after the old leaves expired, while no node restarted
//! and the sessions created before the roll still answer through every node.

#[path = "support/pki.rs"]
mod pki;
mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pki::{ca, leaf_for, Pki, CLUSTER_NAMES};
use rustls::pki_types::{CertificateDer, ServerName};
use support::cluster::*;

/// A leaf like the operator's (and `localhost`, for the client port), valid for `life`.
fn leaf(pki: &Pki, life: Duration) -> (String, String) {
    leaf_for(pki, &[CLUSTER_NAMES[0], "localhost"], life)
}

/// Replace a file the way kubelet updates a Secret volume: write aside, then rename over.
fn put(path: &Path, content: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn install(dir: &Path, leaf: &(String, String), bundle: &str) {
    put(&dir.join("tls.key"), &leaf.1);
    put(&dir.join("tls.crt"), &leaf.0);
    put(&dir.join("ca.crt"), bundle);
}

fn tls_node(n: &mut Node, dir: &Path, client_tls: bool) {
    n.spec.config = Some(format!(
        "tls:\n  certFile: {b}/tls.crt\n  keyFile: {b}/tls.key\n  caFile: {b}/ca.crt\n  peerMtls: true\n  clientTls: {client_tls}\n",
        b = dir.display()
    ));
    n.env("ERLMCP_TLS_RELOAD_SECONDS", "1");
}

fn node_dir(test: &str, name: &str) -> PathBuf {
    let d = log_dir(test).join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_roll_on_disk_reaches_new_connections_without_a_restart() {
    const TEST: &str = "tls-reload";
    let old = ca("erlmcp CA 1");
    let new = ca("erlmcp CA 2");
    let short = Duration::from_secs(20);
    let started = Instant::now();
    let mut nodes = three_static(TEST);
    let dirs: Vec<PathBuf> = (1..=3).map(|i| node_dir(TEST, &format!("n{i}"))).collect();
    for (n, d) in nodes.iter_mut().zip(&dirs) {
        install(d, &leaf(&old, short), &old.pem);
        tls_node(n, d, false);
    }
    start_all(&mut nodes).await;
    let all: Vec<&Node> = nodes.iter().collect();
    converge(&all, 3, Duration::from_secs(20)).await;
    let pids: Vec<Option<u32>> = nodes.iter().map(Node::pid).collect();
    let sid = initialize(nodes[0].mcp()).await.unwrap();

    // 1. Trust both CAs; 2. once reloaded, new leaves from the new CA; 3. the new CA alone.
    for d in &dirs {
        put(&d.join("ca.crt"), &format!("{}{}", new.pem, old.pem));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for d in &dirs {
        install(
            d,
            &leaf(&new, Duration::from_secs(3600)),
            &format!("{}{}", new.pem, old.pem),
        );
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for d in &dirs {
        put(&d.join("ca.crt"), &new.pem);
    }
    // Past the old leaves' expiry, so nothing can succeed on the old material.
    if let Some(left) = short.checked_sub(started.elapsed()) {
        tokio::time::sleep(left + Duration::from_secs(2)).await;
    }

    // A node that only knows the new CA: both sides of each new connection use new files.
    let net = nodes[0].spec.ip.rsplit_once('.').unwrap().0.to_string();
    let mut n4 = Node::new(TEST, "n4", &format!("{net}.4"), nodes[0].spec.ports);
    let d4 = node_dir(TEST, "n4");
    install(&d4, &leaf(&new, Duration::from_secs(3600)), &new.pem);
    tls_node(&mut n4, &d4, false);
    let peers = nodes[0].spec.env["ERLMCP_PEERS"].clone();
    n4.env("ERLMCP_PEERS", &format!("{peers},{}", n4.peer_addr()));
    n4.start();
    n4.wait_ready(Duration::from_secs(20)).await;
    // n4 reaching all four means each old node accepted its certificate and served one it trusts.
    converge(&[&n4], 4, Duration::from_secs(30)).await;

    // No restart, no lost session.
    assert_eq!(nodes.iter().map(Node::pid).collect::<Vec<_>>(), pids);
    for n in nodes.iter().chain([&n4]) {
        let r = echo_legacy(n.mcp(), &sid, 1, "still here").await.unwrap();
        assert_eq!(
            result_text(&r.json()).as_deref(),
            Some("still here"),
            "via {}",
            n.spec.name
        );
    }
}

/// The certificate the client port serves, checked against `root`.
async fn handshake(addr: std::net::SocketAddr, root: &str) -> Result<Vec<u8>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut root.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let certs: &[CertificateDer<'_>] = tls.get_ref().1.peer_certificates().unwrap();
    Ok(certs[0].to_vec())
}

async fn handshake_ok(addr: std::net::SocketAddr, root: &str) -> bool {
    handshake(addr, root).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_port_serves_a_renewed_certificate_without_a_restart() {
    const TEST: &str = "tls-reload-client";
    let old = ca("client CA 1");
    let new = ca("client CA 2");
    let net = subnet();
    let mut n = Node::new(TEST, "n1", &format!("{net}.1"), Ports::random());
    let d = node_dir(TEST, "n1");
    install(&d, &leaf(&old, Duration::from_secs(3600)), &old.pem);
    tls_node(&mut n, &d, true);
    n.unset("ERLANG_COOKIE");
    n.start();
    n.wait_ready(Duration::from_secs(20)).await;
    let pid = n.pid();
    let first = handshake(n.mcp(), &old.pem).await.unwrap();
    assert!(
        handshake(n.mcp(), &new.pem).await.is_err(),
        "new CA not used yet"
    );

    install(&d, &leaf(&new, Duration::from_secs(3600)), &new.pem);
    eventually(
        "the renewed certificate is served",
        Duration::from_secs(10),
        || handshake_ok(n.mcp(), &new.pem),
    )
    .await;
    assert_ne!(handshake(n.mcp(), &new.pem).await.unwrap(), first);
    assert!(
        handshake(n.mcp(), &old.pem).await.is_err(),
        "old certificate gone"
    );
    assert_eq!(n.pid(), pid, "no restart");
}
