//! Talking to the API server about children: server-side apply (one field manager, forced),
//! create-once for generated Secrets, listing what we own, and pruning what the spec dropped.

use std::collections::BTreeMap;

use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::core::DynamicObject;
use kube::Client;
use serde_json::Value;

use crate::desired::{self, Child, ServerCapabilities, FIELD_MANAGER};
use crate::kinds::{api_resource, managed_kinds};

fn api_for(client: &Client, ns: &str, api_version: &str, kind: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &api_resource(api_version, kind))
}

/// Server-side apply, forced, under the operator's field manager. Returns the object as stored.
pub async fn apply(client: &Client, ns: &str, child: &Child) -> kube::Result<DynamicObject> {
    let api = api_for(client, ns, &child.api_version, &child.kind);
    api.patch(
        &child.name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&child.object),
    )
    .await
}

/// A child as the server has it now, if it exists.
pub async fn get(client: &Client, ns: &str, child: &Child) -> kube::Result<Option<Value>> {
    let api = api_for(client, ns, &child.api_version, &child.kind);
    Ok(api
        .get_opt(&child.name)
        .await?
        .map(|o| serde_json::to_value(o).expect("an object serialises")))
}

/// A JSON merge patch of a child (adopting a generated Secret: metadata only).
pub async fn merge_patch(
    client: &Client,
    ns: &str,
    child: &Child,
    patch: &Value,
) -> kube::Result<DynamicObject> {
    let api = api_for(client, ns, &child.api_version, &child.kind);
    api.patch(
        &child.name,
        &PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        },
        &Patch::Merge(patch),
    )
    .await
}

/// Create a generated object the caller found missing. Returns the object as stored when it
/// was created now, None when it exists already (another reconcile or a human made it, or it
/// was restored from a backup). `fill` supplies the generated content.
pub async fn create_once(
    client: &Client,
    ns: &str,
    child: &Child,
    fill: impl FnOnce(&mut Value) -> anyhow::Result<()>,
) -> anyhow::Result<Option<DynamicObject>> {
    let api = api_for(client, ns, &child.api_version, &child.kind);
    let mut object = child.object.clone();
    fill(&mut object)?;
    let obj: DynamicObject = serde_json::from_value(object)?;
    match api
        .create(
            &PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            },
            &obj,
        )
        .await
    {
        Ok(created) => Ok(Some(created)),
        // It exists (another reconcile or operator replica won the race, or a backup restored
        // it): theirs stands, never overwritten.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// An object we own: (kind, name) -> resourceVersion and whether we generated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub resource_version: Option<String>,
    pub generation: Option<i64>,
    pub generated: bool,
}

impl Owned {
    /// Whether `after` (the object as applied) differs in what we manage: the generation moves
    /// on spec changes. Without one, a new resourceVersion counts only for kinds nobody else
    /// writes (others routinely touch a ServiceAccount's token list, or the status of an HPA
    /// stored as autoscaling/v1 on old servers, which has no generation).
    pub fn changed_by(&self, after: &DynamicObject) -> bool {
        match (self.generation, after.metadata.generation) {
            (Some(a), Some(b)) => a != b,
            _ => {
                matches!(
                    self.kind.as_str(),
                    "ConfigMap" | "Secret" | "Role" | "RoleBinding" | "Service"
                ) && self.resource_version != after.metadata.resource_version
            }
        }
    }
}

/// Every object carrying our labels and a controller owner reference to `owner_uid`.
pub async fn list_owned(
    client: &Client,
    ns: &str,
    cluster_name: &str,
    owner_uid: &str,
    caps: &ServerCapabilities,
) -> kube::Result<Vec<Owned>> {
    list_owned_kinds(client, ns, cluster_name, owner_uid, managed_kinds(caps)).await
}

/// [`list_owned`] for some kinds only (those the controller does not cache).
pub async fn list_owned_kinds(
    client: &Client,
    ns: &str,
    cluster_name: &str,
    owner_uid: &str,
    kinds: Vec<(String, String)>,
) -> kube::Result<Vec<Owned>> {
    let lp = ListParams::default().labels(&desired::managed_selector(Some(cluster_name)));
    let mut out = Vec::new();
    for (version, kind) in kinds {
        let list = api_for(client, ns, &version, &kind).list(&lp).await?;
        out.extend(
            list.items
                .iter()
                .filter_map(|obj| owned_entry(obj, &version, &kind, owner_uid)),
        );
    }
    Ok(out)
}

/// `obj` as an [`Owned`] entry, when a controller owner reference ties it to `owner_uid`.
pub fn owned_entry(
    obj: &DynamicObject,
    api_version: &str,
    kind: &str,
    owner_uid: &str,
) -> Option<Owned> {
    let owned = obj.metadata.owner_references.as_ref().is_some_and(|refs| {
        refs.iter()
            .any(|r| r.uid == owner_uid && r.controller == Some(true))
    });
    if !owned {
        return None;
    }
    let generated = obj
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(desired::GENERATED_ANNOTATION));
    Some(Owned {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: obj.metadata.name.clone().unwrap_or_default(),
        resource_version: obj.metadata.resource_version.clone(),
        generation: obj.metadata.generation,
        generated,
    })
}

/// Owned objects the desired set no longer has. Generated Secrets are kept (they are created
/// once and never rewritten; garbage collection removes them with the cluster).
pub fn stale<'a>(owned: &'a [Owned], desired: &desired::Desired) -> Vec<&'a Owned> {
    owned
        .iter()
        .filter(|o| !o.generated)
        .filter(|o| !desired.all().any(|c| c.kind == o.kind && c.name == o.name))
        .collect()
}

/// Delete a pruned object. Background propagation: the object goes at once and the garbage
/// collector removes its dependents (a StatefulSet's pods) afterwards.
pub async fn delete(client: &Client, ns: &str, o: &Owned) -> kube::Result<()> {
    let api = api_for(client, ns, &o.api_version, &o.kind);
    match api
        .delete(
            &o.name,
            &DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                ..Default::default()
            },
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Data of a Secret, or None when it does not exist.
pub async fn secret_data(
    client: &Client,
    ns: &str,
    name: &str,
) -> kube::Result<Option<BTreeMap<String, Vec<u8>>>> {
    let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), ns);
    Ok(api.get_opt(name).await?.map(|s| {
        s.data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect()
    }))
}
