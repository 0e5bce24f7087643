//! The operator CA's life, as pure decisions (CloudNativePG and Strimzi work the same way).
//!
//! Two Secrets: `<name>-ca` holds the CA certificate and its key (never mounted in pods), and
//! `<name>-tls` holds what the pods mount: `ca.crt` (the trust bundle), `tls.crt`, `tls.key`.
//! The pods re-read those files when they change, so every step below is a Secret write and
//! none restarts a pod. Kubelet needs time to project a Secret update into every pod, so steps
//! that depend on the pods having seen the previous one wait [`propagation_wait`]:
//!
//! 1. no CA, or the CA past two thirds of its life: a new CA ([`Step::NewCa`]);
//! 2. the CA missing from the bundle: add it in front of the still-valid old ones
//!    ([`Step::TrustCa`]);
//! 3. the leaf missing or expired, or signed by an older CA once every pod trusts the new one,
//!    or past two thirds of its life: a new leaf ([`Step::IssueLeaf`]);
//! 4. old CAs left in the bundle once every pod serves the new leaf: drop them
//!    ([`Step::PruneBundle`]);
//! 5. otherwise nothing until the next of those moments ([`Step::Wait`]).

use std::collections::BTreeMap;

use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::tls::dns_names;
use super::Names;

/// Keys of the CA Secret.
pub const CA_CERT_KEY: &str = "ca.crt";
pub const CA_KEY_KEY: &str = "ca.key";
/// Keys of the pods' TLS Secret.
pub const BUNDLE_KEY: &str = "ca.crt";
pub const LEAF_CERT_KEY: &str = "tls.crt";
pub const LEAF_KEY_KEY: &str = "tls.key";
/// When the trust bundle last changed (RFC 3339), on the TLS Secret.
pub const BUNDLE_CHANGED_ANNOTATION: &str = "erlmcp.io/ca-bundle-changed-at";
/// When the leaf was last issued (RFC 3339), on the TLS Secret.
pub const LEAF_ISSUED_ANNOTATION: &str = "erlmcp.io/leaf-issued-at";
/// Time for a Secret update to reach every pod: kubelet's sync period and cache TTL (about a
/// minute each by default) plus the data plane's reload interval, with margin. The default of
/// `--ca-propagation-seconds`; see [`propagation_wait`].
pub const PROPAGATION: Duration = Duration::minutes(5);
/// The wait never takes more than this share of a leaf's life: a leaf is renewed at two thirds,
/// so half of its last third stays for the steps after the wait.
const MAX_WAIT_PER_LEAF_LIFE: i32 = 6;

/// The wait between a Secret write and a step that needs every pod to have seen it: what the
/// operator was configured with (kubelet's sync settings are the cluster admin's), bounded by
/// the leaf's life so that short-lived certificates (hours, or minutes in tests) still roll
/// before they expire, and at least a second.
pub fn propagation_wait(configured: Duration, leaf_life: Duration) -> Duration {
    configured
        .min(leaf_life / MAX_WAIT_PER_LEAF_LIFE)
        .max(Duration::seconds(1))
}
/// The CA lives this many leaf lifetimes, so one CA signs several leaves.
pub const CA_LIFETIMES: i32 = 4;

/// A certificate's validity window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// Two thirds of the way through: when to replace it.
    pub fn renew_at(&self) -> OffsetDateTime {
        self.not_before + (self.not_after - self.not_before) * 2 / 3
    }
}

/// The pods' certificate as observed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Leaf {
    pub validity: Validity,
    /// Signed by the CA in the CA Secret (not an older one).
    pub by_current_ca: bool,
}

/// What the two Secrets hold, reduced to what the decisions need.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// The CA whose key we hold.
    pub ca: Option<Validity>,
    /// The trust bundle contains that CA.
    pub ca_trusted: bool,
    /// The trust bundle contains other CAs too (a roll under way).
    pub others_trusted: bool,
    pub leaf: Option<Leaf>,
    pub bundle_changed_at: Option<OffsetDateTime>,
    pub leaf_issued_at: Option<OffsetDateTime>,
}

/// The one next thing to do.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Step {
    NewCa,
    TrustCa,
    IssueLeaf,
    PruneBundle,
    /// Nothing to do before this time.
    Wait(OffsetDateTime),
}

/// The renewal decision, given the state and the time.
pub fn next_step(o: &Observed, now: OffsetDateTime, propagation: Duration) -> Step {
    let Some(ca) = o.ca.filter(|ca| now < ca.renew_at()) else {
        return Step::NewCa;
    };
    if !o.ca_trusted {
        return Step::TrustCa;
    }
    let settled = |since: Option<OffsetDateTime>| since.map_or(now, |t| t + propagation);
    let Some(leaf) = o.leaf.filter(|l| now < l.validity.not_after) else {
        // Nothing works without a valid leaf: waiting would not save anything.
        return Step::IssueLeaf;
    };
    if !leaf.by_current_ca {
        let at = settled(o.bundle_changed_at);
        return if now >= at {
            Step::IssueLeaf
        } else {
            Step::Wait(at)
        };
    }
    if now >= leaf.validity.renew_at() {
        return Step::IssueLeaf;
    }
    if o.others_trusted {
        let at = settled(o.leaf_issued_at);
        if now >= at {
            return Step::PruneBundle;
        }
        return Step::Wait(at.min(leaf.validity.renew_at()));
    }
    Step::Wait(leaf.validity.renew_at().min(ca.renew_at()))
}

/// PEM blocks of certificates, as DER.
fn pem_certs(pem: &[u8]) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem)
        .filter_map(Result::ok)
        .filter(|p| p.label == "CERTIFICATE")
        .map(|p| p.contents)
        .collect()
}

fn parse(der: &[u8]) -> Option<X509Certificate<'_>> {
    X509Certificate::from_der(der).ok().map(|(_, c)| c)
}

fn validity(c: &X509Certificate<'_>) -> Validity {
    let v = c.validity();
    Validity {
        not_before: v.not_before.to_datetime(),
        not_after: v.not_after.to_datetime(),
    }
}

fn timestamp(v: Option<&String>) -> Option<OffsetDateTime> {
    v.and_then(|s| OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok())
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("formats")
}

/// Secret data (key -> bytes) and annotations.
pub type Data = BTreeMap<String, Vec<u8>>;

/// Read the state from the CA Secret's and the TLS Secret's data and the TLS Secret's annotations.
pub fn observe(ca: &Data, tls: &Data, annotations: &BTreeMap<String, String>) -> Observed {
    let ca_der = ca
        .get(CA_CERT_KEY)
        .map(|p| pem_certs(p))
        .unwrap_or_default();
    let ca_der = ca_der
        .first()
        .filter(|_| ca.get(CA_KEY_KEY).is_some_and(|k| !k.is_empty()));
    let ca_cert = ca_der.and_then(|d| parse(d));
    let bundle = tls
        .get(BUNDLE_KEY)
        .map(|p| pem_certs(p))
        .unwrap_or_default();
    let leaf_der = tls
        .get(LEAF_CERT_KEY)
        .map(|p| pem_certs(p))
        .unwrap_or_default();
    let leaf = leaf_der.first().and_then(|d| parse(d)).map(|l| Leaf {
        validity: validity(&l),
        by_current_ca: ca_cert
            .as_ref()
            .is_some_and(|ca| l.verify_signature(Some(ca.public_key())).is_ok()),
    });
    Observed {
        ca: ca_cert.as_ref().map(validity),
        ca_trusted: ca_der.is_some_and(|d| bundle.contains(d)),
        others_trusted: bundle.iter().any(|b| Some(b) != ca_der),
        leaf,
        bundle_changed_at: timestamp(annotations.get(BUNDLE_CHANGED_ANNOTATION)),
        leaf_issued_at: timestamp(annotations.get(LEAF_ISSUED_ANNOTATION)),
    }
}

fn pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ascii"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// A new CA for `leaf_validity`-long leaves: (`ca.crt`, `ca.key`) PEM.
pub fn new_ca(
    names: &Names,
    leaf_validity: Duration,
    now: OffsetDateTime,
) -> anyhow::Result<(String, String)> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    // The date tells the CAs of a bundle apart for a human reading them.
    p.distinguished_name.push(
        DnType::CommonName,
        format!("erlmcp {} CA {}", names.cluster, now.date()),
    );
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = now - Duration::minutes(5);
    p.not_after = now + leaf_validity * CA_LIFETIMES;
    let key = KeyPair::generate()?;
    let cert = p.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A leaf for every pod name, signed by the CA, never outliving it: (`tls.crt`, `tls.key`) PEM.
pub fn issue_leaf(
    names: &Names,
    ca_cert_pem: &str,
    ca_key_pem: &str,
    life: Duration,
    now: OffsetDateTime,
) -> anyhow::Result<(String, String)> {
    use rcgen::{
        CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::from_pem(ca_key_pem)?;
    let ca_der = pem_certs(ca_cert_pem.as_bytes());
    let ca_until = ca_der
        .first()
        .and_then(|d| parse(d))
        .map(|c| validity(&c).not_after)
        .ok_or_else(|| anyhow::anyhow!("the CA Secret's ca.crt is not a certificate"))?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, ca_key)?;
    let mut p = CertificateParams::new(dns_names(names))?;
    p.distinguished_name.push(
        DnType::CommonName,
        format!("{}.{}", names.cluster, names.namespace),
    );
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.not_before = now - Duration::minutes(5);
    p.not_after = (now + life).min(ca_until);
    let key = KeyPair::generate()?;
    let cert = p.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The bundle with `ca` in front of the still-valid certificates of `old` (no duplicates).
pub fn bundle_with(ca_pem: &str, old: &[u8], now: OffsetDateTime) -> String {
    let ca = pem_certs(ca_pem.as_bytes());
    let mut out = ca_pem.to_string();
    for der in pem_certs(old) {
        let valid = parse(&der).is_some_and(|c| now < validity(&c).not_after);
        if valid && !ca.contains(&der) {
            out.push_str(&pem(&der));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::fixtures;

    const PROP: Duration = Duration::minutes(5);

    #[test]
    fn the_propagation_wait_is_the_configured_one_bounded_by_the_leaf_life() {
        // A year-long leaf: the configured wait as it is, whatever it is.
        let year = Duration::days(365);
        assert_eq!(propagation_wait(PROP, year), PROP);
        assert_eq!(
            propagation_wait(Duration::seconds(20), year),
            Duration::seconds(20)
        );
        // A leaf of 30 minutes: at most 5 of them; of 6 minutes, at most one.
        assert_eq!(
            propagation_wait(Duration::hours(1), Duration::minutes(30)),
            Duration::minutes(5)
        );
        assert_eq!(
            propagation_wait(PROP, Duration::minutes(6)),
            Duration::minutes(1)
        );
        // Never zero: a write is never followed by its dependant in the same instant.
        assert_eq!(propagation_wait(Duration::ZERO, year), Duration::seconds(1));
    }

    #[test]
    fn a_shorter_wait_reissues_sooner_after_a_ca_roll() {
        // The CA rolled and is trusted, the leaf still from the old CA: the leaf waits out
        // exactly the wait it is given.
        let changed = t0() + Duration::days(300);
        let o = Observed {
            ca: Some(window(changed, 400)),
            leaf: Some(Leaf {
                validity: window(t0(), 100 * 4),
                by_current_ca: false,
            }),
            others_trusted: true,
            bundle_changed_at: Some(changed),
            ..settled()
        };
        let short = Duration::seconds(30);
        assert_eq!(next_step(&o, changed, short), Step::Wait(changed + short));
        assert_eq!(next_step(&o, changed + short, short), Step::IssueLeaf);
        assert_eq!(
            next_step(&o, changed + short, PROP),
            Step::Wait(changed + PROP)
        );
    }

    fn t0() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn window(from: OffsetDateTime, days: i64) -> Validity {
        Validity {
            not_before: from,
            not_after: from + Duration::days(days),
        }
    }

    /// A settled cluster: CA of 400 days, leaf of 100, both issued at t0, one CA trusted.
    fn settled() -> Observed {
        Observed {
            ca: Some(window(t0(), 400)),
            ca_trusted: true,
            others_trusted: false,
            leaf: Some(Leaf {
                validity: window(t0(), 100),
                by_current_ca: true,
            }),
            bundle_changed_at: Some(t0()),
            leaf_issued_at: Some(t0()),
        }
    }

    #[test]
    fn a_fresh_cluster_is_kept_until_two_thirds_of_the_leaf() {
        let o = settled();
        let renew = t0() + Duration::days(100) * 2 / 3;
        assert_eq!(
            next_step(&o, t0() + Duration::days(1), PROP),
            Step::Wait(renew)
        );
        assert_eq!(
            next_step(&o, renew - Duration::seconds(1), PROP),
            Step::Wait(renew)
        );
        assert_eq!(next_step(&o, renew, PROP), Step::IssueLeaf);
        // Expired (the operator was down): re-issue at once.
        assert_eq!(
            next_step(&o, t0() + Duration::days(101), PROP),
            Step::IssueLeaf
        );
    }

    #[test]
    fn nothing_yet_builds_ca_then_trust_then_leaf() {
        let mut o = Observed::default();
        assert_eq!(next_step(&o, t0(), PROP), Step::NewCa);
        o.ca = Some(window(t0(), 400));
        assert_eq!(next_step(&o, t0(), PROP), Step::TrustCa);
        o.ca_trusted = true;
        o.bundle_changed_at = Some(t0());
        // No leaf at all: nothing to keep working, no propagation wait.
        assert_eq!(next_step(&o, t0(), PROP), Step::IssueLeaf);
    }

    #[test]
    fn a_ca_roll_trusts_first_reissues_after_propagation_then_prunes() {
        let mut o = settled();
        let ca_renew = t0() + Duration::days(400) * 2 / 3;
        // The leaf was renewed recently; the CA reaches two thirds of its life.
        let leaf_from = ca_renew - Duration::days(10);
        o.leaf = Some(Leaf {
            validity: window(leaf_from, 100),
            by_current_ca: true,
        });
        o.leaf_issued_at = Some(leaf_from);
        assert_eq!(
            next_step(&o, ca_renew - Duration::seconds(1), PROP),
            Step::Wait(ca_renew)
        );
        let now = ca_renew;
        assert_eq!(next_step(&o, now, PROP), Step::NewCa);

        // New CA: not yet in the bundle, the leaf still from the old one.
        o.ca = Some(window(now, 400));
        o.ca_trusted = false;
        o.others_trusted = true;
        o.leaf.as_mut().unwrap().by_current_ca = false;
        assert_eq!(next_step(&o, now, PROP), Step::TrustCa);

        // Both trusted: the old leaf stays until every pod has the new bundle.
        o.ca_trusted = true;
        o.bundle_changed_at = Some(now);
        assert_eq!(
            next_step(&o, now + Duration::minutes(1), PROP),
            Step::Wait(now + PROP)
        );
        assert_eq!(next_step(&o, now + PROP, PROP), Step::IssueLeaf);

        // New leaf: the old CA stays trusted until every pod serves the new leaf.
        let issued = now + PROP;
        o.leaf = Some(Leaf {
            validity: window(issued, 100),
            by_current_ca: true,
        });
        o.leaf_issued_at = Some(issued);
        assert_eq!(
            next_step(&o, issued + Duration::minutes(1), PROP),
            Step::Wait(issued + PROP)
        );
        assert_eq!(next_step(&o, issued + PROP, PROP), Step::PruneBundle);
        o.others_trusted = false;
        assert!(matches!(next_step(&o, issued + PROP, PROP), Step::Wait(_)));
    }

    #[test]
    fn a_ca_with_no_key_is_replaced() {
        // The CA Secret of an older operator release held no key: observe() reports no CA.
        let c = fixtures::minimal();
        let names = Names::of(&c);
        let (ca, _) = new_ca(&names, Duration::days(1), t0()).unwrap();
        let o = observe(
            &Data::from([(CA_CERT_KEY.to_string(), ca.into_bytes())]),
            &Data::new(),
            &BTreeMap::new(),
        );
        assert_eq!(o.ca, None);
        assert_eq!(next_step(&o, t0(), PROP), Step::NewCa);
    }

    #[test]
    fn observe_reads_real_certificates() {
        let c = fixtures::minimal();
        let names = Names::of(&c);
        let now = OffsetDateTime::now_utc();
        let leaf_life = Duration::minutes(30);
        let (old_ca, old_key) = new_ca(&names, leaf_life, now).unwrap();
        let (ca, key) = new_ca(&names, leaf_life, now).unwrap();
        let (leaf, leaf_key) = issue_leaf(&names, &old_ca, &old_key, leaf_life, now).unwrap();
        let ca_data = Data::from([
            (CA_CERT_KEY.to_string(), ca.clone().into_bytes()),
            (CA_KEY_KEY.to_string(), key.clone().into_bytes()),
        ]);
        let tls = |bundle: String, leaf: &str| {
            Data::from([
                (BUNDLE_KEY.to_string(), bundle.into_bytes()),
                (LEAF_CERT_KEY.to_string(), leaf.as_bytes().to_vec()),
                (LEAF_KEY_KEY.to_string(), leaf_key.clone().into_bytes()),
            ])
        };
        let ann = BTreeMap::from([(BUNDLE_CHANGED_ANNOTATION.to_string(), rfc3339(now))]);

        let o = observe(&ca_data, &tls(old_ca.clone(), &leaf), &ann);
        assert!(!o.ca_trusted && o.others_trusted);
        assert!(!o.leaf.unwrap().by_current_ca);
        assert_eq!(
            o.bundle_changed_at.unwrap().unix_timestamp(),
            now.unix_timestamp()
        );
        let v = o.leaf.unwrap().validity;
        assert_eq!((v.not_after - v.not_before).whole_minutes(), 35);

        let both = bundle_with(&ca, old_ca.as_bytes(), now);
        let o = observe(&ca_data, &tls(both.clone(), &leaf), &ann);
        assert!(o.ca_trusted && o.others_trusted, "{both}");
        assert_eq!(pem_certs(both.as_bytes()).len(), 2);
        assert_eq!(
            bundle_with(&ca, both.as_bytes(), now),
            both,
            "no duplicates"
        );

        let (new_leaf, _) = issue_leaf(&names, &ca, &key, leaf_life, now).unwrap();
        let o = observe(&ca_data, &tls(ca.clone(), &new_leaf), &ann);
        assert!(o.ca_trusted && !o.others_trusted);
        assert!(o.leaf.unwrap().by_current_ca);

        // Expired CAs leave the bundle; a leaf never outlives its CA.
        let later = now + leaf_life * CA_LIFETIMES + Duration::minutes(1);
        assert_eq!(
            pem_certs(bundle_with(&ca, both.as_bytes(), later).as_bytes()).len(),
            1
        );
        let (short, _) = issue_leaf(&names, &ca, &key, Duration::days(3650), now).unwrap();
        let o = observe(&ca_data, &tls(ca.clone(), &short), &ann);
        assert_eq!(o.leaf.unwrap().validity.not_after, o.ca.unwrap().not_after);
    }
}
