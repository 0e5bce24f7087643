//! The TCP transport with client TLS configured: TLS first, the same certificate as the HTTP
//! port; a cleartext client gets no JSON-RPC answer, and a stalled handshake loses its slot.

#[path = "support/pki.rs"]
mod pki;
mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use support::start;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

struct Tls {
    dir: std::path::PathBuf,
    ca_pem: String,
}

impl Drop for Tls {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write_leaf(tag: &str) -> Tls {
    let ca = pki::ca("tcp-tls-ca");
    let (cert, key) = pki::leaf(&ca);
    let dir = std::env::temp_dir().join(format!("erlmcp-tcp-tls-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tls.crt"), cert).unwrap();
    std::fs::write(dir.join("tls.key"), key).unwrap();
    Tls {
        dir,
        ca_pem: ca.pem,
    }
}

async fn start_tls(tls: &Tls, limits: &str) -> erlmcp_dataplane::app::Running {
    let cert = tls.dir.join("tls.crt").display().to_string();
    let key = tls.dir.join("tls.key").display().to_string();
    let yaml = format!(
        "mcp:\n  limits: {limits}\n  transports:\n    tcp:\n      enabled: true\n      port: 4\n"
    );
    start(
        &yaml,
        &[
            ("TLS_ENABLED", "true"),
            ("TLS_CERT_FILE", &cert),
            ("TLS_KEY_FILE", &key),
        ],
    )
    .await
}

fn connector(ca_pem: &str) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// Connect over TLS (trusting the test CA), send `initialize`, return the first answer line.
async fn initialize_over_tls(addr: std::net::SocketAddr, ca_pem: &str) -> String {
    let sock = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("mcp-0.mcp-headless.test.svc").unwrap();
    let stream = connector(ca_pem).connect(name, sock).await.unwrap();
    let (r, mut w) = tokio::io::split(stream);
    w.write_all(format!("{INIT}\n").as_bytes()).await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        BufReader::new(r).lines().next_line(),
    )
    .await
    .expect("an answer over TLS within 10 s")
    .unwrap()
    .expect("an answer line")
}

#[tokio::test]
async fn tcp_speaks_tls_with_the_client_certificate() {
    let tls = write_leaf("ok");
    let s = start_tls(&tls, "{}").await;
    let addr = s.tcp_addr.unwrap();

    let line = initialize_over_tls(addr, &tls.ca_pem).await;
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["result"]["serverInfo"]["name"], "erlmcp", "{v}");

    // Cleartext JSON-RPC on the same port is not served: the connection ends without an answer.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(format!("{INIT}\n").as_bytes())
        .await
        .unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "a cleartext client was left open");
    assert!(
        !String::from_utf8_lossy(&got).contains("jsonrpc"),
        "a cleartext client got a JSON-RPC answer: {:?}",
        String::from_utf8_lossy(&got)
    );
}

#[tokio::test]
async fn a_stalled_tls_handshake_frees_its_slot() {
    let tls = write_leaf("stall");
    let s = start_tls(&tls, "{maxConnections: 1, headerReadTimeoutSeconds: 1}").await;
    let addr = s.tcp_addr.unwrap();

    // Takes the only slot and never starts the handshake.
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(10), stalled.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "a client that never handshakes kept its connection: {closed:?}"
    );

    // The slot is free again: an honest client is served.
    let line = initialize_over_tls(addr, &tls.ca_pem).await;
    assert!(line.contains("serverInfo"), "{line}");
}
