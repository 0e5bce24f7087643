//! What the API server serves, asked at start-up: which HPA and PDB versions, which fields its
//! version honours, and whether the optional CRDs (Prometheus Operator, cert-manager) are
//! installed. The optional CRDs are asked again every [`REDISCOVERY_INTERVAL`], so one
//! installed after the operator started is used without a restart.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::desired::ServerCapabilities;
use crate::reconcile::Context;

/// How often the optional CRDs are looked for again: a few discovery requests, cheap enough to
/// pick up a `helm install kube-prometheus-stack` within minutes.
pub const REDISCOVERY_INTERVAL: Duration = Duration::from_secs(180);

/// Whether `group/version` serves `kind`.
async fn serves(client: &Client, group_version: &str, kind: &str) -> kube::Result<bool> {
    match client.list_api_group_resources(group_version).await {
        Ok(list) => Ok(list
            .resources
            .iter()
            .any(|r| r.kind == kind && !r.name.contains('/'))),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Probe the server. Errors other than "not served" are returned (the operator retries).
pub async fn capabilities(client: &Client) -> kube::Result<ServerCapabilities> {
    let hpa_api_version = if serves(client, "autoscaling/v2", "HorizontalPodAutoscaler").await? {
        "autoscaling/v2"
    } else {
        "autoscaling/v2beta2"
    };
    let pdb_api_version = if serves(client, "policy/v1", "PodDisruptionBudget").await? {
        "policy/v1"
    } else {
        "policy/v1beta1"
    };
    let version = client.apiserver_version().await?;
    let minor = minor_version(&version.major, &version.minor);
    Ok(ServerCapabilities {
        hpa_api_version: hpa_api_version.into(),
        pdb_api_version: pdb_api_version.into(),
        service_monitor: serves(client, "monitoring.coreos.com/v1", "ServiceMonitor").await?,
        prometheus_rule: serves(client, "monitoring.coreos.com/v1", "PrometheusRule").await?,
        cert_manager: serves(client, "cert-manager.io/v1", "Certificate").await?,
        pdb_unhealthy_pod_eviction_policy: minor.is_some_and(|m| m >= 27),
        pvc_retention_policy: minor.is_some_and(|m| m >= 23),
    })
}

/// The minor version of a 1.x server: "27+" (managed offerings) counts as 27; unknown is None.
fn minor_version(major: &str, minor: &str) -> Option<u32> {
    if major != "1" {
        return None;
    }
    let digits: String = minor.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// What a later discovery changes: only the optional CRD kinds (the HPA and PDB versions are
/// watched from the start and stay as they were). `None` when nothing changed.
pub fn optional_kinds_changed(
    current: &ServerCapabilities,
    found: &ServerCapabilities,
) -> Option<ServerCapabilities> {
    let next = ServerCapabilities {
        service_monitor: found.service_monitor,
        prometheus_rule: found.prometheus_rule,
        cert_manager: found.cert_manager,
        ..current.clone()
    };
    (next != *current).then_some(next)
}

/// Discover again and take over a change of the optional kinds; true when something changed.
pub async fn rediscover(ctx: &Context) -> kube::Result<bool> {
    let found = capabilities(&ctx.client).await?;
    let Some(next) = optional_kinds_changed(&ctx.capabilities(), &found) else {
        return Ok(false);
    };
    info!(
        service_monitor = next.service_monitor,
        prometheus_rule = next.prometheus_rule,
        cert_manager = next.cert_manager,
        "optional CRDs changed: reconciling every cluster"
    );
    ctx.set_capabilities(next);
    Ok(true)
}

/// Rediscover every `interval` until `stop`; each change bumps `changed` (the controllers
/// reconcile every cluster on it). A failed discovery is retried on the next tick.
pub async fn run_rediscovery(
    ctx: Arc<Context>,
    interval: Duration,
    changed: watch::Sender<()>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tick.tick() => {}
        }
        match rediscover(&ctx).await {
            Ok(true) => changed.send_replace(()),
            Ok(false) => {}
            Err(e) => warn!(error = %e, "rediscovery failed; trying again next time"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{minor_version, optional_kinds_changed, ServerCapabilities};

    #[test]
    fn only_a_change_of_the_optional_kinds_counts() {
        let none = ServerCapabilities {
            service_monitor: false,
            prometheus_rule: false,
            cert_manager: false,
            ..ServerCapabilities::default()
        };
        assert_eq!(optional_kinds_changed(&none, &none), None);
        // Prometheus Operator installed later.
        let prom = ServerCapabilities {
            service_monitor: true,
            prometheus_rule: true,
            ..none.clone()
        };
        assert_eq!(optional_kinds_changed(&none, &prom), Some(prom.clone()));
        // And removed again.
        assert_eq!(optional_kinds_changed(&prom, &none), Some(none.clone()));
        // A server upgrade's new API versions are not taken over: the watches use the old ones.
        let upgraded = ServerCapabilities {
            hpa_api_version: "autoscaling/v3".into(),
            ..none.clone()
        };
        assert_eq!(optional_kinds_changed(&none, &upgraded), None);
    }

    #[test]
    fn minor_versions_of_managed_and_plain_servers() {
        assert_eq!(minor_version("1", "27"), Some(27));
        assert_eq!(minor_version("1", "20+"), Some(20));
        assert_eq!(minor_version("1", ""), None);
        assert_eq!(minor_version("2", "0"), None);
    }
}
