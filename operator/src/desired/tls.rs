//! TLS for the pods: a cert-manager Certificate, or an operator-generated CA and certificate.

use std::collections::BTreeMap;

use erlmcp_crds::ErlmcpCluster;
use k8s_openapi::api::core::v1::Secret;
use serde_json::json;

use super::secrets::{GENERATED_ANNOTATION, GENERATED_PLACEHOLDER};
use super::{child_meta, Child, Names};

/// DNS names the pods answer to: each pod through the headless Service, and the client Service.
pub fn dns_names(names: &Names) -> Vec<String> {
    let ns = &names.namespace;
    let mut out = Vec::new();
    for domain in ["svc", "svc.cluster.local"] {
        out.push(format!("*.{}.{ns}.{domain}", names.headless));
        out.push(format!("{}.{ns}.{domain}", names.client_service));
    }
    out.push(names.client_service.clone());
    out
}

/// A cert-manager Certificate writing `<name>-tls`, usable as server and client certificate
/// (peers authenticate each other with it).
pub fn certificate(cluster: &ErlmcpCluster, names: &Names) -> Child {
    let issuer = cluster
        .spec
        .tls
        .as_ref()
        .and_then(|t| t.issuer_ref.as_ref())
        .expect("issuerRef set");
    let meta =
        serde_json::to_value(child_meta(cluster, &names.tls_secret)).expect("meta serialises");
    let object = json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": meta,
        "spec": {
            "secretName": names.tls_secret,
            "dnsNames": dns_names(names),
            "usages": ["server auth", "client auth", "digital signature", "key encipherment"],
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            "issuerRef": {"name": issuer.name, "kind": issuer.kind, "group": issuer.group},
        },
    });
    Child {
        api_version: "cert-manager.io/v1".into(),
        kind: "Certificate".into(),
        name: names.tls_secret.clone(),
        object,
    }
}

/// The operator-CA Secret with placeholders; the reconciler fills it with
/// [`generate_operator_ca`] right before creating it.
pub fn operator_ca_placeholder(cluster: &ErlmcpCluster, names: &Names) -> Child {
    let mut meta = child_meta(cluster, &names.tls_secret);
    meta.annotations = Some(BTreeMap::from([(
        GENERATED_ANNOTATION.to_string(),
        "true".to_string(),
    )]));
    let secret = Secret {
        metadata: meta,
        type_: Some("kubernetes.io/tls".into()),
        string_data: Some(
            ["ca.crt", "tls.crt", "tls.key"]
                .iter()
                .map(|k| (k.to_string(), GENERATED_PLACEHOLDER.to_string()))
                .collect(),
        ),
        ..Default::default()
    };
    Child::new("v1", "Secret", &secret)
}

/// A fresh CA and a certificate for every pod name, PEM-encoded: (`ca.crt`, `tls.crt`, `tls.key`).
pub fn generate_operator_ca(
    names: &Names,
    validity_days: u32,
) -> anyhow::Result<BTreeMap<String, String>> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let now = time::OffsetDateTime::now_utc();
    let until = now + time::Duration::days(validity_days as i64);

    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("erlmcp {} CA", names.cluster));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = now - time::Duration::minutes(5);
    ca_params.not_after = until;
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;

    let mut params = CertificateParams::new(dns_names(names))?;
    params.distinguished_name.push(
        DnType::CommonName,
        format!("{}.{}", names.cluster, names.namespace),
    );
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = until;
    let key = KeyPair::generate()?;
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let cert = params.signed_by(&key, &issuer)?;
    Ok(BTreeMap::from([
        ("ca.crt".to_string(), ca_cert.pem()),
        ("tls.crt".to_string(), cert.pem()),
        ("tls.key".to_string(), key.serialize_pem()),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::fixtures;

    #[test]
    fn certificate_covers_every_pod_and_both_usages() {
        let c = fixtures::cluster(
            "metadata: {name: sec}\nspec:\n  tls: {issuerRef: {name: letsencrypt, kind: ClusterIssuer}}\n",
        );
        let cert = certificate(&c, &Names::of(&c)).object;
        assert_eq!(cert["spec"]["secretName"], "sec-tls");
        assert_eq!(cert["spec"]["issuerRef"]["kind"], "ClusterIssuer");
        assert_eq!(cert["spec"]["issuerRef"]["group"], "cert-manager.io");
        let dns: Vec<&str> = cert["spec"]["dnsNames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(dns.contains(&"*.sec-headless.prod.svc"));
        assert!(dns.contains(&"sec.prod.svc.cluster.local"));
        let usages = cert["spec"]["usages"].to_string();
        assert!(usages.contains("server auth") && usages.contains("client auth"));
        assert_eq!(
            cert["metadata"]["ownerReferences"][0]["kind"],
            "ErlmcpCluster"
        );
    }

    #[test]
    fn operator_ca_issues_a_pem_chain() {
        let c = fixtures::minimal();
        let pem = generate_operator_ca(&Names::of(&c), 30).unwrap();
        assert!(pem["ca.crt"].starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pem["tls.crt"].starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pem["tls.key"].contains("PRIVATE KEY"));
        assert_ne!(pem["ca.crt"], pem["tls.crt"]);
    }
}
