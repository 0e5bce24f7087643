//! The Helm chart: lint, rendered objects, bad values, the Deployment, namespace-scoped RBAC.

use super::*;

#[test]
fn helm_lint_is_clean_with_every_values_file() {
    for f in values_files() {
        let out = run(Command::new(tool("helm"))
            .args(["lint", "--strict", CHART])
            .args(values_args(&f)));
        assert!(
            out.contains("1 chart(s) linted, 0 chart(s) failed"),
            "{f:?}: {out}"
        );
        assert!(
            !out.contains("[WARNING]") && !out.contains("[ERROR]"),
            "{f:?}: {out}"
        );
    }
}

#[test]
fn rendered_objects_are_valid_kubernetes_objects() {
    let validate = lint_tool("kubernetes-validate");
    let tmp = std::env::temp_dir().join(format!("erlmcp-packaging-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let exported = exported_metrics();
    for f in values_files() {
        let text = run(Command::new(tool("helm"))
            .args(["template", RELEASE, CHART, "--namespace", NAMESPACE])
            .args(values_args(&f)));
        let docs = yaml_docs(&text);
        assert!(docs.len() >= 5, "{f:?}: {:?}", kinds(&docs));
        for d in &docs {
            let what = format!("{f:?} {}/{}", d["kind"], d["metadata"]["name"]);
            check_typed(d).unwrap_or_else(|e| panic!("{what}: {e}"));
            let labels = &d["metadata"]["labels"];
            assert_eq!(
                labels["app.kubernetes.io/name"], "erlmcp-operator",
                "{what}"
            );
            assert_eq!(labels["app.kubernetes.io/instance"], RELEASE, "{what}");
            let cluster_scoped = matches!(
                d["kind"].as_str(),
                Some("ClusterRole" | "ClusterRoleBinding")
            );
            assert_eq!(
                d["metadata"]["namespace"].is_string(),
                !cluster_scoped,
                "{what}"
            );
        }
        // The upstream OpenAPI schemas, strict (unknown fields are errors): the oldest and newest
        // minor the checker carries. Prometheus Operator kinds have no schema there.
        let file = tmp.join("rendered.yaml");
        std::fs::write(&file, &text).unwrap();
        for k8s in ["1.25.0", "1.37.0"] {
            let (ok, out, err) = try_run(
                Command::new(&validate)
                    .args(["--strict", "--quiet", "-k", k8s])
                    .arg(&file),
            );
            let unexpected: Vec<&str> = out
                .lines()
                .chain(err.lines())
                .filter(|l| !l.trim().is_empty())
                .filter(|l| {
                    !(l.starts_with("WARN")
                        && (l.contains("kind ServiceMonitor") || l.contains("kind PrometheusRule")))
                })
                .collect();
            assert!(ok && unexpected.is_empty(), "{f:?} on {k8s}:\n{out}\n{err}");
        }
        // Monitoring objects: shape, and only metric names the products export.
        if let Some(sm) = docs.iter().find(|d| d["kind"] == "ServiceMonitor") {
            let svc = docs
                .iter()
                .find(|d| d["kind"] == "Service")
                .expect("metrics Service");
            for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
                assert_eq!(
                    &svc["metadata"]["labels"][k], v,
                    "ServiceMonitor selects the Service"
                );
            }
            assert_eq!(
                sm["spec"]["endpoints"][0]["port"],
                svc["spec"]["ports"][0]["name"]
            );
        }
        if let Some(pr) = docs.iter().find(|d| d["kind"] == "PrometheusRule") {
            let rules: Vec<&Value> = pr["spec"]["groups"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|g| g["rules"].as_array().unwrap())
                .collect();
            let alerts: BTreeSet<&str> =
                rules.iter().map(|r| r["alert"].as_str().unwrap()).collect();
            for alert in [
                "ErlmcpServiceDown",
                "ErlmcpHighErrorRate",
                "ErlmcpHighLatency",
                "ErlmcpMemoryPressure",
                "ErlmcpClusterPartition",
            ] {
                assert!(alerts.contains(alert), "PrometheusRule lacks {alert}");
            }
            for r in rules {
                let expr = r["expr"].as_str().unwrap();
                assert!(!expr.trim().is_empty());
                assert!(
                    ["critical", "warning"].contains(&r["labels"]["severity"].as_str().unwrap())
                );
                assert!(r["annotations"]["summary"].is_string());
                // erlmcp_cluster is a label (the ServiceMonitor's relabeling), not a metric.
                for m in regex_lite_names(expr)
                    .into_iter()
                    .filter(|m| m != "erlmcp_cluster")
                {
                    assert!(
                        exported.contains(&m),
                        "alert {} uses {m}, which nothing exports",
                        r["alert"]
                    );
                }
            }
        }
        if let Some(cm) = docs.iter().find(|d| d["kind"] == "ConfigMap") {
            let dash: Value = serde_json::from_str(cm["data"]["erlmcp.json"].as_str().unwrap())
                .expect("dashboard JSON");
            let exprs: Vec<String> = dash["panels"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
                .map(|t| t["expr"].as_str().unwrap_or_default().to_string())
                .collect();
            let used: BTreeSet<String> = exprs
                .iter()
                .flat_map(|e| regex_lite_names(e))
                .filter(|m| m != "erlmcp_cluster")
                .collect();
            for m in &used {
                assert!(
                    exported.contains(m),
                    "dashboard uses {m}, which nothing exports"
                );
            }
            for want in [
                "erlmcp_requests_total",
                "erlmcp_request_duration_seconds_bucket",
                "erlmcp_sessions_active",
                "erlmcp_cluster_nodes",
                "erlmcp_operator_reconciliations_total",
                "erlmcp_operator_reconcile_errors_total",
            ] {
                assert!(used.contains(want), "dashboard has no panel on {want}");
            }
        }
    }
    std::fs::remove_dir_all(&tmp).ok();
}

#[test]
fn bad_values_fail_at_install_with_the_path() {
    let cases: &[(&[&str], &str)] = &[
        (&["--set", "replicaCount=-1"], "/replicaCount"),
        (
            &["--set", "leaderElection.enabled=sometimes"],
            "/leaderElection/enabled",
        ),
        (
            &["--set", "watchNamespaces[0]=Not_A_Namespace"],
            "/watchNamespaces/0",
        ),
        (
            &["--set", "image.pullPolicy=Sometimes"],
            "/image/pullPolicy",
        ),
        (&["--set", "image.digest=latest"], "/image/digest"),
        (&["--set", "metrics.port=80"], "/metrics/port"),
        (&["--set", "logging.format=xml"], "/logging/format"),
        (
            &["--set", "tracing.samplingRatio=2"],
            "/tracing/samplingRatio",
        ),
        (
            &["--set", "tracing.endpoint=otel:4318"],
            "/tracing/endpoint",
        ),
        (
            &["--set", "resources.limits.memory=lots"],
            "/resources/limits/memory",
        ),
        (
            &["--set", "prometheusRule.thresholds.errorRate=2"],
            "/prometheusRule/thresholds/errorRate",
        ),
        (
            &["--set", "metrics.serviceMonitor.interval=often"],
            "/metrics/serviceMonitor/interval",
        ),
        (
            &["--set", "replicas=2"],
            "additional properties 'replicas' not allowed",
        ),
        (
            &["--set", "serviceAccount.create=false"],
            "serviceAccount.name is required when serviceAccount.create is false",
        ),
        (
            &[
                "--set",
                "metrics.serviceMonitor.enabled=true",
                "--set",
                "metrics.service.enabled=false",
            ],
            "metrics.serviceMonitor.enabled needs metrics.service.enabled",
        ),
    ];
    for (args, want) in cases {
        let (ok, out, err) = try_run(
            Command::new(tool("helm"))
                .args(["template", RELEASE, CHART])
                .args(*args),
        );
        assert!(!ok, "{args:?} was accepted:\n{out}");
        assert!(err.contains(want), "{args:?}: expected {want:?} in:\n{err}");
    }
}

#[test]
fn deployment_is_hardened_and_leader_election_follows_replicas() {
    // Defaults: one replica, no leader election, Recreate, no Lease rights.
    let docs = helm_template(&[]);
    let d = find(&docs, "Deployment", RELEASE).unwrap();
    let pod = &d["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let env = env_of(d);
    assert_eq!(env["LEADER_ELECT"], "false");
    assert_eq!(d["spec"]["strategy"]["type"], "Recreate");
    assert!(find(&docs, "Role", &format!("{RELEASE}-leader-election")).is_none());
    assert_eq!(env["WATCH_NAMESPACES"], "");
    assert!(env.contains_key("POD_NAMESPACE") && env.contains_key("POD_NAME"));
    // Restricted Pod Security Standard.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], UID);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let sc = &c["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    // Probes on the operator's health endpoints, on the port METRICS_ADDR binds.
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["ports"][0]["name"], "metrics");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "metrics");
    let port = c["ports"][0]["containerPort"].as_i64().unwrap();
    assert_eq!(env["METRICS_ADDR"], format!("0.0.0.0:{port}"));
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());
    assert_eq!(
        c["args"][0], "run",
        "the image's entrypoint is erlmcp-operator"
    );
    let svc = find(&docs, "Service", &format!("{RELEASE}-metrics")).unwrap();
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "metrics");

    // Two replicas: leader election on, rolling update, a Role for the Lease in the release ns.
    let docs = helm_template(&["--set", "replicaCount=2"]);
    let d = find(&docs, "Deployment", RELEASE).unwrap();
    assert_eq!(env_of(d)["LEADER_ELECT"], "true");
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    let lease = find(&docs, "Role", &format!("{RELEASE}-leader-election")).expect("lease Role");
    assert_eq!(lease["metadata"]["namespace"], NAMESPACE);
    assert!(find(&docs, "RoleBinding", &format!("{RELEASE}-leader-election")).is_some());
    // The release owns the Lease (uninstall removes it); its name is the operator's.
    let l = find(&docs, "Lease", erlmcp_operator::leader::LEASE_NAME).expect("the Lease");
    assert_eq!(l["metadata"]["namespace"], NAMESPACE);
    // Forced off with two replicas; forced on with one.
    let docs = helm_template(&[
        "--set",
        "replicaCount=2",
        "--set",
        "leaderElection.enabled=false",
    ]);
    assert_eq!(
        env_of(find(&docs, "Deployment", RELEASE).unwrap())["LEADER_ELECT"],
        "false"
    );
    let docs = helm_template(&["--set", "leaderElection.enabled=true"]);
    assert_eq!(
        env_of(find(&docs, "Deployment", RELEASE).unwrap())["LEADER_ELECT"],
        "true"
    );

    // Scheduling and pod settings from values.
    let docs = helm_template(&["-f", &format!("{CHART}/ci/ha-values.yaml")]);
    let pod = &find(&docs, "Deployment", RELEASE).unwrap()["spec"]["template"];
    assert_eq!(
        pod["metadata"]["annotations"]["example.com/owner"],
        "platform"
    );
    assert_eq!(pod["metadata"]["labels"]["team"], "platform");
    assert_eq!(pod["spec"]["nodeSelector"]["kubernetes.io/os"], "linux");
    assert_eq!(pod["spec"]["tolerations"][0]["key"], "dedicated");
    assert!(pod["spec"]["affinity"]["podAntiAffinity"].is_object());
    assert!(pod["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .contains("@sha256:"));
}

#[test]
fn watch_namespaces_choose_roles_instead_of_a_cluster_role() {
    let docs = helm_template(&["-f", &format!("{CHART}/ci/namespaced-values.yaml")]);
    let k = kinds(&docs);
    assert!(!k.iter().any(|k| k.starts_with("Cluster")), "{k:?}");
    for ns in ["team-a", "team-b"] {
        let role = docs
            .iter()
            .find(|d| d["kind"] == "Role" && d["metadata"]["namespace"] == ns)
            .unwrap_or_else(|| panic!("no Role in {ns}"));
        let binding = docs
            .iter()
            .find(|d| d["kind"] == "RoleBinding" && d["metadata"]["namespace"] == ns)
            .unwrap();
        assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
        assert_eq!(binding["subjects"][0]["namespace"], NAMESPACE);
    }
    let cluster = helm_template(&[]);
    let cr = find(&cluster, "ClusterRole", RELEASE).unwrap();
    let role = docs.iter().find(|d| d["kind"] == "Role").unwrap();
    assert_eq!(cr["rules"], role["rules"], "the same rules, namespaced");
    assert_eq!(
        env_of(find(&docs, "Deployment", RELEASE).unwrap())["WATCH_NAMESPACES"],
        "team-a,team-b"
    );
}

#[test]
fn tracing_values_become_the_operators_otel_env() {
    // Off by default: no OTEL_* variable at all.
    let docs = helm_template(&[]);
    let env = env_of(find(&docs, "Deployment", RELEASE).unwrap());
    assert!(env.keys().all(|k| !k.starts_with("OTEL_")), "{env:?}");

    let docs = helm_template(&["-f", &format!("{CHART}/ci/tracing-values.yaml")]);
    let d = find(&docs, "Deployment", RELEASE).unwrap();
    let env = env_of(d);
    assert_eq!(
        env["OTEL_EXPORTER_OTLP_ENDPOINT"],
        "http://otel-collector.observability:4318"
    );
    assert_eq!(env["OTEL_SERVICE_NAME"], "erlmcp-operator");
    assert_eq!(env["OTEL_TRACES_SAMPLER"], "parentbased_traceidratio");
    assert_eq!(env["OTEL_TRACES_SAMPLER_ARG"], "0.5");
    // The headers stay in their Secret.
    let headers = d["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "OTEL_EXPORTER_OTLP_HEADERS")
        .expect("OTEL_EXPORTER_OTLP_HEADERS");
    assert_eq!(
        headers["valueFrom"]["secretKeyRef"],
        json!({"name": "otlp-auth", "key": "headers"})
    );
}
