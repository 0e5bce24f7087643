//! The PodDisruptionBudget: at most one pod voluntarily down by default.

use erlmcp_crds::ErlmcpCluster;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{child_meta, selector_labels, BuildContext, Child, Names};

/// None when disabled or when a budget would only block node drains (a single pod).
pub fn pdb(cluster: &ErlmcpCluster, names: &Names, ctx: &BuildContext) -> Option<Child> {
    let spec = &cluster.spec;
    let p = &spec.pod_disruption_budget;
    let min_pods = spec
        .autoscaling
        .as_ref()
        .filter(|a| a.enabled)
        .map_or(spec.replicas, |a| a.min_replicas.max(spec.replicas));
    if !p.enabled || min_pods <= 1 {
        return None;
    }
    let (min_available, max_unavailable) = match (&p.min_available, &p.max_unavailable) {
        (Some(min), _) => (Some(min.clone()), None),
        (None, Some(max)) => (None, Some(max.clone())),
        (None, None) => (None, Some(IntOrString::Int(1))),
    };
    let pdb = PodDisruptionBudget {
        metadata: child_meta(cluster, &names.cluster),
        spec: Some(PodDisruptionBudgetSpec {
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(cluster)),
                ..Default::default()
            }),
            min_available,
            max_unavailable,
            // A pod that never got Ready (crash loop, bad config) must not block node drains:
            // evicting it cannot make things worse. Only servers that honour it get the field.
            unhealthy_pod_eviction_policy: ctx
                .capabilities
                .pdb_unhealthy_pod_eviction_policy
                .then(|| "AlwaysAllow".to_string()),
        }),
        ..Default::default()
    };
    Some(Child::new(
        &ctx.capabilities.pdb_api_version,
        "PodDisruptionBudget",
        &pdb,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{fixtures, ServerCapabilities};

    fn ctx() -> BuildContext {
        BuildContext::new(ServerCapabilities::default())
    }

    #[test]
    fn defaults_to_max_unavailable_one() {
        let c = fixtures::minimal();
        let p = pdb(&c, &Names::of(&c), &ctx()).unwrap();
        assert_eq!(p.api_version, "policy/v1");
        assert_eq!(p.object["spec"]["maxUnavailable"], 1);
        assert!(p.object["spec"].get("minAvailable").is_none());
    }

    #[test]
    fn unhealthy_pods_are_evictable_on_servers_that_honour_it() {
        let c = fixtures::minimal();
        let current = pdb(&c, &Names::of(&c), &ctx()).unwrap();
        assert_eq!(
            current.object["spec"]["unhealthyPodEvictionPolicy"],
            "AlwaysAllow"
        );
        let mut old = ctx();
        old.capabilities.pdb_unhealthy_pod_eviction_policy = false;
        let p = pdb(&c, &Names::of(&c), &old).unwrap();
        assert!(
            p.object["spec"].get("unhealthyPodEvictionPolicy").is_none(),
            "{}",
            p.object
        );
    }

    #[test]
    fn no_budget_for_one_pod_or_when_disabled() {
        let mut c = fixtures::minimal();
        c.spec.replicas = 1;
        assert!(pdb(&c, &Names::of(&c), &ctx()).is_none());
        c.spec.replicas = 0;
        assert!(pdb(&c, &Names::of(&c), &ctx()).is_none());
        c.spec.replicas = 3;
        c.spec.pod_disruption_budget.enabled = false;
        assert!(pdb(&c, &Names::of(&c), &ctx()).is_none());
    }

    #[test]
    fn production_uses_min_available_and_beta_fallback() {
        let c = fixtures::production();
        let mut cx = ctx();
        cx.capabilities.pdb_api_version = "policy/v1beta1".into();
        let p = pdb(&c, &Names::of(&c), &cx).unwrap();
        assert_eq!(p.api_version, "policy/v1beta1");
        assert_eq!(p.object["apiVersion"], "policy/v1beta1");
        assert_eq!(p.object["spec"]["minAvailable"], 2);
        assert!(p.object["spec"].get("maxUnavailable").is_none());
    }
}
