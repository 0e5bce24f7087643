//! The HorizontalPodAutoscaler. It targets the ErlmcpCluster itself through its scale
//! subresource (not the StatefulSet), so the operator stays the only writer of the StatefulSet.

use erlmcp_crds::ErlmcpCluster;
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec, MetricIdentifier, MetricSpec,
    MetricTarget, PodsMetricSource, ResourceMetricSource,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::{child_meta, BuildContext, Child, Names};

/// The per-pod metric the data plane exports and a custom-metrics adapter serves.
pub const SESSIONS_METRIC: &str = "erlmcp_sessions_active";

fn resource(name: &str, percent: i32) -> MetricSpec {
    MetricSpec {
        type_: "Resource".into(),
        resource: Some(ResourceMetricSource {
            name: name.into(),
            target: MetricTarget {
                type_: "Utilization".into(),
                average_utilization: Some(percent),
                ..Default::default()
            },
        }),
        ..Default::default()
    }
}

/// Scale up quickly; scale down one pod a minute after five quiet minutes, because every
/// removed pod ends the sessions it owns.
fn default_behavior() -> HorizontalPodAutoscalerBehavior {
    HorizontalPodAutoscalerBehavior {
        scale_down: Some(HPAScalingRules {
            stabilization_window_seconds: Some(300),
            select_policy: Some("Max".into()),
            policies: Some(vec![HPAScalingPolicy {
                type_: "Pods".into(),
                value: 1,
                period_seconds: 60,
            }]),
            ..Default::default()
        }),
        scale_up: Some(HPAScalingRules {
            stabilization_window_seconds: Some(0),
            select_policy: Some("Max".into()),
            policies: Some(vec![
                HPAScalingPolicy {
                    type_: "Percent".into(),
                    value: 100,
                    period_seconds: 30,
                },
                HPAScalingPolicy {
                    type_: "Pods".into(),
                    value: 4,
                    period_seconds: 30,
                },
            ]),
            ..Default::default()
        }),
    }
}

pub fn hpa(cluster: &ErlmcpCluster, names: &Names, ctx: &BuildContext) -> Option<Child> {
    let a = cluster.spec.autoscaling.as_ref().filter(|a| a.enabled)?;
    let mut metrics = Vec::new();
    if let Some(p) = a.target_cpu_utilization_percentage {
        metrics.push(resource("cpu", p));
    }
    if let Some(p) = a.target_memory_utilization_percentage {
        metrics.push(resource("memory", p));
    }
    if let Some(n) = a.target_sessions_per_pod {
        metrics.push(MetricSpec {
            type_: "Pods".into(),
            pods: Some(PodsMetricSource {
                metric: MetricIdentifier {
                    name: SESSIONS_METRIC.into(),
                    ..Default::default()
                },
                target: MetricTarget {
                    type_: "AverageValue".into(),
                    average_value: Some(Quantity(n.to_string())),
                    ..Default::default()
                },
            }),
            ..Default::default()
        });
    }
    let hpa = HorizontalPodAutoscaler {
        metadata: child_meta(cluster, &names.cluster),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some(format!("{}/{}", erlmcp_crds::GROUP, erlmcp_crds::VERSION)),
                kind: "ErlmcpCluster".into(),
                name: names.cluster.clone(),
            },
            min_replicas: Some(a.min_replicas),
            max_replicas: a.max_replicas,
            metrics: Some(metrics),
            behavior: Some(a.behavior.clone().unwrap_or_else(default_behavior)),
        }),
        ..Default::default()
    };
    Some(Child::new(
        &ctx.capabilities.hpa_api_version,
        "HorizontalPodAutoscaler",
        &hpa,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{fixtures, ServerCapabilities};
    use serde_json::json;

    #[test]
    fn off_by_default() {
        let c = fixtures::minimal();
        assert!(hpa(
            &c,
            &Names::of(&c),
            &BuildContext::new(ServerCapabilities::default())
        )
        .is_none());
    }

    #[test]
    fn targets_the_cluster_scale_subresource_with_every_metric() {
        let c = fixtures::cluster(
            r#"
metadata: {name: auto}
spec:
  autoscaling: {minReplicas: 3, maxReplicas: 20, targetCPUUtilizationPercentage: 70,
                targetMemoryUtilizationPercentage: 80, targetSessionsPerPod: 500}
"#,
        );
        let mut ctx = BuildContext::new(ServerCapabilities::default());
        ctx.capabilities.hpa_api_version = "autoscaling/v2beta2".into();
        let h = hpa(&c, &Names::of(&c), &ctx).unwrap();
        assert_eq!(h.object["apiVersion"], "autoscaling/v2beta2");
        let spec = &h.object["spec"];
        assert_eq!(
            spec["scaleTargetRef"],
            json!({"apiVersion": "erlmcp.io/v1alpha1", "kind": "ErlmcpCluster", "name": "auto"})
        );
        assert_eq!(spec["minReplicas"], 3);
        assert_eq!(spec["maxReplicas"], 20);
        assert_eq!(spec["metrics"][0]["resource"]["name"], "cpu");
        assert_eq!(
            spec["metrics"][0]["resource"]["target"]["averageUtilization"],
            70
        );
        assert_eq!(spec["metrics"][1]["resource"]["name"], "memory");
        assert_eq!(
            spec["metrics"][2]["pods"]["metric"]["name"],
            "erlmcp_sessions_active"
        );
        assert_eq!(spec["metrics"][2]["pods"]["target"]["averageValue"], "500");
        assert_eq!(
            spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
            300
        );
    }
}
