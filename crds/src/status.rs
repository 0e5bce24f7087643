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
    /// Deprecated: the peers' names, written by pods before `peerCount`/`viewHash` (the list
    /// grew the status with N²). Still read, so old entries keep their meaning.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
    /// How many peers this pod reaches now (itself not counted). The names stay on the pod's
    /// own `/status` endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_count: Option<i32>,
    /// Hash of this pod's membership view (itself and the peers it reaches, see
    /// [`membership_hash`]): members with one view share one hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_hash: Option<String>,
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

impl MemberStatus {
    /// The member's view as (peer count, hash): the reported fields, or for an entry from an
    /// older pod, computed from its peer list.
    pub fn view(&self) -> (i32, String) {
        match &self.view_hash {
            Some(h) => (self.peer_count.unwrap_or(0), h.clone()),
            None => {
                let view = self.peers.iter().map(String::as_str);
                let hash = membership_hash(view.chain([self.name.as_str()]));
                (self.peers.len() as i32, hash)
            }
        }
    }
}

/// A stable hash of a membership view: the member names, sorted and deduplicated. FNV-1a
/// (64 bits, hex): the operator and every pod version must agree on it, so it is spelled out
/// here rather than borrowed from a hasher whose output may change between releases.
pub fn membership_hash<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut names: Vec<&str> = names.into_iter().collect();
    names.sort_unstable();
    names.dedup();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for name in names {
        for b in name.bytes().chain([b'\n']) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn member(i: usize, n: usize) -> MemberStatus {
        let view: Vec<String> = (0..n).map(|p| format!("a-long-cluster-name-{p}")).collect();
        MemberStatus {
            name: view[i].clone(),
            ready: true,
            version: Some("0.1.0".into()),
            peers: Vec::new(),
            peer_count: Some(n as i32 - 1),
            view_hash: Some(membership_hash(view.iter().map(String::as_str))),
            expected_peers: Some(n as i32 - 1),
            sessions: 123_456,
            last_heartbeat: Some("2026-12-01T13:00:00Z".into()),
        }
    }

    #[test]
    fn a_200_member_status_stays_under_64_kib() {
        let status = ErlmcpClusterStatus {
            members: (0..200).map(|i| member(i, 200)).collect(),
            ..Default::default()
        };
        let bytes = serde_json::to_vec(&status).unwrap().len();
        assert!(bytes < 64 * 1024, "{bytes} bytes");
        // Linear in the members: the entry of a 1,000-member cluster is no bigger.
        let one = serde_json::to_vec(&member(0, 1000)).unwrap().len();
        assert!(one * 1000 < 400 * 1024, "{one} bytes per member");
    }

    #[test]
    fn the_hash_is_one_per_view_whatever_the_order() {
        let a = membership_hash(["b", "a", "c"]);
        assert_eq!(a, membership_hash(["c", "b", "a", "a"]));
        assert_ne!(a, membership_hash(["a", "b"]));
        // Names are separated: "ab" + "c" is not "a" + "bc".
        assert_ne!(membership_hash(["ab", "c"]), membership_hash(["a", "bc"]));
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn entries_from_older_pods_still_decode_and_give_their_view() {
        let old: MemberStatus = serde_json::from_value(serde_json::json!({
            "name": "mcp-0", "ready": true, "peers": ["mcp-1", "mcp-2"], "sessions": 1,
            "lastHeartbeat": "2026-01-01T00:00:00Z"}))
        .unwrap();
        assert_eq!(
            old.view(),
            (2, membership_hash(["mcp-0", "mcp-1", "mcp-2"]))
        );
        let new = member(0, 3);
        let json = serde_json::to_value(&new).unwrap();
        assert!(json.get("peers").is_none(), "{json}");
        assert_eq!(json["peerCount"], 2);
        assert_eq!(
            new.view().1,
            membership_hash([
                "a-long-cluster-name-0",
                "a-long-cluster-name-1",
                "a-long-cluster-name-2"
            ])
        );
    }
}
