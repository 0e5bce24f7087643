//! Disaster recovery, drilled on the real control plane: each case is a step of the README's
//! "Disaster recovery" runbook, done the way a user does it (kubectl, a backup YAML, etcdctl).
//!
//! - Everything but the CR deleted: the operator rebuilds it; with the generated Secrets kept
//!   or restored from a backup the cookie and CA are the same bytes, so the pods' checksum (and
//!   what peers and clients trust) does not move; sessions on kept claims survive.
//! - The namespace deleted and restored from Git plus a Secret backup: the Secrets are adopted.
//! - An etcd snapshot restored into a new data dir: the cluster comes back without a roll.
//!
//! The etcd drill stops the whole plane, so it takes [`PLANE`] exclusively; the others share it.

#[path = "disaster_recovery/support.rs"]
mod support;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use erlmcp_e2e::TestEnv;
use support::*;
use tokio::sync::RwLock;

/// Held shared by the drills that need the plane up, exclusively by the one that stops it.
static PLANE: RwLock<()> = RwLock::const_new(());

// ---------------------------------------------------------------------------------------------
// Drills
// ---------------------------------------------------------------------------------------------

/// Drill 1. Everything but the CR deleted, twice: first with the generated Secrets and the
/// session claims kept (the StatefulSet is re-created; a session opened before lives on), then
/// everything including Secrets and claims, the Secrets restored from their backup while the
/// operator is stopped. Both times: Ready again, the same Secret bytes, the same checksum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_deleted_the_operator_rebuilds_with_the_same_cookie_and_ca() -> Result<()> {
    let _plane = PLANE.read().await;
    let env = TestEnv::get();
    env.install_crd()?;
    let ns = env.namespace("dr-children").await?;
    let home = env.namespace("dr-children-op").await?;
    let mut op = Operator::start(env, &ns, &home, "op-dr-1")?;
    let cr = "apiVersion: erlmcp.io/v1alpha1\nkind: ErlmcpCluster\nmetadata: {name: dr}\nspec: {replicas: 2, storage: {size: 1Gi}, tls: {operatorCa: {}}}\n";
    env.apply(&ns, cr).await?;
    let c = wait_ready(env, &ns, "dr", 2).await?;
    let secrets = generated_secrets("dr");
    let claims: Vec<String> = (0..2).map(|i| format!("sessions-dr-{i}")).collect();
    let data = secret_data(env, &ns, &secrets).await?;
    let (set, before) = rollout_state(env, &ns, "dr").await?;
    ensure!(
        set["checksum"].as_str().is_some_and(|s| !s.is_empty()),
        "{set}"
    );
    let ps = pods(env, &ns, "dr").await?;
    let session = open_session(pod_addr(&ps[0], 8080)?).await?;
    echo(pod_addr(&ps[0], 8080)?, &session, "before the disaster").await?;
    let backup = env.run_dir.join(format!("{}-secrets-backup.yaml", ns.name));
    backup_secrets(env, &ns, &secrets, &backup)?;

    // 1a. Secrets and claims kept; the operator, running, rebuilds at once.
    delete_children(env, &ns, "dr", CHILD_KINDS, &[])?;
    wait_rebuilt(env, &ns, "dr", &set, &before).await?;
    wait_ready(env, &ns, "dr", 2).await?;
    let (set_a, after_a) = rollout_state(env, &ns, "dr").await?;
    ensure!(set_a["uid"] != set["uid"], "the StatefulSet was re-created");
    ensure!(
        set_a["checksum"] == set["checksum"],
        "same config and Secrets: {set} -> {set_a}"
    );
    for (b, a) in before.iter().zip(&after_a) {
        ensure!(
            a["uid"] != b["uid"] && a["checksum"] == set["checksum"],
            "pods: {b} -> {a}"
        );
    }
    ensure!(
        secret_data(env, &ns, &secrets).await? == data,
        "the kept Secrets changed"
    );
    let ps = pods(env, &ns, "dr").await?;
    for p in &ps {
        // The owner (pod 0) restored it from its claim; the other pod forwards to it.
        echo(pod_addr(p, 8080)?, &session, "after the re-creation").await?;
    }

    // 1b. Everything, Secrets and claims too; the runbook restores the Secrets with the operator
    // stopped (a running one would generate a new cookie first), then starts it.
    drop(op);
    delete_children(env, &ns, "dr", &format!("{CHILD_KINDS},secrets"), &claims)?;
    wait_gone(env, &ns, "dr", &format!("{CHILD_KINDS},secrets"), &claims).await?;
    restore(env, &backup)?;
    op = Operator::start(env, &ns, &home, "op-dr-1b")?;
    wait_rebuilt(env, &ns, "dr", &set_a, &after_a).await?;
    wait_ready(env, &ns, "dr", 2).await?;
    let (set_b, _) = rollout_state(env, &ns, "dr").await?;
    ensure!(
        set_b["checksum"] == set["checksum"],
        "restored Secrets: {set} -> {set_b}"
    );
    ensure!(
        secret_data(env, &ns, &secrets).await? == data,
        "the restored Secrets were rewritten"
    );
    ensure!(
        owned_by(env, &ns, &secrets, &uid_of(&c)).await?,
        "the restored Secrets were not adopted"
    );
    ensure!(op.reconciles().await? >= 1.0);
    Ok(())
}

/// Drill 2. The namespace deleted; restored from Git (the CR) and the Secret backup, Secrets
/// first: the operator adopts them (its controller reference, their data kept) instead of
/// generating new ones, and the pods come back with the same checksum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_restored_from_git_and_a_secret_backup_adopts_the_secrets() -> Result<()> {
    let _plane = PLANE.read().await;
    let env = TestEnv::get();
    env.install_crd()?;
    let ns = env.namespace("dr-ns").await?;
    let home = env.namespace("dr-ns-op").await?;
    let _op = Operator::start(env, &ns, &home, "op-dr-2")?;
    let cr = "apiVersion: erlmcp.io/v1alpha1\nkind: ErlmcpCluster\nmetadata: {name: gitops}\nspec: {replicas: 2, tls: {operatorCa: {}}}\n";
    env.apply(&ns, cr).await?;
    let c = wait_ready(env, &ns, "gitops", 2).await?;
    let secrets = generated_secrets("gitops");
    let data = secret_data(env, &ns, &secrets).await?;
    let (set, _) = rollout_state(env, &ns, "gitops").await?;
    let backup = env.run_dir.join(format!("{}-secrets-backup.yaml", ns.name));
    backup_secrets(env, &ns, &secrets, &backup)?;

    env.kubectl(&["delete", "namespace", &ns, "--wait=false"])?;
    env.wait_for(
        "the namespace gone",
        Duration::from_secs(180),
        None,
        || async {
            Ok(env
                .kubectl(&["get", "namespace", &ns, "-o", "name"])
                .is_err()
                .then_some(()))
        },
    )
    .await?;

    env.kubectl(&["create", "namespace", &ns])?;
    restore(env, &backup)?;
    env.apply(&ns, cr).await?;
    let c2 = wait_ready(env, &ns, "gitops", 2).await?;
    ensure!(uid_of(&c2) != uid_of(&c), "a new CR");
    ensure!(
        secret_data(env, &ns, &secrets).await? == data,
        "the Secrets were regenerated"
    );
    ensure!(
        owned_by(env, &ns, &secrets, &uid_of(&c2)).await?,
        "the Secrets were not adopted"
    );
    let (set2, pods2) = rollout_state(env, &ns, "gitops").await?;
    ensure!(set2["checksum"] == set["checksum"], "{set} -> {set2}");
    ensure!(
        pods2.iter().all(|p| p["checksum"] == set["checksum"]),
        "{pods2:?}"
    );
    let events = env.kubectl(&[
        "-n",
        &ns,
        "get",
        "events",
        "--field-selector",
        "reason=Adopted",
        "-o",
        "name",
    ])?;
    ensure!(
        events.lines().count() >= secrets.len(),
        "Adopted events: {events}"
    );
    Ok(())
}

/// Drill 3. `etcdctl snapshot save` of the running plane; the plane stopped, its etcd data
/// deleted, the snapshot restored into a new data dir and every component restarted (the
/// operator too, as etcd's restore guidance says for every watching client). The cluster is
/// Ready again with its cookie, and nothing rolled: the same StatefulSet generation and
/// checksum, the same pods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_snapshot_restored_the_cluster_returns_without_a_roll() -> Result<()> {
    let env = TestEnv::get();
    env.install_crd()?;
    let plane = env
        .local_plane
        .clone()
        .context("this drill restores the local plane's etcd: run it without KUBECONFIG")?;
    let ns = env.namespace("dr-etcd").await?;
    let home = env.namespace("dr-etcd-op").await?;
    let op = Operator::start(env, &ns, &home, "op-dr-3")?;
    env.apply(
        &ns,
        "apiVersion: erlmcp.io/v1alpha1\nkind: ErlmcpCluster\nmetadata: {name: snap}\nspec: {replicas: 2}\n",
    )
    .await?;
    wait_ready(env, &ns, "snap", 2).await?;
    let secrets = vec!["snap-cookie".to_string()];
    let data = secret_data(env, &ns, &secrets).await?;
    let before = rollout_state(env, &ns, "snap").await?;

    let _plane = PLANE.write().await;
    let snapshot = env.run_dir.join("etcd-snapshot.db");
    etcd_script(env, "snapshot", &plane, &snapshot).await?;
    drop(op);
    etcd_script(env, "restore", &plane, &snapshot).await?;
    let restored_at = chrono::Utc::now();
    let op = Operator::start(env, &ns, &home, "op-dr-3-restored")?;
    // The restored status said Ready before the disaster: wait for both pods to report again.
    env.wait_for(
        "both members heard from after the restore",
        READY_WITHIN,
        Some(&ns),
        || async {
            let c = serde_json::to_value(clusters(env, &ns).get("snap").await?)?;
            let fresh = c["status"]["members"].as_array().is_some_and(|ms| {
                ms.len() == 2
                    && ms.iter().all(|m| {
                        m["ready"] == true
                            && m["lastHeartbeat"]
                                .as_str()
                                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                                .is_some_and(|t| t > restored_at)
                    })
            });
            Ok(fresh.then_some(()))
        },
    )
    .await?;
    wait_ready(env, &ns, "snap", 2).await?;
    env.wait_for(
        "a reconcile after the restore",
        Duration::from_secs(60),
        Some(&ns),
        || async { Ok((op.reconciles().await? >= 1.0).then_some(())) },
    )
    .await?;
    ensure!(
        secret_data(env, &ns, &secrets).await? == data,
        "the cookie changed"
    );
    let after = rollout_state(env, &ns, "snap").await?;
    ensure!(after == before, "the pods rolled: {before:?} -> {after:?}");
    Ok(())
}
