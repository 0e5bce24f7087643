//! The StatefulSet's steps around its apply: the immutable-field check (refuse, or grow the
//! volumes first), the one-pod-at-a-time scale-down, and the event of a stalled rollout.

use erlmcp_crds::status::condition;
use erlmcp_crds::{ErlmcpCluster, ErlmcpClusterStatus};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::ResourceExt;
use serde_json::json;

use super::{immutable, scale, storage, Context, Error};
use crate::desired;
use crate::status;

/// What to do with the StatefulSet this round.
pub(super) struct Step {
    /// The object to apply, or nothing this round.
    pub apply: Option<desired::Child>,
    pub failure: Option<Error>,
    /// Orphan-deleted for a resize and not gone yet: come back soon to re-create it.
    pub recreate_pending: bool,
}

impl Step {
    fn apply(child: desired::Child) -> Self {
        Self {
            apply: Some(child),
            failure: None,
            recreate_pending: false,
        }
    }

    fn skip(failure: Option<Error>) -> Self {
        Self {
            apply: None,
            failure,
            recreate_pending: false,
        }
    }
}

/// What to apply for the StatefulSet, after the immutable-field check and the one-at-a-time
/// scale-down: the object to apply, or nothing this round (and why, when it is a failure).
pub(super) async fn prepare_statefulset(
    ctx: &Context,
    cluster: &ErlmcpCluster,
    current: Option<&StatefulSet>,
    child: &desired::Child,
) -> Step {
    let mut child = child.clone();
    let Some(cur) = current else {
        return Step::apply(child);
    };
    let want: StatefulSet = match serde_json::from_value(child.object.clone()) {
        Ok(w) => w,
        // Let the server say what is wrong with it.
        Err(_) => return Step::apply(child),
    };
    match immutable::plan(cur, &want) {
        immutable::Plan::Apply => {}
        immutable::Plan::Refuse { reason, message } => {
            return Step::skip(Some(Error::Immutable { reason, message }));
        }
        immutable::Plan::Expand(growth) => {
            let ns = cluster.namespace().unwrap_or_default();
            match storage::expand(&ctx.client, &ns, cur, &growth).await {
                Ok(done) => {
                    if !done.claims.is_empty() || cur.metadata.deletion_timestamp.is_none() {
                        let sizes = growth
                            .iter()
                            .map(|g| format!("{} {} to {}", g.template, g.from, g.to))
                            .collect::<Vec<_>>()
                            .join(", ");
                        let note = format!(
                            "expanding {sizes}: {} claims raised; StatefulSet re-created, pods keep running",
                            done.claims.len()
                        );
                        ctx.events
                            .cluster(cluster, false, "StorageExpanding", &note)
                            .await;
                    }
                    if !done.statefulset_gone {
                        return Step {
                            apply: None,
                            failure: None,
                            recreate_pending: true,
                        };
                    }
                    // Re-created now: no scale-down step against the object just deleted.
                    return Step::apply(child);
                }
                Err(e) => return Step::skip(Some(Error::ExpandStorage(e))),
            }
        }
    }
    let replicas = scale::next_replicas(cluster.spec.replicas, Some(cur));
    child.object["spec"]["replicas"] = json!(replicas);
    Step::apply(child)
}

/// One Warning event when a rollout becomes stalled (not on every reconcile while it stays so).
pub(super) async fn announce_stall(
    ctx: &Context,
    cluster: &ErlmcpCluster,
    st: &ErlmcpClusterStatus,
) {
    let stalled = |conds: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]| {
        conds
            .iter()
            .find(|c| c.type_ == condition::PROGRESSING && c.reason == status::rollout::STALLED)
            .map(|c| c.message.clone())
    };
    let before = cluster.status.as_ref().and_then(|s| stalled(&s.conditions));
    if let (None, Some(message)) = (before, stalled(&st.conditions)) {
        ctx.events
            .cluster(cluster, true, status::rollout::STALLED, &message)
            .await;
    }
}
