//! The Secrets step of a reconcile: the generated cookie is created once (never rewritten), and
//! the data of every Secret the pods mount is read (caches first) for the pod-template checksum.

use std::collections::BTreeMap;

use erlmcp_crds::ErlmcpCluster;
use kube::ResourceExt;
use serde_json::Value;
use tracing::info;

use super::{cached, child_ref, Context, Error};
use crate::apply;
use crate::desired::{self, Names, GENERATED_PLACEHOLDER};
use crate::events::ChildReason;

/// Generated Secrets first: a cookie that exists without a controller (restored from a backup)
/// is adopted with its data; a missing one is created once, never rewritten (the operator CA's
/// Secrets are created, adopted and renewed by their own step, [`super::renew_operator_ca`]).
pub(super) async fn ensure_generated_secrets(
    ctx: &Context,
    cluster: &ErlmcpCluster,
    names: &Names,
) -> Result<(), Error> {
    let ns = cluster.namespace().unwrap_or_default();
    for child in &desired::generated(cluster, names) {
        if child.name == names.tls_secret || child.name == names.ca_secret {
            continue; // read, adopted and written by the CA step
        }
        let existing = match cached(ctx, &ns, "Secret", &child.name) {
            Some(obj) => Some(
                serde_json::to_value(obj.as_ref()).map_err(|e| Error::GeneratedSecret(e.into()))?,
            ),
            None => apply::get(&ctx.client, &ns, child)
                .await
                .map_err(|e| Error::GeneratedSecret(e.into()))?,
        };
        if let Some(existing) = existing {
            if let Some(patch) = desired::adoption_patch(&existing, &child.object) {
                apply::merge_patch(&ctx.client, &ns, child, &patch)
                    .await
                    .map_err(|e| Error::GeneratedSecret(e.into()))?;
                info!(kind = %child.kind, name = %child.name, "adopted, data kept");
                ctx.events
                    .child(cluster, child_ref(child), ChildReason::Adopted)
                    .await;
            }
            continue;
        }
        let created = apply::create_once(&ctx.client, &ns, child, fill_generated())
            .await
            .map_err(Error::GeneratedSecret)?;
        if created {
            info!(kind = %child.kind, name = %child.name, "created");
            ctx.events
                .child(cluster, child_ref(child), ChildReason::Generated)
                .await;
        }
    }
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
    pub data: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    pub missing: Vec<String>,
}

pub(super) async fn read_secret_data(
    ctx: &Context,
    cluster: &ErlmcpCluster,
    names: &Names,
) -> Result<SecretData, Error> {
    let ns = cluster.namespace().unwrap_or_default();
    let mut out = SecretData {
        data: BTreeMap::new(),
        missing: Vec::new(),
    };
    for name in desired::mounted_secrets(cluster, names) {
        // Ours (generated) are cached; the user's carry no label of ours and are read.
        let data = match cached(ctx, &ns, "Secret", &name) {
            Some(obj) => Ok(Some(cached_secret_data(&obj))),
            None => apply::secret_data(&ctx.client, &ns, &name).await,
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

fn cached_secret_data(obj: &kube::core::DynamicObject) -> BTreeMap<String, Vec<u8>> {
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
