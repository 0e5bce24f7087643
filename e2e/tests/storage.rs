//! Session volumes on real claims against a real API server (the pod runner provisions and
//! resizes them): what a user sees when they change `spec.storage`.
//!
//! The test runs its own operator process, watching only its namespace.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use erlmcp_e2e::cluster::{cluster_obj, clusters, condition, pods_matching, wait_ready};
use erlmcp_e2e::operator::Operator;
use erlmcp_e2e::TestEnv;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

async fn pods(env: &TestEnv, ns: &str) -> Result<Vec<Pod>> {
    pods_matching(env, ns, "app.kubernetes.io/name=erlmcp").await
}

/// Session volumes on real claims (the pod runner provisions and resizes them): a larger
/// `storage.size` expands every claim and re-creates the StatefulSet without restarting a pod;
/// a shrink is refused with a reason (and removing storage too, by CEL where the server has it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_grows_in_place_and_refuses_to_shrink() -> Result<()> {
    let env = TestEnv::get();
    env.install_crd()?;
    let ns = env.namespace("vol").await?;
    let ns = ns.name.clone();
    let _op = Operator::start(env, &ns, &ns, "op-vol")?;
    env.apply(
        &ns,
        "apiVersion: erlmcp.io/v1alpha1\nkind: ErlmcpCluster\nmetadata: {name: vol}\nspec: {replicas: 2, storage: {size: 1Gi}}\n",
    )
    .await?;
    wait_ready(env, &ns, "vol", 2, Duration::from_secs(180)).await?;
    let claims: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        Api::namespaced(env.client(), &ns);
    let claim_sizes = || async {
        let mut out = Vec::new();
        for i in 0..2 {
            let c = serde_json::to_value(claims.get(&format!("sessions-vol-{i}")).await?)?;
            out.push((
                c["status"]["phase"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                c["spec"]["resources"]["requests"]["storage"].clone(),
                c["status"]["capacity"]["storage"].clone(),
            ));
        }
        anyhow::Ok(out)
    };
    for (phase, _, cap) in claim_sizes().await? {
        ensure!(phase == "Bound" && cap == "1Gi", "{phase} {cap}");
    }
    let sets: Api<StatefulSet> = Api::namespaced(env.client(), &ns);
    let sts_uid = sets.get("vol").await?.uid();
    let pod_uids: Vec<Option<String>> = pods(env, &ns).await?.iter().map(|p| p.uid()).collect();

    let grow = json!({"spec": {"storage": {"size": "2Gi"}}});
    clusters(env, &ns)
        .patch("vol", &PatchParams::default(), &Patch::Merge(&grow))
        .await?;
    env.wait_for(
        "claims at 2Gi and the StatefulSet re-created",
        Duration::from_secs(120),
        Some(&ns),
        || async {
            let sizes = claim_sizes().await?;
            let grown = sizes
                .iter()
                .all(|(_, req, cap)| req == "2Gi" && cap == "2Gi");
            let sts = sets.get_opt("vol").await?;
            let recreated = sts.as_ref().is_some_and(|s| {
                s.uid() != sts_uid
                    && serde_json::to_value(s).unwrap()["spec"]["volumeClaimTemplates"][0]["spec"]
                        ["resources"]["requests"]["storage"]
                        == "2Gi"
            });
            Ok((grown && recreated).then_some(()))
        },
    )
    .await?;
    wait_ready(env, &ns, "vol", 2, Duration::from_secs(120)).await?;
    let after: Vec<Option<String>> = pods(env, &ns).await?.iter().map(|p| p.uid()).collect();
    ensure!(
        after == pod_uids,
        "no pod restarted: {pod_uids:?} -> {after:?}"
    );

    let shrink = json!({"spec": {"storage": {"size": "1Gi"}}});
    clusters(env, &ns)
        .patch("vol", &PatchParams::default(), &Patch::Merge(&shrink))
        .await?;
    let c = env
        .wait_for(
            "the shrink refused",
            Duration::from_secs(60),
            Some(&ns),
            || async {
                let c = cluster_obj(env, &ns, "vol").await?;
                let refused = c["status"]["observedGeneration"] == c["metadata"]["generation"]
                    && condition(&c, "ReconcileSuccess")
                        .is_some_and(|r| r["reason"] == "StorageChangeRefused");
                Ok(refused.then_some(c))
            },
        )
        .await?;
    let message = condition(&c, "ReconcileSuccess").unwrap()["message"].clone();
    ensure!(
        message.as_str().unwrap_or_default().contains("shrink"),
        "{message}"
    );
    let sts = serde_json::to_value(sets.get("vol").await?)?;
    ensure!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "2Gi",
        "the StatefulSet is left alone"
    );

    // Removing storage: refused at the door by the CRD's transition rule where CEL runs (1.25+).
    let version = env.client().apiserver_version().await?;
    let minor: u32 = version.minor.trim_end_matches('+').parse().unwrap_or(0);
    let remove = json!({"spec": {"storage": null}});
    let r = clusters(env, &ns)
        .patch("vol", &PatchParams::default(), &Patch::Merge(&remove))
        .await;
    if minor >= 25 {
        let e = r
            .err()
            .context("removing storage must be rejected by CEL")?;
        ensure!(e.to_string().contains("cannot be added or removed"), "{e}");
    } else {
        r?;
        env.wait_for(
            "removal refused",
            Duration::from_secs(60),
            Some(&ns),
            || async {
                let c = cluster_obj(env, &ns, "vol").await?;
                let refused = c["status"]["observedGeneration"] == c["metadata"]["generation"]
                    && condition(&c, "ReconcileSuccess").is_some_and(|r| {
                        r["message"]
                            .as_str()
                            .unwrap_or_default()
                            .contains("cannot be removed")
                    });
                Ok(refused.then_some(()))
            },
        )
        .await?;
    }
    Ok(())
}
