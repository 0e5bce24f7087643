//! Day-two changes against the fake API, as request sequences: a session volume that grows
//! (claims expanded, the StatefulSet orphan-deleted and re-created), storage changes the
//! operator refuses, a scale-down one pod at a time, and a rollout that stalls past its deadline.

mod support;

use std::time::Duration;

use erlmcp_crds::ErlmcpClusterStatus;
use erlmcp_operator::desired::ServerCapabilities;
use kube::runtime::controller::Action;
use serde_json::{json, Value};
use support::fake_api::FakeApi;
use support::reconcile::*;

const PVCS: &str = "/api/v1/namespaces/prod/persistentvolumeclaims";

fn pvc(name: &str, instance: &str, size: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": NS, "labels": {
            "app.kubernetes.io/name": "erlmcp", "app.kubernetes.io/instance": instance}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}})
}

fn pvc_size(api: &FakeApi, name: &str) -> Value {
    api.get(&format!("{PVCS}/{name}")).unwrap()["spec"]["resources"]["requests"]["storage"].clone()
}

/// The StatefulSet controller's part: it has seen the spec and runs `pods` pods.
fn statefulset_runs(api: &FakeApi, pods: i64) {
    let mut sts = api.get(STS).unwrap();
    sts["status"] = json!({"replicas": pods, "observedGeneration": sts["metadata"]["generation"]});
    api.put(STS, sts);
}

#[tokio::test]
async fn a_larger_volume_expands_each_claim_then_recreates_the_statefulset_keeping_its_pods() {
    let (ctx, api) = start(ServerCapabilities::default());
    run(&cluster(json!({"storage": {"size": "1Gi"}}), 1), &ctx)
        .await
        .unwrap();
    for i in 0..3 {
        let name = format!("sessions-mcp-{i}");
        api.put(&format!("{PVCS}/{name}"), pvc(&name, "mcp", "1Gi"));
    }
    // Another cluster's claim, and one already larger: neither is touched.
    api.put(
        &format!("{PVCS}/sessions-other-0"),
        pvc("sessions-other-0", "other", "1Gi"),
    );
    take_requests(&api);

    let grown = cluster(json!({"storage": {"size": "2Gi"}}), 2);
    let action = run(&grown, &ctx).await.unwrap();
    let seen = take_requests(&api);
    let l = lines(&seen);
    let at = |line: &str| {
        l.iter()
            .position(|x| x == line)
            .unwrap_or_else(|| panic!("no {line} in {l:?}"))
    };
    let patches: Vec<usize> = (0..3)
        .map(|i| at(&format!("PATCH {PVCS}/sessions-mcp-{i}")))
        .collect();
    let delete = at(&format!("DELETE {STS}"));
    let reapply = l
        .iter()
        .rposition(|x| *x == format!("PATCH {STS}"))
        .expect("the StatefulSet is applied again");
    assert!(
        patches.iter().all(|&p| p < delete) && delete < reapply,
        "claims first, then the orphaning delete, then the re-creation: {l:?}"
    );
    for (i, &p) in patches.iter().enumerate() {
        assert_eq!(
            seen[p].body,
            json!({"spec": {"resources": {"requests": {"storage": "2Gi"}}}})
        );
        assert_eq!(pvc_size(&api, &format!("sessions-mcp-{i}")), "2Gi");
    }
    assert_eq!(pvc_size(&api, "sessions-other-0"), "1Gi");
    assert!(!l.iter().any(|x| x.contains("sessions-other-0")), "{l:?}");
    assert_eq!(
        seen[delete].body["propagationPolicy"], "Orphan",
        "the pods keep running: {}",
        seen[delete].body
    );
    let sts = api.get(STS).unwrap();
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "2Gi"
    );
    assert_eq!(condition(&seen, "ReconcileSuccess")["status"], "True");
    let events = reasons(&api);
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("StorageExpanding: expanding sessions 1Gi to 2Gi: 3 claims")),
        "{events:?}"
    );
    assert_ne!(action, Action::requeue(Duration::from_secs(600)));

    // Done: the next reconcile neither patches a claim nor deletes anything.
    run(&grown, &ctx).await.unwrap();
    let again = lines(&take_requests(&api));
    assert!(
        !again
            .iter()
            .any(|x| x.contains("persistentvolumeclaims/") || x.starts_with("DELETE")),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_claim_the_storage_class_cannot_expand_leaves_the_statefulset_in_place() {
    let (ctx, api) = start(ServerCapabilities::default());
    run(&cluster(json!({"storage": {"size": "1Gi"}}), 1), &ctx)
        .await
        .unwrap();
    api.put(
        &format!("{PVCS}/sessions-mcp-0"),
        pvc("sessions-mcp-0", "mcp", "1Gi"),
    );
    take_requests(&api);
    // What the server answers for a StorageClass without allowVolumeExpansion.
    api.fail_with(|m, p| (m == "PATCH" && p.contains("/persistentvolumeclaims/")).then_some(403));
    let action = run(&cluster(json!({"storage": {"size": "2Gi"}}), 2), &ctx)
        .await
        .unwrap();
    let seen = take_requests(&api);
    assert!(
        !lines(&seen)
            .iter()
            .any(|x| x.starts_with("DELETE") || *x == format!("PATCH {STS}")),
        "{:?}",
        lines(&seen)
    );
    assert!(api.get(STS).is_some());
    assert_eq!(condition(&seen, "ReconcileSuccess")["reason"], "Forbidden");
    assert_eq!(action, Action::requeue(Duration::from_secs(600)));
}

#[tokio::test]
async fn shrinking_adding_or_removing_storage_is_refused_with_a_reason_and_an_event() {
    let (ctx, api) = start(ServerCapabilities::default());
    run(&cluster(json!({"storage": {"size": "2Gi"}}), 1), &ctx)
        .await
        .unwrap();
    let before = api.get(STS).unwrap();
    take_requests(&api);
    for (generation, spec, says) in [
        (2, json!({"storage": {"size": "1Gi"}}), "cannot shrink"),
        (3, json!({}), "cannot be removed"),
    ] {
        let action = run(&cluster(spec, generation), &ctx).await.unwrap();
        let seen = take_requests(&api);
        let l = lines(&seen);
        assert!(statefulset_apply(&seen).is_none(), "{l:?}");
        assert!(!l.iter().any(|x| x.starts_with("DELETE")), "{l:?}");
        assert!(
            l.contains(&"PATCH /api/v1/namespaces/prod/configmaps/mcp-config".to_string()),
            "the other children are still applied: {l:?}"
        );
        let rs = condition(&seen, "ReconcileSuccess");
        assert_eq!(rs["status"], "False");
        assert_eq!(rs["reason"], "StorageChangeRefused");
        assert!(rs["message"].as_str().unwrap().contains(says), "{rs}");
        assert_eq!(condition(&seen, "Degraded")["status"], "True");
        assert_eq!(action, Action::requeue(Duration::from_secs(600)));
        // (The recorder folds repeats of a reason into one Event series: the note is the first's.)
        assert!(
            reasons(&api)
                .iter()
                .any(|e| e.starts_with("StorageChangeRefused: ") && e.contains("cannot shrink")),
            "{:?}",
            reasons(&api)
        );
    }
    assert_eq!(api.get(STS).unwrap()["spec"], before["spec"]);

    // Storage added to a cluster created without it.
    let (ctx, api) = start(ServerCapabilities::default());
    run(&cluster(json!({}), 1), &ctx).await.unwrap();
    take_requests(&api);
    run(&cluster(json!({"storage": {"size": "1Gi"}}), 2), &ctx)
        .await
        .unwrap();
    let seen = take_requests(&api);
    assert!(statefulset_apply(&seen).is_none());
    let rs = condition(&seen, "ReconcileSuccess");
    assert_eq!(rs["reason"], "StorageChangeRefused");
    assert!(rs["message"].as_str().unwrap().contains("cannot be added"));
}

#[tokio::test]
async fn claim_retention_policy_reaches_current_servers_only() {
    let spec = json!({"storage": {"size": "1Gi",
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Retain"}}});
    let (ctx, api) = start(ServerCapabilities::default());
    run(&cluster(spec.clone(), 1), &ctx).await.unwrap();
    let seen = take_requests(&api);
    assert_eq!(
        statefulset_apply(&seen).unwrap().body["spec"]["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Delete", "whenScaled": "Retain"})
    );
    let old = ServerCapabilities {
        pvc_retention_policy: false,
        ..Default::default()
    };
    let (ctx, api) = start(old);
    run(&cluster(spec, 1), &ctx).await.unwrap();
    let seen = take_requests(&api);
    let body = &statefulset_apply(&seen).unwrap().body;
    assert!(body["spec"]
        .get("persistentVolumeClaimRetentionPolicy")
        .is_none());
}

#[tokio::test]
async fn scale_down_removes_one_pod_at_a_time() {
    let (ctx, api) = start(ServerCapabilities::default());
    run(&cluster(json!({"replicas": 5}), 1), &ctx)
        .await
        .unwrap();
    statefulset_runs(&api, 5);
    take_requests(&api);
    let down = cluster(json!({"replicas": 2}), 2);
    let applied_replicas = |api: &FakeApi| {
        let seen = take_requests(api);
        statefulset_apply(&seen).unwrap().body["spec"]["replicas"].clone()
    };

    run(&down, &ctx).await.unwrap();
    assert_eq!(applied_replicas(&api), 4, "the highest pod first");
    // The fifth pod still drains (the controller reports 5): hold at 4.
    run(&down, &ctx).await.unwrap();
    assert_eq!(applied_replicas(&api), 4);
    statefulset_runs(&api, 4);
    run(&down, &ctx).await.unwrap();
    assert_eq!(applied_replicas(&api), 3);
    statefulset_runs(&api, 3);
    run(&down, &ctx).await.unwrap();
    assert_eq!(applied_replicas(&api), 2);
    statefulset_runs(&api, 2);
    run(&down, &ctx).await.unwrap();
    assert_eq!(applied_replicas(&api), 2, "and there it stays");
    // One event per step (the recorder folds them into one series, under the first note).
    let scaled: Vec<String> = reasons(&api)
        .into_iter()
        .filter(|e| e.starts_with("ScaledDown"))
        .collect();
    assert_eq!(scaled.len(), 3, "{scaled:?}");
    assert_eq!(scaled[0], "ScaledDown: scaled from 5 to 4 pods");
}

/// A rollout of 3 pods stuck at one updated (crash-looping), as the StatefulSet reports it.
fn rollout_stuck(api: &FakeApi) {
    let mut sts = api.get(STS).unwrap();
    sts["status"] = json!({"replicas": 3, "readyReplicas": 2, "updatedReplicas": 1,
        "currentRevision": "mcp-a", "updateRevision": "mcp-b",
        "observedGeneration": sts["metadata"]["generation"]});
    api.put(STS, sts);
}

#[tokio::test]
async fn a_stall_first_seen_by_a_status_refresh_is_announced_once() {
    let (ctx, api) = start(ServerCapabilities::default());
    let spec = json!({"replicas": 3, "progressDeadlineSeconds": 60});
    run(&cluster(spec.clone(), 2), &ctx).await.unwrap();
    rollout_stuck(&api);
    take_requests(&api);
    // A pod's change wakes the status refresh, not a reconcile, past the deadline.
    let mut c = cluster(spec, 2);
    c.status = Some(ErlmcpClusterStatus {
        observed_generation: Some(2),
        phase: Some("Updating".into()),
        replicas: Some(3),
        updated_replicas: Some(1),
        ready_replicas: Some(2),
        last_progress_time: Some((chrono::Utc::now() - chrono::Duration::minutes(10)).to_rfc3339()),
        ..Default::default()
    });
    assert!(erlmcp_operator::reconcile::refresh_status(&c, &ctx)
        .await
        .unwrap());
    let seen = take_requests(&api);
    assert_eq!(condition(&seen, "Progressing")["reason"], "RolloutStalled");
    let stalls = |api: &FakeApi| {
        reasons(api)
            .into_iter()
            .filter(|e| e.starts_with("RolloutStalled:"))
            .count()
    };
    assert_eq!(stalls(&api), 1, "{:?}", reasons(&api));
    // The next refresh and the next reconcile see the stalled status: no second event.
    let status = &seen
        .iter()
        .rev()
        .find(|s| s.path.ends_with("/status"))
        .unwrap()
        .body;
    c.status = serde_json::from_value(status["status"].clone()).unwrap();
    erlmcp_operator::reconcile::refresh_status(&c, &ctx)
        .await
        .unwrap();
    run(&c, &ctx).await.unwrap();
    assert_eq!(stalls(&api), 1, "{:?}", reasons(&api));
}

#[tokio::test]
async fn a_rollout_without_progress_past_its_deadline_is_stalled_and_held() {
    let (ctx, api) = start(ServerCapabilities::default());
    let spec = json!({"replicas": 3, "progressDeadlineSeconds": 60});
    run(&cluster(spec.clone(), 2), &ctx).await.unwrap();
    rollout_stuck(&api);
    take_requests(&api);

    // The previous status: the same rollout, last progress ten minutes ago.
    let mut c = cluster(spec.clone(), 2);
    let since = (chrono::Utc::now() - chrono::Duration::minutes(10)).to_rfc3339();
    c.status = Some(ErlmcpClusterStatus {
        observed_generation: Some(2),
        phase: Some("Updating".into()),
        replicas: Some(3),
        updated_replicas: Some(1),
        ready_replicas: Some(2),
        last_progress_time: Some(since.clone()),
        ..Default::default()
    });
    run(&c, &ctx).await.unwrap();
    let seen = take_requests(&api);
    let progressing = condition(&seen, "Progressing");
    assert_eq!(progressing["status"], "False");
    assert_eq!(progressing["reason"], "RolloutStalled");
    let degraded = condition(&seen, "Degraded");
    assert_eq!(degraded["status"], "True");
    assert_eq!(degraded["reason"], "RolloutStalled");
    let status = &seen
        .iter()
        .rev()
        .find(|s| s.path.ends_with("/status"))
        .unwrap()
        .body;
    assert_eq!(status["status"]["phase"], "Degraded");
    assert_eq!(status["status"]["lastProgressTime"], since.as_str());
    let stalls = |api: &FakeApi| {
        reasons(api)
            .into_iter()
            .filter(|e| e.starts_with("RolloutStalled:"))
            .count()
    };
    assert_eq!(stalls(&api), 1, "{:?}", reasons(&api));

    // The next reconcile sees that status: it holds the two old pods, and does not repeat
    // the event.
    c.status = serde_json::from_value(status["status"].clone()).unwrap();
    run(&c, &ctx).await.unwrap();
    let seen = take_requests(&api);
    assert_eq!(
        statefulset_apply(&seen).unwrap().body["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 2}})
    );
    assert_eq!(stalls(&api), 1);

    // The user reverts the spec (a new generation): the hold is released.
    let mut reverted = cluster(
        json!({"replicas": 3, "progressDeadlineSeconds": 60, "logging": {"level": "warn"}}),
        3,
    );
    reverted.status = c.status.clone();
    run(&reverted, &ctx).await.unwrap();
    let seen = take_requests(&api);
    assert_eq!(
        statefulset_apply(&seen).unwrap().body["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate"})
    );
    assert_eq!(condition(&seen, "Progressing")["status"], "True");
}
