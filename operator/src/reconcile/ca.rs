//! The operator CA's Secrets, kept alive: read both, apply [`desired::ca`]'s steps to a copy,
//! write back what changed. Every write replaces the Secret at the resourceVersion we read, so
//! two operator replicas (or a human) racing us get a conflict, not a lost key.

use std::collections::BTreeMap;
use std::time::Duration;

use erlmcp_crds::ErlmcpCluster;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use time::OffsetDateTime;
use tracing::info;

use crate::desired::ca::{self, Data, Step};
use crate::desired::{self, Names, FIELD_MANAGER};

/// One Secret as read (or about to be created) and edited in memory.
struct Edited {
    secret: Secret,
    exists: bool,
    changed: bool,
}

impl Edited {
    fn data(&self) -> Data {
        self.secret
            .data
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect()
    }
    fn get(&self, key: &str) -> Vec<u8> {
        self.data().remove(key).unwrap_or_default()
    }
    fn set(&mut self, key: &str, value: String) {
        let data = self.secret.data.get_or_insert_with(BTreeMap::new);
        data.insert(key.into(), ByteString(value.into_bytes()));
        // The placeholders of `render` never reach the server.
        self.secret.string_data = None;
        self.changed = true;
    }
    fn annotate(&mut self, key: &str, value: String) {
        self.secret
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(key.into(), value);
    }
}

async fn read(api: &Api<Secret>, placeholder: &desired::Child) -> Result<Edited, kube::Error> {
    Ok(match api.get_opt(&placeholder.name).await? {
        Some(secret) => Edited {
            secret,
            exists: true,
            changed: false,
        },
        None => {
            let mut secret: Secret =
                serde_json::from_value(placeholder.object.clone()).expect("a Secret");
            secret.string_data = None;
            Edited {
                secret,
                exists: false,
                changed: false,
            }
        }
    })
}

async fn write(api: &Api<Secret>, e: &Edited) -> Result<(), kube::Error> {
    if !e.changed {
        return Ok(());
    }
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    if e.exists {
        api.replace(&e.secret.name_any(), &pp, &e.secret).await?;
    } else {
        api.create(&pp, &e.secret).await?;
    }
    Ok(())
}

/// A Secret restored from a backup (no controller): take it over with its data, and go on from
/// the object as patched (a later replace must carry its resourceVersion and owner). True when
/// it was adopted now.
async fn adopt(
    api: &Api<Secret>,
    e: &mut Edited,
    placeholder: &desired::Child,
) -> Result<bool, anyhow::Error> {
    if !e.exists {
        return Ok(false);
    }
    let Some(patch) =
        desired::adoption_patch(&serde_json::to_value(&e.secret)?, &placeholder.object)
    else {
        return Ok(false);
    };
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    e.secret = api
        .patch(&placeholder.name, &pp, &Patch::Merge(&patch))
        .await?;
    info!(name = %placeholder.name, "adopted, data kept");
    Ok(true)
}

/// What one pass did: the steps taken, and when to look again.
#[derive(Debug, PartialEq)]
pub struct Renewal {
    /// Secrets adopted in this pass (restored from a backup without an owner).
    pub adopted: Vec<String>,
    pub steps: Vec<Step>,
    pub next: Duration,
}

/// Bring the CA and TLS Secrets one pass forward at `now`; `propagation` is the configured
/// wait for a Secret write to reach the pods (bounded by the leaf's life).
pub async fn renew(
    client: &kube::Client,
    cluster: &ErlmcpCluster,
    names: &Names,
    now: OffsetDateTime,
    propagation: std::time::Duration,
) -> Result<Renewal, anyhow::Error> {
    let api: Api<Secret> =
        Api::namespaced(client.clone(), &cluster.namespace().unwrap_or_default());
    let leaf_life = time::Duration::days(
        cluster
            .spec
            .tls
            .as_ref()
            .and_then(|t| t.operator_ca.as_ref())
            .map_or(365, |c| c.validity_days.into()),
    );
    let propagation = ca::propagation_wait(
        time::Duration::try_from(propagation).unwrap_or(ca::PROPAGATION),
        leaf_life,
    );
    let generated = desired::generated(cluster, names);
    let placeholder = |name: &str| {
        generated
            .iter()
            .find(|c| c.name == name)
            .expect("operator CA placeholders")
    };
    let mut ca_s = read(&api, placeholder(&names.ca_secret)).await?;
    let mut tls_s = read(&api, placeholder(&names.tls_secret)).await?;
    let mut adopted = Vec::new();
    for (e, name) in [
        (&mut ca_s, &names.ca_secret),
        (&mut tls_s, &names.tls_secret),
    ] {
        if adopt(&api, e, placeholder(name)).await? {
            adopted.push(name.clone());
        }
    }
    let mut steps = Vec::new();
    // Each step changes what the next decision sees; a pass takes at most one of each.
    let next = loop {
        let observed = ca::observe(
            &ca_s.data(),
            &tls_s.data(),
            tls_s
                .secret
                .metadata
                .annotations
                .as_ref()
                .unwrap_or(&BTreeMap::new()),
        );
        let step = ca::next_step(&observed, now, propagation);
        if let Step::Wait(at) = step {
            break at;
        }
        if steps.contains(&step) || steps.len() >= 4 {
            // Only reachable with a clock or a Secret gone wrong: look again soon.
            break now + time::Duration::seconds(30);
        }
        info!(cluster = %names.cluster, ?step, "operator CA");
        match step {
            Step::NewCa => {
                let (cert, key) = ca::new_ca(names, leaf_life, now)?;
                ca_s.set(ca::CA_CERT_KEY, cert);
                ca_s.set(ca::CA_KEY_KEY, key);
            }
            Step::TrustCa => {
                let ca_pem = String::from_utf8(ca_s.get(ca::CA_CERT_KEY))?;
                let bundle = ca::bundle_with(&ca_pem, &tls_s.get(ca::BUNDLE_KEY), now);
                tls_s.set(ca::BUNDLE_KEY, bundle);
                tls_s.annotate(ca::BUNDLE_CHANGED_ANNOTATION, ca::rfc3339(now));
            }
            Step::IssueLeaf => {
                let (cert, key) = ca::issue_leaf(
                    names,
                    &String::from_utf8(ca_s.get(ca::CA_CERT_KEY))?,
                    &String::from_utf8(ca_s.get(ca::CA_KEY_KEY))?,
                    leaf_life,
                    now,
                )?;
                tls_s.set(ca::LEAF_CERT_KEY, cert);
                tls_s.set(ca::LEAF_KEY_KEY, key);
                tls_s.annotate(ca::LEAF_ISSUED_ANNOTATION, ca::rfc3339(now));
            }
            Step::PruneBundle => {
                tls_s.set(
                    ca::BUNDLE_KEY,
                    String::from_utf8(ca_s.get(ca::CA_CERT_KEY))?,
                );
                tls_s.annotate(ca::BUNDLE_CHANGED_ANNOTATION, ca::rfc3339(now));
            }
            Step::Wait(_) => unreachable!(),
        }
        steps.push(step);
    };
    // The key first: a leaf must never be served whose CA key was not kept.
    write(&api, &ca_s).await?;
    write(&api, &tls_s).await?;
    let next = (next - now).clamp(time::Duration::seconds(1), time::Duration::days(1));
    Ok(Renewal {
        adopted,
        steps,
        next: Duration::from_secs(next.whole_seconds() as u64),
    })
}
