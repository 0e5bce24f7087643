//! A reconcile with the controller's caches in place, as `erlmcp-operator run` has them: what a
//! new cluster costs the API server, and that the reconcile after it (the converging requeue,
//! once the watches have delivered the children) costs nothing.

mod support;

use erlmcp_crds::ErlmcpCluster;
use erlmcp_operator::desired::{ServerCapabilities, CHECKSUM_ANNOTATION};
use erlmcp_operator::kinds;
use erlmcp_operator::stores::{self, ChildStores};
use erlmcp_operator::triggers::Scope;
use k8s_openapi::api::core::v1::Pod;
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher::Event;
use serde_json::json;
use support::fake_api::FakeApi;
use support::reconcile::*;

fn caps() -> ServerCapabilities {
    ServerCapabilities {
        service_monitor: false,
        prometheus_rule: false,
        cert_manager: false,
        ..Default::default()
    }
}

/// Synced, empty caches of every watched kind, registered for all namespaces; their writers,
/// to play the watches.
fn caches(ctx: &erlmcp_operator::reconcile::Context) -> Vec<(ApiResource, Writer<DynamicObject>)> {
    let mut writers = Vec::new();
    let mut kinds = Vec::new();
    for ar in kinds::watched(&caps()) {
        let mut w = Writer::<DynamicObject>::new(ar.clone());
        w.apply_watcher_event(&Event::Init);
        w.apply_watcher_event(&Event::InitDone);
        kinds.push((ar.clone(), w.as_reader()));
        writers.push((ar, w));
    }
    let (pods, mut pod_writer) = reflector::store::<Pod>();
    pod_writer.apply_watcher_event(&Event::Init);
    pod_writer.apply_watcher_event(&Event::InitDone);
    let (clusters, _) = reflector::store::<ErlmcpCluster>();
    let children = ChildStores { kinds, pods };
    assert!(children.synced());
    ctx.watched.add_scope("", Scope { clusters, children });
    writers
}

/// Play the child watches: every object of ours the fake holds, as the caches keep it.
fn deliver(api: &FakeApi, writers: &mut [(ApiResource, Writer<DynamicObject>)]) -> usize {
    let mut delivered = 0;
    for (ar, w) in writers.iter_mut() {
        let prefix = match ar.group.as_str() {
            "" => format!("/api/{}/namespaces/{NS}/{}/", ar.version, ar.plural),
            g => format!("/apis/{g}/{}/namespaces/{NS}/{}/", ar.version, ar.plural),
        };
        for o in api.objects_under(&prefix) {
            let mut o: DynamicObject = serde_json::from_value(o).unwrap();
            stores::slim_child(&ar.kind, &mut o);
            w.apply_watcher_event(&Event::Apply(o));
            delivered += 1;
        }
    }
    delivered
}

#[tokio::test]
async fn with_caches_a_new_cluster_costs_a_create_its_applies_and_a_status_write() {
    let (ctx, api) = start(caps());
    let mut writers = caches(&ctx);
    let c = cluster(json!({"replicas": 0}), 1);
    run(&c, &ctx).await.unwrap();
    let seen = take_requests(&api);
    let expected = vec![
        // The caches say there is no cookie: created at once, its data from the answer.
        "POST /api/v1/namespaces/prod/secrets",
        // No LIST of what we own, no GET of the StatefulSet: the caches have them. (No
        // PodDisruptionBudget: `replicas: 0`, as in e2e/bench/scale.sh.)
        "PATCH /api/v1/namespaces/prod/configmaps/mcp-config",
        "PATCH /api/v1/namespaces/prod/serviceaccounts/mcp-dataplane",
        "PATCH /apis/rbac.authorization.k8s.io/v1/namespaces/prod/roles/mcp-dataplane",
        "PATCH /apis/rbac.authorization.k8s.io/v1/namespaces/prod/rolebindings/mcp-dataplane",
        "PATCH /api/v1/namespaces/prod/services/mcp-headless",
        "PATCH /api/v1/namespaces/prod/services/mcp",
        "PATCH /apis/apps/v1/namespaces/prod/statefulsets/mcp",
        "PATCH /apis/networking.k8s.io/v1/namespaces/prod/networkpolicies/mcp",
        "PATCH /apis/erlmcp.io/v1alpha1/namespaces/prod/erlmcpclusters/mcp/status",
    ];
    assert_eq!(lines(&seen), expected);

    // The pod template's checksum covers the cookie as the server stored it.
    let cookie = api
        .get("/api/v1/namespaces/prod/secrets/mcp-cookie")
        .unwrap();
    assert!(cookie["data"]["cookie"]
        .as_str()
        .is_some_and(|c| c.len() > 64));
    let checksum = |seen: &[support::fake_api::Seen]| {
        statefulset_apply(seen).unwrap().body["spec"]["template"]["metadata"]["annotations"]
            [CHECKSUM_ANNOTATION]
            .clone()
    };
    let first = checksum(&seen);

    // One event for the new cluster, the cookie in it.
    let events = reasons(&api);
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0].starts_with("Created: created 9 objects: Secret mcp-cookie (generated once), "),
        "{events:?}"
    );

    // The watches deliver the children; the converging requeue reconciles the cluster as
    // stored: nothing to apply, nothing to write.
    assert_eq!(deliver(&api, &mut writers), 9);
    let stored: ErlmcpCluster = serde_json::from_value(
        api.get(&format!(
            "/apis/erlmcp.io/v1alpha1/namespaces/{NS}/erlmcpclusters/mcp"
        ))
        .unwrap(),
    )
    .unwrap();
    let stored = ErlmcpCluster {
        spec: c.spec.clone(),
        metadata: c.metadata.clone(),
        ..stored
    };
    run(&stored, &ctx).await.unwrap();
    let again = take_requests(&api);
    assert!(again.is_empty(), "{:?}", lines(&again));

    // A cookie deleted by hand is generated again, announced on its own, and rolls the pods.
    let deleted = api.remove("/api/v1/namespaces/prod/secrets/mcp-cookie");
    let mut gone: DynamicObject = serde_json::from_value(deleted.expect("stored")).unwrap();
    stores::slim_child("Secret", &mut gone);
    let (_, secrets) = writers
        .iter_mut()
        .find(|(ar, _)| ar.kind == "Secret")
        .unwrap();
    secrets.apply_watcher_event(&Event::Delete(gone));
    run(&stored, &ctx).await.unwrap();
    let seen = take_requests(&api);
    assert_eq!(
        seen[0].line(),
        "POST /api/v1/namespaces/prod/secrets",
        "{:?}",
        lines(&seen)
    );
    assert_ne!(checksum(&seen), first, "a new cookie rolls the pods");
    // The StatefulSet is known (from the caches' controller references), so it is updated,
    // not created; the cookie is announced on its own.
    let events = reasons(&api);
    assert_eq!(
        events[1..],
        [
            "Updated: updated StatefulSet mcp",
            "Created: created Secret mcp-cookie (generated once)"
        ],
        "{events:?}"
    );
}

#[tokio::test]
async fn with_caches_a_cookie_restored_without_our_labels_is_adopted_not_overwritten() {
    let (ctx, api) = start(caps());
    let _writers = caches(&ctx);
    // Restored from a backup: no labels of ours (so not in the caches), no owner.
    let restored = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "mcp-cookie", "namespace": NS, "uid": "restored-1", "resourceVersion": "1"},
        "data": {"cookie": "cmVzdG9yZWQtY29va2llLWtlcHQ="}});
    api.put("/api/v1/namespaces/prod/secrets/mcp-cookie", restored);
    run(&cluster(json!({"replicas": 0}), 1), &ctx)
        .await
        .unwrap();
    let seen = take_requests(&api);
    assert_eq!(
        lines(&seen[..4]),
        vec![
            // The caches miss it: the create is refused (409), then it is read and adopted.
            "POST /api/v1/namespaces/prod/secrets",
            "GET /api/v1/namespaces/prod/secrets/mcp-cookie",
            "PATCH /api/v1/namespaces/prod/secrets/mcp-cookie",
            // Its data for the pod template (the caches have not seen it yet).
            "GET /api/v1/namespaces/prod/secrets/mcp-cookie",
        ]
    );
    let cookie = api
        .get("/api/v1/namespaces/prod/secrets/mcp-cookie")
        .unwrap();
    assert_eq!(cookie["data"]["cookie"], "cmVzdG9yZWQtY29va2llLWtlcHQ=");
    assert_eq!(
        cookie["metadata"]["ownerReferences"][0]["kind"],
        "ErlmcpCluster"
    );
    let events = reasons(&api);
    assert!(
        events.contains(&"Adopted: adopted Secret mcp-cookie: its data is kept".to_string()),
        "{events:?}"
    );
}
