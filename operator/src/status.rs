//! Status aggregation, pure: (the resource, its StatefulSet, the members the pods wrote, what the
//! reconcile did, now) in, the operator's part of the status out. `members` is never written here:
//! the pods own those entries.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use erlmcp_crds::status::{condition, phase};
use erlmcp_crds::validate::FieldError;
use erlmcp_crds::{EndpointsStatus, ErlmcpCluster, ErlmcpClusterStatus, MemberStatus};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::desired::{self, Names};

/// A member whose last heartbeat is older than this counts as gone (pods write every ~30 s).
pub const HEARTBEAT_TIMEOUT_SECS: i64 = 90;

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
}

/// Inputs of [`compute`].
pub struct Observed<'a> {
    pub cluster: &'a ErlmcpCluster,
    pub statefulset: Option<&'a StatefulSet>,
    pub outcome: &'a Outcome,
    /// Optional kinds skipped (no CRD), with why.
    pub skipped: &'a [String],
    pub now: DateTime<Utc>,
}

/// How the members see the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Scaled to zero.
    Idle,
    /// No member has reported yet.
    Unknown,
    /// Every expected member is ready, fresh, and they all see the same membership.
    Healthy,
    /// One consistent view, but members are missing, stale or not ready.
    Degraded { missing: Vec<String> },
    /// Members disagree: each group is a set of members that see each other.
    Partitioned { groups: Vec<Vec<String>> },
}

impl Health {
    pub fn label(&self) -> &'static str {
        match self {
            Health::Idle => "Idle",
            Health::Unknown => "Unknown",
            Health::Healthy => "Healthy",
            Health::Degraded { .. } => "Degraded",
            Health::Partitioned { .. } => "Partitioned",
        }
    }
}

fn is_fresh(m: &MemberStatus, now: DateTime<Utc>) -> bool {
    m.last_heartbeat
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| {
            now.signed_duration_since(t.with_timezone(&Utc))
                <= Duration::seconds(HEARTBEAT_TIMEOUT_SECS)
        })
}

/// Cluster health from the members' own reports. `expected` are the pod names that should exist.
pub fn cluster_health(expected: &[String], members: &[MemberStatus], now: DateTime<Utc>) -> Health {
    if expected.is_empty() {
        return Health::Idle;
    }
    let expected_set: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    let live: BTreeMap<&str, &MemberStatus> = members
        .iter()
        .filter(|m| expected_set.contains(m.name.as_str()) && m.ready && is_fresh(m, now))
        .map(|m| (m.name.as_str(), m))
        .collect();
    if live.is_empty() {
        return if members
            .iter()
            .any(|m| expected_set.contains(m.name.as_str()))
        {
            Health::Degraded {
                missing: expected.to_vec(),
            }
        } else {
            Health::Unknown
        };
    }
    // Each live member's view: itself plus the live peers it reaches. Peers that are not live
    // (stale, not ready, beyond the replica count) do not count in anyone's view.
    let mut views: BTreeMap<BTreeSet<&str>, Vec<String>> = BTreeMap::new();
    for (name, m) in &live {
        let mut view: BTreeSet<&str> = m
            .peers
            .iter()
            .map(String::as_str)
            .filter(|p| live.contains_key(p))
            .collect();
        view.insert(name);
        views.entry(view).or_default().push(name.to_string());
    }
    if views.len() > 1 {
        // Group by component of mutual reachability, reported as the members that share a view.
        let mut groups: Vec<Vec<String>> = views.into_values().collect();
        groups.sort();
        return Health::Partitioned { groups };
    }
    let view = views.into_keys().next().expect("one view");
    let missing: Vec<String> = expected
        .iter()
        .filter(|n| !view.contains(n.as_str()))
        .cloned()
        .collect();
    if missing.is_empty() {
        Health::Healthy
    } else {
        Health::Degraded { missing }
    }
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
    let c = o.cluster;
    let names = Names::of(c);
    let desired = c.spec.replicas;
    let r = rollout(o.statefulset, desired);
    let old = c.status.clone().unwrap_or_default();
    let expected = expected_pods(c);
    let health = cluster_health(&expected, &old.members, o.now);

    let mut conditions = Vec::new();

    // ReconcileSuccess: what this reconcile did.
    let reconcile = match o.outcome {
        Outcome::Applied if o.skipped.is_empty() => cond(
            condition::RECONCILE_SUCCESS,
            true,
            "Reconciled",
            "all objects applied",
        ),
        Outcome::Applied => cond(
            condition::RECONCILE_SUCCESS,
            true,
            "ReconciledWithSkips",
            truncate(&format!("applied; skipped {}", o.skipped.join("; ")), 1000),
        ),
        Outcome::Paused => cond(
            condition::RECONCILE_SUCCESS,
            false,
            "Paused",
            "spec.paused is true: nothing is applied or deleted",
        ),
        Outcome::Invalid(errs) => cond(
            condition::RECONCILE_SUCCESS,
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
        Outcome::Failed(e) => cond(
            condition::RECONCILE_SUCCESS,
            false,
            "ApplyFailed",
            truncate(e, 4000),
        ),
        Outcome::MissingSecrets(s) => cond(
            condition::RECONCILE_SUCCESS,
            false,
            "SecretNotFound",
            format!("Secrets the pods mount do not exist: {}", s.join(", ")),
        ),
    };
    let reconcile_ok = reconcile.status == "True";
    conditions.push(reconcile);

    // A cluster that never reached Running is still being created, not degraded.
    let never_ran = old.phase.as_deref().is_none_or(|p| {
        p == phase::PENDING || p == phase::CREATING || p == phase::FAILED || p == phase::PAUSED
    });
    let creating = o.statefulset.is_some() && never_ran && r.ready < desired;
    let progressing = (!r.complete || creating)
        && o.statefulset.is_some()
        && !matches!(o.outcome, Outcome::Invalid(_));
    conditions.push(if creating && r.complete {
        cond(
            condition::PROGRESSING,
            true,
            "Creating",
            format!("{}/{} pods ready", r.ready, desired),
        )
    } else if progressing {
        cond(
            condition::PROGRESSING,
            true,
            "RollingUpdate",
            format!("{}/{} pods updated, {} ready", r.updated, desired, r.ready),
        )
    } else if o.statefulset.is_none() {
        cond(
            condition::PROGRESSING,
            false,
            "NotCreated",
            "the StatefulSet does not exist yet",
        )
    } else {
        cond(
            condition::PROGRESSING,
            false,
            "RolloutComplete",
            format!("{desired}/{desired} pods run the current template"),
        )
    });
    let all_ready = r.ready >= desired && r.complete;
    conditions.push(cond(
        condition::AVAILABLE,
        r.ready > 0 || desired == 0,
        if r.ready > 0 {
            "MinimumReplicasAvailable"
        } else if desired == 0 {
            "ScaledToZero"
        } else {
            "NoReplicasReady"
        },
        format!("{}/{} pods ready", r.ready, desired),
    ));

    let (health_ok, health_reason, health_msg) = match &health {
        Health::Idle => (true, "ScaledToZero", "no members expected".to_string()),
        Health::Unknown => (false, "NoReports", "no member has reported yet".to_string()),
        Health::Healthy => (
            true,
            "AllMembersConnected",
            format!("{} members see each other", expected.len()),
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
    conditions.push(cond(
        condition::CLUSTER_HEALTHY,
        health_ok,
        health_reason,
        health_msg,
    ));

    let degraded_reason = if matches!(health, Health::Partitioned { .. }) {
        Some("Partitioned")
    } else if !progressing && o.statefulset.is_some() && r.ready < desired {
        Some("PodsNotReady")
    } else if matches!(o.outcome, Outcome::Failed(_) | Outcome::MissingSecrets(_)) {
        Some("ReconcileFailing")
    } else {
        None
    };
    conditions.push(match degraded_reason {
        Some(reason) => cond(
            condition::DEGRADED,
            true,
            reason,
            format!(
                "{}/{} pods ready; cluster {}",
                r.ready,
                desired,
                health.label()
            ),
        ),
        None => cond(condition::DEGRADED, false, "AsExpected", "nothing degraded"),
    });

    let ready = all_ready && reconcile_ok && matches!(health, Health::Healthy | Health::Idle);
    conditions.insert(
        0,
        cond(
            condition::READY,
            ready,
            if ready { "ClusterReady" } else { "NotReady" },
            if ready {
                format!("{desired}/{desired} pods ready and connected")
            } else {
                format!(
                    "{}/{} pods ready, cluster {}",
                    r.ready,
                    desired,
                    health.label()
                )
            },
        ),
    );

    let phase = match o.outcome {
        Outcome::Paused => phase::PAUSED,
        Outcome::Invalid(_) => phase::FAILED,
        _ if o.statefulset.is_none() => phase::PENDING,
        _ if degraded_reason == Some("Partitioned") => phase::DEGRADED,
        _ if creating => phase::CREATING,
        _ if progressing => phase::UPDATING,
        _ if degraded_reason.is_some() => phase::DEGRADED,
        _ => phase::RUNNING,
    };

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
        .filter(|m| expected.contains(&m.name))
        .filter_map(|m| m.version.clone())
        .min();
    let port = c.spec.mcp.transports.port;
    let scheme = if c.spec.tls.as_ref().is_some_and(|t| t.client_tls) {
        "https"
    } else {
        "http"
    };
    ErlmcpClusterStatus {
        observed_generation: c.metadata.generation,
        phase: Some(phase.into()),
        health: Some(health.label().into()),
        replicas: Some(r.replicas),
        ready_replicas: Some(r.ready),
        updated_replicas: Some(r.updated),
        selector: Some(desired::selector_string(c)),
        current_image: image,
        current_version: version,
        endpoints: Some(EndpointsStatus {
            mcp: Some(format!(
                "{scheme}://{}.{}.svc:{port}/mcp",
                names.client_service, names.namespace
            )),
            websocket: c.spec.mcp.transports.websocket.then(|| {
                format!(
                    "{}://{}.{}.svc:{port}/ws",
                    if scheme == "https" { "wss" } else { "ws" },
                    names.client_service,
                    names.namespace
                )
            }),
            peers: Some(format!("{}.{}.svc", names.headless, names.namespace)),
        }),
        conditions,
        members: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::StatefulSetStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn member(name: &str, peers: &[&str], age_secs: i64) -> MemberStatus {
        MemberStatus {
            name: name.into(),
            ready: true,
            version: Some("0.1.0".into()),
            peers: peers.iter().map(|s| s.to_string()).collect(),
            expected_peers: Some(2),
            sessions: 3,
            last_heartbeat: Some((now() - Duration::seconds(age_secs)).to_rfc3339()),
        }
    }

    fn cluster(replicas: i32, members: Vec<MemberStatus>) -> ErlmcpCluster {
        let mut c = ErlmcpCluster::new("mcp", Default::default());
        c.metadata.namespace = Some("prod".into());
        c.metadata.generation = Some(4);
        c.spec.replicas = replicas;
        c.status = Some(ErlmcpClusterStatus {
            members,
            phase: Some("Running".into()),
            ..Default::default()
        });
        c
    }

    fn sts(replicas: i32, ready: i32, updated: i32, same_rev: bool) -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta {
                generation: Some(2),
                ..Default::default()
            },
            status: Some(StatefulSetStatus {
                observed_generation: Some(2),
                replicas,
                ready_replicas: Some(ready),
                updated_replicas: Some(updated),
                current_revision: Some("mcp-a".into()),
                update_revision: Some(if same_rev { "mcp-a" } else { "mcp-b" }.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn observe(
        c: &ErlmcpCluster,
        statefulset: Option<&StatefulSet>,
        outcome: &Outcome,
        at: DateTime<Utc>,
    ) -> ErlmcpClusterStatus {
        compute(&Observed {
            cluster: c,
            statefulset,
            outcome,
            skipped: &[],
            now: at,
        })
    }

    fn get<'a>(s: &'a ErlmcpClusterStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    fn three_connected() -> Vec<MemberStatus> {
        vec![
            member("mcp-0", &["mcp-1", "mcp-2"], 5),
            member("mcp-1", &["mcp-0", "mcp-2"], 5),
            member("mcp-2", &["mcp-0", "mcp-1"], 5),
        ]
    }

    #[test]
    fn all_ready_and_connected() {
        let c = cluster(3, three_connected());
        let s = sts(3, 3, 3, true);
        let st = observe(&c, Some(&s), &Outcome::Applied, now());
        assert_eq!(st.phase.as_deref(), Some("Running"));
        assert_eq!(st.health.as_deref(), Some("Healthy"));
        assert_eq!(get(&st, "Ready").status, "True");
        assert_eq!(get(&st, "ClusterHealthy").status, "True");
        assert_eq!(get(&st, "Progressing").status, "False");
        assert_eq!(get(&st, "Degraded").status, "False");
        assert_eq!(get(&st, "ReconcileSuccess").reason, "Reconciled");
        assert_eq!(st.ready_replicas, Some(3));
        assert_eq!(
            st.selector.as_deref(),
            Some("app.kubernetes.io/instance=mcp,app.kubernetes.io/name=erlmcp")
        );
        assert_eq!(st.current_version.as_deref(), Some("0.1.0"));
        assert_eq!(
            st.endpoints.as_ref().unwrap().mcp.as_deref(),
            Some("http://mcp.prod.svc:8080/mcp")
        );
        assert!(st.members.is_empty(), "the operator never writes members");
        assert_eq!(get(&st, "Ready").observed_generation, Some(4));
    }

    #[test]
    fn rolling_update_is_progressing_with_counts() {
        let c = cluster(3, three_connected());
        let s = sts(3, 2, 1, false);
        let st = observe(&c, Some(&s), &Outcome::Applied, now());
        assert_eq!(st.phase.as_deref(), Some("Updating"));
        let p = get(&st, "Progressing");
        assert_eq!(
            (p.status.as_str(), p.reason.as_str()),
            ("True", "RollingUpdate")
        );
        assert_eq!(p.message, "1/3 pods updated, 2 ready");
        assert_eq!(get(&st, "Ready").status, "False");
        assert_eq!(
            get(&st, "Degraded").status,
            "False",
            "a rollout in flight is not degraded"
        );
        assert_eq!(get(&st, "Available").status, "True");
    }

    #[test]
    fn a_stale_member_counts_as_gone() {
        let mut members = three_connected();
        members[2] = member("mcp-2", &["mcp-0", "mcp-1"], 300);
        members[0].peers = vec!["mcp-1".into()];
        members[1].peers = vec!["mcp-0".into()];
        let c = cluster(3, members);
        let s = sts(3, 2, 3, true);
        let st = observe(&c, Some(&s), &Outcome::Applied, now());
        assert_eq!(st.health.as_deref(), Some("Degraded"));
        let h = get(&st, "ClusterHealthy");
        assert_eq!(
            (h.status.as_str(), h.reason.as_str()),
            ("False", "MembersMissing")
        );
        assert!(h.message.contains("mcp-2"));
        assert_eq!(get(&st, "Degraded").status, "True");
        assert_eq!(st.phase.as_deref(), Some("Degraded"));
    }

    #[test]
    fn a_partition_reports_its_groups() {
        let members = vec![
            member("mcp-0", &["mcp-1"], 5),
            member("mcp-1", &["mcp-0"], 5),
            member("mcp-2", &[], 5),
        ];
        let h = cluster_health(&expected_pods(&cluster(3, vec![])), &members, now());
        assert_eq!(
            h,
            Health::Partitioned {
                groups: vec![vec!["mcp-0".into(), "mcp-1".into()], vec!["mcp-2".into()]]
            }
        );
        let c = cluster(3, members);
        let s = sts(3, 3, 3, true);
        let st = observe(&c, Some(&s), &Outcome::Applied, now());
        let ch = get(&st, "ClusterHealthy");
        assert_eq!(ch.reason, "Partitioned");
        assert!(
            ch.message.contains("[mcp-0, mcp-1] [mcp-2]"),
            "{}",
            ch.message
        );
        assert_eq!(get(&st, "Degraded").reason, "Partitioned");
        assert_eq!(st.phase.as_deref(), Some("Degraded"));
        assert_eq!(get(&st, "Ready").status, "False");
    }

    #[test]
    fn a_new_cluster_is_creating_not_degraded() {
        let mut c = cluster(3, vec![]);
        c.status.as_mut().unwrap().phase = None;
        let s = sts(3, 1, 3, true);
        let st = observe(&c, Some(&s), &Outcome::Applied, now());
        assert_eq!(st.phase.as_deref(), Some("Creating"));
        let p = get(&st, "Progressing");
        assert_eq!(
            (p.status.as_str(), p.reason.as_str(), p.message.as_str()),
            ("True", "Creating", "1/3 pods ready")
        );
        assert_eq!(get(&st, "Degraded").status, "False");
        // Once it has run, losing a pod is degraded.
        c.status.as_mut().unwrap().phase = Some("Running".into());
        let st = observe(&c, Some(&s), &Outcome::Applied, now());
        assert_eq!(st.phase.as_deref(), Some("Degraded"));
        assert_eq!(get(&st, "Degraded").reason, "PodsNotReady");
    }

    #[test]
    fn scaled_to_zero() {
        let c = cluster(0, vec![member("mcp-0", &[], 500)]);
        let s = sts(0, 0, 0, true);
        let st = observe(&c, Some(&s), &Outcome::Applied, now());
        assert_eq!(st.health.as_deref(), Some("Idle"));
        assert_eq!(get(&st, "Ready").status, "True");
        assert_eq!(get(&st, "Available").reason, "ScaledToZero");
        assert_eq!(st.phase.as_deref(), Some("Running"));
    }

    #[test]
    fn invalid_and_paused() {
        let c = cluster(3, vec![]);
        let errs = vec![FieldError {
            path: "spec.replicas".into(),
            message: "must be 0 or more".into(),
        }];
        let st = observe(&c, None, &Outcome::Invalid(errs), now());
        let r = get(&st, "ReconcileSuccess");
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("False", "InvalidSpec")
        );
        assert_eq!(r.message, "spec.replicas: must be 0 or more");
        assert_eq!(st.phase.as_deref(), Some("Failed"));
        let st = observe(&c, None, &Outcome::Paused, now());
        assert_eq!(st.phase.as_deref(), Some("Paused"));
        assert_eq!(get(&st, "ReconcileSuccess").reason, "Paused");
    }

    #[test]
    fn transition_times_move_only_on_flips() {
        let mut c = cluster(3, three_connected());
        let s = sts(3, 3, 3, true);
        let first = observe(&c, Some(&s), &Outcome::Applied, now());
        c.status.as_mut().unwrap().conditions = first.conditions.clone();
        let later = now() + Duration::seconds(60);
        let mut members = three_connected();
        for m in &mut members {
            m.last_heartbeat = Some(later.to_rfc3339());
        }
        c.status.as_mut().unwrap().members = members;
        // Same state a minute later: no transition moves.
        let same = observe(&c, Some(&s), &Outcome::Applied, later);
        assert_eq!(
            get(&same, "Ready").last_transition_time,
            get(&first, "Ready").last_transition_time
        );
        // One pod not ready: Ready flips and its time moves; ReconcileSuccess keeps its time.
        let s2 = sts(3, 2, 3, true);
        let flipped = observe(&c, Some(&s2), &Outcome::Applied, later);
        assert_eq!(get(&flipped, "Ready").status, "False");
        assert_ne!(
            get(&flipped, "Ready").last_transition_time,
            get(&first, "Ready").last_transition_time
        );
        assert_eq!(
            get(&flipped, "ReconcileSuccess").last_transition_time,
            get(&first, "ReconcileSuccess").last_transition_time
        );
    }
}
