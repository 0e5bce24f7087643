//! `ErlmcpCluster.status`: written by the operator (everything but `members`) and by the pods
//! (each its own `members` entry), both with server-side apply under distinct field managers.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

/// Observed state of an ErlmcpCluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErlmcpClusterStatus {
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pending, Creating, Running, Updating, Degraded, Failed or Paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Healthy, Degraded, Partitioned, Unknown or Idle: the cluster as its members see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// Pods that exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Pods that are ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Pods that run the current pod template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i32>,
    /// Label selector of the pods, as a string (the scale subresource's `labelSelectorPath`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Image of the current pod template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_image: Option<String>,
    /// erlmcp version the members report (the lowest, during a rolling update).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<String>,
    /// Where clients reach the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<EndpointsStatus>,
    /// When the rollout under way last made progress (a pod updated or became ready), RFC 3339;
    /// `spec.progressDeadlineSeconds` counts from here. Absent when no rollout is under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_progress_time: Option<String>,
    /// Ready, Available, Progressing, Degraded, ClusterHealthy, ReconcileSuccess.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_list_map")]
    pub conditions: Vec<Condition>,
    /// One entry per pod, written by that pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "members_list_map")]
    pub members: Vec<MemberStatus>,
}

/// Client endpoints.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointsStatus {
    /// In-cluster Streamable HTTP URL, e.g. `http://basic.default.svc:8080/mcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<String>,
    /// In-cluster WebSocket URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websocket: Option<String>,
    /// Headless Service DNS name the peers use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<String>,
}

/// A pod's own view of the cluster, written by the pod.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    /// Pod name.
    pub name: String,
    /// Whether the pod serves requests.
    #[serde(default)]
    pub ready: bool,
    /// erlmcp version of the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Peers this pod can reach now (pod names).
    #[serde(default)]
    pub peers: Vec<String>,
    /// Peers this pod expects (from discovery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_peers: Option<i32>,
    /// Sessions the pod owns.
    #[serde(default)]
    pub sessions: i64,
    /// When the pod last wrote this entry (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat: Option<String>,
}

/// A list-map keyed by `key`: under server-side apply each entry has its own owner.
fn list_map<T: JsonSchema>(g: &mut SchemaGenerator, key: &str) -> Schema {
    let mut s = g.subschema_for::<Vec<T>>();
    s.insert("x-kubernetes-list-type".into(), "map".into());
    s.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!([key]),
    );
    s
}

/// `status.members`: a list-map keyed by `name`, so each pod owns its own entry under server-side apply.
fn members_list_map(g: &mut SchemaGenerator) -> Schema {
    list_map::<MemberStatus>(g, "name")
}

/// `status.conditions`: a list-map keyed by `type`, the shape of metav1.Condition lists.
fn conditions_list_map(g: &mut SchemaGenerator) -> Schema {
    list_map::<Condition>(g, "type")
}

/// Condition types the operator maintains.
pub mod condition {
    pub const READY: &str = "Ready";
    pub const AVAILABLE: &str = "Available";
    pub const PROGRESSING: &str = "Progressing";
    pub const DEGRADED: &str = "Degraded";
    pub const CLUSTER_HEALTHY: &str = "ClusterHealthy";
    pub const RECONCILE_SUCCESS: &str = "ReconcileSuccess";
}

/// Phases shown in `kubectl get erlmcpclusters`.
pub mod phase {
    pub const PENDING: &str = "Pending";
    pub const CREATING: &str = "Creating";
    pub const RUNNING: &str = "Running";
    pub const UPDATING: &str = "Updating";
    pub const DEGRADED: &str = "Degraded";
    pub const FAILED: &str = "Failed";
    pub const PAUSED: &str = "Paused";
}

/// Values of `status.health`: the cluster as its members see it.
pub mod health {
    /// Scaled to zero: no member is expected.
    pub const IDLE: &str = "Idle";
    /// No member has reported yet.
    pub const UNKNOWN: &str = "Unknown";
    pub const HEALTHY: &str = "Healthy";
    pub const DEGRADED: &str = "Degraded";
    pub const PARTITIONED: &str = "Partitioned";
}
