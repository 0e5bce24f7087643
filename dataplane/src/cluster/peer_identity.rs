//! Who a peer is, beyond "signed by our CA": one CA (a cert-manager ClusterIssuer, a company
//! root) often signs the leaves of several clusters, so a chain check alone would let any of
//! them join ours. A peer's certificate must also name this cluster's service: it must share a
//! DNS (or URI) subject alternative name with this node's own certificate, the one every pod of
//! the cluster mounts (the operator and cert-manager issue `*.<headless>.<ns>.svc[.cluster.local]`
//! and the client Service's names). A per-pod leaf (`<pod>.<headless>.<ns>.svc`) matches our
//! wildcard. Both directions check: the dialler the server's certificate, the server the
//! client's. Peers are dialled by IP, so the usual host-name check does not apply.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error as TlsError, OtherError,
    SignatureScheme,
};
use x509_parser::extensions::GeneralName;

use crate::tls_reload::TlsWatcher;

/// The DNS and URI subject alternative names of a DER certificate, lower-cased.
pub fn identity_names(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
            GeneralName::URI(u) => Some(u.to_string()),
            _ => None,
        })
        .collect()
}

/// Our name covers theirs: equal, or our `*.rest` and a single label under `rest`. Only our
/// wildcard counts: a peer's broad `*.<ns>.svc` must not cover our client Service's name.
fn covers(ours: &str, theirs: &str) -> bool {
    let under = match (ours.strip_prefix("*."), theirs.split_once('.')) {
        (Some(rest), Some((label, tail))) => !label.is_empty() && label != "*" && tail == rest,
        _ => false,
    };
    ours == theirs || under
}

/// A peer with a name that one of ours covers is of this cluster.
pub fn same_cluster(ours: &[String], theirs: &[String]) -> bool {
    ours.iter().any(|o| theirs.iter().any(|t| covers(o, t)))
}

/// Refuse (and say why, once per handshake) a chain-valid certificate of another cluster.
fn check(
    watcher: &TlsWatcher,
    end_entity: &CertificateDer<'_>,
    role: &str,
) -> Result<(), TlsError> {
    let ours = watcher
        .chain()
        .first()
        .map(|c| identity_names(c))
        .unwrap_or_default();
    let theirs = identity_names(end_entity);
    if same_cluster(&ours, &theirs) {
        return Ok(());
    }
    let why = format!(
        "the peer's {role} certificate names {theirs:?}, none of this cluster's {ours:?}: a certificate of another cluster (same CA)"
    );
    tracing::warn!("peer certificate refused: {why}");
    Err(TlsError::InvalidCertificate(CertificateError::Other(
        OtherError(Arc::new(NotOurCluster(why))),
    )))
}

#[derive(Debug)]
struct NotOurCluster(String);

impl std::fmt::Display for NotOurCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotOurCluster {}

/// The dialler's check of the server: the chain to the cluster CA (not the host name: peers are
/// dialled by IP from discovery), then the cluster's names.
#[derive(Debug)]
pub struct ServerIsPeer {
    pub chain: Arc<dyn ServerCertVerifier>,
    pub watcher: Arc<TlsWatcher>,
}

impl ServerCertVerifier for ServerIsPeer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        // rustls checks the chain before the name, so a name mismatch means the chain is good.
        match self
            .chain
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Ok(_)
            | Err(TlsError::InvalidCertificate(CertificateError::NotValidForName))
            | Err(TlsError::InvalidCertificate(CertificateError::NotValidForNameContext {
                ..
            })) => {}
            Err(e) => return Err(e),
        }
        check(&self.watcher, end_entity, "server")?;
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

/// The server's check of a dialling peer: the chain, then the cluster's names.
#[derive(Debug)]
pub struct ClientIsPeer {
    pub chain: Arc<dyn ClientCertVerifier>,
    pub watcher: Arc<TlsWatcher>,
}

impl ClientCertVerifier for ClientIsPeer {
    fn offer_client_auth(&self) -> bool {
        self.chain.offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.chain.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.chain.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, TlsError> {
        let ok = self
            .chain
            .verify_client_cert(end_entity, intermediates, now)?;
        check(&self.watcher, end_entity, "client")?;
        Ok(ok)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_of_the_same_service_match_and_others_do_not() {
        let ours = v(&["*.mcp-headless.prod.svc", "mcp.prod.svc"]);
        assert!(same_cluster(&ours, &v(&["*.mcp-headless.prod.svc"])));
        assert!(same_cluster(&ours, &v(&["mcp-0.mcp-headless.prod.svc"])));
        assert!(!same_cluster(&ours, &v(&["*.other-headless.prod.svc"])));
        assert!(!same_cluster(&ours, &v(&["*.mcp-headless.staging.svc"])));
        // Our wildcard covers one label only; a peer's wildcard covers nothing of ours.
        assert!(!same_cluster(&ours, &v(&["a.b.mcp-headless.prod.svc"])));
        assert!(!same_cluster(&ours, &v(&["*.prod.svc"])));
        assert!(!same_cluster(&v(&["mcp.prod.svc"]), &v(&["*.prod.svc"])));
        assert!(!same_cluster(&ours, &[]));
        assert!(!same_cluster(&[], &v(&["*.mcp-headless.prod.svc"])));
    }

    #[test]
    fn names_are_read_from_the_certificate() {
        let p = rcgen::CertificateParams::new(v(&["*.MCP-headless.prod.svc", "mcp"])).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let der = p.self_signed(&key).unwrap().der().to_vec();
        assert_eq!(identity_names(&der), v(&["*.mcp-headless.prod.svc", "mcp"]));
        assert!(identity_names(b"not a certificate").is_empty());
    }

    struct Dir(std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A CA and its issuer.
    fn ca() -> (String, rcgen::Issuer<'static, rcgen::KeyPair>) {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = p.self_signed(&key).unwrap().pem();
        (pem, rcgen::Issuer::new(p, key))
    }

    fn leaf(issuer: &rcgen::Issuer<'static, rcgen::KeyPair>, name: &str) -> (String, String) {
        let p = rcgen::CertificateParams::new(v(&[name])).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        (
            p.signed_by(&key, issuer).unwrap().pem(),
            key.serialize_pem(),
        )
    }

    fn der(pem: &str) -> CertificateDer<'static> {
        rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .unwrap()
            .unwrap()
    }

    #[test]
    fn both_directions_refuse_a_leaf_of_the_same_ca_for_another_cluster() {
        let dir = Dir(std::env::temp_dir().join(format!("peer-id-{}", uuid::Uuid::new_v4())));
        std::fs::create_dir_all(&dir.0).unwrap();
        let (ca_pem, issuer) = ca();
        let (ours, key) = leaf(&issuer, "*.mcp-headless.prod.svc");
        let file = |n: &str, c: &str| {
            let p = dir.0.join(n);
            std::fs::write(&p, c).unwrap();
            p.display().to_string()
        };
        let paths = crate::tls_reload::TlsPaths {
            cert: file("tls.crt", &ours),
            key: file("tls.key", &key),
            ca: Some(file("ca.crt", &ca_pem)),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let w = TlsWatcher::load(paths, provider).unwrap();
        let server = ServerIsPeer {
            chain: w.server_verifier(),
            watcher: w.clone(),
        };
        let client = ClientIsPeer {
            chain: w.client_verifier(),
            watcher: w.clone(),
        };
        let ip = ServerName::try_from("127.0.0.1").unwrap();
        let now = UnixTime::now();
        let as_server = |pem: &str| {
            server
                .verify_server_cert(&der(pem), &[], &ip, &[], now)
                .is_ok()
        };
        let as_client = |pem: &str| client.verify_client_cert(&der(pem), &[], now).is_ok();

        let sibling = leaf(&issuer, "mcp-1.mcp-headless.prod.svc").0;
        let stranger = leaf(&issuer, "*.other-headless.prod.svc").0;
        let (_, evil) = ca();
        let forged = leaf(&evil, "*.mcp-headless.prod.svc").0;
        assert!(as_server(&ours) && as_client(&ours), "our own certificate");
        assert!(as_server(&sibling) && as_client(&sibling), "a per-pod leaf");
        assert!(
            !as_server(&stranger),
            "the dialler refuses another cluster's server"
        );
        assert!(
            !as_client(&stranger),
            "the server refuses another cluster's client"
        );
        assert!(!as_server(&forged) && !as_client(&forged), "another CA");
    }
}
