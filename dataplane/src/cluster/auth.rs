//! Peer authentication: mutual TLS from the mounted TLS Secret, and/or a challenge-response
//! keyed by the shared cookie (the role of Erlang's distribution cookie).
//!
//! The cookie handshake runs on the raw connection (inside TLS when TLS is on), before HTTP/2:
//!
//! ```text
//! server -> client  {proto, name, member, incarnation, nonce_s}
//! client -> server  {name, member, incarnation, nonce_c, proof_c}
//!                   proof_c = HMAC-SHA256(cookie, "erlmcp-peer/1 client" | nonce_s | nonce_c | names)
//! server -> client  {ok, proof_s}  (or {ok: false} and close)
//!                   proof_s = HMAC-SHA256(cookie, "erlmcp-peer/1 server" | nonce_s | nonce_c | names)
//! ```
//!
//! During a cookie rotation a node holds a primary and a previous cookie: it sends a proof for
//! each (`proof` with the primary, `proofs` with the previous one) and accepts a client whose
//! proofs match either of its cookies, answering with the cookie that matched. Two nodes
//! therefore talk whenever they share one cookie, so a roll from `{old}` through
//! `{new, previous: old}` to `{new}` never splits the cluster.
//!
//! The cookie never crosses the wire, both nonces are fresh 32-byte randoms (no replay), the two
//! directions use different labels (neither side is an oracle for the other's proof), and
//! proofs are compared in constant time (`hmac`'s `verify_slice`). Frames are length-prefixed
//! JSON, at most 4 KiB, and the whole exchange has a deadline.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::peer_identity::{ClientIsPeer, ServerIsPeer};
use crate::tls_reload::{TlsPaths, TlsWatcher};

pub const PROTO: &str = "erlmcp-peer/1";
const MAX_FRAME: usize = 4096;
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Who a node says it is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Hello {
    /// Node name (`ERLMCP_NODE_NAME`).
    pub name: String,
    /// Member name (the pod name on Kubernetes).
    pub member: String,
    /// Random per process start: a new value means the peer restarted.
    pub incarnation: String,
}

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("authentication failed: {0}")]
    Refused(String),
    #[error("connected to itself")]
    SelfConnection,
    #[error("handshake: {0}")]
    Io(String),
}

impl HandshakeError {
    pub fn is_auth(&self) -> bool {
        matches!(self, HandshakeError::Refused(_))
    }
}

#[derive(Serialize, Deserialize)]
struct ServerHello {
    proto: String,
    #[serde(flatten)]
    hello: Hello,
    nonce: String,
}

#[derive(Serialize, Deserialize)]
struct ClientHello {
    #[serde(flatten)]
    hello: Hello,
    nonce: String,
    /// Proof with the primary cookie.
    #[serde(default)]
    proof: Option<String>,
    /// Proof with the previous cookie, during a rotation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    proofs: Vec<String>,
}

/// Proofs a server looks at beyond `proof` (a rotation has one previous cookie; more is noise).
const MAX_EXTRA_PROOFS: usize = 1;

/// The shared cookie, and during a rotation the one it replaces.
#[derive(Clone, Debug, PartialEq)]
pub struct Cookies {
    pub primary: Vec<u8>,
    pub previous: Option<Vec<u8>>,
}

impl Cookies {
    pub fn new(primary: impl Into<Vec<u8>>, previous: Option<Vec<u8>>) -> Self {
        let primary = primary.into();
        // The same value twice is no rotation.
        let previous = previous.filter(|p| *p != primary);
        Self { primary, previous }
    }

    /// Primary first.
    fn all(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(self.primary.as_slice()).chain(self.previous.as_deref())
    }
}

#[derive(Serialize, Deserialize)]
struct Verdict {
    ok: bool,
    #[serde(default)]
    proof: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

fn nonce() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn mac(cookie: &[u8], label: &str, ns: &str, nc: &str, client: &str, server: &str) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(cookie).expect("hmac takes any key length");
    for part in [label, ns, nc, client, server] {
        m.update(&(part.len() as u32).to_be_bytes());
        m.update(part.as_bytes());
    }
    m
}

fn proof(cookie: &[u8], label: &str, ns: &str, nc: &str, client: &str, server: &str) -> String {
    hex::encode(
        mac(cookie, label, ns, nc, client, server)
            .finalize()
            .into_bytes(),
    )
}

/// Constant-time check of a hex proof.
fn verify(
    cookie: &[u8],
    label: &str,
    ns: &str,
    nc: &str,
    client: &str,
    server: &str,
    got: Option<&str>,
) -> bool {
    let Some(bytes) = got.and_then(|g| hex::decode(g).ok()) else {
        return false;
    };
    mac(cookie, label, ns, nc, client, server)
        .verify_slice(&bytes)
        .is_ok()
}

async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, v: &impl Serialize) -> std::io::Result<()> {
    let body = serde_json::to_vec(v).map_err(std::io::Error::other)?;
    w.write_all(&(body.len() as u32).to_be_bytes()).await?;
    w.write_all(&body).await?;
    w.flush().await
}

async fn read_frame<R: AsyncRead + Unpin, T: for<'de> Deserialize<'de>>(
    r: &mut R,
) -> Result<T, HandshakeError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)
        .await
        .map_err(|e| HandshakeError::Io(e.to_string()))?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(HandshakeError::Refused(format!(
            "handshake frame of {len} bytes"
        )));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)
        .await
        .map_err(|e| HandshakeError::Io(e.to_string()))?;
    serde_json::from_slice(&buf).map_err(|e| HandshakeError::Refused(format!("bad frame: {e}")))
}

/// A peer that claims our own name under another incarnation is reflecting our hello (or
/// impersonating us): one name runs once, so it is refused.
fn refuse_own_name(peer: &Hello, me: &Hello) -> Result<(), HandshakeError> {
    if peer.name == me.name {
        return Err(HandshakeError::Refused(format!(
            "peer claims our own name {:?}",
            me.name
        )));
    }
    Ok(())
}

const CLIENT_LABEL: &str = "erlmcp-peer/1 client";
const SERVER_LABEL: &str = "erlmcp-peer/1 server";

/// Accepting side. Returns the authenticated peer.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    me: &Hello,
    cookies: Option<&Cookies>,
) -> Result<Hello, HandshakeError> {
    let ns = nonce();
    write_frame(
        io,
        &ServerHello {
            proto: PROTO.into(),
            hello: me.clone(),
            nonce: ns.clone(),
        },
    )
    .await
    .map_err(|e| HandshakeError::Io(e.to_string()))?;
    let ch: ClientHello = read_frame(io).await?;
    if ch.hello.name == me.name && ch.hello.incarnation == me.incarnation {
        return Err(HandshakeError::SelfConnection);
    }
    refuse_own_name(&ch.hello, me)?;
    // The first of our cookies that one of the client's proofs matches.
    let mut cookie = None;
    if let Some(cookies) = cookies {
        let offered: Vec<&str> = ch
            .proof
            .iter()
            .chain(ch.proofs.iter().take(MAX_EXTRA_PROOFS))
            .map(String::as_str)
            .collect();
        cookie = cookies.all().find(|c| {
            offered.iter().any(|p| {
                verify(
                    c,
                    CLIENT_LABEL,
                    &ns,
                    &ch.nonce,
                    &ch.hello.name,
                    &me.name,
                    Some(p),
                )
            })
        });
        if cookie.is_none() {
            let _ = write_frame(
                io,
                &Verdict {
                    ok: false,
                    proof: None,
                    error: Some("authentication failed".into()),
                },
            )
            .await;
            return Err(HandshakeError::Refused(format!(
                "{} failed the cookie challenge",
                ch.hello.name
            )));
        }
    }
    let p = cookie.map(|c| proof(c, SERVER_LABEL, &ns, &ch.nonce, &ch.hello.name, &me.name));
    write_frame(
        io,
        &Verdict {
            ok: true,
            proof: p,
            error: None,
        },
    )
    .await
    .map_err(|e| HandshakeError::Io(e.to_string()))?;
    Ok(ch.hello)
}

/// Connecting side. Returns the authenticated peer.
pub async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    me: &Hello,
    cookies: Option<&Cookies>,
) -> Result<Hello, HandshakeError> {
    let sh: ServerHello = read_frame(io).await?;
    if sh.proto != PROTO {
        return Err(HandshakeError::Refused(format!(
            "unknown peer protocol {:?}",
            sh.proto
        )));
    }
    if sh.hello.name == me.name && sh.hello.incarnation == me.incarnation {
        return Err(HandshakeError::SelfConnection);
    }
    refuse_own_name(&sh.hello, me)?;
    let nc = nonce();
    let client_proof = |c: &[u8]| proof(c, CLIENT_LABEL, &sh.nonce, &nc, &me.name, &sh.hello.name);
    write_frame(
        io,
        &ClientHello {
            hello: me.clone(),
            nonce: nc.clone(),
            proof: cookies.map(|c| client_proof(&c.primary)),
            proofs: cookies
                .and_then(|c| c.previous.as_deref())
                .map(client_proof)
                .into_iter()
                .collect(),
        },
    )
    .await
    .map_err(|e| HandshakeError::Io(e.to_string()))?;
    let v: Verdict = read_frame(io).await?;
    if !v.ok {
        return Err(HandshakeError::Refused(format!(
            "{} refused us: {}",
            sh.hello.name,
            v.error.unwrap_or_default()
        )));
    }
    if let Some(cookies) = cookies {
        let proven = cookies.all().any(|c| {
            verify(
                c,
                SERVER_LABEL,
                &sh.nonce,
                &nc,
                &me.name,
                &sh.hello.name,
                v.proof.as_deref(),
            )
        });
        if !proven {
            return Err(HandshakeError::Refused(format!(
                "{} failed the cookie challenge",
                sh.hello.name
            )));
        }
    }
    Ok(sh.hello)
}

// ---------------------------------------------------------------- TLS

/// rustls configurations for the peer channel (mutual TLS).
#[derive(Clone)]
pub struct PeerTls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub connector: tokio_rustls::TlsConnector,
}

impl PeerTls {
    /// Both sides present a certificate that chains to the CA and names this cluster; both
    /// verify the other's (see [`super::peer_identity`]). The certificate, key and trust bundle
    /// follow their files (see [`crate::tls_reload`]).
    pub fn load(cert_file: &str, key_file: &str, ca_file: &str) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let files = TlsWatcher::load(
            TlsPaths {
                cert: cert_file.into(),
                key: key_file.into(),
                ca: Some(ca_file.into()),
            },
            provider.clone(),
        )?;
        files.watch(crate::tls_reload::interval_from_env());
        let mut sc = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("tls: protocol versions")?
            .with_client_cert_verifier(Arc::new(ClientIsPeer {
                chain: files.client_verifier(),
                watcher: files.clone(),
            }))
            .with_cert_resolver(files.server_resolver());
        sc.alpn_protocols = vec![b"h2".to_vec()];
        let mut cc = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("tls: protocol versions")?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ServerIsPeer {
                chain: files.server_verifier(),
                watcher: files.clone(),
            }))
            .with_client_cert_resolver(files.client_resolver());
        cc.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Self {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(sc)),
            connector: tokio_rustls::TlsConnector::from(Arc::new(cc)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(n: &str) -> Hello {
        Hello {
            name: n.into(),
            member: n.into(),
            incarnation: nonce(),
        }
    }

    async fn pair(
        server_cookie: Option<&'static [u8]>,
        client_cookie: Option<&'static [u8]>,
    ) -> (Result<Hello, HandshakeError>, Result<Hello, HandshakeError>) {
        let one = |c: Option<&[u8]>| c.map(|c| Cookies::new(c, None));
        rotating(one(server_cookie), one(client_cookie)).await
    }

    async fn rotating(
        server: Option<Cookies>,
        client: Option<Cookies>,
    ) -> (Result<Hello, HandshakeError>, Result<Hello, HandshakeError>) {
        let (mut a, mut b) = tokio::io::duplex(8192);
        let s = tokio::spawn(async move { accept(&mut a, &hello("s"), server.as_ref()).await });
        let c = connect(&mut b, &hello("c"), client.as_ref()).await;
        (s.await.unwrap(), c)
    }

    fn ring(primary: &str, previous: Option<&str>) -> Cookies {
        Cookies::new(primary.as_bytes(), previous.map(|p| p.as_bytes().to_vec()))
    }

    #[tokio::test]
    async fn a_rotation_talks_to_both_sides_of_the_roll() {
        let old = || ring("old", None);
        let mid = || ring("new", Some("old"));
        let new = || ring("new", None);
        // Every step of old -> {new, previous old} -> new shares a cookie, in both directions.
        for (s, c) in [
            (old(), mid()),
            (mid(), old()),
            (mid(), mid()),
            (mid(), new()),
            (new(), mid()),
        ] {
            let what = format!("{s:?} <- {c:?}");
            let (sr, cr) = rotating(Some(s), Some(c)).await;
            assert!(sr.is_ok() && cr.is_ok(), "{what}");
        }
        // Nodes with no cookie in common still refuse each other.
        let (s, c) = rotating(Some(old()), Some(new())).await;
        assert!(s.unwrap_err().is_auth(), "old server, new client");
        assert!(c.unwrap_err().is_auth());
        let (s, _) = rotating(Some(ring("new", Some("older"))), Some(ring("old", None))).await;
        assert!(s.unwrap_err().is_auth(), "a previous cookie is no wildcard");
    }

    #[tokio::test]
    async fn same_cookie_authenticates_both_ways() {
        let (s, c) = pair(Some(b"secret"), Some(b"secret")).await;
        assert_eq!(s.unwrap().name, "c");
        assert_eq!(c.unwrap().name, "s");
    }

    #[tokio::test]
    async fn wrong_or_missing_cookie_is_refused() {
        let (s, c) = pair(Some(b"secret"), Some(b"guess")).await;
        assert!(s.unwrap_err().is_auth());
        assert!(c.unwrap_err().is_auth());
        let (s, _) = pair(Some(b"secret"), None).await;
        assert!(s.unwrap_err().is_auth());
        // A server without the cookie cannot prove itself to a client that has one.
        let (_, c) = pair(None, Some(b"secret")).await;
        assert!(c.unwrap_err().is_auth());
    }

    #[tokio::test]
    async fn a_peer_claiming_our_name_is_refused_both_ways() {
        let me = hello("s");
        let k = Cookies::new(b"k".as_slice(), None);
        let mut twin = hello("s");
        twin.incarnation = nonce();
        // Dialling: the server's hello names us.
        let (mut a, mut b) = tokio::io::duplex(8192);
        let (server, k1) = (twin.clone(), k.clone());
        let s = tokio::spawn(async move { accept(&mut a, &server, Some(&k1)).await });
        let c = connect(&mut b, &me, Some(&k)).await;
        assert!(c.unwrap_err().is_auth(), "the dialler refuses our twin");
        drop(b);
        assert!(s.await.unwrap().is_err());
        // Accepting: a client hello with our name and a valid cookie proof.
        let (mut a, mut b) = tokio::io::duplex(8192);
        let (server, k2) = (me.clone(), k.clone());
        let s = tokio::spawn(async move { accept(&mut a, &server, Some(&k2)).await });
        let sh: ServerHello = read_frame(&mut b).await.unwrap();
        let nc = nonce();
        let p = proof(b"k", CLIENT_LABEL, &sh.nonce, &nc, &twin.name, &me.name);
        write_frame(
            &mut b,
            &ClientHello {
                hello: twin,
                nonce: nc,
                proof: Some(p),
                proofs: Vec::new(),
            },
        )
        .await
        .unwrap();
        assert!(s.await.unwrap().unwrap_err().is_auth());
    }

    #[tokio::test]
    async fn oversized_frames_are_refused() {
        let (mut a, mut b) = tokio::io::duplex(8192);
        let k = Cookies::new(b"k".as_slice(), None);
        let s = tokio::spawn(async move { accept(&mut a, &hello("s"), Some(&k)).await });
        let _: ServerHello = read_frame(&mut b).await.unwrap();
        b.write_all(&(1_000_000u32).to_be_bytes()).await.unwrap();
        assert!(s.await.unwrap().unwrap_err().is_auth());
    }

    #[test]
    fn proofs_bind_every_field() {
        let base = proof(b"k", CLIENT_LABEL, "ns", "nc", "c", "s");
        assert_ne!(base, proof(b"k", SERVER_LABEL, "ns", "nc", "c", "s"));
        assert_ne!(base, proof(b"k", CLIENT_LABEL, "nsx", "nc", "c", "s"));
        assert_ne!(base, proof(b"k", CLIENT_LABEL, "ns", "nc", "s", "c"));
        assert!(verify(
            b"k",
            CLIENT_LABEL,
            "ns",
            "nc",
            "c",
            "s",
            Some(&base)
        ));
        assert!(!verify(
            b"k",
            CLIENT_LABEL,
            "ns",
            "nc",
            "c",
            "s",
            Some("zz")
        ));
    }
}
