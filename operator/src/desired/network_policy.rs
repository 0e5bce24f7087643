//! NetworkPolicy: peers reach peers on the peer port, clients reach the MCP ports, scrapers the
//! metrics port; every other ingress is denied. `extraIngress` widens it.

use erlmcp_crds::{ErlmcpCluster, METRICS_PORT};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{child_meta, selector_labels, Child, Names};

fn tcp(port: u16) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port as i32)),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

pub fn network_policy(cluster: &ErlmcpCluster, names: &Names) -> Child {
    let spec = &cluster.spec;
    let np = &spec.network_policy;
    let pods = LabelSelector {
        match_labels: Some(selector_labels(cluster)),
        ..Default::default()
    };
    let mut mcp_ports = vec![tcp(spec.mcp.transports.port)];
    if spec.mcp.transports.tcp.enabled {
        mcp_ports.push(tcp(spec.mcp.transports.tcp.port));
    }
    let mut ingress = vec![
        NetworkPolicyIngressRule {
            from: Some(vec![NetworkPolicyPeer {
                pod_selector: Some(pods.clone()),
                ..Default::default()
            }]),
            ports: Some(vec![tcp(spec.cluster.port)]),
        },
        // `from` unset means any source: the default for clients and scrapers.
        NetworkPolicyIngressRule {
            from: np.clients.clone(),
            ports: Some(mcp_ports),
        },
        NetworkPolicyIngressRule {
            from: np.metrics_scrapers.clone(),
            ports: Some(vec![tcp(METRICS_PORT)]),
        },
    ];
    ingress.extend(np.extra_ingress.iter().cloned());
    let policy = NetworkPolicy {
        metadata: child_meta(cluster, &names.cluster),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(pods),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(ingress),
            ..Default::default()
        }),
    };
    Child::new("networking.k8s.io/v1", "NetworkPolicy", &policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::fixtures;
    use serde_json::json;

    #[test]
    fn peers_clients_and_scrapers_each_get_their_port_only() {
        let c = fixtures::cluster(
            r#"
metadata: {name: np}
spec:
  networkPolicy:
    clients: [{namespaceSelector: {matchLabels: {team: agents}}}]
    extraIngress: [{ports: [{port: 9090, protocol: TCP}]}]
"#,
        );
        let p = network_policy(&c, &Names::of(&c)).object;
        let spec = &p["spec"];
        assert_eq!(spec["policyTypes"], json!(["Ingress"]));
        let rules = spec["ingress"].as_array().unwrap();
        assert_eq!(rules.len(), 4);
        assert_eq!(
            rules[0]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"],
            "np"
        );
        assert_eq!(
            rules[0]["ports"],
            json!([{"port": 9200, "protocol": "TCP"}])
        );
        assert_eq!(
            rules[1]["from"][0]["namespaceSelector"]["matchLabels"]["team"],
            "agents"
        );
        assert_eq!(
            rules[1]["ports"],
            json!([{"port": 8080, "protocol": "TCP"}])
        );
        assert!(rules[2].get("from").is_none(), "scrapers default to anyone");
        assert_eq!(
            rules[2]["ports"],
            json!([{"port": 9100, "protocol": "TCP"}])
        );
        assert_eq!(
            rules[3]["ports"][0]["port"], 9090,
            "extra rules are appended"
        );
    }
}
