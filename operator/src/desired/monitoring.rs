//! Prometheus Operator objects: a ServiceMonitor for the pods, a PrometheusRule with the alerts
//! of the original erlmcp v3 deployment guides, rewritten for our metric names. Only when asked and only when their CRDs are served.

use erlmcp_crds::ErlmcpCluster;
use serde_json::{json, Value};

use super::{child_meta, selector_labels, BuildContext, Child, Desired, Names};

const API: &str = "monitoring.coreos.com/v1";

fn meta_with(
    cluster: &ErlmcpCluster,
    name: &str,
    extra: &std::collections::BTreeMap<String, String>,
) -> Value {
    let mut meta = child_meta(cluster, name);
    if let Some(labels) = meta.labels.as_mut() {
        for (k, v) in extra {
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    serde_json::to_value(meta).expect("meta serialises")
}

/// The original erlmcp v3 alerts (service down, error rate, latency, memory, partition), per cluster.
pub fn alert_rules(cluster_name: &str, namespace: &str) -> Value {
    let sel = format!("namespace=\"{namespace}\",erlmcp_cluster=\"{cluster_name}\"");
    // Aggregations keep the cluster's labels, so an alert says which cluster it is about.
    let by = "namespace, erlmcp_cluster";
    json!([
        {"alert": "ErlmcpServiceDown",
         "expr": format!("up{{{sel}}} == 0"), "for": "1m",
         "labels": {"severity": "critical"},
         "annotations": {"summary": "erlmcp pod is down", "description": "{{ $labels.pod }} has not answered scrapes for 1 minute"}},
        {"alert": "ErlmcpHighErrorRate",
         "expr": format!("sum by ({by}) (rate(erlmcp_request_errors_total{{{sel}}}[5m])) / clamp_min(sum by ({by}) (rate(erlmcp_requests_total{{{sel}}}[5m])), 1e-9) > 0.01"), "for": "5m",
         "labels": {"severity": "warning"},
         "annotations": {"summary": "High MCP error rate", "description": "{{ $value | humanizePercentage }} of requests fail"}},
        {"alert": "ErlmcpHighLatency",
         "expr": format!("histogram_quantile(0.99, sum by ({by}, le) (rate(erlmcp_request_duration_seconds_bucket{{{sel}}}[5m]))) > 1"), "for": "5m",
         "labels": {"severity": "warning"},
         "annotations": {"summary": "High MCP request latency", "description": "p99 latency is {{ $value }}s"}},
        {"alert": "ErlmcpMemoryPressure",
         "expr": format!("max by ({by}, pod) (erlmcp_memory_total{{{sel}}}) / on (namespace, pod) group_left max by (namespace, pod) (kube_pod_container_resource_limits{{resource=\"memory\",namespace=\"{namespace}\",container=\"erlmcp\"}}) > 0.8"), "for": "5m",
         "labels": {"severity": "warning"},
         "annotations": {"summary": "erlmcp memory above 80% of its limit", "description": "{{ $labels.pod }} uses {{ $value | humanizePercentage }} of its memory limit"}},
        {"alert": "ErlmcpClusterPartition",
         "expr": format!("max by ({by}) (erlmcp_cluster_nodes{{{sel}}}) < count by ({by}) (erlmcp_cluster_nodes{{{sel}}})"), "for": "2m",
         "labels": {"severity": "critical"},
         "annotations": {"summary": "erlmcp cluster partition", "description": "the best-connected member sees only {{ $value }} nodes: the members are split"}},
    ])
}

pub fn monitoring(cluster: &ErlmcpCluster, names: &Names, ctx: &BuildContext, d: &mut Desired) {
    let m = &cluster.spec.monitoring;
    if let Some(sm) = m.service_monitor.as_ref().filter(|s| s.enabled) {
        if ctx.capabilities.service_monitor {
            let object = json!({
                "apiVersion": API, "kind": "ServiceMonitor",
                "metadata": meta_with(cluster, &names.cluster, &sm.labels),
                "spec": {
                    "selector": {"matchLabels": selector_labels(cluster)},
                    "namespaceSelector": {"matchNames": [names.namespace]},
                    "endpoints": [{"port": "metrics", "path": "/metrics", "interval": sm.interval}],
                    "targetLabels": ["app.kubernetes.io/instance"],
                    "podTargetLabels": [],
                    "jobLabel": "app.kubernetes.io/name",
                },
            });
            // The headless Service exposes the metrics port; relabel the instance into erlmcp_cluster.
            let mut object = object;
            object["spec"]["endpoints"][0]["relabelings"] = json!([
                {"sourceLabels": ["__meta_kubernetes_service_label_app_kubernetes_io_instance"], "targetLabel": "erlmcp_cluster"}
            ]);
            d.apply.push(Child {
                api_version: API.into(),
                kind: "ServiceMonitor".into(),
                name: names.cluster.clone(),
                object,
            });
        } else {
            d.skipped.push("ServiceMonitor: monitoring.coreos.com/v1 is not served (install the Prometheus Operator CRDs)".into());
        }
    }
    if let Some(pr) = m.prometheus_rule.as_ref().filter(|p| p.enabled) {
        if ctx.capabilities.prometheus_rule {
            let object = json!({
                "apiVersion": API, "kind": "PrometheusRule",
                "metadata": meta_with(cluster, &names.cluster, &pr.labels),
                "spec": {"groups": [{"name": format!("erlmcp-{}", names.cluster), "interval": "30s",
                                      "rules": alert_rules(&names.cluster, &names.namespace)}]},
            });
            d.apply.push(Child {
                api_version: API.into(),
                kind: "PrometheusRule".into(),
                name: names.cluster.clone(),
                object,
            });
        } else {
            d.skipped.push("PrometheusRule: monitoring.coreos.com/v1 is not served (install the Prometheus Operator CRDs)".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{build, fixtures, ServerCapabilities};

    fn with_monitoring() -> ErlmcpCluster {
        fixtures::cluster(
            "metadata: {name: m}\nspec:\n  monitoring: {serviceMonitor: {labels: {release: prom}}, prometheusRule: {}}\n",
        )
    }

    #[test]
    fn applied_when_served() {
        let c = with_monitoring();
        let d = build(&c, &BuildContext::new(ServerCapabilities::default()));
        let sm = d.find("ServiceMonitor").unwrap();
        assert_eq!(sm.object["metadata"]["labels"]["release"], "prom");
        assert_eq!(sm.object["spec"]["endpoints"][0]["port"], "metrics");
        let pr = d.find("PrometheusRule").unwrap();
        let alerts: Vec<&str> = pr.object["spec"]["groups"][0]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["alert"].as_str().unwrap())
            .collect();
        assert_eq!(
            alerts,
            [
                "ErlmcpServiceDown",
                "ErlmcpHighErrorRate",
                "ErlmcpHighLatency",
                "ErlmcpMemoryPressure",
                "ErlmcpClusterPartition"
            ]
        );
        assert!(d.skipped.is_empty());
    }

    #[test]
    fn skipped_with_a_reason_when_not_served() {
        let c = with_monitoring();
        let caps = ServerCapabilities {
            service_monitor: false,
            prometheus_rule: false,
            ..Default::default()
        };
        let d = build(&c, &BuildContext::new(caps));
        assert!(d.find("ServiceMonitor").is_none());
        assert!(d.find("PrometheusRule").is_none());
        assert_eq!(d.skipped.len(), 2);
        assert!(d.skipped[0].contains("not served"));
    }
}
