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
        ..Default::default()
    }
}

/// A member as current pods report it: a count and a hash of its view, no names.
fn hashed(name: &str, peers: &[&str], age_secs: i64) -> MemberStatus {
    let mut m = member(name, &[], age_secs);
    m.peer_count = Some(peers.len() as i32);
    m.view_hash = Some(erlmcp_crds::membership_hash(
        peers.iter().copied().chain([name]),
    ));
    m
}

/// What the server says when every member's Pod is Ready and it stored each report when the
/// report says (pod clocks right).
fn server_of(members: &[MemberStatus]) -> ServerView {
    ServerView {
        ready_pods: members.iter().map(|m| m.name.clone()).collect(),
        reported_at: Some(
            members
                .iter()
                .map(|m| {
                    let t = DateTime::parse_from_rfc3339(m.last_heartbeat.as_deref().unwrap());
                    (m.name.clone(), t.unwrap().with_timezone(&Utc))
                })
                .collect(),
        ),
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
    let members = c
        .status
        .as_ref()
        .map(|s| s.members.clone())
        .unwrap_or_default();
    compute(&Observed {
        cluster: c,
        statefulset,
        outcome,
        skipped: &[],
        server: &server_of(&members),
        pending: None,
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
    let h = cluster_health(
        &expected_pods(&cluster(3, vec![])),
        &members,
        &server_of(&members),
        now(),
    );
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

fn health_of(members: &[MemberStatus], server: &ServerView) -> Health {
    cluster_health(&expected_pods(&cluster(3, vec![])), members, server, now())
}

#[test]
fn hashed_views_agree_and_old_entries_read_the_same() {
    let hashed_members = vec![
        hashed("mcp-0", &["mcp-1", "mcp-2"], 5),
        hashed("mcp-1", &["mcp-0", "mcp-2"], 5),
        hashed("mcp-2", &["mcp-0", "mcp-1"], 5),
    ];
    assert_eq!(
        health_of(&hashed_members, &server_of(&hashed_members)),
        Health::Healthy
    );
    // Mid-upgrade: one old pod still writes names; it reads as the same view.
    let mut mixed = hashed_members.clone();
    mixed[2] = member("mcp-2", &["mcp-0", "mcp-1"], 5);
    assert_eq!(health_of(&mixed, &server_of(&mixed)), Health::Healthy);
}

#[test]
fn a_crashed_member_whose_last_report_is_fresh_is_not_live() {
    // mcp-2 crashed right after reporting "ready, sees everyone"; the others lost it.
    let members = vec![
        hashed("mcp-0", &["mcp-1"], 5),
        hashed("mcp-1", &["mcp-0"], 5),
        hashed("mcp-2", &["mcp-0", "mcp-1"], 5),
    ];
    let mut server = server_of(&members);
    assert!(
        matches!(health_of(&members, &server), Health::Degraded { .. }),
        "with its Pod Ready it is live but not seen: degraded, never partitioned"
    );
    server.ready_pods.remove("mcp-2");
    assert_eq!(
        health_of(&members, &server),
        Health::Degraded {
            missing: vec!["mcp-2".into()]
        },
        "one pod down is not a partition"
    );
}

#[test]
fn a_partition_needs_two_groups_that_each_miss_the_other() {
    let split = vec![
        hashed("mcp-0", &["mcp-1"], 5),
        hashed("mcp-1", &["mcp-0"], 5),
        hashed("mcp-2", &[], 5),
    ];
    assert_eq!(
        health_of(&split, &server_of(&split)),
        Health::Partitioned {
            groups: vec![vec!["mcp-0".into(), "mcp-1".into()], vec!["mcp-2".into()]]
        }
    );
    // mcp-2 sees everyone, the others do not see it (yet): one side misses, not both.
    let lagging = vec![
        hashed("mcp-0", &["mcp-1"], 5),
        hashed("mcp-1", &["mcp-0"], 5),
        hashed("mcp-2", &["mcp-0", "mcp-1"], 5),
    ];
    assert_eq!(
        health_of(&lagging, &server_of(&lagging)),
        Health::Degraded {
            missing: vec!["mcp-0".into(), "mcp-1".into()]
        },
        "the members that do not see every live member"
    );
}

#[test]
fn freshness_is_judged_by_server_time_not_pod_clocks() {
    let members = three_connected();
    let mut server = server_of(&members);
    // mcp-2's clock says it reported 5 s ago; the server stored its last report 5 min ago.
    server
        .reported_at
        .as_mut()
        .unwrap()
        .insert("mcp-2".into(), now() - Duration::seconds(300));
    assert_eq!(
        health_of(&members, &server),
        Health::Degraded {
            missing: vec!["mcp-0".into(), "mcp-1".into(), "mcp-2".into()]
        },
        "mcp-2 is gone; the others still list it, so nobody sees exactly the live set"
    );
    // Reports the server never stored (no managedFields entry) are not fresh either.
    server.reported_at.as_mut().unwrap().remove("mcp-0");
    assert!(matches!(
        health_of(&members, &server),
        Health::Degraded { .. }
    ));
}

#[test]
fn server_view_reads_member_managers_and_ready_pods() {
    use k8s_openapi::api::core::v1::Pod;
    let mut c = cluster(2, vec![]);
    c.metadata.managed_fields = Some(
        serde_json::from_value(serde_json::json!([
            {"manager": "erlmcp-member-mcp-0", "operation": "Apply", "time": "2026-11-23T09:59:30Z"},
            {"manager": "erlmcp-operator-status", "operation": "Apply", "time": "2026-11-23T09:00:00Z"},
        ]))
        .unwrap(),
    );
    let pod = |name: &str, ready: &str| -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}}))
        .unwrap()
    };
    let pods = [pod("mcp-0", "True"), pod("mcp-1", "False")];
    let v = ServerView::of(&c, &pods);
    assert_eq!(v.ready_pods.iter().collect::<Vec<_>>(), vec!["mcp-0"]);
    let times = v.reported_at.unwrap();
    assert_eq!(times.len(), 1);
    assert_eq!(times["mcp-0"], now() - Duration::seconds(30));

    // Read-modify-write reports (servers before 1.21): the last writer owns the whole list, so
    // the server's times say nothing per member and the pods' heartbeats are used instead.
    c.metadata.managed_fields = Some(
        serde_json::from_value(serde_json::json!([
            {"manager": "erlmcp-member-mcp-1", "operation": "Update", "time": "2026-11-23T09:59:30Z"},
        ]))
        .unwrap(),
    );
    assert_eq!(ServerView::of(&c, &pods).reported_at, None);
}

#[test]
fn a_health_change_is_reported_only_once_it_holds() {
    let healthy = three_connected();
    let mut c = cluster(3, healthy.clone());
    let s = sts(3, 3, 3, true);
    let first = observe(&c, Some(&s), &Outcome::Applied, now());
    assert_eq!(first.health.as_deref(), Some("Healthy"));
    c.status.as_mut().unwrap().conditions = first.conditions.clone();
    c.status.as_mut().unwrap().health = first.health.clone();
    // mcp-2's Pod stops being Ready.
    let mut server = server_of(&healthy);
    server.ready_pods.remove("mcp-2");
    let at = |secs: i64, pending: Option<&Pending>| {
        compute_debounced(&Observed {
            cluster: &c,
            statefulset: Some(&s),
            outcome: &Outcome::Applied,
            skipped: &[],
            server: &server,
            pending,
            now: now() + Duration::seconds(secs),
        })
    };
    let (held, pending) = at(1, None);
    assert_eq!(held.health.as_deref(), Some("Healthy"), "not yet");
    assert_eq!(get(&held, "ClusterHealthy"), get(&first, "ClusterHealthy"));
    let pending = pending.expect("the change is pending");
    let (still, again) = at(HEALTH_DEBOUNCE_SECS - 1, Some(&pending));
    assert_eq!(still.health.as_deref(), Some("Healthy"));
    assert_eq!(
        again.as_ref(),
        Some(&pending),
        "pending since the first sight"
    );
    let (reported, none) = at(HEALTH_DEBOUNCE_SECS + 1, Some(&pending));
    assert_eq!(reported.health.as_deref(), Some("Degraded"));
    assert_eq!(get(&reported, "ClusterHealthy").reason, "MembersMissing");
    assert!(none.is_none());
}
