//! The headless Service (stable pod DNS, peer discovery) and the client Service.

use erlmcp_crds::{ErlmcpCluster, METRICS_PORT};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{child_meta, selector_labels, strategic_merge, Child, Names};

fn svc_port(name: &str, port: u16) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port: port as i32,
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

/// Headless: every pod gets `<pod>.<name>-headless.<ns>.svc`, and not-ready pods are published
/// too, so peers find each other while they start.
pub fn headless(cluster: &ErlmcpCluster, names: &Names) -> Child {
    let spec = &cluster.spec;
    let svc = Service {
        metadata: child_meta(cluster, &names.headless),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(cluster)),
            ports: Some(vec![
                svc_port("peer", spec.cluster.port),
                svc_port("mcp", spec.mcp.transports.port),
                svc_port("metrics", METRICS_PORT),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    };
    Child::new("v1", "Service", &svc)
}

/// The client Service: MCP ports of ready pods. No session affinity needed: pods forward
/// session requests to the owner.
pub fn client(cluster: &ErlmcpCluster, names: &Names) -> Child {
    let spec = &cluster.spec;
    let mut meta = child_meta(cluster, &names.client_service);
    if !spec.service.labels.is_empty() {
        let mut labels = spec.service.labels.clone();
        labels.extend(meta.labels.take().unwrap_or_default());
        meta.labels = Some(labels);
    }
    if !spec.service.annotations.is_empty() {
        meta.annotations = Some(spec.service.annotations.clone());
    }
    let mut ports = vec![svc_port("mcp", spec.mcp.transports.port)];
    if spec.mcp.transports.tcp.enabled {
        ports.push(svc_port("mcp-tcp", spec.mcp.transports.tcp.port));
    }
    let svc = Service {
        metadata: meta,
        spec: Some(ServiceSpec {
            type_: Some(spec.service.type_.clone()),
            selector: Some(selector_labels(cluster)),
            ports: Some(ports),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut child = Child::new("v1", "Service", &svc);
    if let Some(patch) = spec.override_.as_ref().and_then(|o| o.service.as_ref()) {
        strategic_merge(&mut child.object, patch);
    }
    child
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::fixtures;
    use serde_json::json;

    #[test]
    fn headless_publishes_not_ready_peers() {
        let c = fixtures::minimal();
        let h = headless(&c, &Names::of(&c)).object;
        assert_eq!(h["metadata"]["name"], "mcp-headless");
        assert_eq!(h["spec"]["clusterIP"], "None");
        assert_eq!(h["spec"]["publishNotReadyAddresses"], true);
        assert_eq!(
            h["spec"]["ports"][0],
            json!({"name": "peer", "port": 9200, "targetPort": "peer", "protocol": "TCP"})
        );
    }

    #[test]
    fn client_service_follows_spec() {
        let mut c = fixtures::minimal();
        c.spec.service.type_ = "LoadBalancer".into();
        c.spec
            .service
            .annotations
            .insert("lb.example/internal".into(), "true".into());
        c.spec.mcp.transports.tcp.enabled = true;
        let s = client(&c, &Names::of(&c)).object;
        assert_eq!(s["spec"]["type"], "LoadBalancer");
        assert_eq!(s["metadata"]["annotations"]["lb.example/internal"], "true");
        let ports: Vec<_> = s["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["port"].as_i64().unwrap())
            .collect();
        assert_eq!(ports, vec![8080, 8081]);
        assert!(s["spec"].get("sessionAffinity").is_none());
    }
}
