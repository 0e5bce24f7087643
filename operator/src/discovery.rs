//! What the API server serves, asked once at start-up: which HPA and PDB versions, which fields
//! its version honours, and whether the optional CRDs (Prometheus Operator, cert-manager) are
//! installed.

use kube::Client;

use crate::desired::ServerCapabilities;

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

#[cfg(test)]
mod tests {
    use super::minor_version;

    #[test]
    fn minor_versions_of_managed_and_plain_servers() {
        assert_eq!(minor_version("1", "27"), Some(27));
        assert_eq!(minor_version("1", "20+"), Some(20));
        assert_eq!(minor_version("1", ""), None);
        assert_eq!(minor_version("2", "0"), None);
    }
}
