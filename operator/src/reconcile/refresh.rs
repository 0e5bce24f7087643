//! A status refresh: what the status trigger runs when only the status can have moved (a pod's
//! member report, a Pod turning Ready, a StatefulSet's ready count). It restates the last
//! reconcile's outcome over what the caches hold now, writes the status only if it changed,
//! and never applies, prunes or creates a child. Its one Event is a rollout turning stalled:
//! the deadline usually passes between reconciles, and the refresh that sees it first is the
//! only one that sees the transition.

use erlmcp_crds::ErlmcpCluster;
use kube::ResourceExt;

use super::{current_statefulset, key, statefulset_steps, write_status, Context, Error};

/// Refresh the status of `cluster`. Does nothing when no reconcile has run for the cluster's
/// current generation (that reconcile is under way, and reports itself) or while it is being
/// deleted.
pub async fn refresh_status(cluster: &ErlmcpCluster, ctx: &Context) -> Result<bool, Error> {
    if cluster.metadata.deletion_timestamp.is_some() {
        return Ok(false);
    }
    let Some(last) = ctx.watched.last_outcome(&key(cluster)) else {
        return Ok(false);
    };
    if last.generation != cluster.metadata.generation {
        return Ok(false);
    }
    let sts = current_statefulset(ctx, cluster).await?;
    tracing::debug!(cluster = %cluster.name_any(), "status refresh");
    let st = write_status(ctx, cluster, sts.as_ref(), &last.outcome, &last.skipped).await?;
    statefulset_steps::announce_stall(ctx, cluster, &st).await;
    ctx.metrics.status_refreshes.inc();
    Ok(true)
}
