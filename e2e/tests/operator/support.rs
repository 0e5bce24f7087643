//! The operator suite's helpers: the cluster's pods, the children the operator made for a
//! cluster (as kubectl sees them) and their owner references, the basic sample's children, and
//! whether an HPA is able to scale.

use std::collections::BTreeSet;

use anyhow::Result;
use erlmcp_e2e::cluster::pods_matching;
use erlmcp_e2e::TestEnv;
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

pub const SELECTOR: &str = "app.kubernetes.io/name=erlmcp";

pub async fn pods(env: &TestEnv, ns: &str) -> Result<Vec<Pod>> {
    pods_matching(env, ns, SELECTOR).await
}

/// The children the operator makes for `config/samples/basic.yaml`, as [`kinds`] names them.
pub const BASIC_CHILDREN: [&str; 10] = [
    "StatefulSet/basic",
    "Service/basic",
    "Service/basic-headless",
    "ConfigMap/basic-config",
    "Secret/basic-cookie",
    "ServiceAccount/basic-dataplane",
    "Role/basic-dataplane",
    "RoleBinding/basic-dataplane",
    "PodDisruptionBudget/basic",
    "NetworkPolicy/basic",
];

pub fn owned_by(obj: &Value, uid: &str) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["uid"] == uid && r["controller"] == true && r["kind"] == "ErlmcpCluster")
        })
}

/// The (kind, name) children of a cluster that exist now, as kubectl sees them.
pub fn children(env: &TestEnv, ns: &str, instance: &str) -> Result<Vec<Value>> {
    let out = env.kubectl(&[
        "-n",
        ns,
        "get",
        "statefulsets,services,configmaps,secrets,serviceaccounts,roles,rolebindings,poddisruptionbudgets,horizontalpodautoscalers,networkpolicies",
        "-l",
        &format!("app.kubernetes.io/managed-by=erlmcp-operator,app.kubernetes.io/instance={instance}"),
        "-o",
        "json",
    ])?;
    let v: Value = serde_json::from_str(&out)?;
    Ok(v["items"].as_array().cloned().unwrap_or_default())
}

pub fn kinds(objs: &[Value]) -> BTreeSet<String> {
    objs.iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap_or(""),
                o["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// Whether an HPA read as `autoscaling/v1` is AbleToScale: its conditions live in an annotation
/// there; v2 servers also show them in status.conditions.
pub fn able_to_scale(v: &Value) -> bool {
    let able_in = |cs: Option<Vec<Value>>| {
        cs.is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "AbleToScale" && c["status"] == "True")
        })
    };
    let annotation = v["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/conditions"]
        .as_str()
        .and_then(|a| serde_json::from_str::<Value>(a).ok())
        .and_then(|a| a.as_array().cloned());
    able_in(annotation) || able_in(v["status"]["conditions"].as_array().cloned())
}
