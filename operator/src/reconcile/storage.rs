//! Growing the session volumes, RabbitMQ's way, as I/O steps: expand every claim of the
//! StatefulSet first (a refusal, e.g. a StorageClass without `allowVolumeExpansion`, then leaves
//! everything as it was), then delete the StatefulSet with orphan propagation so its pods keep
//! running, and let the apply re-create it with the larger claim template; it adopts the pods.
//! Each step is idempotent, so a reconcile cut short resumes where it stopped.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

use super::immutable::{quantity_millis, Growth};

/// What the expansion did.
#[derive(Debug, Default)]
pub struct Expanded {
    /// Claims whose request was raised.
    pub claims: Vec<String>,
    /// The StatefulSet is gone and can be re-created now (else it is still being deleted).
    pub statefulset_gone: bool,
}

/// Raise the claims of `sts` named `<template>-<sts>-<ordinal>`, then orphan-delete `sts`.
pub async fn expand(
    client: &kube::Client,
    ns: &str,
    sts: &StatefulSet,
    growth: &[Growth],
) -> kube::Result<Expanded> {
    let name = sts.metadata.name.clone().unwrap_or_default();
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    // The pods' claims carry the template's labels, which include the cluster's selector.
    let selector = sts
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.as_ref())
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let existing = pvcs.list(&ListParams::default().labels(&selector)).await?;
    let mut out = Expanded::default();
    for g in growth {
        let prefix = format!("{}-{name}-", g.template);
        let target = quantity_millis(&g.to);
        for pvc in &existing.items {
            let pvc_name = pvc.metadata.name.clone().unwrap_or_default();
            let is_ordinal = pvc_name
                .strip_prefix(&prefix)
                .is_some_and(|o| !o.is_empty() && o.bytes().all(|b| b.is_ascii_digit()));
            if !is_ordinal || pvc.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let now = pvc
                .spec
                .as_ref()
                .and_then(|s| s.resources.as_ref())
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("storage"))
                .and_then(|q| quantity_millis(&q.0));
            if now >= target {
                continue;
            }
            let body = json!({"spec": {"resources": {"requests": {"storage": g.to}}}});
            pvcs.patch(&pvc_name, &PatchParams::default(), &Patch::Merge(&body))
                .await?;
            out.claims.push(pvc_name);
        }
    }
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    if sts.metadata.deletion_timestamp.is_none() {
        match sets.delete(&name, &DeleteParams::orphan()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    out.statefulset_gone = sets.get_opt(&name).await?.is_none();
    Ok(out)
}
