//! Pure builders: an `ErlmcpCluster` (plus what the reconciler observed) in, the objects the
//! operator wants to exist out. No client, no clock, no I/O: unit-tested from fixture specs.

mod adopt;
pub mod ca;
mod configmap;
mod hpa;
mod merge;
mod monitoring;
mod network_policy;
mod pdb;
mod rbac;
mod secrets;
mod services;
mod statefulset;
mod strategy;
mod tls;
mod tracing_env;

use std::collections::BTreeMap;

use erlmcp_crds::ErlmcpCluster;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use serde_json::Value;

pub use adopt::adoption_patch;
pub use configmap::{dataplane_config, mounted_secrets, CONFIG_FILE, CONFIG_KEY};
pub use merge::{json_merge, merge_by_name, strategic_merge};
pub use secrets::{generate_cookie, COOKIE_KEY, GENERATED_ANNOTATION, GENERATED_PLACEHOLDER};

/// Field manager for everything the operator applies.
pub const FIELD_MANAGER: &str = "erlmcp-operator";
/// Default data-plane image repository; the tag is the operator's own version.
pub const DEFAULT_IMAGE_REPO: &str = "ghcr.io/erlmcp/erlmcp";
/// Pod-template annotation whose change rolls the pods when config or secrets change.
pub const CHECKSUM_ANNOTATION: &str = "erlmcp.io/config-checksum";

/// API versions and optional kinds the target API server serves, found once by discovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerCapabilities {
    /// `autoscaling/v2` (1.23+) or else `autoscaling/v2beta2` (same shape).
    pub hpa_api_version: String,
    /// `policy/v1` (1.21+) or else `policy/v1beta1` (same shape).
    pub pdb_api_version: String,
    /// `monitoring.coreos.com/v1` ServiceMonitor is served.
    pub service_monitor: bool,
    /// `monitoring.coreos.com/v1` PrometheusRule is served.
    pub prometheus_rule: bool,
    /// `cert-manager.io/v1` Certificate is served.
    pub cert_manager: bool,
    /// PodDisruptionBudget `unhealthyPodEvictionPolicy` is honoured (beta and on by default in
    /// 1.27+); older servers drop the field.
    pub pdb_unhealthy_pod_eviction_policy: bool,
    /// StatefulSet `persistentVolumeClaimRetentionPolicy` exists (1.23+); older servers drop it.
    pub pvc_retention_policy: bool,
}

impl Default for ServerCapabilities {
    /// A current cluster with every optional kind installed (what `render` assumes).
    fn default() -> Self {
        Self {
            hpa_api_version: "autoscaling/v2".into(),
            pdb_api_version: "policy/v1".into(),
            service_monitor: true,
            prometheus_rule: true,
            cert_manager: true,
            pdb_unhealthy_pod_eviction_policy: true,
            pvc_retention_policy: true,
        }
    }
}

/// Everything besides the resource that the builders need.
#[derive(Clone, Debug, Default)]
pub struct BuildContext {
    /// Image used when the spec names none.
    pub default_image: String,
    /// What the API server serves.
    pub capabilities: ServerCapabilities,
    /// Contents of the Secrets the pods mount (generated and referenced), by Secret name, so the
    /// pod-template checksum changes when any of them does. Missing entries hash as absent.
    pub secret_data: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// A stalled rollout holds the pods below this ordinal on the old template (the
    /// StatefulSet's rolling-update partition); see `status::rollout`.
    pub partition_hold: Option<i32>,
}

impl BuildContext {
    /// A context for this operator version.
    pub fn new(capabilities: ServerCapabilities) -> Self {
        Self {
            default_image: default_image(),
            capabilities,
            secret_data: BTreeMap::new(),
            partition_hold: None,
        }
    }
}

/// The image of the operator's own version.
pub fn default_image() -> String {
    format!("{DEFAULT_IMAGE_REPO}:{}", env!("CARGO_PKG_VERSION"))
}

/// One object the operator wants, as the JSON it applies.
#[derive(Clone, Debug, PartialEq)]
pub struct Child {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub object: Value,
}

impl Child {
    fn new<K: serde::Serialize>(api_version: &str, kind: &str, obj: &K) -> Self {
        let mut object = serde_json::to_value(obj).expect("k8s objects serialise");
        object["apiVersion"] = Value::String(api_version.into());
        object["kind"] = Value::String(kind.into());
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Self {
            api_version: api_version.into(),
            kind: kind.into(),
            name,
            object,
        }
    }

    /// `group/version` split into (group, version); the core group is "".
    pub fn group_version(&self) -> (&str, &str) {
        match self.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", self.api_version.as_str()),
        }
    }
}

/// What a reconcile should make true.
#[derive(Clone, Debug, Default)]
pub struct Desired {
    /// Applied (server-side, forced) on every reconcile.
    pub apply: Vec<Child>,
    /// Created only if absent, never updated (generated secrets).
    pub create_once: Vec<Child>,
    /// Optional kinds skipped because the server lacks their CRD, with the reason.
    pub skipped: Vec<String>,
}

impl Desired {
    /// Every child, both kinds.
    pub fn all(&self) -> impl Iterator<Item = &Child> {
        self.create_once.iter().chain(self.apply.iter())
    }

    pub fn find(&self, kind: &str) -> Option<&Child> {
        self.all().find(|c| c.kind == kind)
    }
}

/// Names of the children, derived from the resource name.
#[derive(Clone, Debug)]
pub struct Names {
    pub cluster: String,
    pub namespace: String,
    pub statefulset: String,
    pub headless: String,
    pub client_service: String,
    pub config_map: String,
    pub cookie_secret: String,
    pub tls_secret: String,
    /// The operator CA (certificate and key); never mounted.
    pub ca_secret: String,
    pub service_account: String,
}

impl Names {
    pub fn of(cluster: &ErlmcpCluster) -> Self {
        let name = cluster.metadata.name.clone().unwrap_or_default();
        let namespace = cluster
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        Self {
            statefulset: name.clone(),
            headless: format!("{name}-headless"),
            client_service: name.clone(),
            config_map: format!("{name}-config"),
            cookie_secret: format!("{name}-cookie"),
            tls_secret: format!("{name}-tls"),
            ca_secret: format!("{name}-ca"),
            service_account: format!("{name}-dataplane"),
            namespace,
            cluster: name,
        }
    }

    /// In-cluster URL of the MCP endpoint (Streamable HTTP) behind the client Service.
    pub fn mcp_url(&self, tls: bool, port: u16) -> String {
        let scheme = if tls { "https" } else { "http" };
        format!(
            "{scheme}://{}.{}.svc:{port}/mcp",
            self.client_service, self.namespace
        )
    }

    /// In-cluster URL of the WebSocket endpoint behind the client Service.
    pub fn websocket_url(&self, tls: bool, port: u16) -> String {
        let scheme = if tls { "wss" } else { "ws" };
        format!(
            "{scheme}://{}.{}.svc:{port}/ws",
            self.client_service, self.namespace
        )
    }

    /// DNS name of the headless Service the peers use.
    pub fn peers_host(&self) -> String {
        format!("{}.{}.svc", self.headless, self.namespace)
    }
}

/// Labels that select the cluster's pods. Never change after creation (selectors are immutable).
pub fn selector_labels(cluster: &ErlmcpCluster) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "erlmcp".to_string()),
        (
            "app.kubernetes.io/instance".to_string(),
            cluster.metadata.name.clone().unwrap_or_default(),
        ),
    ])
}

/// The recommended `app.kubernetes.io/*` labels on everything the operator creates.
pub fn common_labels(cluster: &ErlmcpCluster) -> BTreeMap<String, String> {
    let mut labels = selector_labels(cluster);
    labels.insert("app.kubernetes.io/component".into(), "dataplane".into());
    labels.insert("app.kubernetes.io/part-of".into(), "erlmcp".into());
    labels.insert("app.kubernetes.io/managed-by".into(), FIELD_MANAGER.into());
    labels
}

/// Label selector (as a string) of everything this operator manages: for one cluster (to list
/// its children for pruning), or for every cluster (`None`: the controller's watches).
pub fn managed_selector(cluster_name: Option<&str>) -> String {
    let managed_by = format!("app.kubernetes.io/managed-by={FIELD_MANAGER}");
    match cluster_name {
        Some(name) => format!("{managed_by},app.kubernetes.io/instance={name}"),
        None => managed_by,
    }
}

/// Pod label selector as a string (status.selector, for the scale subresource).
pub fn selector_string(cluster: &ErlmcpCluster) -> String {
    selector_labels(cluster)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Metadata for a child: name, namespace, labels, controller owner reference.
pub fn child_meta(cluster: &ErlmcpCluster, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: cluster.metadata.namespace.clone(),
        labels: Some(common_labels(cluster)),
        owner_references: owner_reference(cluster).map(|o| vec![o]),
        ..Default::default()
    }
}

/// The controller owner reference that makes deletion cascade.
pub fn owner_reference(cluster: &ErlmcpCluster) -> Option<OwnerReference> {
    let mut owner = cluster.controller_owner_ref(&())?;
    owner.block_owner_deletion = Some(true);
    Some(owner)
}

/// The image the pods run.
pub fn image(cluster: &ErlmcpCluster, ctx: &BuildContext) -> String {
    cluster
        .spec
        .image
        .clone()
        .unwrap_or_else(|| ctx.default_image.clone())
}

/// The Secrets the operator generates: the cookie (created once, never rewritten) and the
/// operator CA's two Secrets (created, then renewed by [`ca`]'s decisions). They depend on the
/// spec alone, so the reconciler creates them before reading the Secret contents [`build`] needs.
pub fn generated(cluster: &ErlmcpCluster, names: &Names) -> Vec<Child> {
    let spec = &cluster.spec;
    let mut out = Vec::new();
    if spec.cluster.cookie_secret.is_none() {
        out.push(secrets::cookie_secret(cluster, names));
    }
    if spec.tls.as_ref().is_some_and(|t| t.operator_ca.is_some()) {
        out.push(tls::ca_secret_placeholder(cluster, names));
        out.push(tls::operator_ca_placeholder(cluster, names));
    }
    out
}

/// Every object for a valid resource. Call [`erlmcp_crds::validate::validate`] first.
pub fn build(cluster: &ErlmcpCluster, ctx: &BuildContext) -> Desired {
    let names = Names::of(cluster);
    let spec = &cluster.spec;
    let mut d = Desired {
        create_once: generated(cluster, &names),
        ..Default::default()
    };

    match spec.tls.as_ref() {
        Some(tls) if tls.operator_ca.is_some() => {}
        Some(tls) if tls.issuer_ref.is_some() => {
            if ctx.capabilities.cert_manager {
                d.apply.push(tls::certificate(cluster, &names));
            } else {
                d.skipped.push(
                    "Certificate: cert-manager.io/v1 is not served; install cert-manager or use tls.secretName".into(),
                );
            }
        }
        _ => {}
    }

    let config = configmap::config_map(cluster, &names);
    let checksum = configmap::checksum(&config, cluster, &names, ctx);
    d.apply.push(config);
    d.apply.push(rbac::service_account(cluster, &names));
    d.apply.push(rbac::role(cluster, &names));
    d.apply.push(rbac::role_binding(cluster, &names));
    d.apply.push(services::headless(cluster, &names));
    d.apply.push(services::client(cluster, &names));
    d.apply
        .push(statefulset::statefulset(cluster, &names, ctx, &checksum));
    if let Some(pdb) = pdb::pdb(cluster, &names, ctx) {
        d.apply.push(pdb);
    }
    if let Some(hpa) = hpa::hpa(cluster, &names, ctx) {
        d.apply.push(hpa);
    }
    if spec.network_policy.enabled {
        d.apply
            .push(network_policy::network_policy(cluster, &names));
    }
    monitoring::monitoring(cluster, &names, ctx, &mut d);
    d
}

#[cfg(test)]
pub(crate) mod fixtures {
    use erlmcp_crds::ErlmcpCluster;

    /// Parse a fixture, give it the identity the API server would.
    pub fn cluster(yaml: &str) -> ErlmcpCluster {
        let mut c: ErlmcpCluster = serde_yaml::from_str(yaml).expect("fixture parses");
        c.metadata.namespace.get_or_insert_with(|| "prod".into());
        c.metadata.uid = Some("1b4e28ba-2fa1-11d2-883f-0016d3cca427".into());
        c
    }

    pub fn minimal() -> ErlmcpCluster {
        cluster(
            r#"
apiVersion: erlmcp.io/v1alpha1
kind: ErlmcpCluster
metadata: {name: mcp}
spec: {}
"#,
        )
    }

    /// The production Helm values of the erlmcp v3.0.0 Worldwide Production Deployment Guide, as an
    /// ErlmcpCluster.
    pub fn production() -> ErlmcpCluster {
        cluster(include_str!("../../../config/samples/production.yaml"))
    }
}
