//! Every validation rule, with a bad spec and the exact error path.

use erlmcp_crds::validate::{validate, FieldError};
use erlmcp_crds::ErlmcpCluster;

fn errors(yaml_spec: &str) -> Vec<FieldError> {
    let doc = format!("apiVersion: erlmcp.io/v1alpha1\nkind: ErlmcpCluster\nmetadata: {{name: t}}\nspec:\n{yaml_spec}");
    let c: ErlmcpCluster =
        serde_yaml::from_str(&doc).unwrap_or_else(|e| panic!("fixture: {e}\n{doc}"));
    validate(&c)
}

fn paths(yaml_spec: &str) -> Vec<String> {
    errors(yaml_spec).into_iter().map(|e| e.path).collect()
}

#[track_caller]
fn assert_only(yaml_spec: &str, path: &str, needle: &str) {
    let errs = errors(yaml_spec);
    assert_eq!(errs.len(), 1, "expected one error at {path}, got {errs:?}");
    assert_eq!(errs[0].path, path);
    assert!(
        errs[0].message.contains(needle),
        "{:?} lacks {needle:?}",
        errs[0].message
    );
}

#[test]
fn defaults_are_valid() {
    assert!(errors("  {}\n").is_empty());
}

#[test]
fn every_sample_is_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/samples");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let c: ErlmcpCluster =
            serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(validate(&c), vec![], "{}", path.display());
    }
}

#[test]
fn name_rules() {
    let mut c: ErlmcpCluster =
        serde_yaml::from_str("metadata: {name: Bad_Name}\nspec: {}").unwrap();
    assert_eq!(validate(&c)[0].path, "metadata.name");
    c.metadata.name = Some("a".repeat(53));
    assert!(validate(&c)[0].message.contains("at most 52"));
    c.metadata.name = Some("ok-name".into());
    assert!(validate(&c).is_empty());
}

#[test]
fn replicas_and_image() {
    assert_only("  replicas: -1\n", "spec.replicas", "0 or more");
    assert_only("  image: 'bad image'\n", "spec.image", "without spaces");
    assert_only(
        "  imagePullPolicy: Sometimes\n",
        "spec.imagePullPolicy",
        "Always, IfNotPresent or Never",
    );
}

#[test]
fn autoscaling_rules() {
    assert_only(
        "  autoscaling: {minReplicas: 5, maxReplicas: 2, targetCPUUtilizationPercentage: 50}\n",
        "spec.autoscaling.minReplicas",
        "must not exceed maxReplicas",
    );
    assert_only(
        "  autoscaling: {maxReplicas: 4}\n",
        "spec.autoscaling",
        "at least one target",
    );
    assert_only(
        "  autoscaling: {maxReplicas: 4, targetCPUUtilizationPercentage: 150}\n",
        "spec.autoscaling.targetCPUUtilizationPercentage",
        "between 1 and 100",
    );
    assert_only(
        "  autoscaling: {minReplicas: 0, maxReplicas: 4, targetSessionsPerPod: 10}\n",
        "spec.autoscaling.minReplicas",
        "at least 1",
    );
}

#[test]
fn pdb_rules() {
    assert_only(
        "  podDisruptionBudget: {minAvailable: 1, maxUnavailable: 1}\n",
        "spec.podDisruptionBudget",
        "not both",
    );
    assert_only(
        "  podDisruptionBudget: {maxUnavailable: 'lots'}\n",
        "spec.podDisruptionBudget.maxUnavailable",
        "percentage",
    );
    assert!(errors("  podDisruptionBudget: {minAvailable: '50%'}\n").is_empty());
}

#[test]
fn tls_source_is_exclusive() {
    assert_only(
        "  tls: {secretName: a, operatorCa: {}}\n",
        "spec.tls",
        "exactly one TLS source",
    );
    assert_only(
        "  tls: {peerMtls: true}\n",
        "spec.tls",
        "exactly one TLS source",
    );
    assert_only(
        "  tls: {issuerRef: {name: x, kind: Foo}}\n",
        "spec.tls.issuerRef.kind",
        "Issuer or ClusterIssuer",
    );
}

#[test]
fn port_collisions() {
    assert_only(
        "  cluster: {port: 8080}\n",
        "spec.cluster.port",
        "already used by spec.mcp.transports.port",
    );
    assert_only(
        "  mcp: {transports: {tcp: {enabled: true, port: 9090}}}\n",
        "spec.mcp.transports.tcp.port",
        "already used by (health port)",
    );
    // A disabled TCP transport does not claim its port.
    assert!(errors("  mcp: {transports: {tcp: {enabled: false, port: 9090}}}\n").is_empty());
}

#[test]
fn tool_rules() {
    assert_only(
        "  mcp: {tools: [{name: a, backend: {}}]}\n",
        "spec.mcp.tools[0].backend",
        "exactly one of builtin, http or command",
    );
    assert_only(
        "  mcp: {tools: [{name: a, backend: {builtin: magic}}]}\n",
        "spec.mcp.tools[0].backend.builtin",
        "unknown built-in",
    );
    assert_only(
        "  mcp: {tools: [{name: 'bad name', backend: {builtin: echo}}]}\n",
        "spec.mcp.tools[0].name",
        "letters, digits",
    );
    assert_eq!(
        paths("  mcp: {tools: [{name: a, backend: {command: {command: [x]}}}, {name: a, backend: {command: {command: [y]}}}]}\n"),
        vec!["spec.mcp.tools[1].name"]
    );
    assert_only(
        "  mcp: {tools: [{name: a, inputSchema: {type: string}, backend: {command: {command: [x]}}}]}\n",
        "spec.mcp.tools[0].inputSchema",
        "\"type\": \"object\"",
    );
    assert_only(
        "  mcp: {tools: [{name: a, backend: {http: {url: 'ftp://x'}}}]}\n",
        "spec.mcp.tools[0].backend.http.url",
        "http://",
    );
    assert_only(
        "  mcp: {tools: [{name: a, backend: {http: {url: 'http://x', headers: [{name: X, value: {}}]}}}]}\n",
        "spec.mcp.tools[0].backend.http.headers[0].value",
        "exactly one of value, secretKeyRef or file",
    );
    assert_only(
        "  mcp: {tools: [{name: echo, backend: {command: {command: [x]}}}]}\n",
        "spec.mcp.tools[0].name",
        "built-in tool name",
    );
}

#[test]
fn resource_and_prompt_rules() {
    assert_only(
        "  mcp: {resources: [{uri: 'docs://a', name: a, text: x, blob: eA==}]}\n",
        "spec.mcp.resources[0]",
        "exactly one of text, file or blob",
    );
    assert_only(
        "  mcp: {resources: [{uri: 'docs://a', name: a, blob: '***'}]}\n",
        "spec.mcp.resources[0].blob",
        "base64",
    );
    assert_only(
        "  mcp: {resources: [{uri: nocolon, name: a, text: x}]}\n",
        "spec.mcp.resources[0].uri",
        "absolute URI",
    );
    assert_only(
        "  mcp: {resourceTemplates: [{uriTemplate: 'docs://{a', name: a, text: x}]}\n",
        "spec.mcp.resourceTemplates[0].uriTemplate",
        "unclosed",
    );
    assert_only(
        "  mcp: {prompts: [{name: p, messages: [{text: 'hi {{who}}'}]}]}\n",
        "spec.mcp.prompts[0].messages[0].text",
        "no argument \"who\"",
    );
    assert_only(
        "  mcp: {prompts: [{name: p, messages: [{role: system, text: hi}]}]}\n",
        "spec.mcp.prompts[0].messages[0].role",
        "user or assistant",
    );
}

#[test]
fn auth_and_origin_rules() {
    assert_only(
        "  mcp: {auth: {mode: bearer}}\n",
        "spec.mcp.auth.bearerToken",
        "required for mode bearer",
    );
    assert_only(
        "  mcp: {auth: {mode: jwt}}\n",
        "spec.mcp.auth.jwt",
        "required for mode jwt",
    );
    assert_only(
        "  mcp: {allowedOrigins: [example.com]}\n",
        "spec.mcp.allowedOrigins[0]",
        "https://",
    );
}

#[test]
fn override_may_not_touch_the_statefulsets_identity() {
    assert_only(
        "  override: {statefulSet: {spec: {selector: {matchLabels: {app: other}}}}}\n",
        "spec.override.statefulSet.spec.selector",
        "owns the StatefulSet's identity",
    );
    assert_only(
        "  override: {statefulSet: {spec: {serviceName: other}}}\n",
        "spec.override.statefulSet.spec.serviceName",
        "owns the StatefulSet's identity",
    );
    assert_only(
        "  override: {statefulSet: {metadata: {name: other}}}\n",
        "spec.override.statefulSet.metadata.name",
        "owns the StatefulSet's identity",
    );
    // Everything else of it may be overridden.
    assert!(errors(
        "  override: {statefulSet: {metadata: {labels: {a: b}}, spec: {revisionHistoryLimit: 3, template: {spec: {containers: [{name: erlmcp}]}}}}}\n"
    )
    .is_empty());
}

#[test]
fn service_logging_storage_override() {
    assert_only(
        "  service: {type: ExternalName}\n",
        "spec.service.type",
        "ClusterIP",
    );
    assert_only(
        "  logging: {level: loud}\n",
        "spec.logging.level",
        "trace, debug",
    );
    assert_only(
        "  logging: {format: xml}\n",
        "spec.logging.format",
        "json or text",
    );
    assert_only(
        "  storage: {size: 1Gi, accessModes: []}\n",
        "spec.storage.accessModes",
        "not be empty",
    );
    assert_only(
        "  override: {statefulSet: [1]}\n",
        "spec.override.statefulSet",
        "an object",
    );
    assert_only(
        "  terminationGracePeriodSeconds: 0\n",
        "spec.terminationGracePeriodSeconds",
        "at least 1",
    );
}

#[test]
fn many_problems_are_all_reported() {
    let errs = paths("  replicas: -2\n  service: {type: X}\n  logging: {format: xml}\n");
    assert_eq!(
        errs,
        vec!["spec.replicas", "spec.service.type", "spec.logging.format"]
    );
}

/// Limits and timeouts below their minimum (0 above all) are refused by name, and the CRD
/// schema carries the same minimum, so the API server and the operator agree.
#[test]
fn zero_limits_and_timeouts_are_refused_by_name() {
    use kube::CustomResourceExt;
    let schema = serde_json::to_value(ErlmcpCluster::crd()).unwrap()["spec"]["versions"][0]
        ["schema"]["openAPIV3Schema"]["properties"]["spec"]
        .clone();
    let tool = |backend: &str| {
        format!("  mcp:\n    tools:\n      - name: t\n        backend:\n          {backend}\n")
    };
    let cases: Vec<(String, &str, u64, &[&str])> = vec![
        (
            "  mcp: {sessions: {maxSessions: 0}}\n".into(),
            "spec.mcp.sessions.maxSessions",
            1,
            &["mcp", "sessions", "maxSessions"],
        ),
        (
            "  mcp: {sessions: {idleTimeoutSeconds: 0}}\n".into(),
            "spec.mcp.sessions.idleTimeoutSeconds",
            1,
            &["mcp", "sessions", "idleTimeoutSeconds"],
        ),
        (
            "  mcp: {rateLimit: {requestsPerSecond: 0}}\n".into(),
            "spec.mcp.rateLimit.requestsPerSecond",
            1,
            &["mcp", "rateLimit", "requestsPerSecond"],
        ),
        (
            "  mcp: {rateLimit: {burst: 0}}\n".into(),
            "spec.mcp.rateLimit.burst",
            1,
            &["mcp", "rateLimit", "burst"],
        ),
        (
            "  mcp: {limits: {maxRequestBytes: 0}}\n".into(),
            "spec.mcp.limits.maxRequestBytes",
            1024,
            &["mcp", "limits", "maxRequestBytes"],
        ),
        (
            "  mcp: {limits: {maxConcurrentRequests: 0}}\n".into(),
            "spec.mcp.limits.maxConcurrentRequests",
            1,
            &["mcp", "limits", "maxConcurrentRequests"],
        ),
        (
            "  mcp: {limits: {maxConnections: 0}}\n".into(),
            "spec.mcp.limits.maxConnections",
            1,
            &["mcp", "limits", "maxConnections"],
        ),
        (
            "  mcp: {limits: {requestTimeoutSeconds: 0}}\n".into(),
            "spec.mcp.limits.requestTimeoutSeconds",
            1,
            &["mcp", "limits", "requestTimeoutSeconds"],
        ),
        (
            tool("http: {url: 'http://x', timeoutSeconds: 0}"),
            "spec.mcp.tools[0].backend.http.timeoutSeconds",
            1,
            &["mcp", "tools", "*", "backend", "http", "timeoutSeconds"],
        ),
        (
            tool("http: {url: 'http://x', maxResponseBytes: 0}"),
            "spec.mcp.tools[0].backend.http.maxResponseBytes",
            1,
            &["mcp", "tools", "*", "backend", "http", "maxResponseBytes"],
        ),
        (
            tool("command: {command: [x], timeoutSeconds: 0}"),
            "spec.mcp.tools[0].backend.command.timeoutSeconds",
            1,
            &["mcp", "tools", "*", "backend", "command", "timeoutSeconds"],
        ),
        (
            tool("command: {command: [x], maxOutputBytes: 0}"),
            "spec.mcp.tools[0].backend.command.maxOutputBytes",
            1,
            &["mcp", "tools", "*", "backend", "command", "maxOutputBytes"],
        ),
    ];
    for (yaml, path, min, schema_path) in cases {
        let needle = if path.contains(".backend.") && path.ends_with("timeoutSeconds") {
            "between 1 and 3600".to_string()
        } else {
            format!("at least {min}")
        };
        assert_only(&yaml, path, &needle);
        let mut node = &schema;
        for key in schema_path {
            node = if *key == "*" {
                &node["items"]
            } else {
                &node["properties"][key]
            };
        }
        assert_eq!(
            node["minimum"].as_f64(),
            Some(min as f64),
            "schema minimum of {path}"
        );
        // The minimum itself is accepted.
        let ok = yaml.replace(": 0", &format!(": {min}"));
        assert!(errors(&ok).is_empty(), "{path} = {min}: {:?}", errors(&ok));
    }
}

#[test]
fn tcp_is_refused_while_auth_is_on() {
    for auth in [
        "{mode: bearer, bearerToken: {value: s3cret}}",
        "{mode: jwt, jwt: {issuer: https://idp, audience: mcp, jwks: {value: '{}'}}}",
    ] {
        assert_only(
            &format!("  mcp:\n    transports: {{tcp: {{enabled: true}}}}\n    auth: {auth}\n"),
            "spec.mcp.transports.tcp.enabled",
            "carries no credential",
        );
    }
    assert!(errors("  mcp:\n    transports: {tcp: {enabled: true}}\n").is_empty());
}

#[test]
fn tracing_needs_a_url_and_a_ratio_between_0_and_1() {
    assert!(
        errors("  tracing: {endpoint: http://otel.observability:4318, samplingRatio: 0.1}\n")
            .is_empty()
    );
    assert!(
        errors("  tracing: {endpoint: https://otlp.example.com, samplingRatio: 1}\n").is_empty()
    );
    assert_only(
        "  tracing: {endpoint: otel:4318}\n",
        "spec.tracing.endpoint",
        "http",
    );
    assert_only(
        "  tracing: {endpoint: http://otel:4318, samplingRatio: 1.5}\n",
        "spec.tracing.samplingRatio",
        "between 0 and 1",
    );
    assert_only(
        "  tracing: {endpoint: http://otel:4318, serviceName: \" \"}\n",
        "spec.tracing.serviceName",
        "empty",
    );
}

fn tool_with_schema(schema: &str) -> String {
    format!("  mcp: {{tools: [{{name: a, backend: {{builtin: echo}}, inputSchema: {schema}}}]}}\n")
}

#[test]
fn header_parameter_annotations() {
    let ok = tool_with_schema(
        "{type: object, properties: {region: {type: string, x-mcp-header: Region}, n: {type: integer, x-mcp-header: Count}}}",
    );
    assert!(errors(&ok).is_empty(), "{:?}", errors(&ok));
    assert_only(
        &tool_with_schema(
            "{type: object, properties: {filter: {type: object, properties: {region: {type: string, x-mcp-header: Region}}}}}",
        ),
        "spec.mcp.tools[0].inputSchema.properties.filter.properties.region.x-mcp-header",
        "only on a top-level property",
    );
    assert_only(
        &tool_with_schema("{type: object, properties: {tags: {type: array, x-mcp-header: Tags}}}"),
        "spec.mcp.tools[0].inputSchema.properties.tags.x-mcp-header",
        "string, number, integer or boolean",
    );
    assert_only(
        &tool_with_schema(
            "{type: object, properties: {r: {type: string, x-mcp-header: 'Re gion'}}}",
        ),
        "spec.mcp.tools[0].inputSchema.properties.r.x-mcp-header",
        "header name suffix",
    );
    let twice = errors(&tool_with_schema(
        "{type: object, properties: {a: {type: string, x-mcp-header: Region}, b: {type: string, x-mcp-header: region}}}",
    ));
    assert_eq!(twice.len(), 1, "{twice:?}");
    assert!(twice[0].message.contains("already the header"), "{twice:?}");
}

#[test]
fn tool_annotations() {
    let spec = |a: &str| {
        format!("  mcp: {{tools: [{{name: a, backend: {{builtin: echo}}, annotations: {a}}}]}}\n")
    };
    assert!(errors(&spec("{readOnlyHint: true, title: Echo}")).is_empty());
    assert_only(
        &spec("{readOnlyHint: 'yes'}"),
        "spec.mcp.tools[0].annotations.readOnlyHint",
        "true or false",
    );
    assert_only(
        &spec("[1]"),
        "spec.mcp.tools[0].annotations",
        "must be an object",
    );
}
