//! The operator CA's Secret writes, against the mocked API server: creation keeps the CA key,
//! a cluster from an older operator (no CA key) is migrated through a trust-bundle roll, and
//! renewals rewrite the TLS Secret only, never the pod template.

mod support;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use erlmcp_crds::ErlmcpCluster;
use erlmcp_operator::desired::ca::{self, Step};
use erlmcp_operator::desired::{Names, ServerCapabilities, FIELD_MANAGER};
use erlmcp_operator::metrics::Metrics;
use erlmcp_operator::reconcile::{self, reconcile, Context};
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{json, Value};
use support::fake_api::{FakeApi, Seen};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

const NS: &str = "prod";
const CA: &str = "/api/v1/namespaces/prod/secrets/mcp-ca";
const TLS: &str = "/api/v1/namespaces/prod/secrets/mcp-tls";
const STS: &str = "/apis/apps/v1/namespaces/prod/statefulsets/mcp";

fn cluster() -> ErlmcpCluster {
    serde_json::from_value(json!({
        "apiVersion": "erlmcp.io/v1alpha1", "kind": "ErlmcpCluster",
        "metadata": {"name": "mcp", "namespace": NS, "uid": "5a0d3c0e-0000-4000-8000-000000000001", "generation": 1},
        "spec": {"tls": {"operatorCa": {"validityDays": 3}, "peerMtls": true}},
    }))
    .unwrap()
}

fn start() -> (FakeApi, Arc<Context>) {
    let api = FakeApi::new();
    api.put(
        "/apis/erlmcp.io/v1alpha1/namespaces/prod/erlmcpclusters/mcp",
        serde_json::to_value(cluster()).unwrap(),
    );
    let client = api.client();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: FIELD_MANAGER.into(),
            instance: None,
        },
    );
    let ctx = Context::new(
        client,
        ServerCapabilities::default(),
        Metrics::new(),
        recorder,
    );
    (api, Arc::new(ctx))
}

/// The Secret writes among the requests (create or replace), as "METHOD path".
fn secret_writes(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .filter(|s| s.path.contains("/secrets") && matches!(s.method.as_str(), "POST" | "PUT"))
        .map(|s| match s.method.as_str() {
            "POST" => format!("POST {}", s.body["metadata"]["name"].as_str().unwrap()),
            _ => format!("PUT {}", s.path.rsplit('/').next().unwrap()),
        })
        .collect()
}

fn field(api: &FakeApi, path: &str, key: &str) -> String {
    let s = api.get(path).unwrap_or_else(|| panic!("{path} stored"));
    let b64 = s["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("{path} has {key}"));
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

fn ders(pem: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .map(|p| p.unwrap().contents)
        .collect()
}

/// The leaf verifies against exactly this CA certificate.
fn signed_by(leaf_pem: &str, ca_pem: &str) -> bool {
    let (leaf, ca) = (ders(leaf_pem), ders(ca_pem));
    let leaf = X509Certificate::from_der(&leaf[0]).unwrap().1;
    let ca = X509Certificate::from_der(&ca[0]).unwrap().1;
    leaf.verify_signature(Some(ca.public_key())).is_ok()
}

fn checksum(api: &FakeApi) -> Value {
    api.get(STS).unwrap()["spec"]["template"]["metadata"]["annotations"]
        ["erlmcp.io/config-checksum"]
        .clone()
}

async fn renew_at(api: &FakeApi, now: OffsetDateTime) -> reconcile::ca::Renewal {
    let c = cluster();
    reconcile::ca::renew(
        &api.client(),
        &c,
        &Names::of(&c),
        now,
        reconcile::DEFAULT_CA_PROPAGATION,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_new_cluster_keeps_its_ca_key_and_a_second_pass_writes_nothing() {
    let (api, ctx) = start();
    let c = Arc::new(cluster());
    let action = reconcile(c.clone(), ctx.clone()).await.unwrap();
    let seen = api.take_seen();
    assert_eq!(
        secret_writes(&seen),
        ["POST mcp-cookie", "POST mcp-ca", "POST mcp-tls"],
        "the CA key is stored before any leaf it signed"
    );
    let ca_pem = field(&api, CA, "ca.crt");
    assert!(field(&api, CA, "ca.key").contains("PRIVATE KEY"));
    assert_eq!(field(&api, TLS, "ca.crt"), ca_pem, "the bundle is the CA");
    assert!(signed_by(&field(&api, TLS, "tls.crt"), &ca_pem));
    // The pods never see the CA key.
    let sts = api.get(STS).unwrap();
    let volumes = sts["spec"]["template"]["spec"]["volumes"].to_string();
    assert!(
        volumes.contains("mcp-tls") && !volumes.contains("mcp-ca\""),
        "{volumes}"
    );
    // The next step is days away, so the usual requeue stands.
    assert_eq!(
        action,
        kube::runtime::controller::Action::requeue(Duration::from_secs(15))
    );

    reconcile(c, ctx).await.unwrap();
    assert!(secret_writes(&api.take_seen()).is_empty());
}

#[tokio::test]
async fn leaves_renew_at_two_thirds_without_touching_the_ca_or_the_pods() {
    let (api, ctx) = start();
    let c = Arc::new(cluster());
    reconcile(c.clone(), ctx.clone()).await.unwrap();
    let sum = checksum(&api);
    let ca_before = api.get(CA).unwrap();
    let leaf = field(&api, TLS, "tls.crt");
    api.take_seen();

    let now = OffsetDateTime::now_utc();
    // Three-day leaves: kept at one day, re-issued at two thirds (48 h after not-before).
    assert!(renew_at(&api, now + time::Duration::days(1))
        .await
        .steps
        .is_empty());
    let r = renew_at(&api, now + time::Duration::hours(49)).await;
    assert_eq!(r.steps, [Step::IssueLeaf]);
    assert_eq!(secret_writes(&api.take_seen()), ["PUT mcp-tls"]);
    let renewed = field(&api, TLS, "tls.crt");
    assert_ne!(renewed, leaf);
    assert!(signed_by(&renewed, &field(&api, CA, "ca.crt")));
    assert_eq!(api.get(CA).unwrap()["data"], ca_before["data"], "same CA");

    // A reconcile after the renewal leaves the pod template alone.
    reconcile(c, ctx).await.unwrap();
    assert_eq!(checksum(&api), sum, "no pod restart for a renewed leaf");
}

#[tokio::test]
async fn an_older_clusters_ca_is_replaced_through_a_trust_bundle_roll() {
    let (api, _) = start();
    let c = cluster();
    let names = Names::of(&c);
    // What an older operator left: a TLS Secret whose CA key was thrown away.
    let now = OffsetDateTime::now_utc();
    let life = time::Duration::days(3);
    let (old_ca, old_key) = ca::new_ca(&names, life, now).unwrap();
    let (old_leaf, old_leaf_key) = ca::issue_leaf(&names, &old_ca, &old_key, life, now).unwrap();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    api.put(
        TLS,
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
               "metadata": {"name": "mcp-tls", "namespace": NS, "resourceVersion": "1",
                            "annotations": {"erlmcp.io/generated": "true"}},
               "data": {"ca.crt": b64(&old_ca), "tls.crt": b64(&old_leaf), "tls.key": b64(&old_leaf_key)}}),
    );

    // 1. A new CA, trusted next to the old one; the old leaf keeps serving.
    let r = renew_at(&api, now).await;
    assert_eq!(r.steps, [Step::NewCa, Step::TrustCa]);
    assert_eq!(
        secret_writes(&api.take_seen()),
        ["POST mcp-ca", "PUT mcp-tls"]
    );
    let new_ca = field(&api, CA, "ca.crt");
    let bundle = ders(&field(&api, TLS, "ca.crt"));
    assert_eq!(bundle, [ders(&new_ca), ders(&old_ca)].concat());
    assert_eq!(field(&api, TLS, "tls.crt"), old_leaf);
    assert_eq!(
        r.next,
        Duration::from_secs(300),
        "back when every pod has the bundle"
    );

    // 2. Too early for the leaf: nothing. After propagation: a leaf from the new CA.
    assert!(renew_at(&api, now + time::Duration::minutes(2))
        .await
        .steps
        .is_empty());
    assert!(secret_writes(&api.take_seen()).is_empty());
    let t2 = now + time::Duration::minutes(5);
    assert_eq!(renew_at(&api, t2).await.steps, [Step::IssueLeaf]);
    assert_eq!(secret_writes(&api.take_seen()), ["PUT mcp-tls"]);
    assert!(signed_by(&field(&api, TLS, "tls.crt"), &new_ca));
    assert_eq!(
        ders(&field(&api, TLS, "ca.crt")).len(),
        2,
        "old CA still trusted"
    );

    // 3. Once every pod serves the new leaf, the old CA leaves the bundle.
    let t3 = t2 + time::Duration::minutes(5);
    assert_eq!(renew_at(&api, t3).await.steps, [Step::PruneBundle]);
    assert_eq!(field(&api, TLS, "ca.crt"), new_ca);
    let r = renew_at(&api, t3).await;
    assert!(r.steps.is_empty());
    assert!(
        r.next > Duration::from_secs(86_400 - 1),
        "nothing due for a day"
    );
}
