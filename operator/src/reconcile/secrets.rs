//! The Secrets step of a reconcile: the generated cookie is created once (never rewritten), and
//! the data of every Secret the pods mount is read (caches first) for the pod-template checksum.

use std::collections::BTreeMap;

use erlmcp_crds::ErlmcpCluster;
use kube::core::DynamicObject;
use kube::ResourceExt;
use serde_json::Value;
use tracing::info;

use super::{cached, child_ref, Context, Error};
use crate::apply;
use crate::desired::{self, Child, Names, GENERATED_PLACEHOLDER};
use crate::events::ChildReason;

/// The data of Secrets by name.
pub(super) type SecretsData = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// What the generated-Secrets step did.
#[derive(Default)]
pub(super) struct Generated {
    /// `(api_version, kind, name)` of each Secret created now: announced with the children
    /// (one event for a new cluster).
    pub created: Vec<(String, String, String)>,
    /// Their data as the server stored it: the caches have not seen them yet, and reading
    /// them back would cost a request per new cluster.
    pub data: SecretsData,
}

/// Generated Secrets first: a cookie that exists without a controller (restored from a backup)
/// is adopted with its data; a missing one is created once, never rewritten (the operator CA's
/// Secrets are created, adopted and renewed by their own step, [`super::renew_operator_ca`]).
///
/// With the controller's caches synced, a generated Secret they do not hold is created at once:
/// ours carry the label the caches select by, so a miss almost always means it does not exist.
/// A 409 (one restored without our labels, or created in between) falls back to reading it.
pub(super) async fn ensure_generated_secrets(
    ctx: &Context,
    cluster: &ErlmcpCluster,
    names: &Names,
) -> Result<Generated, Error> {
    let ns = cluster.namespace().unwrap_or_default();
    let caches = ctx.watched.scope(&ns).is_some();
    let mut out = Generated::default();
    for child in &desired::generated(cluster, names) {
        if child.name == names.tls_secret || child.name == names.ca_secret {
            continue; // read, adopted and written by the CA step
        }
        let existing = match cached(ctx, &ns, "Secret", &child.name) {
            Some(obj) => Some(to_value(obj.as_ref())?),
            None if caches => None,
            None => get(ctx, &ns, child).await?,
        };
        if let Some(existing) = existing {
            adopt_if_orphaned(ctx, cluster, child, &existing).await?;
            continue;
        }
        match apply::create_once(&ctx.client, &ns, child, fill_generated())
            .await
            .map_err(Error::GeneratedSecret)?
        {
            Some(created) => {
                info!(kind = %child.kind, name = %child.name, "created");
                let id = (
                    child.api_version.clone(),
                    child.kind.clone(),
                    child.name.clone(),
                );
                out.created.push(id);
                out.data
                    .insert(child.name.clone(), dynamic_secret_data(&created));
            }
            // It exists after all: whoever made it, its data stands (and is read below).
            None => {
                if let Some(existing) = get(ctx, &ns, child).await? {
                    adopt_if_orphaned(ctx, cluster, child, &existing).await?;
                }
            }
        }
    }
    Ok(out)
}

fn to_value(obj: &DynamicObject) -> Result<Value, Error> {
    serde_json::to_value(obj).map_err(|e| Error::GeneratedSecret(e.into()))
}

async fn get(ctx: &Context, ns: &str, child: &Child) -> Result<Option<Value>, Error> {
    apply::get(&ctx.client, ns, child)
        .await
        .map_err(|e| Error::GeneratedSecret(e.into()))
}

/// A generated Secret that exists without a controller owner becomes ours, its data kept.
async fn adopt_if_orphaned(
    ctx: &Context,
    cluster: &ErlmcpCluster,
    child: &Child,
    existing: &Value,
) -> Result<(), Error> {
    let Some(patch) = desired::adoption_patch(existing, &child.object) else {
        return Ok(());
    };
    let ns = cluster.namespace().unwrap_or_default();
    apply::merge_patch(&ctx.client, &ns, child, &patch)
        .await
        .map_err(|e| Error::GeneratedSecret(e.into()))?;
    info!(kind = %child.kind, name = %child.name, "adopted, data kept");
    ctx.events
        .child(cluster, child_ref(child), ChildReason::Adopted)
        .await;
    Ok(())
}

/// Fill the cookie's placeholder right before it is created.
fn fill_generated() -> impl FnOnce(&mut Value) -> anyhow::Result<()> {
    move |obj: &mut Value| {
        let data = BTreeMap::from([(desired::COOKIE_KEY.to_string(), desired::generate_cookie())]);
        obj["stringData"] = serde_json::to_value(&data)?;
        debug_assert!(!obj.to_string().contains(GENERATED_PLACEHOLDER));
        Ok(())
    }
}

/// The Secrets the pods mount: their contents (which feed the pod-template checksum) and the
/// names of those that do not exist.
pub(super) struct SecretData {
    pub data: SecretsData,
    pub missing: Vec<String>,
}

/// `fresh` holds Secrets this reconcile created (newer than any cache).
pub(super) async fn read_secret_data(
    ctx: &Context,
    cluster: &ErlmcpCluster,
    names: &Names,
    mut fresh: SecretsData,
) -> Result<SecretData, Error> {
    let ns = cluster.namespace().unwrap_or_default();
    let mut out = SecretData {
        data: BTreeMap::new(),
        missing: Vec::new(),
    };
    for name in desired::mounted_secrets(cluster, names) {
        // Ours (generated) are cached; the user's carry no label of ours and are read.
        let data = match (fresh.remove(&name), cached(ctx, &ns, "Secret", &name)) {
            (Some(data), _) => Ok(Some(data)),
            (None, Some(obj)) => Ok(Some(dynamic_secret_data(&obj))),
            (None, None) => apply::secret_data(&ctx.client, &ns, &name).await,
        };
        match data {
            Ok(Some(data)) => {
                out.data.insert(name, data);
            }
            Ok(None) => out.missing.push(name),
            Err(source) => return Err(Error::ReadSecret { name, source }),
        }
    }
    Ok(out)
}

/// The decoded `data` of a Secret held as a dynamic object (cached, or a create's answer).
fn dynamic_secret_data(obj: &DynamicObject) -> BTreeMap<String, Vec<u8>> {
    use base64::Engine;
    obj.data["data"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(v.as_str()?)
                        .ok()?;
                    Some((k.clone(), bytes))
                })
                .collect()
        })
        .unwrap_or_default()
}
