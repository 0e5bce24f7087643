//! TLS material that follows its files. Kubernetes updates a mounted Secret in place (cert-manager
//! renewals, the operator's re-issued leaves and CA trust bundles), so instead of reading the PEM
//! files once, the rustls configs ask this watcher for the current certificate, key and trust
//! roots on every handshake. A background task re-reads the files on a bounded interval and swaps
//! the material in when their content changed and parses; a broken or half-written update keeps
//! the previous material (and is retried next tick). Existing connections are untouched; new ones
//! use the new files.

use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, Error as TlsError, SignatureScheme};
use sha2::{Digest, Sha256};

/// How often the files are checked when nobody says otherwise (`ERLMCP_TLS_RELOAD_SECONDS`).
/// Kubelet itself takes up to a minute or two to project a Secret update.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// The reload interval: `ERLMCP_TLS_RELOAD_SECONDS` (1 to 3600), else [`DEFAULT_INTERVAL`].
pub fn interval_from_env() -> Duration {
    std::env::var("ERLMCP_TLS_RELOAD_SECONDS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.clamp(1, 3600)))
        .unwrap_or(DEFAULT_INTERVAL)
}

/// The files a TLS identity comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsPaths {
    pub cert: String,
    pub key: String,
    /// Trust bundle for verifying peers (several CAs during a CA roll); none for server-only TLS.
    pub ca: Option<String>,
}

/// One parsed generation of the files.
struct Material {
    fingerprint: [u8; 32],
    key: Arc<CertifiedKey>,
    client_verifier: Option<Arc<dyn ClientCertVerifier>>,
    server_verifier: Option<Arc<WebPkiServerVerifier>>,
}

/// The current TLS material of one set of files.
pub struct TlsWatcher {
    paths: TlsPaths,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<Material>>,
}

impl std::fmt::Debug for TlsWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsWatcher")
            .field("paths", &self.paths)
            .finish()
    }
}

fn read(path: &str, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{what}: {path}"))
}

fn certs(pem: &[u8], path: &str, what: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{what}: {path} is not PEM"))?;
    anyhow::ensure!(!certs.is_empty(), "{what}: no certificate in {path}");
    Ok(certs)
}

fn key(pem: &[u8], path: &str) -> anyhow::Result<PrivateKeyDer<'static>> {
    rustls_pemfile::private_key(&mut &pem[..])
        .with_context(|| format!("tls.keyFile: {path} is not PEM"))?
        .with_context(|| format!("tls.keyFile: no private key in {path}"))
}

impl TlsPaths {
    /// Read and hash the files (cheap: a few KiB), without parsing.
    fn snapshot(&self) -> anyhow::Result<([u8; 32], Vec<Vec<u8>>)> {
        let mut files = vec![
            read(&self.cert, "tls.certFile")?,
            read(&self.key, "tls.keyFile")?,
        ];
        if let Some(ca) = &self.ca {
            files.push(read(ca, "tls.caFile")?);
        }
        let mut h = Sha256::new();
        for f in &files {
            h.update((f.len() as u64).to_be_bytes());
            h.update(f);
        }
        Ok((h.finalize().into(), files))
    }

    fn parse(
        &self,
        fingerprint: [u8; 32],
        files: &[Vec<u8>],
        provider: &Arc<CryptoProvider>,
    ) -> anyhow::Result<Material> {
        let chain = certs(&files[0], &self.cert, "tls.certFile")?;
        let key = key(&files[1], &self.key)?;
        let key = CertifiedKey::from_der(chain, key, provider)
            .context("tls: certificate and key do not match")?;
        let (client_verifier, server_verifier) = match (&self.ca, files.get(2)) {
            (Some(path), Some(pem)) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in certs(pem, path, "tls.caFile")? {
                    roots
                        .add(c)
                        .context("tls.caFile: unusable CA certificate")?;
                }
                let roots = Arc::new(roots);
                let cv =
                    WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                        .build()
                        .context("tls: client verifier")?;
                let sv = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .context("tls: server verifier")?;
                (Some(cv), Some(sv))
            }
            _ => (None, None),
        };
        Ok(Material {
            fingerprint,
            key: Arc::new(key),
            client_verifier,
            server_verifier,
        })
    }
}

impl TlsWatcher {
    /// Load the files now: a start-up error is fatal (the node must not come up without TLS).
    pub fn load(paths: TlsPaths, provider: Arc<CryptoProvider>) -> anyhow::Result<Arc<Self>> {
        let (fp, files) = paths.snapshot()?;
        let material = paths.parse(fp, &files, &provider)?;
        Ok(Arc::new(Self {
            paths,
            provider,
            current: RwLock::new(Arc::new(material)),
        }))
    }

    fn now(&self) -> Arc<Material> {
        self.current.read().expect("tls material").clone()
    }

    /// Re-read the files; swap in their content when it changed and parses.
    /// `Ok(true)` when new material is in use.
    pub fn reload(&self) -> anyhow::Result<bool> {
        let (fp, files) = self.paths.snapshot()?;
        if fp == self.now().fingerprint {
            return Ok(false);
        }
        let material = self.paths.parse(fp, &files, &self.provider)?;
        *self.current.write().expect("tls material") = Arc::new(material);
        Ok(true)
    }

    /// Check the files every `every` for as long as the watcher is in use.
    /// Outside a runtime (some unit tests) nothing is watched.
    pub fn watch(self: &Arc<Self>, every: Duration) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak: Weak<Self> = Arc::downgrade(self);
        rt.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(w) = weak.upgrade() else { return };
                match w.reload() {
                    Ok(true) => {
                        tracing::info!(cert = %w.paths.cert, "TLS certificates reloaded")
                    }
                    Ok(false) => {}
                    // Mid-update (kubelet swaps the files with one symlink, but a hand edit
                    // may not): keep what works and look again next tick.
                    Err(e) => tracing::warn!(error = %format!("{e:#}"), "TLS reload failed; keeping the current certificates"),
                }
            }
        });
    }

    /// The certificate chain in use (its leaf first).
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.now().key.cert.clone()
    }

    /// Serves the current certificate.
    pub fn server_resolver(self: &Arc<Self>) -> Arc<dyn ResolvesServerCert> {
        Arc::new(Current(self.clone()))
    }

    /// Presents the current certificate as a client.
    pub fn client_resolver(self: &Arc<Self>) -> Arc<dyn ResolvesClientCert> {
        Arc::new(Current(self.clone()))
    }

    /// Verifies client certificates against the current trust bundle (needs `ca`).
    pub fn client_verifier(self: &Arc<Self>) -> Arc<dyn ClientCertVerifier> {
        assert!(self.paths.ca.is_some(), "client verifier without a CA file");
        Arc::new(Current(self.clone()))
    }

    /// Verifies server certificates against the current trust bundle (needs `ca`).
    pub fn server_verifier(self: &Arc<Self>) -> Arc<dyn ServerCertVerifier> {
        assert!(self.paths.ca.is_some(), "server verifier without a CA file");
        Arc::new(Current(self.clone()))
    }
}

/// Every rustls hook below answers from the watcher's current material.
#[derive(Debug)]
struct Current(Arc<TlsWatcher>);

impl Current {
    fn cv(&self) -> Arc<dyn ClientCertVerifier> {
        self.0
            .now()
            .client_verifier
            .clone()
            .expect("CA file loaded")
    }
    fn sv(&self) -> Arc<WebPkiServerVerifier> {
        self.0
            .now()
            .server_verifier
            .clone()
            .expect("CA file loaded")
    }
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.now().key.clone())
    }
}

impl ResolvesClientCert for Current {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.now().key.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

impl ClientCertVerifier for Current {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        true
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // The hints would borrow from material that can be swapped; they are optional, and
        // our clients always send their one certificate.
        &[]
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, TlsError> {
        self.cv().verify_client_cert(end_entity, intermediates, now)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        ClientCertVerifier::verify_tls12_signature(&*self.cv(), message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        ClientCertVerifier::verify_tls13_signature(&*self.cv(), message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        ClientCertVerifier::supported_verify_schemes(&*self.cv())
    }
}

impl ServerCertVerifier for Current {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        self.sv()
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        ServerCertVerifier::verify_tls12_signature(&*self.sv(), message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        ServerCertVerifier::verify_tls13_signature(&*self.sv(), message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        ServerCertVerifier::supported_verify_schemes(&*self.sv())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

    fn ca(cn: &str) -> (String, Issuer<'static, KeyPair>) {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        (cert.pem(), Issuer::new(p, key))
    }

    fn leaf(issuer: &Issuer<'static, KeyPair>) -> (String, String) {
        let p = CertificateParams::new(vec!["node.test".to_string()]).unwrap();
        let key = KeyPair::generate().unwrap();
        (
            p.signed_by(&key, issuer).unwrap().pem(),
            key.serialize_pem(),
        )
    }

    struct Dir(std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn write(dir: &Dir, cert: &str, key: &str, ca: &str) -> TlsPaths {
        std::fs::write(dir.0.join("tls.crt"), cert).unwrap();
        std::fs::write(dir.0.join("tls.key"), key).unwrap();
        std::fs::write(dir.0.join("ca.crt"), ca).unwrap();
        let p = |f: &str| dir.0.join(f).display().to_string();
        TlsPaths {
            cert: p("tls.crt"),
            key: p("tls.key"),
            ca: Some(p("ca.crt")),
        }
    }

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn verifies(w: &Arc<TlsWatcher>, leaf_pem: &str) -> bool {
        let der = certs(leaf_pem.as_bytes(), "leaf", "leaf")
            .unwrap()
            .remove(0);
        w.client_verifier()
            .verify_client_cert(&der, &[], UnixTime::now())
            .is_ok()
    }

    #[test]
    fn new_files_replace_the_certificate_and_the_trust_bundle() {
        let dir = Dir(std::env::temp_dir().join(format!("tls-reload-{}", uuid::Uuid::new_v4())));
        std::fs::create_dir_all(&dir.0).unwrap();
        let (old_ca, old) = ca("old CA");
        let (new_ca, new) = ca("new CA");
        let (c1, k1) = leaf(&old);
        let paths = write(&dir, &c1, &k1, &old_ca);
        let w = TlsWatcher::load(paths, provider()).unwrap();
        let first = w.chain();
        assert!(!w.reload().unwrap(), "unchanged files are not reloaded");
        let (c_new, _) = leaf(&new);
        assert!(!verifies(&w, &c_new), "the new CA is not trusted yet");

        // A CA roll: the bundle trusts both, then the leaf moves to the new CA.
        let (c2, k2) = leaf(&new);
        write(&dir, &c2, &k2, &format!("{new_ca}{old_ca}"));
        assert!(w.reload().unwrap());
        assert_ne!(w.chain(), first, "the new certificate is served");
        assert!(
            verifies(&w, &c_new) && verifies(&w, &c1),
            "both CAs trusted"
        );

        // A half-written update (key of another certificate) keeps the working material.
        let (_, k_other) = leaf(&new);
        let serving = w.chain();
        write(&dir, &c2, &k_other, &new_ca);
        assert!(w.reload().is_err());
        assert_eq!(w.chain(), serving);
        assert!(verifies(&w, &c1), "old bundle still in use");
    }
}
