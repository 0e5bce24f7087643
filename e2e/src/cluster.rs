//! What the suites read of an ErlmcpCluster and its Pods on the API server: the object, its
//! conditions, waiting for Ready, the Pods and their addresses. TEST TOOLING, not product.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, ResourceExt};
use serde_json::{json, Value};

use crate::TestEnv;

/// A free TCP port on 127.0.0.1 (for an operator's metrics address).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The ErlmcpClusters of `ns`, untyped (the suites look at them as kubectl users do).
pub fn clusters(env: &TestEnv, ns: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("erlmcp.io", "v1alpha1", "ErlmcpCluster"),
        "erlmcpclusters",
    );
    Api::namespaced_with(env.client(), ns, &ar)
}

pub async fn cluster_obj(env: &TestEnv, ns: &str, name: &str) -> Result<Value> {
    Ok(serde_json::to_value(clusters(env, ns).get(name).await?)?)
}

/// Merge-patch the cluster's spec.
pub async fn patch_spec(env: &TestEnv, ns: &str, name: &str, spec: Value) -> Result<()> {
    clusters(env, ns)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": spec})),
        )
        .await?;
    Ok(())
}

pub fn condition<'a>(c: &'a Value, t: &str) -> Option<&'a Value> {
    c["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|x| x["type"] == t)
}

pub fn is_true(c: &Value, t: &str) -> bool {
    condition(c, t).is_some_and(|x| x["status"] == "True")
}

pub fn reason(c: &Value, t: &str) -> String {
    condition(c, t)
        .and_then(|x| x["reason"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Ready for its current generation with `n` ready replicas.
pub fn ready_with(c: &Value, n: i64) -> bool {
    c["status"]["observedGeneration"] == c["metadata"]["generation"]
        && is_true(c, "Ready")
        && c["status"]["readyReplicas"] == n
}

/// Wait (bounded by `timeout`) until the cluster is [`ready_with`] `n` pods; returns it.
pub async fn wait_ready(
    env: &TestEnv,
    ns: &str,
    name: &str,
    n: i64,
    timeout: Duration,
) -> Result<Value> {
    env.wait_for(
        &format!("erlmcpcluster/{name} Ready with {n} pods"),
        timeout,
        Some(ns),
        || async {
            let c = cluster_obj(env, ns, name).await?;
            Ok(ready_with(&c, n).then_some(c))
        },
    )
    .await
}

/// The Pods of `ns` that match a label selector, by name.
pub async fn pods_matching(env: &TestEnv, ns: &str, selector: &str) -> Result<Vec<Pod>> {
    let mut list = Api::<Pod>::namespaced(env.client(), ns)
        .list(&ListParams::default().labels(selector))
        .await?
        .items;
    list.sort_by_key(|p| p.name_any());
    Ok(list)
}

/// The Pods of one cluster, by name.
pub async fn pods(env: &TestEnv, ns: &str, instance: &str) -> Result<Vec<Pod>> {
    let selector = format!("app.kubernetes.io/name=erlmcp,app.kubernetes.io/instance={instance}");
    pods_matching(env, ns, &selector).await
}

/// A Pod's address on its network, at `port`.
pub fn pod_addr(p: &Pod, port: u16) -> Result<SocketAddr> {
    let ip = p
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .with_context(|| format!("pod {} has no IP", p.name_any()))?;
    Ok(format!("{ip}:{port}").parse()?)
}
