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

/// The pods' TLS Secret of an operator CA, with placeholders; the reconciler fills and renews it
/// (see [`super::ca`]).
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

/// The Secret holding the operator CA's certificate and key, with placeholders; see [`super::ca`].
pub fn ca_secret_placeholder(cluster: &ErlmcpCluster, names: &Names) -> Child {
    let mut meta = child_meta(cluster, &names.ca_secret);
    meta.annotations = Some(BTreeMap::from([(
        GENERATED_ANNOTATION.to_string(),
        "true".to_string(),
    )]));
    let secret = Secret {
        metadata: meta,
        type_: Some("Opaque".into()),
        string_data: Some(
            [super::ca::CA_CERT_KEY, super::ca::CA_KEY_KEY]
                .iter()
                .map(|k| (k.to_string(), GENERATED_PLACEHOLDER.to_string()))
                .collect(),
        ),
        ..Default::default()
    };
    Child::new("v1", "Secret", &secret)
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
}
