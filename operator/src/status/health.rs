//! Cluster health as the members report it: who is live, and whether they all see one membership.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use erlmcp_crds::status::health;
use erlmcp_crds::MemberStatus;

/// A member whose last heartbeat is older than this counts as gone (pods write every ~30 s).
pub const HEARTBEAT_TIMEOUT_SECS: i64 = 90;

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
            Health::Idle => health::IDLE,
            Health::Unknown => health::UNKNOWN,
            Health::Healthy => health::HEALTHY,
            Health::Degraded { .. } => health::DEGRADED,
            Health::Partitioned { .. } => health::PARTITIONED,
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
