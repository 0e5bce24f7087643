//! One reconcile: validate -> ensure generated secrets -> build -> apply -> prune -> status.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use erlmcp_crds::validate::validate;
use erlmcp_crds::ErlmcpCluster;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::apply;
use crate::desired::{self, BuildContext, Names, ServerCapabilities, GENERATED_PLACEHOLDER};
use crate::metrics::Metrics;
use crate::status::{self, Outcome};

/// Field manager of the operator's status writes (distinct from the children's, and from the pods').
pub const STATUS_MANAGER: &str = "erlmcp-operator-status";
/// Requeue of a healthy cluster, to catch drift nobody told us about.
pub const RESYNC: Duration = Duration::from_secs(300);
/// Requeue while a cluster is still converging (status follows the pods).
pub const CONVERGING: Duration = Duration::from_secs(15);
/// Error backoff: base, doubling per consecutive failure, capped.
pub const BACKOFF_BASE: Duration = Duration::from_secs(2);
pub const BACKOFF_CAP: Duration = Duration::from_secs(300);

/// Where events go: the API server, or memory (tests).
pub enum Events {
    Api(Recorder),
    Memory(Mutex<Vec<(String, String, String)>>),
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub capabilities: ServerCapabilities,
    pub default_image: String,
    pub metrics: Metrics,
    pub events: Events,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(
        client: Client,
        capabilities: ServerCapabilities,
        metrics: Metrics,
        events: Events,
    ) -> Self {
        Self {
            client,
            capabilities,
            default_image: desired::default_image(),
            metrics,
            events,
            failures: Mutex::new(HashMap::new()),
        }
    }

    async fn event(&self, cluster: &ErlmcpCluster, warning: bool, reason: &str, note: String) {
        self.publish(cluster, None, warning, reason, note).await
    }

    /// An event about a child: the child is the event's related object, which also keeps the
    /// recorder from folding events about different children into one series.
    async fn child_event(
        &self,
        cluster: &ErlmcpCluster,
        child: &desired::Child,
        reason: &str,
        note: String,
    ) {
        let related = ObjectReference {
            api_version: Some(child.api_version.clone()),
            kind: Some(child.kind.clone()),
            name: Some(child.name.clone()),
            namespace: cluster.namespace(),
            ..Default::default()
        };
        self.publish(cluster, Some(related), false, reason, note)
            .await
    }

    async fn publish(
        &self,
        cluster: &ErlmcpCluster,
        secondary: Option<ObjectReference>,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        match &self.events {
            Events::Api(recorder) => {
                let ev = Event {
                    type_: if warning {
                        EventType::Warning
                    } else {
                        EventType::Normal
                    },
                    reason: reason.into(),
                    note: Some(note.chars().take(1000).collect()),
                    action: "Reconcile".into(),
                    secondary,
                };
                if let Err(e) = recorder.publish(&ev, &cluster.object_ref(&())).await {
                    warn!(error = %e, reason, "could not publish event");
                }
            }
            Events::Memory(list) => list.lock().expect("events lock").push((
                if warning { "Warning" } else { "Normal" }.into(),
                reason.into(),
                note,
            )),
        }
    }

    /// Events recorded in memory (tests).
    pub fn recorded_events(&self) -> Vec<(String, String, String)> {
        match &self.events {
            Events::Memory(list) => list.lock().expect("events lock").clone(),
            Events::Api(_) => Vec::new(),
        }
    }
}

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("applying {kind}/{name}: {source}")]
    Apply {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Other(#[from] anyhow::Error),
}

impl Error {
    /// Low-cardinality label for the errors metric.
    pub fn reason(&self) -> &'static str {
        let api_code = match self {
            Error::Apply {
                source: kube::Error::Api(e),
                ..
            }
            | Error::Kube(kube::Error::Api(e)) => Some(e.code),
            _ => None,
        };
        match (self, api_code) {
            (_, Some(409)) => "Conflict",
            (_, Some(403)) => "Forbidden",
            (_, Some(422)) => "Invalid",
            (_, Some(c)) if c >= 500 => "ServerError",
            (Error::Apply { .. }, _) => "ApplyFailed",
            (Error::Kube(_), _) => "ApiError",
            (Error::Other(_), _) => "Internal",
        }
    }
}

fn key(c: &ErlmcpCluster) -> String {
    format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any())
}

/// Fill a generated object's placeholders right before it is created.
fn fill_generated(
    child: &desired::Child,
    names: &Names,
    cluster: &ErlmcpCluster,
) -> impl FnOnce(&mut Value) -> anyhow::Result<()> {
    let is_tls = child.name == names.tls_secret;
    let names = names.clone();
    let validity = cluster
        .spec
        .tls
        .as_ref()
        .and_then(|t| t.operator_ca.as_ref())
        .map_or(365, |ca| ca.validity_days);
    move |obj: &mut Value| {
        let data: BTreeMap<String, String> = if is_tls {
            desired::generate_operator_ca(&names, validity)?
        } else {
            BTreeMap::from([(desired::COOKIE_KEY.to_string(), desired::generate_cookie())])
        };
        obj["stringData"] = serde_json::to_value(&data)?;
        debug_assert!(!obj.to_string().contains(GENERATED_PLACEHOLDER));
        Ok(())
    }
}

async fn patch_status(
    client: &Client,
    cluster: &ErlmcpCluster,
    st: &erlmcp_crds::ErlmcpClusterStatus,
) -> kube::Result<()> {
    let api: Api<ErlmcpCluster> =
        Api::namespaced(client.clone(), &cluster.namespace().unwrap_or_default());
    let body = json!({
        "apiVersion": ErlmcpCluster::api_version(&()),
        "kind": ErlmcpCluster::kind(&()),
        "status": st,
    });
    api.patch_status(
        &cluster.name_any(),
        &PatchParams::apply(STATUS_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

async fn current_statefulset(
    client: &Client,
    cluster: &ErlmcpCluster,
) -> kube::Result<Option<StatefulSet>> {
    let api: Api<StatefulSet> =
        Api::namespaced(client.clone(), &cluster.namespace().unwrap_or_default());
    api.get_opt(&cluster.name_any()).await
}

async fn report(
    ctx: &Context,
    cluster: &ErlmcpCluster,
    sts: Option<&StatefulSet>,
    outcome: &Outcome,
    skipped: &[String],
) -> kube::Result<erlmcp_crds::ErlmcpClusterStatus> {
    let st = status::compute(&status::Observed {
        cluster,
        statefulset: sts,
        outcome,
        skipped,
        now: chrono::Utc::now(),
    });
    patch_status(&ctx.client, cluster, &st).await?;
    Ok(st)
}

/// Reconcile one ErlmcpCluster.
#[tracing::instrument(skip_all, fields(cluster = %key(&cluster)))]
pub async fn reconcile(cluster: Arc<ErlmcpCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_inner(&cluster, &ctx).await;
    ctx.metrics
        .duration
        .observe(started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.failures
            .lock()
            .expect("failures lock")
            .remove(&key(&cluster));
    }
    result
}

async fn reconcile_inner(cluster: &ErlmcpCluster, ctx: &Context) -> Result<Action, Error> {
    let ns = cluster.namespace().unwrap_or_default();
    let client = &ctx.client;

    // An invalid spec is a condition, not a retry loop: wait for the next change.
    let problems = validate(cluster);
    if !problems.is_empty() {
        let text = problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        let already = cluster.status.as_ref().is_some_and(|s| {
            s.observed_generation == cluster.metadata.generation
                && s.phase.as_deref() == Some("Failed")
        });
        if !already {
            ctx.event(cluster, true, "InvalidSpec", text.clone()).await;
        }
        warn!(problems = %text, "invalid spec; nothing applied");
        let sts = current_statefulset(client, cluster).await?;
        report(ctx, cluster, sts.as_ref(), &Outcome::Invalid(problems), &[]).await?;
        ctx.metrics
            .reconciliations
            .with_label_values(&["invalid"])
            .inc();
        return Ok(Action::await_change());
    }

    if cluster.spec.paused {
        let sts = current_statefulset(client, cluster).await?;
        report(ctx, cluster, sts.as_ref(), &Outcome::Paused, &[]).await?;
        ctx.metrics
            .reconciliations
            .with_label_values(&["paused"])
            .inc();
        return Ok(Action::requeue(RESYNC));
    }

    let names = Names::of(cluster);
    let mut bctx = BuildContext {
        default_image: ctx.default_image.clone(),
        capabilities: ctx.capabilities.clone(),
        secret_data: BTreeMap::new(),
    };

    // Generated secrets first: created once, never rewritten.
    for child in &desired::generated(cluster, &names) {
        let created =
            apply::create_once(client, &ns, child, fill_generated(child, &names, cluster))
                .await
                .map_err(Error::Other)?;
        if created {
            info!(kind = %child.kind, name = %child.name, "created");
            ctx.child_event(
                cluster,
                child,
                "Created",
                format!("created {} {} (generated once)", child.kind, child.name),
            )
            .await;
        }
    }

    // Contents of every mounted Secret feed the pod-template checksum.
    let mut missing = Vec::new();
    for secret in desired::mounted_secrets(cluster, &names) {
        match apply::secret_data(client, &ns, &secret).await? {
            Some(data) => {
                bctx.secret_data.insert(secret, data);
            }
            None => missing.push(secret),
        }
    }

    let desired = desired::build(cluster, &bctx);
    let uid = cluster.uid().unwrap_or_default();
    let owned = apply::list_owned(client, &ns, &names.cluster, &uid, &ctx.capabilities).await?;
    let before: HashMap<(String, String), &apply::Owned> = owned
        .iter()
        .map(|o| ((o.kind.clone(), o.name.clone()), o))
        .collect();
    let previous_replicas = current_statefulset(client, cluster)
        .await?
        .and_then(|s| s.spec)
        .and_then(|s| s.replicas);

    let mut sts: Option<StatefulSet> = None;
    let mut failure: Option<Error> = None;
    for child in &desired.apply {
        match apply::apply(client, &ns, child).await {
            Ok(obj) => {
                let k = (child.kind.clone(), child.name.clone());
                match before.get(&k) {
                    None => {
                        ctx.child_event(
                            cluster,
                            child,
                            "Created",
                            format!("created {} {}", child.kind, child.name),
                        )
                        .await;
                    }
                    Some(o) if o.changed_by(&obj) => {
                        ctx.child_event(
                            cluster,
                            child,
                            "Updated",
                            format!("updated {} {}", child.kind, child.name),
                        )
                        .await;
                    }
                    Some(_) => {}
                }
                if child.kind == "StatefulSet" {
                    sts = serde_json::to_value(&obj)
                        .ok()
                        .and_then(|v| serde_json::from_value(v).ok());
                }
            }
            Err(source) => {
                warn!(kind = %child.kind, name = %child.name, error = %source, "apply failed");
                failure.get_or_insert(Error::Apply {
                    kind: child.kind.clone(),
                    name: child.name.clone(),
                    source,
                });
            }
        }
    }

    if let (Some(prev), Some(now)) = (
        previous_replicas,
        sts.as_ref()
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.replicas),
    ) {
        if now > prev {
            ctx.event(
                cluster,
                false,
                "ScaledUp",
                format!("scaled from {prev} to {now} pods"),
            )
            .await;
        } else if now < prev {
            ctx.event(
                cluster,
                false,
                "ScaledDown",
                format!("scaled from {prev} to {now} pods"),
            )
            .await;
        }
    }

    // Prune only when everything applied: a half-applied state is no basis for deleting.
    if failure.is_none() {
        for o in apply::stale(&owned, &desired) {
            match apply::delete(client, &ns, o).await {
                Ok(()) => {
                    info!(kind = %o.kind, name = %o.name, "pruned");
                    let gone = desired::Child {
                        api_version: o.api_version.clone(),
                        kind: o.kind.clone(),
                        name: o.name.clone(),
                        object: Value::Null,
                    };
                    ctx.child_event(
                        cluster,
                        &gone,
                        "Pruned",
                        format!("deleted {} {}: no longer in the spec", o.kind, o.name),
                    )
                    .await;
                }
                Err(e) => {
                    failure.get_or_insert(Error::Kube(e));
                }
            }
        }
    }

    if sts.is_none() {
        sts = current_statefulset(client, cluster).await?;
    }
    let outcome = match &failure {
        Some(e) => Outcome::Failed(e.to_string()),
        None if !missing.is_empty() => Outcome::MissingSecrets(missing.clone()),
        None => Outcome::Applied,
    };
    for note in &desired.skipped {
        let already = cluster
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "ReconcileSuccess"))
            .is_some_and(|c| c.message.contains(note.as_str()));
        if !already {
            ctx.event(cluster, true, "Skipped", note.clone()).await;
        }
    }
    let st = report(ctx, cluster, sts.as_ref(), &outcome, &desired.skipped).await?;

    if let Some(e) = failure {
        ctx.event(cluster, true, "ReconcileError", e.to_string())
            .await;
        return Err(e);
    }
    if !missing.is_empty() {
        ctx.event(
            cluster,
            true,
            "SecretNotFound",
            format!("missing Secrets: {}", missing.join(", ")),
        )
        .await;
        ctx.metrics
            .reconciliations
            .with_label_values(&["error"])
            .inc();
        return Ok(Action::requeue(CONVERGING));
    }
    ctx.metrics
        .reconciliations
        .with_label_values(&["success"])
        .inc();
    let ready = st
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    Ok(Action::requeue(if ready { RESYNC } else { CONVERGING }))
}

/// Exponential backoff per object, capped.
pub fn error_policy(cluster: Arc<ErlmcpCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconciliations
        .with_label_values(&["error"])
        .inc();
    ctx.metrics
        .errors
        .with_label_values(&[error.reason()])
        .inc();
    let mut failures = ctx.failures.lock().expect("failures lock");
    let n = failures.entry(key(&cluster)).or_insert(0);
    *n = n.saturating_add(1);
    let delay = backoff(*n);
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
