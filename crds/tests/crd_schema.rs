//! What the generated CRD must carry for users and for Kubernetes.

use erlmcp_crds::{ErlmcpCluster, ErlmcpClusterSpec};
use kube::CustomResourceExt;
use serde_json::Value;

fn crd() -> Value {
    serde_json::to_value(ErlmcpCluster::crd()).unwrap()
}

fn version() -> Value {
    crd()["spec"]["versions"][0].clone()
}

fn schema() -> Value {
    version()["schema"]["openAPIV3Schema"].clone()
}

#[test]
fn names_short_name_and_category() {
    let c = crd();
    assert_eq!(c["metadata"]["name"], "erlmcpclusters.erlmcp.io");
    assert_eq!(c["spec"]["scope"], "Namespaced");
    assert_eq!(c["spec"]["names"]["shortNames"], serde_json::json!(["emc"]));
    assert_eq!(
        c["spec"]["names"]["categories"],
        serde_json::json!(["erlmcp"])
    );
    assert_eq!(version()["name"], "v1alpha1");
}

#[test]
fn status_and_scale_subresources() {
    let sub = &version()["subresources"];
    assert!(sub["status"].is_object());
    assert_eq!(sub["scale"]["specReplicasPath"], ".spec.replicas");
    assert_eq!(sub["scale"]["statusReplicasPath"], ".status.replicas");
    assert_eq!(sub["scale"]["labelSelectorPath"], ".status.selector");
}

#[test]
fn printer_columns() {
    let cols: Vec<String> = version()["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        cols,
        ["Replicas", "Ready", "Phase", "Health", "Version", "Age"]
    );
}

#[test]
fn members_and_conditions_are_list_maps() {
    let status = &schema()["properties"]["status"]["properties"];
    assert_eq!(status["members"]["x-kubernetes-list-type"], "map");
    assert_eq!(
        status["members"]["x-kubernetes-list-map-keys"],
        serde_json::json!(["name"])
    );
    assert_eq!(status["conditions"]["x-kubernetes-list-type"], "map");
    assert_eq!(
        status["conditions"]["x-kubernetes-list-map-keys"],
        serde_json::json!(["type"])
    );
    let required = status["members"]["items"]["required"].as_array().unwrap();
    assert!(
        required.contains(&Value::String("name".into())),
        "list-map keys must be required"
    );
}

#[test]
fn cel_rules_guard_cross_field_constraints() {
    let spec = &schema()["properties"]["spec"]["properties"];
    let rules = |v: &Value| -> String { v["x-kubernetes-validations"].to_string() };
    assert!(rules(&spec["autoscaling"]).contains("self.minReplicas <= self.maxReplicas"));
    assert!(rules(&spec["podDisruptionBudget"])
        .contains("!(has(self.minAvailable) && has(self.maxUnavailable))"));
    assert!(rules(&spec["tls"]).contains("has(self.secretName)"));
    assert!(rules(&spec["mcp"]["properties"]["auth"]).contains("bearerToken"));
    let tool = &spec["mcp"]["properties"]["tools"]["items"]["properties"]["backend"];
    assert!(rules(tool).contains("has(self.builtin)"));
}

#[test]
fn defaults_and_descriptions_are_in_the_schema() {
    let spec = &schema()["properties"]["spec"];
    let props = &spec["properties"];
    assert_eq!(props["replicas"]["default"], 3);
    assert_eq!(props["terminationGracePeriodSeconds"]["default"], 30);
    assert_eq!(props["cluster"]["properties"]["port"]["default"], 9200);
    assert_eq!(
        props["mcp"]["properties"]["transports"]["properties"]["port"]["default"],
        8080
    );
    // Every spec field a user sets is described (kubectl explain).
    fn walk(path: &str, v: &Value, missing: &mut Vec<String>) {
        if let Some(props) = v.get("properties").and_then(Value::as_object) {
            for (k, p) in props {
                let here = format!("{path}.{k}");
                if p.get("description").is_none() {
                    missing.push(here.clone());
                }
                // k8s-openapi types are documented upstream; only our own tree matters here.
                if !here.contains("affinity")
                    && !here.contains("tolerations")
                    && !here.contains("resources.")
                {
                    walk(&here, p, missing);
                }
                if let Some(items) = p.get("items") {
                    walk(&here, items, missing);
                }
            }
        }
    }
    let mut missing = Vec::new();
    walk("spec", spec, &mut missing);
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:?}"
    );
}

#[test]
fn a_sample_round_trips_through_serde() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/samples/production.yaml"
    ))
    .unwrap();
    let c: ErlmcpCluster = serde_yaml::from_str(&text).unwrap();
    let again: ErlmcpCluster = serde_yaml::from_str(&serde_yaml::to_string(&c).unwrap()).unwrap();
    assert_eq!(c, again);
    assert_eq!(c.spec.replicas, 5);
    let spec: ErlmcpClusterSpec = serde_json::from_value(serde_json::json!({})).unwrap();
    assert_eq!(spec.replicas, 3, "an empty spec takes the defaults");
    assert!(spec.network_policy.enabled && spec.pod_disruption_budget.enabled);
}

#[test]
fn the_tracing_section_is_optional_and_bounded() {
    let spec = &schema()["properties"]["spec"];
    let t = &spec["properties"]["tracing"];
    assert!(
        !spec["required"]
            .as_array()
            .is_some_and(|r| r.iter().any(|f| f == "tracing")),
        "tracing must stay optional"
    );
    assert_eq!(t["required"], serde_json::json!(["endpoint"]));
    let p = &t["properties"];
    assert_eq!(p["samplingRatio"]["minimum"], 0.0);
    assert_eq!(p["samplingRatio"]["maximum"], 1.0);
    assert!(p["endpoint"]["pattern"].is_string());
    assert_eq!(
        p["headersSecret"]["required"],
        serde_json::json!(["key", "name"])
    );
    // Round trip: what a user writes is what the operator reads.
    let spec: ErlmcpClusterSpec = serde_json::from_value(serde_json::json!({
        "tracing": {"endpoint": "http://otel:4318", "samplingRatio": 0.5,
                    "headersSecret": {"name": "otlp", "key": "headers"}}
    }))
    .unwrap();
    let t = spec.tracing.unwrap();
    assert_eq!(t.sampling_ratio, Some(0.5));
    assert_eq!(t.headers_secret.unwrap().name, "otlp");
}
