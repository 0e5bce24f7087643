//! Node objects for the runner's "machines": labels (hostname, zone, os, arch), capacity, a
//! Ready condition, addresses; heartbeats through both the node status (Ready's
//! lastHeartbeatTime) and a Lease in `kube-node-lease`, which is what the node lifecycle
//! controller watches, so the nodes are never marked unreachable while the runner lives.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Taint};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

pub const NODE_CPU: &str = "8";
pub const NODE_MEMORY: &str = "16Gi";
pub const NODE_MEMORY_BYTES: u64 = 16 << 30;
pub const NODE_PODS: &str = "110";
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// Label on every node the runner owns.
pub const RUNNER_LABEL: &str = "erlmcp.io/pod-runner";
const MANAGER: &str = "erlmcp-pod-runner";

#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub name: String,
    pub zone: String,
}

/// `count` nodes named `<prefix>-a`, `<prefix>-b`, ... in zones `zone-a`, `zone-b`, ...
pub fn node_specs(prefix: &str, count: usize) -> Vec<NodeSpec> {
    (0..count)
        .map(|i| {
            let suffix = if i < 26 {
                ((b'a' + i as u8) as char).to_string()
            } else {
                i.to_string()
            };
            NodeSpec {
                name: format!("{prefix}-{suffix}"),
                zone: format!("zone-{suffix}"),
            }
        })
        .collect()
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub struct Nodes {
    client: Client,
    specs: Vec<NodeSpec>,
    taints: Vec<Taint>,
    kubelet_version: String,
    since: String,
}

impl Nodes {
    pub fn new(
        client: Client,
        specs: Vec<NodeSpec>,
        taints: Vec<Taint>,
        kubelet_version: String,
    ) -> Self {
        Self {
            client,
            specs,
            taints,
            kubelet_version,
            since: now(),
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.specs.iter().map(|s| s.name.clone()).collect()
    }

    /// Creates (or takes over) the nodes and marks them Ready.
    pub async fn register(&self) -> Result<()> {
        let api: Api<Node> = Api::all(self.client.clone());
        for s in &self.specs {
            let labels = BTreeMap::from([
                ("kubernetes.io/hostname".to_string(), s.name.clone()),
                ("kubernetes.io/os".to_string(), "linux".to_string()),
                ("kubernetes.io/arch".to_string(), "amd64".to_string()),
                (ZONE_LABEL.to_string(), s.zone.clone()),
                (
                    "topology.kubernetes.io/region".to_string(),
                    "local".to_string(),
                ),
                (RUNNER_LABEL.to_string(), "true".to_string()),
            ]);
            let node = json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": s.name, "labels": labels},
                "spec": {"taints": if self.taints.is_empty() { json!(null) } else { json!(self.taints) }},
            });
            api.patch(
                &s.name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&node),
            )
            .await
            .with_context(|| format!("registering node {}", s.name))?;
            self.heartbeat_node(s).await?;
            self.renew_lease(s).await?;
        }
        Ok(())
    }

    async fn heartbeat_node(&self, s: &NodeSpec) -> Result<()> {
        let api: Api<Node> = Api::all(self.client.clone());
        let t = now();
        let cond = |type_: &str, status: &str, reason: &str, message: &str| {
            json!({"type": type_, "status": status, "reason": reason, "message": message,
                   "lastHeartbeatTime": t, "lastTransitionTime": self.since})
        };
        let resources = json!({"cpu": NODE_CPU, "memory": NODE_MEMORY, "pods": NODE_PODS, "ephemeral-storage": "100Gi"});
        let status = json!({"status": {
            "capacity": resources, "allocatable": resources,
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "pod runner"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "pod runner"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "pod runner"),
                cond("Ready", "True", "KubeletReady", "erlmcp pod runner (test tooling) is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": s.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "", "osImage": "erlmcp pod runner",
                "containerRuntimeVersion": "erlmcp-pod-runner://0.1", "kubeletVersion": self.kubelet_version,
                "kubeProxyVersion": self.kubelet_version, "operatingSystem": "linux", "architecture": "amd64",
            },
        }});
        api.patch_status(&s.name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .with_context(|| format!("node {} status", s.name))?;
        Ok(())
    }

    async fn renew_lease(&self, s: &NodeSpec) -> Result<()> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), "kube-node-lease");
        let t = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        match api.get_opt(&s.name).await? {
            Some(mut lease) => {
                let spec = lease.spec.get_or_insert_with(Default::default);
                spec.renew_time = Some(serde_json::from_value(json!(t))?);
                spec.holder_identity = Some(s.name.clone());
                spec.lease_duration_seconds = Some(40);
                api.replace(&lease.name_any(), &PostParams::default(), &lease)
                    .await?;
            }
            None => {
                let node: Node = Api::all(self.client.clone()).get(&s.name).await?;
                let lease: Lease = serde_json::from_value(json!({
                    "metadata": {"name": s.name, "namespace": "kube-node-lease", "ownerReferences": [{
                        "apiVersion": "v1", "kind": "Node", "name": s.name, "uid": node.metadata.uid}]},
                    "spec": {"holderIdentity": s.name, "leaseDurationSeconds": 40, "renewTime": t},
                }))?;
                api.create(&PostParams::default(), &lease).await?;
            }
        }
        Ok(())
    }

    /// Deletes the nodes and their leases (pods bound to them are then garbage-collected).
    pub async fn remove(&self) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), "kube-node-lease");
        for s in &self.specs {
            let _ = leases.delete(&s.name, &Default::default()).await;
            if let Err(e) = nodes.delete(&s.name, &Default::default()).await {
                tracing::warn!(node = %s.name, error = %e, "node not removed");
            }
        }
    }

    /// Every 10 s: renew the leases and the Ready heartbeats. Runs until dropped.
    pub async fn heartbeats(&self) {
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            for s in &self.specs {
                if let Err(e) = self.renew_lease(s).await {
                    tracing::warn!(node = %s.name, error = %format!("{e:#}"), "lease renewal failed");
                }
                if let Err(e) = self.heartbeat_node(s).await {
                    tracing::warn!(node = %s.name, error = %format!("{e:#}"), "node heartbeat failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_get_letters_and_zones() {
        let n = node_specs("node", 3);
        assert_eq!(n[0].name, "node-a");
        assert_eq!(n[2].name, "node-c");
        assert_eq!(n[1].zone, "zone-b");
    }
}
