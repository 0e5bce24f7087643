//! One reconcile, as its pipeline: validate -> ensure generated secrets -> read secret data ->
//! build -> apply children -> prune -> report status and events. Each step is a function, and
//! each step that can fail has its own error variant.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use erlmcp_crds::status::{condition, phase};
use erlmcp_crds::validate::{validate, FieldError};
use erlmcp_crds::{ErlmcpCluster, ErlmcpClusterStatus};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::Recorder;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::apply;
use crate::desired::{self, BuildContext, Desired, Names, ServerCapabilities};
use crate::events::{ChildReason, ChildRef, Events};
use crate::metrics::Metrics;
use crate::own_writes::{content_hash, OwnWrites};
use crate::status::{self, Outcome, ServerView};
use crate::triggers::{LastOutcome, Watched};
use report::{current_statefulset, report_refused, report_status_and_events, write_status};
use secrets::{ensure_generated_secrets, read_secret_data};

pub mod ca;
mod error;
pub mod immutable;
mod refresh;
mod report;
pub mod scale;
mod secrets;
mod statefulset_steps;
mod storage;
pub use error::Error;
pub use refresh::refresh_status;

/// Field manager of the operator's status writes (distinct from the children's, and from the pods').
pub const STATUS_MANAGER: &str = "erlmcp-operator-status";
/// Requeue of a healthy cluster, to catch drift nobody told us about. Slow: the watches report
/// changes to every core child, so this only covers the optional kinds (not watched).
pub const RESYNC: Duration = Duration::from_secs(1800);
/// Requeue while a cluster is still converging (status follows the pods).
pub const CONVERGING: Duration = Duration::from_secs(15);
/// Error backoff: base, doubling per consecutive failure, capped.
pub const BACKOFF_BASE: Duration = Duration::from_secs(2);
pub const BACKOFF_CAP: Duration = Duration::from_secs(300);
/// Requeue after the API server refused for good (403, 422): a human must act first.
pub const REFUSED_RETRY: Duration = Duration::from_secs(600);
/// The default of `--ca-propagation-seconds`: kubelet's default sync period and Secret cache
/// TTL plus the data plane's reload, with margin.
pub const DEFAULT_CA_PROPAGATION: Duration = Duration::from_secs(300);
/// Requeue while an orphan-deleted StatefulSet waits for the garbage collector to let it go.
pub const RECREATE_WAIT: Duration = Duration::from_secs(2);

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    /// What the server serves; the optional CRD kinds are rediscovered while we run.
    capabilities: std::sync::RwLock<ServerCapabilities>,
    pub default_image: String,
    pub metrics: Metrics,
    pub events: Events,
    /// Caches, last outcomes, held health changes and backoffs (see [`crate::triggers`]).
    pub watched: Watched,
    /// What the operator last applied of each child: unchanged children are not applied again,
    /// and the watch's echo of an apply is dropped.
    pub own_writes: OwnWrites,
    /// How long a Secret write takes to reach every pod (`--ca-propagation-seconds`): the
    /// operator CA's roll waits this long between dependent steps.
    pub ca_propagation: Duration,
}

impl Context {
    pub fn new(
        client: Client,
        capabilities: ServerCapabilities,
        metrics: Metrics,
        recorder: Recorder,
    ) -> Self {
        Self {
            client,
            capabilities: std::sync::RwLock::new(capabilities),
            default_image: desired::default_image(),
            metrics,
            events: Events::new(recorder),
            watched: Watched::default(),
            own_writes: OwnWrites::default(),
            ca_propagation: DEFAULT_CA_PROPAGATION,
        }
    }

    /// What the server serves, as last discovered.
    pub fn capabilities(&self) -> ServerCapabilities {
        self.capabilities
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_capabilities(&self, caps: ServerCapabilities) {
        *self.capabilities.write().unwrap_or_else(|e| e.into_inner()) = caps;
    }

    fn count(&self, result: &str) {
        self.metrics
            .reconciliations
            .with_label_values(&[result])
            .inc();
    }
}

pub(crate) fn key(c: &ErlmcpCluster) -> String {
    format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any())
}

/// Reconcile one ErlmcpCluster.
#[tracing::instrument(name = "reconcile", skip_all, fields(
    cluster = %key(&cluster),
    k8s.namespace.name = %cluster.namespace().unwrap_or_default(),
    erlmcp.cluster.name = %cluster.name_any(),
    erlmcp.cluster.generation = cluster.metadata.generation.unwrap_or_default(),
    erlmcp.reconcile.outcome = tracing::field::Empty,
    otel.status_code = tracing::field::Empty,
    trace_id = tracing::field::Empty,
))]
pub async fn reconcile(cluster: Arc<ErlmcpCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    if let Some(left) = ctx
        .watched
        .holding(&key(&cluster), cluster.metadata.generation)
    {
        // Woken by something other than a spec change while backing off: keep the backoff.
        ctx.count("backoff");
        return Ok(Action::requeue(left));
    }
    let started = Instant::now();
    crate::telemetry::record_trace_id();
    let result = match reconcile_inner(&cluster, &ctx).await {
        Err(e) if e.refused_reason().is_some() => Ok(report_refused(&ctx, &cluster, e).await),
        other => other,
    };
    crate::telemetry::record_outcome(&result);
    ctx.metrics
        .duration
        .observe(started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.watched.succeeded(&key(&cluster));
    }
    result
}

async fn reconcile_inner(cluster: &ErlmcpCluster, ctx: &Context) -> Result<Action, Error> {
    if cluster.metadata.deletion_timestamp.is_some() {
        // The garbage collector is deleting the children: applying now would re-create them
        // (the generated cookie first) under an owner that is going away.
        ctx.count("deleting");
        return Ok(Action::await_change());
    }
    let problems = validate(cluster);
    if !problems.is_empty() {
        return report_invalid(ctx, cluster, problems).await;
    }
    if cluster.spec.paused {
        return report_paused(ctx, cluster).await;
    }
    let names = Names::of(cluster);
    let generated = ensure_generated_secrets(ctx, cluster, &names).await?;
    let tls_check = renew_operator_ca(ctx, cluster, &names).await?;
    let secrets = read_secret_data(ctx, cluster, &names, generated.data).await?;
    let desired = desired::build(
        cluster,
        &BuildContext {
            default_image: ctx.default_image.clone(),
            capabilities: ctx.capabilities(),
            secret_data: secrets.data,
            partition_hold: status::rollout::partition_hold(cluster),
        },
    );
    let owned = list_owned(ctx, cluster, &names).await?;
    let applied = apply_children(ctx, cluster, &desired, &owned).await?;
    let created = Created {
        generated: &generated.created,
        applied: &applied.created,
    };
    announce_created(ctx, cluster, created, desired.apply.len()).await;
    // Prune only when everything applied: a half-applied state is no basis for deleting.
    let failure = match applied.failure {
        Some(e) => Some(e),
        None => prune(ctx, cluster, &owned, &desired).await.err(),
    };
    let action = report_status_and_events(
        ctx,
        cluster,
        Reconciled {
            statefulset: applied.statefulset,
            failure,
            skipped: &desired.skipped,
            missing_secrets: &secrets.missing,
            tls_check,
        },
    )
    .await?;
    Ok(match applied.recreate_pending {
        true => Action::requeue(RECREATE_WAIT),
        false => action,
    })
}

/// The operator CA's renewal pass; when to come back for the next step.
async fn renew_operator_ca(
    ctx: &Context,
    cluster: &ErlmcpCluster,
    names: &Names,
) -> Result<Option<Duration>, Error> {
    let Some(_) = cluster
        .spec
        .tls
        .as_ref()
        .and_then(|t| t.operator_ca.as_ref())
    else {
        return Ok(None);
    };
    let now = time::OffsetDateTime::now_utc();
    let r = ca::renew(&ctx.client, cluster, names, now, ctx.ca_propagation)
        .await
        .map_err(Error::GeneratedSecret)?;
    for name in &r.adopted {
        let child = ChildRef {
            api_version: "v1",
            kind: "Secret",
            name,
        };
        ctx.events.child(cluster, child, ChildReason::Adopted).await;
    }
    if !r.steps.is_empty() {
        let note = format!("operator CA: {:?}", r.steps);
        ctx.events
            .cluster(cluster, false, "CertificatesRenewed", &note)
            .await;
    }
    Ok(Some(r.next))
}

/// An invalid spec is a condition, not a retry loop: report it and wait for the next change.
async fn report_invalid(
    ctx: &Context,
    cluster: &ErlmcpCluster,
    problems: Vec<FieldError>,
) -> Result<Action, Error> {
    let text = problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    let already = cluster.status.as_ref().is_some_and(|s| {
        s.observed_generation == cluster.metadata.generation
            && s.phase.as_deref() == Some(phase::FAILED)
    });
    if !already {
        ctx.events
            .cluster(cluster, true, "InvalidSpec", &text)
            .await;
    }
    warn!(problems = %text, "invalid spec; nothing applied");
    let sts = current_statefulset(ctx, cluster).await?;
    write_status(ctx, cluster, sts.as_ref(), &Outcome::Invalid(problems), &[]).await?;
    ctx.count("invalid");
    Ok(Action::await_change())
}

/// `spec.paused`: apply nothing, still report what is there.
async fn report_paused(ctx: &Context, cluster: &ErlmcpCluster) -> Result<Action, Error> {
    let sts = current_statefulset(ctx, cluster).await?;
    write_status(ctx, cluster, sts.as_ref(), &Outcome::Paused, &[]).await?;
    ctx.count("paused");
    Ok(Action::requeue(RESYNC))
}

/// What we own already (for events and pruning).
async fn list_owned(
    ctx: &Context,
    cluster: &ErlmcpCluster,
    names: &Names,
) -> Result<Vec<apply::Owned>, Error> {
    let ns = cluster.namespace().unwrap_or_default();
    let uid = cluster.uid().unwrap_or_default();
    let Some(scope) = ctx.watched.scope(&ns) else {
        return apply::list_owned(&ctx.client, &ns, &names.cluster, &uid, &ctx.capabilities())
            .await
            .map_err(Error::ListOwned);
    };
    // The watched kinds from the caches; the optional CRD kinds (not watched) are listed.
    let mut owned = scope.children.owned(&ns, &uid);
    let uncached: Vec<(String, String)> = crate::kinds::managed_kinds(&ctx.capabilities())
        .into_iter()
        .filter(|(_, kind)| !scope.children.caches(kind))
        .collect();
    if !uncached.is_empty() {
        let listed = apply::list_owned_kinds(&ctx.client, &ns, &names.cluster, &uid, uncached)
            .await
            .map_err(Error::ListOwned)?;
        owned.extend(listed);
    }
    Ok(owned)
}

/// A child from the controller's caches, when a controller runs for its namespace.
fn cached(
    ctx: &Context,
    ns: &str,
    kind: &str,
    name: &str,
) -> Option<Arc<kube::core::DynamicObject>> {
    ctx.watched.scope(ns)?.children.get(kind, ns, name)
}

/// What applying the children did.
struct Applied {
    /// The StatefulSet as the server stored it, when it applied.
    statefulset: Option<StatefulSet>,
    /// The first failure: the other children were still applied.
    failure: Option<Error>,
    /// The StatefulSet was orphan-deleted for a volume resize and is not gone yet.
    recreate_pending: bool,
    /// `(api_version, kind, name)` of each child created now.
    created: Vec<(String, String, String)>,
}

/// Server-side apply every child; an event for each one created or changed, and for a scale.
async fn apply_children(
    ctx: &Context,
    cluster: &ErlmcpCluster,
    desired: &Desired,
    owned: &[apply::Owned],
) -> Result<Applied, Error> {
    let ns = cluster.namespace().unwrap_or_default();
    let before: HashMap<(&str, &str), &apply::Owned> = owned
        .iter()
        .map(|o| ((o.kind.as_str(), o.name.as_str()), o))
        .collect();
    let current = current_statefulset(ctx, cluster).await?;
    let previous_replicas = current
        .as_ref()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.replicas);
    let mut applied = Applied {
        statefulset: None,
        failure: None,
        recreate_pending: false,
        created: Vec::new(),
    };
    for child in &desired.apply {
        let prepared;
        let child = if child.kind == "StatefulSet" {
            let step =
                statefulset_steps::prepare_statefulset(ctx, cluster, current.as_ref(), child).await;
            if let Some(e) = step.failure {
                applied.failure.get_or_insert(e);
            }
            applied.recreate_pending |= step.recreate_pending;
            match step.apply {
                Some(c) => {
                    prepared = c;
                    &prepared
                }
                None => continue,
            }
        } else {
            child
        };
        // The server holds this child as last applied and nobody changed it since: applying
        // again would change nothing (a converging requeue, the slow resync).
        let desired_hash = content_hash(&child.object);
        if cached(ctx, &ns, &child.kind, &child.name)
            .is_some_and(|c| ctx.own_writes.unchanged(c.as_ref(), desired_hash))
        {
            if child.kind == "StatefulSet" {
                applied.statefulset = current.clone();
            }
            continue;
        }
        match apply::apply(&ctx.client, &ns, child).await {
            Ok(obj) => {
                ctx.own_writes.applied(&obj, desired_hash);
                let why = match before.get(&(child.kind.as_str(), child.name.as_str())) {
                    None => Some(ChildReason::Created),
                    Some(o) if o.changed_by(&obj) => Some(ChildReason::Updated),
                    Some(_) => None,
                };
                match why {
                    Some(ChildReason::Created) => applied.created.push((
                        child.api_version.clone(),
                        child.kind.clone(),
                        child.name.clone(),
                    )),
                    Some(why) => ctx.events.child(cluster, child_ref(child), why).await,
                    None => {}
                }
                if child.kind == "StatefulSet" {
                    applied.statefulset = serde_json::to_value(&obj)
                        .ok()
                        .and_then(|v| serde_json::from_value(v).ok());
                }
            }
            Err(source) => {
                warn!(kind = %child.kind, name = %child.name, error = %source, "apply failed");
                applied.failure.get_or_insert(Error::Apply {
                    kind: child.kind.clone(),
                    name: child.name.clone(),
                    source,
                });
            }
        }
    }
    let now_replicas = applied
        .statefulset
        .as_ref()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.replicas);
    if let (Some(prev), Some(now)) = (previous_replicas, now_replicas) {
        let reason = match now.cmp(&prev) {
            std::cmp::Ordering::Greater => Some("ScaledUp"),
            std::cmp::Ordering::Less => Some("ScaledDown"),
            std::cmp::Ordering::Equal => None,
        };
        if let Some(reason) = reason {
            let note = format!("scaled from {prev} to {now} pods");
            ctx.events.cluster(cluster, false, reason, &note).await;
        }
    }
    Ok(applied)
}

/// Delete the owned children the spec no longer asks for; every one is tried, the first
/// failure returned.
async fn prune(
    ctx: &Context,
    cluster: &ErlmcpCluster,
    owned: &[apply::Owned],
    desired: &Desired,
) -> Result<(), Error> {
    let ns = cluster.namespace().unwrap_or_default();
    let mut failure = None;
    for o in apply::stale(owned, desired) {
        match apply::delete(&ctx.client, &ns, o).await {
            Ok(()) => {
                info!(kind = %o.kind, name = %o.name, "pruned");
                let gone = ChildRef {
                    api_version: &o.api_version,
                    kind: &o.kind,
                    name: &o.name,
                };
                ctx.events.child(cluster, gone, ChildReason::Pruned).await;
            }
            Err(source) => {
                failure.get_or_insert(Error::Prune {
                    kind: o.kind.clone(),
                    name: o.name.clone(),
                    source,
                });
            }
        }
    }
    failure.map_or(Ok(()), Err)
}

/// What the apply and prune steps leave for the report.
struct Reconciled<'a> {
    statefulset: Option<StatefulSet>,
    failure: Option<Error>,
    skipped: &'a [String],
    missing_secrets: &'a [String],
    /// When the operator CA's next renewal step is due.
    tls_check: Option<Duration>,
}

/// What a reconcile created: generated Secrets, then applied children, each as
/// `(api_version, kind, name)`.
struct Created<'a> {
    generated: &'a [(String, String, String)],
    applied: &'a [(String, String, String)],
}

/// Events for the children created now: a new cluster's (every child created at once, its
/// generated cookie included) in one event on the cluster, which spares the API server ten
/// event writes per cluster; a child added to an existing cluster in an event of its own.
async fn announce_created(
    ctx: &Context,
    cluster: &ErlmcpCluster,
    created: Created<'_>,
    desired: usize,
) {
    let each = created
        .generated
        .iter()
        .map(|c| (c, ChildReason::Generated))
        .chain(created.applied.iter().map(|c| (c, ChildReason::Created)));
    if created.applied.len() > 1 && created.applied.len() == desired {
        let names: Vec<String> = each
            .map(|((_, kind, name), why)| match why {
                ChildReason::Generated => format!("{kind} {name} (generated once)"),
                _ => format!("{kind} {name}"),
            })
            .collect();
        let note = format!("created {} objects: {}", names.len(), names.join(", "));
        ctx.events.cluster(cluster, false, "Created", &note).await;
        return;
    }
    for ((api_version, kind, name), why) in each {
        let child = ChildRef {
            api_version,
            kind,
            name,
        };
        ctx.events.child(cluster, child, why).await;
    }
}

fn child_ref(child: &desired::Child) -> ChildRef<'_> {
    ChildRef {
        api_version: &child.api_version,
        kind: &child.kind,
        name: &child.name,
    }
}

/// Exponential backoff per object, capped.
pub fn error_policy(cluster: Arc<ErlmcpCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.count("error");
    ctx.metrics
        .errors
        .with_label_values(&[error.reason()])
        .inc();
    let (_, delay) = ctx
        .watched
        .failed(&key(&cluster), cluster.metadata.generation, backoff);
    warn!(cluster = %key(&cluster), error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Delay after `n` consecutive failures: 2 s, 4 s, 8 s, ... up to 5 minutes.
pub fn backoff(n: u32) -> Duration {
    let factor = 1u64 << n.saturating_sub(1).min(16);
    (BACKOFF_BASE * factor as u32).min(BACKOFF_CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(2), Duration::from_secs(4));
        assert_eq!(backoff(5), Duration::from_secs(32));
        assert_eq!(backoff(9), Duration::from_secs(300));
        assert_eq!(backoff(100), Duration::from_secs(300));
    }
}
