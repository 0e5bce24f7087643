//! The controller's caches: one reflector store per watched child kind and one of the Pods,
//! fed by the same watches that trigger reconciles. A reconcile reads its children here
//! instead of LISTing each kind on every run (at a thousand clusters that was most of the
//! operator's API traffic), and the status trigger reads Pods and StatefulSets here.

use std::sync::Arc;

use erlmcp_crds::ErlmcpCluster;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::Resource;

use crate::apply::{self, Owned};

/// The label that names a child's (and a Pod's) cluster.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

/// One store per watched child kind, and the Pods.
#[derive(Clone)]
pub struct ChildStores {
    /// The kind as watched, and its store.
    pub kinds: Vec<(ApiResource, Store<DynamicObject>)>,
    pub pods: Store<Pod>,
}

impl ChildStores {
    fn store(&self, kind: &str) -> Option<&(ApiResource, Store<DynamicObject>)> {
        self.kinds.iter().find(|(ar, _)| ar.kind == kind)
    }

    /// Whether every store holds its first LIST: before, an empty store would read as "no
    /// children" (and events would say Created for what exists).
    pub fn synced(&self) -> bool {
        use futures::FutureExt;
        let ready = |s: &Store<_>| s.wait_until_ready().now_or_never().is_some();
        self.kinds.iter().all(|(_, s)| ready(s))
            && self.pods.wait_until_ready().now_or_never().is_some()
    }

    /// Whether `kind` is cached here (the optional CRD kinds are not).
    pub fn caches(&self, kind: &str) -> bool {
        self.store(kind).is_some()
    }

    /// A cached child, by kind, namespace and name.
    pub fn get(&self, kind: &str, ns: &str, name: &str) -> Option<Arc<DynamicObject>> {
        let (ar, store) = self.store(kind)?;
        store.get(&ObjectRef::new_with(name, ar.clone()).within(ns))
    }

    /// The cluster's StatefulSet, as last watched.
    pub fn statefulset(&self, ns: &str, name: &str) -> Option<StatefulSet> {
        cached_statefulset(self.get("StatefulSet", ns, name)?.as_ref())
    }

    /// The cached children a controller owner reference ties to `owner_uid`.
    pub fn owned(&self, ns: &str, owner_uid: &str) -> Vec<Owned> {
        self.kinds
            .iter()
            .flat_map(|(ar, store)| {
                store
                    .state()
                    .into_iter()
                    // By the controller reference alone: the cache drops most children's labels.
                    .filter(|o| o.metadata.namespace.as_deref() == Some(ns))
                    .filter_map(|o| apply::owned_entry(&o, &ar.api_version, &ar.kind, owner_uid))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The cluster's Pods.
    pub fn pods(&self, ns: &str, cluster: &str) -> Vec<Arc<Pod>> {
        self.pods
            .state()
            .into_iter()
            .filter(|p| of_cluster(p.as_ref(), ns, cluster))
            .collect()
    }
}

fn of_cluster<K: Resource>(o: &K, ns: &str, cluster: &str) -> bool {
    o.meta().namespace.as_deref() == Some(ns)
        && o.meta()
            .labels
            .as_ref()
            .and_then(|l| l.get(INSTANCE_LABEL))
            .is_some_and(|n| n == cluster)
}

/// The cluster a child or Pod belongs to: its controller owner reference for children, its
/// instance label for Pods (whose owner is the StatefulSet).
pub fn owner_of<K: Resource>(o: &K) -> Option<ObjectRef<ErlmcpCluster>> {
    let ns = o.meta().namespace.as_deref()?;
    let by_owner = o
        .meta()
        .owner_references
        .as_ref()
        .and_then(|refs| {
            refs.iter()
                .find(|r| r.controller == Some(true) && r.kind == "ErlmcpCluster")
        })
        .map(|r| r.name.clone());
    let name = by_owner.or_else(|| o.meta().labels.as_ref()?.get(INSTANCE_LABEL).cloned())?;
    Some(ObjectRef::new(&name).within(ns))
}

/// What the cache keeps of an object: no managedFields (half of a small object's size).
pub fn slim<K: Resource>(o: &mut K) {
    o.meta_mut().managed_fields = None;
}

/// What the cache keeps of a child of kind `kind`: what the reconcile and the status read of
/// it. Every kind's metadata (to list, diff and prune), with only the names of its writers
/// (see [`crate::own_writes`]); a Secret's data (generated Secrets are read back); a
/// StatefulSet's spec and status, as one JSON text ([`cached_statefulset`] reads it), with the
/// pod template cut to each container's name and image (the status reports the image; the
/// immutable-field check, the scale-down step and the resize read the rest). At a thousand
/// clusters the full objects were most of the operator's memory.
pub fn slim_child(kind: &str, o: &mut DynamicObject) {
    for e in o.metadata.managed_fields.iter_mut().flatten() {
        *e = ManagedFieldsEntry {
            manager: e.manager.take(),
            subresource: e.subresource.take(),
            ..Default::default()
        };
    }
    // Kinds without a generation (ConfigMaps, Services, RBAC objects: most of the cache) are
    // judged by resourceVersion alone (see own_writes), and listed by their controller
    // reference: their labels and annotations are never read here.
    if o.metadata.generation.is_none() && kind != "Secret" {
        o.metadata.labels = None;
        o.metadata.annotations = None;
    }
    match kind {
        "Secret" => {}
        "StatefulSet" => {
            let template = &mut o.data["spec"]["template"];
            if let Some(containers) = template["spec"]["containers"].as_array() {
                let kept: Vec<serde_json::Value> = containers
                    .iter()
                    .map(|c| serde_json::json!({"name": c["name"], "image": c["image"]}))
                    .collect();
                template["spec"] = serde_json::json!({ "containers": kept });
            }
            if let Some(meta) = template["metadata"].as_object_mut() {
                meta.remove("annotations");
            }
            // As text: a tree of small JSON maps costs several times its text in memory (a
            // node per map), and it is read a few times per reconcile at most.
            let kept = serde_json::json!({"spec": o.data["spec"], "status": o.data["status"]});
            o.data = serde_json::json!({ STATEFULSET_TEXT: kept.to_string() });
        }
        _ => o.data = serde_json::Value::Object(Default::default()),
    }
}

/// Where a cached StatefulSet keeps its spec and status: one JSON text ([`slim_child`]).
const STATEFULSET_TEXT: &str = "erlmcp.io/cached-spec-and-status";

/// A StatefulSet as cached ([`slim_child`]), typed again.
pub fn cached_statefulset(obj: &DynamicObject) -> Option<StatefulSet> {
    let mut v: serde_json::Value =
        serde_json::from_str(obj.data[STATEFULSET_TEXT].as_str()?).ok()?;
    v["metadata"] = serde_json::to_value(&obj.metadata).ok()?;
    serde_json::from_value(v).ok()
}

/// What the cache keeps of an ErlmcpCluster: who wrote it and when (the member report times
/// come from there), not the field sets of each writer, which grow with every member.
pub fn slim_cluster(c: &mut ErlmcpCluster) {
    for entry in c.metadata.managed_fields.iter_mut().flatten() {
        entry.fields_v1 = None;
    }
}

/// What the cache keeps of a Pod: its metadata and conditions, enough for readiness.
pub fn slim_pod(p: &mut Pod) {
    slim(p);
    p.spec = None;
    if let Some(st) = p.status.as_mut() {
        *st = k8s_openapi::api::core::v1::PodStatus {
            conditions: st.conditions.take(),
            ..Default::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    #[test]
    fn owners_by_reference_or_instance_label() {
        let child: StatefulSet = serde_json::from_value(json!({"metadata": {
            "name": "x", "namespace": "prod",
            "ownerReferences": [{"apiVersion": "erlmcp.io/v1alpha1", "kind": "ErlmcpCluster",
                                 "name": "mcp", "uid": "u", "controller": true}]}}))
        .unwrap();
        assert_eq!(owner_of(&child), Some(ObjectRef::new("mcp").within("prod")));
        let pod: Pod = serde_json::from_value(json!({"metadata": {
            "name": "mcp-0", "namespace": "prod", "labels": {INSTANCE_LABEL: "mcp"}},
            "spec": {"containers": [{"name": "erlmcp"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}))
        .unwrap();
        assert_eq!(owner_of(&pod), Some(ObjectRef::new("mcp").within("prod")));
        let mut slimmed = pod.clone();
        slim_pod(&mut slimmed);
        assert!(slimmed.spec.is_none());
        let st = slimmed.status.unwrap();
        assert_eq!(st.conditions.unwrap().len(), 1);
        assert!(st.phase.is_none());
    }

    #[test]
    fn the_child_caches_keep_what_the_reconcile_reads() {
        let obj = |v: serde_json::Value| serde_json::from_value::<DynamicObject>(v).unwrap();
        let meta = json!({"name": "mcp", "namespace": "prod", "resourceVersion": "7",
            "managedFields": [{"manager": "x"}], "labels": {INSTANCE_LABEL: "mcp"},
            "annotations": {"a": "b"}});
        let mut cm = obj(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
            "data": {"erlmcp.yaml": "a long config"}}),
        );
        slim_child("ConfigMap", &mut cm);
        assert_eq!(cm.data, json!({}));
        assert!(
            cm.metadata.labels.is_none() && cm.metadata.annotations.is_none(),
            "no generation: judged by resourceVersion, labels never read"
        );
        assert_eq!(cm.metadata.resource_version.as_deref(), Some("7"));
        let writers = cm.metadata.managed_fields.as_ref().unwrap();
        assert_eq!(writers[0].manager.as_deref(), Some("x"));
        assert!(writers[0].fields_v1.is_none() && writers[0].time.is_none());

        let mut secret = obj(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta,
            "data": {"cookie": "c2VjcmV0"}}),
        );
        slim_child("Secret", &mut secret);
        assert!(secret.metadata.annotations.is_some(), "the generated mark");
        assert_eq!(
            secret.data["data"]["cookie"], "c2VjcmV0",
            "generated data is read back"
        );

        let mut with_generation = meta.clone();
        with_generation["generation"] = json!(2);
        let mut sts = obj(
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": with_generation,
            "spec": {"replicas": 3, "serviceName": "mcp-headless", "selector": {"matchLabels": {"a": "b"}},
                "volumeClaimTemplates": [{"metadata": {"name": "sessions"}}],
                "template": {"metadata": {"labels": {"a": "b"}, "annotations": {"erlmcp.io/config-checksum": "x"}},
                    "spec": {"containers": [{"name": "erlmcp", "image": "erlmcp:1", "env": [{"name": "A"}]}],
                        "volumes": [{"name": "config"}]}}},
            "status": {"replicas": 3, "updatedReplicas": 1}}),
        );
        slim_child("StatefulSet", &mut sts);
        let typed = cached_statefulset(&sts).unwrap();
        assert_eq!(typed.metadata.resource_version.as_deref(), Some("7"));
        assert!(
            typed.metadata.labels.is_some(),
            "a generation: relabelling is judged by them"
        );
        let spec = typed.spec.unwrap();
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(spec.service_name.as_deref(), Some("mcp-headless"));
        assert_eq!(spec.volume_claim_templates.unwrap().len(), 1);
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.containers[0].image.as_deref(), Some("erlmcp:1"));
        assert!(pod.containers[0].env.is_none() && pod.volumes.is_none());
        assert!(spec.template.metadata.unwrap().annotations.is_none());
        assert_eq!(typed.status.unwrap().updated_replicas, Some(1));
    }

    #[test]
    fn the_cluster_cache_keeps_writers_and_times_not_field_sets() {
        let mut c: ErlmcpCluster = serde_json::from_value(json!({
            "apiVersion": "erlmcp.io/v1alpha1", "kind": "ErlmcpCluster",
            "metadata": {"name": "mcp", "namespace": "prod", "managedFields": [{
                "manager": "erlmcp-member-mcp-0", "operation": "Apply",
                "time": "2026-12-02T10:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:status": {"f:members": {}}}}]},
            "spec": {}}))
        .unwrap();
        slim_cluster(&mut c);
        let e = &c.metadata.managed_fields.as_ref().unwrap()[0];
        assert!(e.fields_v1.is_none());
        assert_eq!(e.manager.as_deref(), Some("erlmcp-member-mcp-0"));
        assert!(e.time.is_some());
    }
}
