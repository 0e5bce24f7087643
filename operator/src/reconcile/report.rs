//! The report step: the operator's part of the status (computed, written only when it changes),
//! the events of what went wrong, and when to come back.

use super::*;
/// Write the status, publish what went wrong, and choose when to come back.
pub(super) async fn report_status_and_events(
    ctx: &Context,
    cluster: &ErlmcpCluster,
    done: Reconciled<'_>,
) -> Result<Action, Error> {
    let sts = match done.statefulset {
        Some(sts) => Some(sts),
        None => current_statefulset(ctx, cluster).await?,
    };
    let outcome = match &done.failure {
        Some(e) => refused_outcome(e).unwrap_or_else(|| Outcome::Failed(e.to_string())),
        None if !done.missing_secrets.is_empty() => {
            Outcome::MissingSecrets(done.missing_secrets.to_vec())
        }
        None => Outcome::Applied,
    };
    for note in done.skipped {
        // Once per cause: the status already carries the ones published before.
        let already = cluster
            .status
            .as_ref()
            .and_then(|s| {
                s.conditions
                    .iter()
                    .find(|c| c.type_ == condition::RECONCILE_SUCCESS)
            })
            .is_some_and(|c| c.message.contains(note.as_str()));
        if !already {
            ctx.events.cluster(cluster, true, "Skipped", note).await;
        }
    }
    let st = write_status(ctx, cluster, sts.as_ref(), &outcome, done.skipped).await?;
    statefulset_steps::announce_stall(ctx, cluster, &st).await;

    if let Some(e) = done.failure {
        if let Some(reason) = e.refused_reason() {
            return Ok(refused(ctx, cluster, reason, &e).await);
        }
        ctx.events
            .cluster(cluster, true, "ReconcileError", &e.to_string())
            .await;
        return Err(e);
    }
    if !done.missing_secrets.is_empty() {
        let note = format!("missing Secrets: {}", done.missing_secrets.join(", "));
        ctx.events
            .cluster(cluster, true, "SecretNotFound", &note)
            .await;
        ctx.count("error");
        return Ok(Action::requeue(CONVERGING));
    }
    ctx.count("success");
    let ready = st
        .conditions
        .iter()
        .any(|c| c.type_ == condition::READY && c.status == "True");
    let after = if ready { RESYNC } else { CONVERGING };
    Ok(Action::requeue(
        done.tls_check.map_or(after, |t| t.min(after)),
    ))
}

pub(super) fn refused_outcome(e: &Error) -> Option<Outcome> {
    e.refused_reason().map(|reason| Outcome::Refused {
        reason,
        message: e.to_string(),
    })
}

/// A refusal from a step before the status report: report it (status when the StatefulSet can
/// be read, so the phase stays truthful), then wait long.
pub(super) async fn report_refused(ctx: &Context, cluster: &ErlmcpCluster, e: Error) -> Action {
    if let (Some(outcome), Ok(sts)) = (refused_outcome(&e), current_statefulset(ctx, cluster).await)
    {
        if let Err(w) = write_status(ctx, cluster, sts.as_ref(), &outcome, &[]).await {
            warn!(error = %w, "cannot write the status of a refused reconcile");
        }
    }
    refused(ctx, cluster, e.refused_reason().unwrap_or("Refused"), &e).await
}

/// Event, metrics and a long requeue instead of the fast error backoff.
pub(super) async fn refused(
    ctx: &Context,
    cluster: &ErlmcpCluster,
    reason: &str,
    e: &Error,
) -> Action {
    warn!(error = %e, retry_in = ?REFUSED_RETRY, "the API server refused; not retrying soon");
    ctx.events
        .cluster(cluster, true, reason, &e.to_string())
        .await;
    ctx.count("error");
    ctx.metrics.errors.with_label_values(&[e.reason()]).inc();
    Action::requeue(REFUSED_RETRY)
}

pub(super) async fn current_statefulset(
    ctx: &Context,
    cluster: &ErlmcpCluster,
) -> Result<Option<StatefulSet>, Error> {
    let ns = cluster.namespace().unwrap_or_default();
    if let Some(scope) = ctx.watched.scope(&ns) {
        return Ok(scope.children.statefulset(&ns, &cluster.name_any()));
    }
    let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
    api.get_opt(&cluster.name_any())
        .await
        .map_err(Error::ReadStatefulSet)
}

/// Compute the operator's part of the status and write it under its own field manager.
pub(super) async fn write_status(
    ctx: &Context,
    cluster: &ErlmcpCluster,
    sts: Option<&StatefulSet>,
    outcome: &Outcome,
    skipped: &[String],
) -> Result<ErlmcpClusterStatus, Error> {
    let k = key(cluster);
    ctx.watched.remember_outcome(
        &k,
        LastOutcome {
            generation: cluster.metadata.generation,
            outcome: outcome.clone(),
            skipped: skipped.to_vec(),
        },
    );
    let server = server_view(ctx, cluster).await?;
    let pending = ctx.watched.pending(&k);
    let (st, pending) = status::compute_debounced(&status::Observed {
        cluster,
        statefulset: sts,
        outcome,
        skipped,
        server: &server,
        pending: pending.as_ref(),
        now: chrono::Utc::now(),
    });
    let look_again = if pending.is_some() {
        // Once the held-back health change may be reported.
        Some(status::HEALTH_DEBOUNCE_SECS + 1)
    } else {
        // Reports go stale with no event to say so: look again when the freshest would.
        (cluster.spec.replicas > 0).then_some(status::HEARTBEAT_TIMEOUT_SECS + 1)
    };
    if let Some(secs) = look_again {
        let at = kube::runtime::reflector::ObjectRef::from_obj(cluster);
        ctx.watched
            .refresh_later(at, Duration::from_secs(secs as u64));
    }
    ctx.watched.set_pending(&k, pending);
    if unchanged(cluster, &st) {
        ctx.metrics.status_writes_skipped.inc();
        return Ok(st);
    }
    let api: Api<ErlmcpCluster> =
        Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
    let body = json!({
        "apiVersion": ErlmcpCluster::api_version(&()),
        "kind": ErlmcpCluster::kind(&()),
        "status": &st,
    });
    api.patch_status(
        &cluster.name_any(),
        &PatchParams::apply(STATUS_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(Error::WriteStatus)?;
    Ok(st)
}

/// Whether the status as computed is what the object holds already (members aside, which the
/// pods own): then writing it would change nothing but load the API server and wake watchers.
pub(super) fn unchanged(cluster: &ErlmcpCluster, st: &ErlmcpClusterStatus) -> bool {
    cluster.status.as_ref().is_some_and(|old| {
        let mut old = old.clone();
        old.members = Vec::new();
        &old == st
    })
}

/// Pod readiness and member report times: the Pods from the caches (else listed).
pub(super) async fn server_view(
    ctx: &Context,
    cluster: &ErlmcpCluster,
) -> Result<ServerView, Error> {
    let ns = cluster.namespace().unwrap_or_default();
    if let Some(scope) = ctx.watched.scope(&ns) {
        let pods = scope.children.pods(&ns, &cluster.name_any());
        return Ok(ServerView::of(cluster, pods.iter().map(AsRef::as_ref)));
    }
    if cluster.spec.replicas <= 0 {
        return Ok(ServerView::of(cluster, []));
    }
    let api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let lp = kube::api::ListParams::default().labels(&desired::selector_string(cluster));
    let pods = api.list(&lp).await.map_err(Error::ReadPods)?;
    Ok(ServerView::of(cluster, &pods.items))
}
