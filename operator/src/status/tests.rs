//! Status aggregation from fixture clusters, StatefulSets and member reports.

use super::*;
use chrono::Duration;
use erlmcp_crds::MemberStatus;
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
