//! Test certificates for the TLS suites: a CA, and leaves like the operator's (server and client
//! auth, the headless Service's names). Included with `#[path]` by the suites that need it, so
//! the other crates sharing `support/` need no rcgen.

#![allow(dead_code)]

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use time::OffsetDateTime;

/// The DNS names of the test cluster's leaves (the operator issues `*.<headless>.<ns>.svc`).
pub const CLUSTER_NAMES: &[&str] = &["*.mcp-headless.test.svc"];

pub struct Pki {
    pub pem: String,
    pub issuer: Issuer<'static, KeyPair>,
}

pub fn ca(name: &str) -> Pki {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    Pki {
        pem: cert.pem(),
        issuer: Issuer::new(p, key),
    }
}

/// A leaf for `names`, valid from a minute ago for `life`: (certificate PEM, key PEM).
pub fn leaf_for(pki: &Pki, names: &[&str], life: Duration) -> (String, String) {
    let mut p =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, "mcp.test");
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let now = OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::minutes(1);
    p.not_after = now + time::Duration::try_from(life).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &pki.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A leaf of the test cluster, valid for a day.
pub fn leaf(pki: &Pki) -> (String, String) {
    leaf_for(pki, CLUSTER_NAMES, Duration::from_secs(86_400))
}
