//! A tiny volume provisioner and resizer for the pod runner. TEST TOOLING, not product.
//!
//! The local control plane has no storage, so a StatefulSet with claim templates would wait
//! forever. This stands in for a CSI driver's provisioner and resizer: the StorageClass
//! [`CLASS`] (the default, volume expansion allowed) gets, for every pending claim, a
//! PersistentVolume on a host directory under the runner's state dir, pre-bound to the claim
//! (the PV controller finishes the binding); a bound claim whose request grows gets its volume's
//! capacity and its own `status.capacity` raised, as the external resizer would. Pods mount the
//! directory ([`super::volumes`]). Released volumes are deleted with their directory.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeSpec,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

/// The StorageClass served here.
pub const CLASS: &str = "erlmcp-local";
/// Its provisioner name.
pub const PROVISIONER: &str = "erlmcp.io/pod-runner";
/// Label on the volumes made here.
const MADE_BY: &str = "erlmcp.io/provisioned-by";

/// The StorageClass: default, immediate binding, expandable.
pub fn storage_class() -> StorageClass {
    StorageClass {
        metadata: ObjectMeta {
            name: Some(CLASS.into()),
            annotations: Some(BTreeMap::from([(
                "storageclass.kubernetes.io/is-default-class".to_string(),
                "true".to_string(),
            )])),
            ..Default::default()
        },
        provisioner: PROVISIONER.into(),
        allow_volume_expansion: Some(true),
        reclaim_policy: Some("Retain".into()),
        volume_binding_mode: Some("Immediate".into()),
        ..Default::default()
    }
}

fn request(pvc: &PersistentVolumeClaim) -> Option<Quantity> {
    pvc.spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
        .cloned()
}

/// The volume for a pending claim of our class, pre-bound to it; None for any other claim.
pub fn volume_for(pvc: &PersistentVolumeClaim, root: &Path) -> Option<PersistentVolume> {
    let spec = pvc.spec.as_ref()?;
    let pending = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound");
    if spec.storage_class_name.as_deref() != Some(CLASS)
        || spec.volume_name.is_some()
        || !pending
        || pvc.metadata.deletion_timestamp.is_some()
    {
        return None;
    }
    let uid = pvc.uid()?;
    let name = format!("pvc-{uid}");
    Some(PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(BTreeMap::from([(
                MADE_BY.to_string(),
                "pod-runner".to_string(),
            )])),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: Some(BTreeMap::from([("storage".to_string(), request(pvc)?)])),
            access_modes: spec.access_modes.clone(),
            storage_class_name: Some(CLASS.into()),
            persistent_volume_reclaim_policy: Some("Retain".into()),
            volume_mode: spec.volume_mode.clone(),
            host_path: Some(HostPathVolumeSource {
                path: root.join(&name).display().to_string(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                namespace: pvc.namespace(),
                name: Some(pvc.name_any()),
                uid: Some(uid),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The new capacity of a bound claim's volume when the claim asks for more than it has.
pub fn grown(pvc: &PersistentVolumeClaim, pv: &PersistentVolume) -> Option<Quantity> {
    let want = request(pvc)?;
    let have = pv.spec.as_ref()?.capacity.as_ref()?.get("storage")?;
    // The API server refuses a smaller request, so "different" is "larger" here.
    (want != *have).then_some(want)
}

/// Serve claims until `shutdown` flips; one pass a second.
pub async fn run(client: Client, root: PathBuf, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let classes: Api<StorageClass> = Api::all(client.clone());
    if let Err(e) = classes
        .create(&PostParams::default(), &storage_class())
        .await
    {
        if !matches!(&e, kube::Error::Api(a) if a.code == 409) {
            tracing::warn!(error = %e, "cannot create the StorageClass; no volumes provisioned");
            return;
        }
    }
    tracing::info!(class = CLASS, root = %root.display(), "volume provisioner running");
    loop {
        if let Err(e) = pass(&client, &root).await {
            tracing::warn!(error = %e, "provisioner pass failed (retrying)");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn pass(client: &Client, root: &Path) -> Result<()> {
    let claims: Api<PersistentVolumeClaim> = Api::all(client.clone());
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let pvcs = claims.list(&ListParams::default()).await?.items;
    let pvs = volumes
        .list(&ListParams::default().labels(&format!("{MADE_BY}=pod-runner")))
        .await?
        .items;
    let claimed: HashSet<String> = pvs
        .iter()
        .filter_map(|v| v.spec.as_ref()?.claim_ref.as_ref()?.uid.clone())
        .collect();
    for pvc in &pvcs {
        let uid = pvc.uid().unwrap_or_default();
        if !claimed.contains(&uid) {
            if let Some(pv) = volume_for(pvc, root) {
                std::fs::create_dir_all(root.join(pv.name_any()))?;
                volumes.create(&PostParams::default(), &pv).await?;
                tracing::info!(claim = %pvc.name_any(), volume = %pv.name_any(), "provisioned");
            }
            continue;
        }
        let bound = pvc.spec.as_ref().and_then(|s| s.volume_name.as_deref());
        let Some(pv) = pvs.iter().find(|v| Some(v.name_any().as_str()) == bound) else {
            continue;
        };
        if let Some(size) = grown(pvc, pv) {
            let cap = json!({"spec": {"capacity": {"storage": size}}});
            volumes
                .patch(&pv.name_any(), &PatchParams::default(), &Patch::Merge(&cap))
                .await?;
            let ns_claims: Api<PersistentVolumeClaim> =
                Api::namespaced(client.clone(), &pvc.namespace().unwrap_or_default());
            let st = json!({"status": {"capacity": {"storage": size}}});
            ns_claims
                .patch_status(&pvc.name_any(), &PatchParams::default(), &Patch::Merge(&st))
                .await?;
            tracing::info!(claim = %pvc.name_any(), size = %size.0, "resized");
        }
    }
    // Volumes whose claim is gone: delete them and their directory.
    let live: HashSet<String> = pvcs.iter().filter_map(|c| c.uid()).collect();
    for pv in &pvs {
        let owner = pv
            .spec
            .as_ref()
            .and_then(|s| s.claim_ref.as_ref())
            .and_then(|c| c.uid.clone());
        if owner.is_some_and(|u| !live.contains(&u)) {
            volumes
                .delete(&pv.name_any(), &DeleteParams::default())
                .await?;
            let _ = std::fs::remove_dir_all(root.join(pv.name_any()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(class: Option<&str>, phase: &str, size: &str) -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": "sessions-mcp-0", "namespace": "prod", "uid": "u-1"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": class,
                     "resources": {"requests": {"storage": size}}},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    #[test]
    fn pending_claims_of_our_class_get_a_pre_bound_host_volume() {
        let pv = volume_for(
            &claim(Some(CLASS), "Pending", "1Gi"),
            Path::new("/state/pv"),
        )
        .expect("a volume");
        let spec = pv.spec.unwrap();
        assert_eq!(pv.metadata.name.as_deref(), Some("pvc-u-1"));
        assert_eq!(spec.capacity.unwrap()["storage"].0, "1Gi");
        assert_eq!(spec.host_path.unwrap().path, "/state/pv/pvc-u-1");
        let c = spec.claim_ref.unwrap();
        assert_eq!(
            (c.namespace.as_deref(), c.name.as_deref(), c.uid.as_deref()),
            (Some("prod"), Some("sessions-mcp-0"), Some("u-1"))
        );
        assert!(volume_for(&claim(Some("other"), "Pending", "1Gi"), Path::new("/")).is_none());
        assert!(volume_for(&claim(None, "Pending", "1Gi"), Path::new("/")).is_none());
        assert!(volume_for(&claim(Some(CLASS), "Bound", "1Gi"), Path::new("/")).is_none());
    }

    #[test]
    fn a_larger_request_grows_the_volume() {
        let pv = volume_for(&claim(Some(CLASS), "Pending", "1Gi"), Path::new("/")).unwrap();
        assert_eq!(grown(&claim(Some(CLASS), "Bound", "1Gi"), &pv), None);
        assert_eq!(
            grown(&claim(Some(CLASS), "Bound", "2Gi"), &pv),
            Some(Quantity("2Gi".into()))
        );
    }

    #[test]
    fn the_class_is_the_expandable_default() {
        let sc = storage_class();
        assert_eq!(sc.allow_volume_expansion, Some(true));
        assert_eq!(
            sc.metadata.annotations.unwrap()["storageclass.kubernetes.io/is-default-class"],
            "true"
        );
    }
}
