//! Status aggregation, pure: (the resource, its StatefulSet, the members the pods wrote, what the
//! reconcile did, now) in, the operator's part of the status out. `members` is never written here:
//! the pods own those entries.

mod health;
pub mod rollout;

use chrono::{DateTime, Utc};
use erlmcp_crds::status::{condition, health as health_label, phase};
use erlmcp_crds::validate::FieldError;
use erlmcp_crds::{EndpointsStatus, ErlmcpCluster, ErlmcpClusterStatus};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::desired::{self, Names};

pub use health::{
    cluster_health, debounce, Health, Pending, ServerView, HEALTH_DEBOUNCE_SECS,
    HEARTBEAT_TIMEOUT_SECS,
};

/// What the reconcile found or did, besides the objects themselves.
#[derive(Debug, Clone, Default)]
pub enum Outcome {
    /// Everything applied.
    #[default]
    Applied,
    /// `spec.paused` is true: nothing applied.
    Paused,
    /// The spec failed validation: nothing applied.
    Invalid(Vec<FieldError>),
    /// Applying failed (the error, shortened).
    Failed(String),
    /// Applied, but Secrets the pods mount are missing.
    MissingSecrets(Vec<String>),
    /// The API server refused for good (403, 422): retrying soon cannot help.
    Refused {
        reason: &'static str,
        message: String,
    },
}

/// Inputs of [`compute`].
pub struct Observed<'a> {
    pub cluster: &'a ErlmcpCluster,
    pub statefulset: Option<&'a StatefulSet>,
    pub outcome: &'a Outcome,
    /// Optional kinds skipped (no CRD), with why.
    pub skipped: &'a [String],
    /// Pod readiness and report times, by the API server's word.
    pub server: &'a ServerView,
    /// A health change seen earlier and not reported yet (see [`debounce`]).
    pub pending: Option<&'a Pending>,
    pub now: DateTime<Utc>,
}

/// Pod names the StatefulSet should have.
pub fn expected_pods(cluster: &ErlmcpCluster) -> Vec<String> {
    let name = cluster.metadata.name.clone().unwrap_or_default();
    (0..cluster.spec.replicas.max(0))
        .map(|i| format!("{name}-{i}"))
        .collect()
}

/// Rollout facts of the StatefulSet, for the desired replica count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rollout {
    pub replicas: i32,
    pub ready: i32,
    pub updated: i32,
    /// The StatefulSet controller has seen the latest template and every pod runs it.
    pub complete: bool,
}

pub fn rollout(sts: Option<&StatefulSet>, desired: i32) -> Rollout {
    let Some(sts) = sts else {
        return Rollout::default();
    };
    let st = sts.status.clone().unwrap_or_default();
    let seen = st.observed_generation.unwrap_or(0) >= sts.metadata.generation.unwrap_or(0);
    let updated = st.updated_replicas.unwrap_or(0);
    let same_revision = match (&st.current_revision, &st.update_revision) {
        (Some(c), Some(u)) => c == u,
        _ => true,
    };
    Rollout {
        replicas: st.replicas,
        ready: st.ready_replicas.unwrap_or(0),
        updated,
        complete: seen
            && st.replicas == desired
            && (updated == desired || (desired == 0))
            && same_revision,
    }
}

fn cond(type_: &str, ok: bool, reason: &str, message: impl Into<String>) -> Condition {
    Condition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: None,
        last_transition_time: Time(Default::default()),
    }
}

/// Keep the previous transition time unless the status flipped (metav1.Condition semantics).
pub fn carry_transitions(
    new: &mut [Condition],
    old: &[Condition],
    now: DateTime<Utc>,
    generation: Option<i64>,
) {
    let now = jiff_time(now);
    for c in new.iter_mut() {
        c.observed_generation = generation;
        c.last_transition_time = match old.iter().find(|o| o.type_ == c.type_) {
            Some(o) if o.status == c.status => o.last_transition_time.clone(),
            _ => now.clone(),
        };
    }
}

fn jiff_time(t: DateTime<Utc>) -> Time {
    let nanos = t.timestamp_nanos_opt().expect("time in range") as i128;
    Time(k8s_openapi::jiff::Timestamp::from_nanosecond(nanos).expect("time in range"))
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// The operator's status for the resource.
pub fn compute(o: &Observed) -> ErlmcpClusterStatus {
    compute_debounced(o).0
}

/// The status, and the health change it holds back (to be looked at again once the debounce
/// has passed).
pub fn compute_debounced(o: &Observed) -> (ErlmcpClusterStatus, Option<Pending>) {
    let c = o.cluster;
    let old = c.status.clone().unwrap_or_default();
    let (f, pending) = facts(o, &old);
    let reconcile = reconcile_success(o.outcome, o.skipped);
    let reconcile_ok = reconcile.status == "True";
    let degraded = degraded_reason(&f, o.outcome);
    let mut conditions = vec![
        ready(&f, reconcile_ok),
        reconcile,
        progressing(&f),
        available(&f),
        match (&pending, old_condition(&old, condition::CLUSTER_HEALTHY)) {
            // Held back: the reported condition stands, message included.
            (Some(_), Some(held)) => held,
            _ => cluster_healthy(&f.health, f.expected.len()),
        },
        degraded_condition(&f, degraded),
    ];
    carry_transitions(
        &mut conditions,
        &old.conditions,
        o.now,
        c.metadata.generation,
    );
    let image = o
        .statefulset
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .and_then(|ctr| ctr.image.clone());
    let version = old
        .members
        .iter()
        .filter(|m| f.expected.contains(&m.name))
        .filter_map(|m| m.version.clone())
        .min();
    let st = ErlmcpClusterStatus {
        observed_generation: c.metadata.generation,
        phase: Some(phase_of(o.outcome, &f, degraded).into()),
        health: Some(f.health.label().into()),
        replicas: Some(f.rollout.replicas),
        ready_replicas: Some(f.rollout.ready),
        updated_replicas: Some(f.rollout.updated),
        selector: Some(desired::selector_string(c)),
        current_image: image,
        current_version: version,
        endpoints: Some(endpoints(c)),
        last_progress_time: f.progress.last.map(|t| t.to_rfc3339()),
        conditions,
        members: Vec::new(),
    };
    (st, pending)
}

fn old_condition(old: &ErlmcpClusterStatus, type_: &str) -> Option<Condition> {
    old.conditions.iter().find(|c| c.type_ == type_).cloned()
}

/// The health a held-back change leaves reported, by its label (details are in the old
/// condition, which is kept as it was).
fn reported_health(label: &str) -> Health {
    match label {
        health_label::HEALTHY => Health::Healthy,
        health_label::PARTITIONED => Health::Partitioned { groups: Vec::new() },
        health_label::IDLE => Health::Idle,
        health_label::UNKNOWN => Health::Unknown,
        _ => Health::Degraded {
            missing: Vec::new(),
        },
    }
}

/// What the conditions and the phase are decided from.
struct Facts {
    desired: i32,
    rollout: Rollout,
    expected: Vec<String>,
    health: Health,
    has_statefulset: bool,
    invalid: bool,
    /// A cluster that never reached Running is still being created, not degraded.
    creating: bool,
    progressing: bool,
    /// The rollout against its progress deadline.
    progress: rollout::Progress,
    deadline_secs: i64,
}

fn facts(o: &Observed, old: &ErlmcpClusterStatus) -> (Facts, Option<Pending>) {
    let desired = o.cluster.spec.replicas;
    let rollout = rollout(o.statefulset, desired);
    let expected = expected_pods(o.cluster);
    let seen = cluster_health(&expected, &old.members, o.server, o.now);
    let (report, pending) = debounce(old.health.as_deref(), &seen, o.pending, o.now);
    let health = match old.health.as_deref() {
        Some(label) if !report => reported_health(label),
        _ => seen,
    };
    let has_statefulset = o.statefulset.is_some();
    let invalid = matches!(o.outcome, Outcome::Invalid(_));
    let never_ran = old.phase.as_deref().is_none_or(|p| {
        p == phase::PENDING || p == phase::CREATING || p == phase::FAILED || p == phase::PAUSED
    });
    let creating = has_statefulset && never_ran && rollout.ready < desired;
    let progressing = (!rollout.complete || creating) && has_statefulset && !invalid;
    let progress = rollout::progress(o.cluster, old, &rollout, progressing, o.now);
    let f = Facts {
        desired,
        rollout,
        expected,
        health,
        has_statefulset,
        invalid,
        creating,
        progressing,
        progress,
        deadline_secs: rollout::deadline_secs(o.cluster),
    };
    (f, pending)
}

/// ReconcileSuccess: what this reconcile did.
fn reconcile_success(outcome: &Outcome, skipped: &[String]) -> Condition {
    let t = condition::RECONCILE_SUCCESS;
    match outcome {
        Outcome::Applied if skipped.is_empty() => {
            cond(t, true, "Reconciled", "all objects applied")
        }
        Outcome::Applied => cond(
            t,
            true,
            "ReconciledWithSkips",
            truncate(&format!("applied; skipped {}", skipped.join("; ")), 1000),
        ),
        Outcome::Paused => cond(
            t,
            false,
            "Paused",
            "spec.paused is true: nothing is applied or deleted",
        ),
        Outcome::Invalid(errs) => cond(
            t,
            false,
            "InvalidSpec",
            truncate(
                &errs
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
                4000,
            ),
        ),
        Outcome::Failed(e) => cond(t, false, "ApplyFailed", truncate(e, 4000)),
        Outcome::Refused { reason, message } => cond(t, false, reason, truncate(message, 4000)),
        Outcome::MissingSecrets(s) => cond(
            t,
            false,
            "SecretNotFound",
            format!("Secrets the pods mount do not exist: {}", s.join(", ")),
        ),
    }
}

/// Progressing: a rollout (or the first creation) is under way.
fn progressing(f: &Facts) -> Condition {
    let (t, r, desired) = (condition::PROGRESSING, &f.rollout, f.desired);
    if f.progress.stalled {
        cond(
            t,
            false,
            rollout::STALLED,
            format!(
                "no progress for more than {}s: {}/{} pods updated, {} ready; the pods not yet updated keep the old template (revert the spec to roll back)",
                f.deadline_secs,
                r.updated,
                desired,
                r.ready
            ),
        )
    } else if f.creating && r.complete {
        cond(
            t,
            true,
            "Creating",
            format!("{}/{} pods ready", r.ready, desired),
        )
    } else if f.progressing {
        cond(
            t,
            true,
            "RollingUpdate",
            format!("{}/{} pods updated, {} ready", r.updated, desired, r.ready),
        )
    } else if !f.has_statefulset {
        cond(t, false, "NotCreated", "the StatefulSet does not exist yet")
    } else {
        cond(
            t,
            false,
            "RolloutComplete",
            format!("{desired}/{desired} pods run the current template"),
        )
    }
}

/// Available: at least one pod serves (or none is wanted).
fn available(f: &Facts) -> Condition {
    let (ready, desired) = (f.rollout.ready, f.desired);
    let reason = if ready > 0 {
        "MinimumReplicasAvailable"
    } else if desired == 0 {
        "ScaledToZero"
    } else {
        "NoReplicasReady"
    };
    cond(
        condition::AVAILABLE,
        ready > 0 || desired == 0,
        reason,
        format!("{ready}/{desired} pods ready"),
    )
}

/// ClusterHealthy: the members' own view of the cluster.
fn cluster_healthy(health: &Health, expected: usize) -> Condition {
    let (ok, reason, message) = match health {
        Health::Idle => (true, "ScaledToZero", "no members expected".to_string()),
        Health::Unknown => (false, "NoReports", "no member has reported yet".to_string()),
        Health::Healthy => (
            true,
            "AllMembersConnected",
            format!("{expected} members see each other"),
        ),
        Health::Degraded { missing } => (
            false,
            "MembersMissing",
            format!("missing, stale or not ready: {}", missing.join(", ")),
        ),
        Health::Partitioned { groups } => (
            false,
            "Partitioned",
            format!(
                "members disagree on membership: {}",
                groups
                    .iter()
                    .map(|g| format!("[{}]", g.join(", ")))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ),
    };
    cond(condition::CLUSTER_HEALTHY, ok, reason, message)
}

/// Why the cluster is degraded, if it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Degraded {
    RolloutStalled,
    Partitioned,
    PodsNotReady,
    ReconcileFailing,
}

impl Degraded {
    fn reason(self) -> &'static str {
        match self {
            Degraded::RolloutStalled => rollout::STALLED,
            Degraded::Partitioned => "Partitioned",
            Degraded::PodsNotReady => "PodsNotReady",
            Degraded::ReconcileFailing => "ReconcileFailing",
        }
    }
}

fn degraded_reason(f: &Facts, outcome: &Outcome) -> Option<Degraded> {
    if f.progress.stalled {
        Some(Degraded::RolloutStalled)
    } else if matches!(f.health, Health::Partitioned { .. }) {
        Some(Degraded::Partitioned)
    } else if !f.progressing && f.has_statefulset && f.rollout.ready < f.desired {
        Some(Degraded::PodsNotReady)
    } else if matches!(
        outcome,
        Outcome::Failed(_) | Outcome::MissingSecrets(_) | Outcome::Refused { .. }
    ) {
        Some(Degraded::ReconcileFailing)
    } else {
        None
    }
}

/// Degraded: partitioned, pods down outside a rollout, or the reconcile failing.
fn degraded_condition(f: &Facts, degraded: Option<Degraded>) -> Condition {
    match degraded {
        Some(d) => cond(
            condition::DEGRADED,
            true,
            d.reason(),
            format!(
                "{}/{} pods ready; cluster {}",
                f.rollout.ready,
                f.desired,
                f.health.label()
            ),
        ),
        None => cond(condition::DEGRADED, false, "AsExpected", "nothing degraded"),
    }
}

/// Ready: every pod ready on the current template, the reconcile applied, the members connected.
fn ready(f: &Facts, reconcile_ok: bool) -> Condition {
    let (r, desired) = (&f.rollout, f.desired);
    let all_ready = r.ready >= desired && r.complete;
    let ok = all_ready && reconcile_ok && matches!(f.health, Health::Healthy | Health::Idle);
    if ok {
        cond(
            condition::READY,
            true,
            "ClusterReady",
            format!("{desired}/{desired} pods ready and connected"),
        )
    } else {
        cond(
            condition::READY,
            false,
            "NotReady",
            format!(
                "{}/{} pods ready, cluster {}",
                r.ready,
                desired,
                f.health.label()
            ),
        )
    }
}

/// The phase `kubectl get` shows.
fn phase_of(outcome: &Outcome, f: &Facts, degraded: Option<Degraded>) -> &'static str {
    match outcome {
        Outcome::Paused => phase::PAUSED,
        _ if f.invalid => phase::FAILED,
        _ if !f.has_statefulset => phase::PENDING,
        _ if matches!(
            degraded,
            Some(Degraded::Partitioned | Degraded::RolloutStalled)
        ) =>
        {
            phase::DEGRADED
        }
        _ if f.creating => phase::CREATING,
        _ if f.progressing => phase::UPDATING,
        _ if degraded.is_some() => phase::DEGRADED,
        _ => phase::RUNNING,
    }
}

/// Where clients and peers reach the cluster.
fn endpoints(c: &ErlmcpCluster) -> EndpointsStatus {
    let names = Names::of(c);
    let port = c.spec.mcp.transports.port;
    let tls = c.spec.tls.as_ref().is_some_and(|t| t.client_tls);
    EndpointsStatus {
        mcp: Some(names.mcp_url(tls, port)),
        websocket: c
            .spec
            .mcp
            .transports
            .websocket
            .then(|| names.websocket_url(tls, port)),
        peers: Some(names.peers_host()),
    }
}

#[cfg(test)]
mod tests;
