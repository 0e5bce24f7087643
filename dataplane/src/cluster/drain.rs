//! Leaving the cluster: the preStop hook (`erlmcp drain`, through the loopback admin listener)
//! and SIGTERM both come here first.
//!
//! 1. Leave the ready set at once (`/ready` answers 503, so the endpoints controller drops the
//!    pod and the client Service stops sending new connections), and say so in `status.members`.
//! 2. Tell every peer (`POST /peer/v1/leave`), so they know the coming silence is a departure.
//! 3. Keep serving for the drain delay (`ERLMCP_DRAIN_DELAY_SECONDS`, 5 s): requests that still
//!    arrive while load balancers catch up are answered, not refused.
//!
//! Then SIGTERM (kubelet sends it when preStop returns) makes the server refuse new work with
//! `503 Retry-After`, finish what is in flight, close streams with a retry hint, and exit; the
//! member entry is removed on the way out. The pod's `terminationGracePeriodSeconds` (30 by
//! default) covers the delay plus `ERLMCP_DRAIN_SECONDS` (20).

use std::sync::Arc;

use super::ClusterNode;

/// Idempotent: the second call (SIGTERM after preStop) returns at once.
pub async fn leave(node: &Arc<ClusterNode>) {
    node.lifecycle().set_ready(false);
    if !node.begin_leave() {
        return;
    }
    tracing::info!(
        delay_ms = node.settings.drain_delay.as_millis() as u64,
        "leaving the cluster: not ready, telling peers"
    );
    node.announce_leave().await;
    tokio::time::sleep(node.settings.drain_delay).await;
}
