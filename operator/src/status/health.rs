//! Cluster health: who is live (by the API server's word, not the pods' clocks), and whether
//! the live members see one membership.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use erlmcp_crds::status::health;
use erlmcp_crds::{membership_hash, ErlmcpCluster, MemberStatus};
use k8s_openapi::api::core::v1::Pod;

/// A member whose last report the server stored longer ago than this counts as gone (pods
/// write every ~30 s).
pub const HEARTBEAT_TIMEOUT_SECS: i64 = 90;

/// Prefix of the field manager each pod writes its member entry with.
pub const MEMBER_MANAGER_PREFIX: &str = "erlmcp-member-";

/// How the members see the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Scaled to zero.
    Idle,
    /// No member has reported yet.
    Unknown,
    /// Every expected member is live and they all see the same membership.
    Healthy,
    /// Members are missing, not live, or do not (yet) see every live member.
    Degraded { missing: Vec<String> },
    /// At least two live groups, each seeing exactly itself: each misses the other.
    Partitioned { groups: Vec<Vec<String>> },
}

impl Health {
    pub fn label(&self) -> &'static str {
        match self {
            Health::Idle => health::IDLE,
            Health::Unknown => health::UNKNOWN,
            Health::Healthy => health::HEALTHY,
            Health::Degraded { .. } => health::DEGRADED,
            Health::Partitioned { .. } => health::PARTITIONED,
        }
    }
}

/// What the API server, rather than the pods, says about the members.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerView {
    /// Pods whose Ready condition is True (and that are not being deleted).
    pub ready_pods: BTreeSet<String>,
    /// Server time of each member's last report: the `time` of its field manager's
    /// managedFields entry. None when the server keeps no managedFields: then the pods'
    /// own `lastHeartbeat` is all there is.
    pub reported_at: Option<BTreeMap<String, DateTime<Utc>>>,
}

impl ServerView {
    /// From the cluster's managedFields and its Pods (any Pods: only the ones named like a
    /// member matter).
    pub fn of<'a>(cluster: &ErlmcpCluster, pods: impl IntoIterator<Item = &'a Pod>) -> Self {
        let ready_pods = pods
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && pod_ready(p))
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        // Pods on servers before 1.21 write `members` by read-modify-write (an atomic list
        // there): each Update takes the whole list, so the server keeps a time only for the
        // last writer. With such entries the pods' own heartbeats are all there is.
        let by_update = cluster
            .metadata
            .managed_fields
            .as_ref()
            .is_some_and(|entries| {
                entries.iter().any(|e| {
                    e.operation.as_deref() == Some("Update")
                        && e.manager
                            .as_deref()
                            .is_some_and(|m| m.starts_with(MEMBER_MANAGER_PREFIX))
                })
            });
        let managed = cluster
            .metadata
            .managed_fields
            .as_ref()
            .filter(|_| !by_update);
        let reported_at = managed.map(|entries| {
            entries
                .iter()
                .filter_map(|e| {
                    let member = e.manager.as_deref()?.strip_prefix(MEMBER_MANAGER_PREFIX)?;
                    let t = e.time.as_ref()?;
                    let t = DateTime::from_timestamp(t.0.as_second(), 0)?;
                    Some((member.to_string(), t))
                })
                .collect()
        });
        Self {
            ready_pods,
            reported_at,
        }
    }
}

fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn is_fresh(m: &MemberStatus, server: &ServerView, now: DateTime<Utc>) -> bool {
    let at = match &server.reported_at {
        Some(times) => times.get(&m.name).copied(),
        None => m
            .last_heartbeat
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
    };
    at.is_some_and(|t| now.signed_duration_since(t) <= Duration::seconds(HEARTBEAT_TIMEOUT_SECS))
}

/// Cluster health. `expected` are the pod names that should exist. A member is live when it
/// says it is ready, its report is fresh by server time, and its Pod is Ready: a crashed
/// pod's last "ready, sees everyone" report does not keep it live.
pub fn cluster_health(
    expected: &[String],
    members: &[MemberStatus],
    server: &ServerView,
    now: DateTime<Utc>,
) -> Health {
    if expected.is_empty() {
        return Health::Idle;
    }
    let expected_set: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    let live: BTreeMap<&str, String> = members
        .iter()
        .filter(|m| expected_set.contains(m.name.as_str()))
        .filter(|m| m.ready && server.ready_pods.contains(&m.name) && is_fresh(m, server, now))
        .map(|m| (m.name.as_str(), m.view().1))
        .collect();
    if live.is_empty() {
        let reported = members
            .iter()
            .any(|m| expected_set.contains(m.name.as_str()));
        return if reported {
            Health::Degraded {
                missing: expected.to_vec(),
            }
        } else {
            Health::Unknown
        };
    }
    // Members sharing a hash share a view. A group whose view is exactly its own members sees
    // nobody else: two such groups miss each other, which is a partition. Anything short of
    // that (one member still seeing a dead peer, a new one not yet seen) is not.
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, hash) in &live {
        groups.entry(hash.as_str()).or_default().push(name);
    }
    let mut closed: Vec<Vec<String>> = groups
        .iter()
        .filter(|(hash, names)| membership_hash(names.iter().copied()) == **hash)
        .map(|(_, names)| names.iter().map(|n| n.to_string()).collect())
        .collect();
    if closed.len() > 1 {
        closed.sort();
        return Health::Partitioned { groups: closed };
    }
    let everyone = membership_hash(live.keys().copied());
    let missing: Vec<String> = expected
        .iter()
        .filter(|n| live.get(n.as_str()) != Some(&everyone))
        .cloned()
        .collect();
    if missing.is_empty() {
        Health::Healthy
    } else {
        Health::Degraded { missing }
    }
}

/// How long a new health must hold before the status reports it: one late heartbeat or a pod
/// restarting must not flip the conditions (and page) back and forth.
pub const HEALTH_DEBOUNCE_SECS: i64 = 20;

/// A health seen but not reported yet, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub label: &'static str,
    pub since: DateTime<Utc>,
}

/// Whether to report `new` now, given the reported label and the pending one. Returns the
/// decision and what stays pending. The first report, and Idle (a scale to zero the user
/// asked for), are never held.
pub fn debounce(
    reported: Option<&str>,
    new: &Health,
    pending: Option<&Pending>,
    now: DateTime<Utc>,
) -> (bool, Option<Pending>) {
    let label = new.label();
    match reported {
        None => return (true, None),
        Some(r) if r == label || r == health::UNKNOWN || r == health::IDLE => return (true, None),
        _ if matches!(new, Health::Idle) => return (true, None),
        _ => {}
    }
    let since = match pending {
        Some(p) if p.label == label => p.since,
        _ => now,
    };
    if now.signed_duration_since(since) >= Duration::seconds(HEALTH_DEBOUNCE_SECS) {
        (true, None)
    } else {
        (false, Some(Pending { label, since }))
    }
}
