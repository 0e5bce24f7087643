//! The progress deadline, pure (Deployment's `progressDeadlineSeconds`, for a StatefulSet): a
//! rollout that makes no progress (no pod updated, none became ready) for that long is stalled.
//! A stalled rollout is reported (`Progressing=False` RolloutStalled, `Degraded=True`, an event)
//! and held: the pods not yet updated stay on the old template until the spec changes (revert it
//! to roll back) or the rollout moves again.

use chrono::{DateTime, Utc};
use erlmcp_crds::status::condition;
use erlmcp_crds::{ErlmcpCluster, ErlmcpClusterStatus};

use super::Rollout;

/// Condition reason (Progressing and Degraded) and event reason of a stalled rollout.
pub const STALLED: &str = "RolloutStalled";
/// Used when the spec carries none (objects built in code rather than decoded).
pub const DEFAULT_DEADLINE_SECS: i64 = 600;

/// Where the rollout stands against its deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// When it last made progress; None when no rollout is under way.
    pub last: Option<DateTime<Utc>>,
    pub stalled: bool,
}

pub fn deadline_secs(cluster: &ErlmcpCluster) -> i64 {
    match cluster.spec.progress_deadline_seconds {
        s if s > 0 => s,
        _ => DEFAULT_DEADLINE_SECS,
    }
}

/// Judge the rollout from what this status computation sees and what the previous one wrote.
pub fn progress(
    cluster: &ErlmcpCluster,
    old: &ErlmcpClusterStatus,
    now_rollout: &Rollout,
    progressing: bool,
    now: DateTime<Utc>,
) -> Progress {
    if !progressing {
        return Progress {
            last: None,
            stalled: false,
        };
    }
    let previous = old
        .last_progress_time
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    // A new spec is a new rollout; more pods updated or ready is progress, and so is a pod
    // more or less (a scale-down steps one pod at a time).
    let moved = old.observed_generation != cluster.metadata.generation
        || now_rollout.updated > old.updated_replicas.unwrap_or(0)
        || now_rollout.ready > old.ready_replicas.unwrap_or(0)
        || Some(now_rollout.replicas) != old.replicas;
    let last = match previous {
        Some(t) if !moved => t,
        _ => now,
    };
    let stalled = (now - last).num_seconds() > deadline_secs(cluster);
    Progress {
        last: Some(last),
        stalled,
    }
}

/// The partition that holds a stalled rollout: the pods below it (the ones not yet updated)
/// keep the old template. Read from the status the previous reconcile wrote, for the same
/// generation only, so that any spec change (a revert) releases it.
pub fn partition_hold(cluster: &ErlmcpCluster) -> Option<i32> {
    let st = cluster.status.as_ref()?;
    let stalled = st.conditions.iter().any(|c| {
        c.type_ == condition::PROGRESSING
            && c.status == "False"
            && c.reason == STALLED
            && c.observed_generation == cluster.metadata.generation
    });
    if !stalled || st.observed_generation != cluster.metadata.generation {
        return None;
    }
    let updated = st.updated_replicas.unwrap_or(0);
    Some((cluster.spec.replicas - updated).max(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + Duration::seconds(secs)
    }

    fn cluster(generation: i64, deadline: i64) -> ErlmcpCluster {
        let mut c = ErlmcpCluster::new("mcp", Default::default());
        c.metadata.generation = Some(generation);
        c.spec.replicas = 3;
        c.spec.progress_deadline_seconds = deadline;
        c
    }

    fn old(generation: i64, updated: i32, ready: i32, last: DateTime<Utc>) -> ErlmcpClusterStatus {
        ErlmcpClusterStatus {
            observed_generation: Some(generation),
            replicas: Some(3),
            updated_replicas: Some(updated),
            ready_replicas: Some(ready),
            last_progress_time: Some(last.to_rfc3339()),
            ..Default::default()
        }
    }

    fn rollout(updated: i32, ready: i32) -> Rollout {
        Rollout {
            replicas: 3,
            ready,
            updated,
            complete: false,
        }
    }

    #[test]
    fn no_progress_past_the_deadline_is_stalled() {
        let c = cluster(2, 120);
        let before = old(2, 1, 2, at(0));
        let p = progress(&c, &before, &rollout(1, 2), true, at(60));
        assert_eq!(
            p,
            Progress {
                last: Some(at(0)),
                stalled: false
            }
        );
        let p = progress(&c, &before, &rollout(1, 2), true, at(121));
        assert_eq!(
            p,
            Progress {
                last: Some(at(0)),
                stalled: true
            }
        );
    }

    #[test]
    fn progress_or_a_new_spec_restarts_the_clock() {
        let c = cluster(2, 120);
        let before = old(2, 1, 2, at(0));
        let p = progress(&c, &before, &rollout(2, 2), true, at(500));
        assert_eq!(
            p,
            Progress {
                last: Some(at(500)),
                stalled: false
            }
        );
        let p = progress(&c, &before, &rollout(1, 3), true, at(500));
        assert!(!p.stalled, "a pod became ready");
        let mut fewer = rollout(1, 2);
        fewer.replicas = 2;
        assert!(
            !progress(&c, &before, &fewer, true, at(500)).stalled,
            "a pod less"
        );
        let reverted = cluster(3, 120);
        let p = progress(&reverted, &before, &rollout(1, 2), true, at(500));
        assert_eq!(
            p,
            Progress {
                last: Some(at(500)),
                stalled: false
            }
        );
    }

    #[test]
    fn no_rollout_no_clock_and_the_default_deadline_applies() {
        let c = cluster(2, 0);
        let before = old(2, 1, 2, at(0));
        assert_eq!(
            progress(&c, &before, &rollout(3, 3), false, at(9999)),
            Progress {
                last: None,
                stalled: false
            }
        );
        assert!(!progress(&c, &before, &rollout(1, 2), true, at(600)).stalled);
        assert!(progress(&c, &before, &rollout(1, 2), true, at(601)).stalled);
    }

    fn stalled_status(generation: i64, updated: i32) -> ErlmcpClusterStatus {
        ErlmcpClusterStatus {
            observed_generation: Some(generation),
            updated_replicas: Some(updated),
            conditions: vec![Condition {
                type_: condition::PROGRESSING.into(),
                status: "False".into(),
                reason: STALLED.into(),
                message: String::new(),
                observed_generation: Some(generation),
                last_transition_time: Time(Default::default()),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_stalled_rollout_holds_the_old_pods_until_the_spec_changes() {
        let mut c = cluster(2, 600);
        assert_eq!(partition_hold(&c), None, "no status yet");
        c.status = Some(stalled_status(2, 1));
        assert_eq!(
            partition_hold(&c),
            Some(2),
            "pods 0 and 1 keep the old template"
        );
        c.metadata.generation = Some(3);
        assert_eq!(
            partition_hold(&c),
            None,
            "a reverted spec releases the hold"
        );
    }
}
