//! `ErlmcpCluster` and its spec.
// kube-derive repeats `printcolumn(type_ = ...)`, which clippy reads as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSetUpdateStrategy;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerBehavior;
use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, LocalObjectReference, ResourceRequirements, Toleration,
    TopologySpreadConstraint,
};
use k8s_openapi::api::networking::v1::{NetworkPolicyIngressRule, NetworkPolicyPeer};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::mcp::{McpSpec, SecretKeyRef};
use crate::schema::optional_free_form_object;
use crate::status::ErlmcpClusterStatus;

/// Desired state of an ErlmcpCluster: every field is optional and has a sensible default.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[kube(
    // The CRD's root description: what `kubectl explain erlmcpcluster` prints first.
    doc = "A clustered MCP (Model Context Protocol) server: a StatefulSet of erlmcp pods that find each other, route sessions between them and report their health in this resource's status. The erlmcp operator turns the spec into the pods, their Services, ConfigMap, Secrets, RBAC, disruption budget, autoscaler and network policy.",
    group = "erlmcp.io",
    version = "v1alpha1",
    kind = "ErlmcpCluster",
    plural = "erlmcpclusters",
    singular = "erlmcpcluster",
    shortname = "emc",
    category = "erlmcp",
    namespaced,
    status = "ErlmcpClusterStatus",
    derive = "Default",
    derive = "PartialEq",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".spec.replicas",
        description = "Desired pods"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        json_path = ".status.readyReplicas",
        description = "Ready pods"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Lifecycle phase"
    ),
    printcolumn(
        name = "Health",
        type_ = "string",
        json_path = ".status.health",
        description = "Cluster health as the members report it"
    ),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.currentVersion",
        description = "erlmcp version the pods run"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
// Transition rules (checked on update only, by servers with CEL): the session volume is part of
// the StatefulSet's identity; the operator refuses these changes too, for servers without CEL.
#[x_kube(validation = kube::core::Rule::new("has(self.storage) == has(oldSelf.storage)")
    .message("spec.storage cannot be added or removed after creation: create a new cluster"))]
pub struct ErlmcpClusterSpec {
    /// Number of erlmcp pods. Default 3. Also the target of `kubectl scale` and of the
    /// HorizontalPodAutoscaler (which owns it while `autoscaling.enabled` is true).
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    /// Data-plane image. Default: the erlmcp image of the operator's own version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Image pull policy: Always, IfNotPresent or Never. Default IfNotPresent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(Always|IfNotPresent|Never)$"))]
    pub image_pull_policy: Option<String>,
    /// Secrets for pulling the image from a private registry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// The MCP server: transports, tools, resources, prompts, sessions, auth and limits.
    #[serde(default)]
    pub mcp: McpSpec,
    /// How the pods form a cluster.
    #[serde(default)]
    pub cluster: ClusterSpec,
    /// TLS for peer traffic (mutual TLS) and, optionally, for clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// The client Service.
    #[serde(default)]
    pub service: ServiceSpec,
    /// CPU and memory requests and limits of the erlmcp container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// A persistent volume per pod for session state, so a pod restarted under the same name keeps
    /// its sessions. Without it, sessions live in memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
    /// A HorizontalPodAutoscaler on CPU, memory and/or active sessions per pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,
    /// The PodDisruptionBudget. Default: maxUnavailable 1 when there is more than one replica.
    #[serde(default)]
    pub pod_disruption_budget: PodDisruptionBudgetSpec,
    /// NetworkPolicy. On by default: peers reach peers, clients reach the MCP port, scrapers the
    /// metrics port; everything else is denied.
    #[serde(default)]
    pub network_policy: NetworkPolicySpec,
    /// Pod affinity. Default: soft anti-affinity between the cluster's pods per node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Node selector for the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations for the pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Topology spread constraints. Default: spread over zones (`topology.kubernetes.io/zone`),
    /// ScheduleAnyway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
    /// PriorityClass of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Extra labels on the pods (the operator's own labels win on conflict).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_labels: BTreeMap<String, String>,
    /// Extra annotations on the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,
    /// Extra environment variables for the erlmcp container (after the operator's own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// StatefulSet update strategy. Default RollingUpdate. A `rollingUpdate.partition` equal to
    /// `replicas` pauses a rollout; `OnDelete` leaves every pod to you.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<StatefulSetUpdateStrategy>,
    /// Seconds a rollout may go without progress (a pod updated or becoming ready) before it is
    /// reported stalled: `Progressing=False` (RolloutStalled), `Degraded=True`, an event, and
    /// the pods not yet updated are held on the old template. Default 600.
    #[serde(default = "default_progress_deadline")]
    #[schemars(range(min = 30, max = 86400))]
    pub progress_deadline_seconds: i64,
    /// Seconds a pod has to drain on shutdown (finish requests, close streams). Default 30.
    #[serde(default = "default_grace")]
    #[schemars(range(min = 1, max = 3600))]
    pub termination_grace_period_seconds: i64,
    /// Logging of the data plane.
    #[serde(default)]
    pub logging: LoggingSpec,
    /// Prometheus Operator objects (created only when their CRDs are installed).
    #[serde(default)]
    pub monitoring: MonitoringSpec,
    /// OpenTelemetry traces of the pods (OTLP). Default: none exported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<crate::tracing::TracingSpec>,
    /// Partial objects merged last into what the operator builds: the escape hatch for anything
    /// the spec does not cover.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "override")]
    pub override_: Option<OverrideSpec>,
    /// Stop reconciling: nothing is applied or deleted while true; status is still reported.
    #[serde(default)]
    pub paused: bool,
}

/// Peer clustering.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// The shared cluster cookie that authenticates peers without TLS. Default: a Secret
    /// `<name>-cookie` generated once by the operator and never rewritten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie_secret: Option<SecretKeyRef>,
    /// Port of the peer channel. Default 9200.
    #[serde(default = "default_peer_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        Self {
            cookie_secret: None,
            port: default_peer_port(),
        }
    }
}

/// Where the TLS certificate comes from. Exactly one source.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "(has(self.secretName) ? 1 : 0) + (has(self.issuerRef) ? 1 : 0) + (has(self.operatorCa) ? 1 : 0) == 1"
).message("exactly one TLS source: secretName, issuerRef or operatorCa"))]
pub struct TlsSpec {
    /// A `kubernetes.io/tls` Secret you manage (`tls.crt`, `tls.key`, and `ca.crt` for peer mTLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// A cert-manager Issuer or ClusterIssuer; the operator creates the Certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_ref: Option<IssuerRef>,
    /// Let the operator create a CA and a certificate for the pods (Secret `<name>-tls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_ca: Option<OperatorCaSpec>,
    /// Use mutual TLS between peers. Default true.
    #[serde(default = "default_true")]
    pub peer_mtls: bool,
    /// Serve clients over TLS too (HTTPS on the MCP port). Default false.
    #[serde(default)]
    pub client_tls: bool,
}

/// A cert-manager issuer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuerRef {
    /// Issuer name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// `Issuer` or `ClusterIssuer`. Default Issuer.
    #[serde(default = "default_issuer_kind")]
    #[schemars(regex(pattern = r"^(Issuer|ClusterIssuer)$"))]
    pub kind: String,
    /// API group. Default cert-manager.io.
    #[serde(default = "default_issuer_group")]
    pub group: String,
}

/// An operator-managed CA.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperatorCaSpec {
    /// Validity of the pods' certificate, in days. Default 365.
    #[serde(default = "default_validity_days")]
    #[schemars(range(min = 1, max = 3650))]
    pub validity_days: u32,
}

/// The client Service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// ClusterIP, NodePort or LoadBalancer. Default ClusterIP.
    #[serde(default = "default_service_type", rename = "type")]
    #[schemars(regex(pattern = r"^(ClusterIP|NodePort|LoadBalancer)$"))]
    pub type_: String,
    /// Annotations on the client Service (load-balancer settings and the like).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Extra labels on the client Service.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Default for ServiceSpec {
    fn default() -> Self {
        Self {
            type_: default_service_type(),
            annotations: BTreeMap::new(),
            labels: BTreeMap::new(),
        }
    }
}

/// The session volume.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
// (accessModes is checked by the operator only: comparing unbounded lists in CEL can exceed
// the server's cost budget and make the whole CRD unacceptable.)
#[x_kube(validation = kube::core::Rule::new(
    "(has(self.storageClassName) ? self.storageClassName : '') == (has(oldSelf.storageClassName) ? oldSelf.storageClassName : '')"
).message("spec.storage.storageClassName cannot change after creation"))]
pub struct StorageSpec {
    /// Size of each pod's volume, e.g. `1Gi`. May grow (the operator expands each claim, which
    /// needs a StorageClass with `allowVolumeExpansion`), never shrink.
    pub size: Quantity,
    /// StorageClass. Default: the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Access modes. Default [ReadWriteOnce].
    #[serde(default = "default_access_modes")]
    pub access_modes: Vec<String>,
    /// What happens to the claims when the cluster is deleted or scaled down (Kubernetes 1.23+;
    /// older servers keep every claim). Default: Retain both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim_retention_policy: Option<ClaimRetentionPolicy>,
}

/// The StatefulSet's `persistentVolumeClaimRetentionPolicy`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimRetentionPolicy {
    /// Retain or Delete the claims when the ErlmcpCluster is deleted. Default Retain.
    #[serde(default = "default_retain")]
    #[schemars(regex(pattern = r"^(Retain|Delete)$"))]
    pub when_deleted: String,
    /// Retain or Delete the claims of pods removed by a scale-down. Default Retain (a pod that
    /// comes back finds its sessions; stale ones expire on restore).
    #[serde(default = "default_retain")]
    #[schemars(regex(pattern = r"^(Retain|Delete)$"))]
    pub when_scaled: String,
}

/// Horizontal autoscaling.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.minReplicas <= self.maxReplicas")
    .message("minReplicas must not exceed maxReplicas"))]
#[x_kube(validation = kube::core::Rule::new(
    "!self.enabled || has(self.targetCPUUtilizationPercentage) || has(self.targetMemoryUtilizationPercentage) || has(self.targetSessionsPerPod)"
).message("autoscaling needs at least one target"))]
pub struct AutoscalingSpec {
    /// Create the HorizontalPodAutoscaler. Default true when this section is present.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Fewest pods. Default 1.
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 1))]
    pub min_replicas: i32,
    /// Most pods.
    #[schemars(range(min = 1))]
    pub max_replicas: i32,
    /// Target average CPU utilisation, percent of requests.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "targetCPUUtilizationPercentage"
    )]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: Option<i32>,
    /// Target average memory utilisation, percent of requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub target_memory_utilization_percentage: Option<i32>,
    /// Target average of the per-pod metric `erlmcp_sessions_active` (needs a custom-metrics
    /// adapter such as prometheus-adapter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub target_sessions_per_pod: Option<i32>,
    /// Scaling behaviour (stabilisation windows, policies). Default: scale down slowly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
}

/// PodDisruptionBudget.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!(has(self.minAvailable) && has(self.maxUnavailable))")
    .message("set minAvailable or maxUnavailable, not both"))]
pub struct PodDisruptionBudgetSpec {
    /// Create the PodDisruptionBudget (only when there is more than one replica). Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Pods that must stay available (number or percentage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<IntOrString>,
    /// Pods that may be down at once (number or percentage). Default 1 when minAvailable is unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

impl Default for PodDisruptionBudgetSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            min_available: None,
            max_unavailable: None,
        }
    }
}

/// NetworkPolicy for the pods.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Create the NetworkPolicy. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Who may reach the MCP ports. Default: any pod in any namespace (and nothing outside the
    /// cluster network unless the Service type exposes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<Vec<NetworkPolicyPeer>>,
    /// Who may scrape the metrics port. Default: any pod in any namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_scrapers: Option<Vec<NetworkPolicyPeer>>,
    /// Extra ingress rules, appended: the way to widen the policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_ingress: Vec<NetworkPolicyIngressRule>,
}

impl Default for NetworkPolicySpec {
    fn default() -> Self {
        Self {
            enabled: true,
            clients: None,
            metrics_scrapers: None,
            extra_ingress: Vec::new(),
        }
    }
}

/// Log settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoggingSpec {
    /// trace, debug, info, warn or error. Default info (`ERLMCP_LOG_LEVEL`).
    #[serde(default = "default_log_level")]
    #[schemars(regex(pattern = r"^(trace|debug|info|warn|warning|error)$"))]
    pub level: String,
    /// json or text. Default json.
    #[serde(default = "default_log_format")]
    #[schemars(regex(pattern = r"^(json|text)$"))]
    pub format: String,
}

impl Default for LoggingSpec {
    fn default() -> Self {
        Self {
            level: default_log_level(),
            format: default_log_format(),
        }
    }
}

/// Prometheus Operator integration.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringSpec {
    /// A ServiceMonitor for the pods' metrics port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_monitor: Option<ServiceMonitorSpec>,
    /// A PrometheusRule with erlmcp's alerts (down, error rate, latency, memory, partition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_rule: Option<PrometheusRuleSpec>,
}

/// ServiceMonitor settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMonitorSpec {
    /// Create it. Default true when this section is present.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Scrape interval. Default 30s.
    #[serde(default = "default_interval")]
    pub interval: String,
    /// Extra labels (for the Prometheus that selects monitors by label).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// PrometheusRule settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusRuleSpec {
    /// Create it. Default true when this section is present.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Extra labels (for the Prometheus that selects rules by label).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Partial objects merged (JSON merge patch, RFC 7386) over what the operator builds.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverrideSpec {
    /// Merged into the StatefulSet last, as a strategic merge: containers, volumes and env merge
    /// by name (`{name: erlmcp, env: [...]}` adds variables to the erlmcp container; a new name
    /// adds a sidecar; `$patch: delete` removes an item); other lists are replaced. Its identity
    /// (metadata.name, metadata.namespace, spec.selector, spec.serviceName) is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_free_form_object")]
    pub stateful_set: Option<serde_json::Value>,
    /// Merged into the client Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_free_form_object")]
    pub service: Option<serde_json::Value>,
}

fn default_replicas() -> i32 {
    3
}
fn default_true() -> bool {
    true
}
fn default_peer_port() -> u16 {
    9200
}
fn default_grace() -> i64 {
    30
}
fn default_progress_deadline() -> i64 {
    600
}
fn default_retain() -> String {
    "Retain".into()
}
fn default_issuer_kind() -> String {
    "Issuer".into()
}
fn default_issuer_group() -> String {
    "cert-manager.io".into()
}
fn default_validity_days() -> u32 {
    365
}
fn default_service_type() -> String {
    "ClusterIP".into()
}
fn default_access_modes() -> Vec<String> {
    vec!["ReadWriteOnce".into()]
}
fn default_min_replicas() -> i32 {
    1
}
fn default_log_level() -> String {
    "info".into()
}
fn default_log_format() -> String {
    "json".into()
}
fn default_interval() -> String {
    "30s".into()
}
