//! Leader election on a `coordination.k8s.io/v1` Lease (kube-lease-manager), so two replicas can
//! run: only the holder reconciles; followers stay live and ready.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Name of the Lease the replicas compete for.
pub const LEASE_NAME: &str = "erlmcp-operator-leader";

pub struct Leadership {
    pub is_leader: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, kube_lease_manager::LeaseManagerError>>,
}

impl Leadership {
    /// Start competing for the lease.
    pub async fn start(
        client: Client,
        namespace: &str,
        identity: &str,
        lease_seconds: u64,
    ) -> anyhow::Result<Self> {
        let manager = LeaseManagerBuilder::new(client, LEASE_NAME)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(lease_seconds)
            .with_grace((lease_seconds / 3).max(1))
            // Per replica: the lock is server-side apply's conflict between field managers, so
            // replicas sharing one manager would all "win" the lease.
            .with_field_manager(format!("erlmcp-operator-lease-{identity}"))
            .build()
            .await?;
        let (is_leader, task) = manager.watch().await;
        Ok(Self { is_leader, task })
    }

    /// Step down: closing the channel makes the manager release the lease so a follower takes
    /// over at once instead of waiting for it to expire.
    pub async fn release(self, timeout: Duration) {
        drop(self.is_leader);
        match tokio::time::timeout(timeout, self.task).await {
            Ok(Ok(Ok(_))) => tracing::info!("released the leader lease"),
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "could not release the leader lease"),
            Ok(Err(e)) => tracing::warn!(error = %e, "lease task failed"),
            Err(_) => tracing::warn!("timed out releasing the leader lease"),
        }
    }
}

/// This replica's identity: the pod name when it runs in a pod.
pub fn identity() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap_or_else(|_| "operator".into());
        format!("{}-{}", host.trim(), std::process::id())
    })
}
