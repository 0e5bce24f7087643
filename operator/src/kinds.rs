//! The kinds of child the operator manages, listed once: their plural resource names, the API
//! version each is served at, and whether the controller watches them. Listing for pruning,
//! applying and the controller's watches all read this table.

use kube::core::{ApiResource, GroupVersionKind};

use crate::desired::ServerCapabilities;

/// One kind of child.
pub struct ManagedKind {
    pub kind: &'static str,
    pub plural: &'static str,
    /// The group/version this server serves it at; None when the server lacks the kind.
    pub served: fn(&ServerCapabilities) -> Option<String>,
    /// The controller watches it, so a change to a child re-reconciles its owner. The optional
    /// CRD kinds are not watched: only applied and pruned.
    pub watched: bool,
}

/// Every managed kind, in the order children are listed.
pub const MANAGED: &[ManagedKind] = &[
    ManagedKind {
        kind: "StatefulSet",
        plural: "statefulsets",
        served: |_| Some("apps/v1".into()),
        watched: true,
    },
    ManagedKind {
        kind: "Service",
        plural: "services",
        served: |_| Some("v1".into()),
        watched: true,
    },
    ManagedKind {
        kind: "ConfigMap",
        plural: "configmaps",
        served: |_| Some("v1".into()),
        watched: true,
    },
    ManagedKind {
        kind: "Secret",
        plural: "secrets",
        served: |_| Some("v1".into()),
        watched: true,
    },
    ManagedKind {
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        served: |_| Some("v1".into()),
        watched: true,
    },
    ManagedKind {
        kind: "Role",
        plural: "roles",
        served: |_| Some("rbac.authorization.k8s.io/v1".into()),
        watched: true,
    },
    ManagedKind {
        kind: "RoleBinding",
        plural: "rolebindings",
        served: |_| Some("rbac.authorization.k8s.io/v1".into()),
        watched: true,
    },
    ManagedKind {
        kind: "NetworkPolicy",
        plural: "networkpolicies",
        served: |_| Some("networking.k8s.io/v1".into()),
        watched: true,
    },
    ManagedKind {
        kind: "PodDisruptionBudget",
        plural: "poddisruptionbudgets",
        served: |c| Some(c.pdb_api_version.clone()),
        watched: true,
    },
    ManagedKind {
        kind: "HorizontalPodAutoscaler",
        plural: "horizontalpodautoscalers",
        served: |c| Some(c.hpa_api_version.clone()),
        watched: true,
    },
    ManagedKind {
        kind: "ServiceMonitor",
        plural: "servicemonitors",
        served: |c| c.service_monitor.then(|| "monitoring.coreos.com/v1".into()),
        watched: false,
    },
    ManagedKind {
        kind: "PrometheusRule",
        plural: "prometheusrules",
        served: |c| c.prometheus_rule.then(|| "monitoring.coreos.com/v1".into()),
        watched: false,
    },
    ManagedKind {
        kind: "Certificate",
        plural: "certificates",
        served: |c| c.cert_manager.then(|| "cert-manager.io/v1".into()),
        watched: false,
    },
];

/// Plural resource name of a managed kind.
fn plural(kind: &str) -> &'static str {
    MANAGED
        .iter()
        .find(|k| k.kind == kind)
        .map(|k| k.plural)
        .unwrap_or_else(|| panic!("unmanaged kind {kind}"))
}

/// The API resource of `kind` at `api_version`.
pub fn api_resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural(kind))
}

/// Every kind the operator may own, as (api version, kind), at the versions this server serves.
pub fn managed_kinds(caps: &ServerCapabilities) -> Vec<(String, String)> {
    MANAGED
        .iter()
        .filter_map(|k| (k.served)(caps).map(|v| (v, k.kind.to_string())))
        .collect()
}

/// The API resources the controller watches for changes to children.
pub fn watched(caps: &ServerCapabilities) -> Vec<ApiResource> {
    MANAGED
        .iter()
        .filter(|k| k.watched)
        .filter_map(|k| (k.served)(caps).map(|v| api_resource(&v, k.kind)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired;

    #[test]
    fn plurals_cover_every_built_kind() {
        let c = desired::fixtures::production();
        let d = desired::build(
            &c,
            &desired::BuildContext::new(ServerCapabilities::default()),
        );
        for child in d.all() {
            let ar = api_resource(&child.api_version, &child.kind);
            assert_eq!(ar.kind, child.kind);
            assert!(
                managed_kinds(&ServerCapabilities::default())
                    .iter()
                    .any(|(_, k)| k == &child.kind),
                "{}",
                child.kind
            );
        }
        assert_eq!(
            api_resource("policy/v1beta1", "PodDisruptionBudget").group,
            "policy"
        );
        assert_eq!(api_resource("v1", "Service").group, "");
        assert_eq!(
            api_resource("networking.k8s.io/v1", "NetworkPolicy").plural,
            "networkpolicies"
        );
    }

    #[test]
    fn the_controller_watches_every_core_kind_but_not_the_optional_crds() {
        let watched: Vec<String> = watched(&ServerCapabilities::default())
            .into_iter()
            .map(|ar| ar.kind)
            .collect();
        let managed = managed_kinds(&ServerCapabilities::default());
        assert_eq!(watched.len(), managed.len() - 3, "{watched:?}");
        for optional in ["ServiceMonitor", "PrometheusRule", "Certificate"] {
            assert!(managed.iter().any(|(_, k)| k == optional));
            assert!(!watched.iter().any(|k| k == optional), "{optional}");
        }
    }
}
