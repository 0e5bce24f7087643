//! Packaging: the Helm chart (`charts/erlmcp-operator`), the kustomize bases (`config/`), the
//! Dockerfiles, and the CRD copies. Uses the real tools: Helm and kubectl from
//! `scripts/tools.sh`, hadolint and kubernetes-validate from `operator/tests/packaging-tools.sh`
//! (installed once, cached). A missing tool fails the test; nothing is skipped.
//!
//! The RBAC test runs the real operator binary against a small recording fake API server and
//! compares every call it makes with what the chart grants, both ways.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use erlmcp_operator::desired::{self, BuildContext, ServerCapabilities};
use serde_json::{json, Value};

const CHART: &str = "charts/erlmcp-operator";
const RELEASE: &str = "erlmcp-operator";
const NAMESPACE: &str = "erlmcp-system";
/// The user the images run as and the StatefulSet's runAsUser.
const UID: i64 = 10001;

// ------------------------------------------------------------------------------------ helpers

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace root")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// Run a command; on failure panic with everything it printed.
fn run(cmd: &mut Command) -> String {
    let (ok, out, err) = try_run(cmd);
    assert!(ok, "{cmd:?} failed\nstdout:\n{out}\nstderr:\n{err}");
    out
}

fn try_run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd
        .current_dir(root())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn last_line(s: &str) -> PathBuf {
    PathBuf::from(s.lines().last().unwrap_or_default().trim())
}

/// helm or kubectl, installed (once, cached) by scripts/tools.sh.
fn tool(name: &'static str) -> PathBuf {
    static TOOLS: OnceLock<Mutex<BTreeMap<&'static str, PathBuf>>> = OnceLock::new();
    let tools = TOOLS.get_or_init(Default::default);
    let mut tools = tools.lock().unwrap_or_else(|e| e.into_inner());
    tools
        .entry(name)
        .or_insert_with(|| {
            let p = last_line(&run(Command::new("bash").args(["scripts/tools.sh", name])));
            assert!(p.is_file(), "scripts/tools.sh {name} gave no binary: {p:?}");
            p
        })
        .clone()
}

/// hadolint or kubernetes-validate, installed (once, cached) by packaging-tools.sh.
fn lint_tool(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        last_line(&run(
            Command::new("bash").arg("operator/tests/packaging-tools.sh")
        ))
    });
    let p = dir.join(name);
    assert!(p.is_file(), "{name} is not installed in {dir:?}");
    p
}

fn yaml_docs(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde_yaml::Value::deserialize(d).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .map(|v| serde_json::to_value(v).expect("YAML as JSON"))
        .collect()
}

/// `helm template` of the chart as release erlmcp-operator in erlmcp-system.
fn helm_template(args: &[&str]) -> Vec<Value> {
    yaml_docs(&run(Command::new(tool("helm"))
        .args(["template", RELEASE, CHART, "--namespace", NAMESPACE])
        .args(args)))
}

/// The values files the chart is tested with: the defaults and every example in ci/.
fn values_files() -> Vec<Option<String>> {
    let mut files: Vec<Option<String>> = vec![None];
    let mut ci: Vec<String> = std::fs::read_dir(root().join(CHART).join("ci"))
        .expect("chart ci/ dir")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| format!("{CHART}/ci/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    ci.sort();
    assert!(ci.len() >= 3, "expected values examples in {CHART}/ci");
    files.extend(ci.into_iter().map(Some));
    files
}

fn values_args(f: &Option<String>) -> Vec<&str> {
    f.as_deref().map(|f| vec!["-f", f]).unwrap_or_default()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
}

fn kinds(docs: &[Value]) -> Vec<String> {
    docs.iter()
        .map(|d| d["kind"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn env_of(deploy: &Value) -> BTreeMap<String, Value> {
    deploy["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e.get("value").cloned().unwrap_or(Value::Null),
            )
        })
        .collect()
}

fn drop_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), drop_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(drop_nulls).collect()),
        // 1.0 and 1 are the same number to the API server (YAML writers differ).
        Value::Number(n) if n.is_f64() && n.as_f64().is_some_and(|f| f.fract() == 0.0) => {
            json!(n.as_f64().unwrap() as i64)
        }
        other => other.clone(),
    }
}

/// Deserialize into the k8s-openapi type and back: a misspelt or misplaced field is dropped on
/// the way and shows as a difference; a wrong type fails to parse.
fn typed_roundtrip<K>(doc: &Value) -> Result<(), String>
where
    K: serde::Serialize + serde::de::DeserializeOwned,
{
    let typed: K = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let back = drop_nulls(&serde_json::to_value(&typed).map_err(|e| e.to_string())?);
    let orig = drop_nulls(doc);
    if back != orig {
        return Err(format!(
            "fields the type does not know or normalises differently:\nrendered: {orig:#}\ntyped: {back:#}"
        ));
    }
    Ok(())
}

fn check_typed(doc: &Value) -> Result<(), String> {
    use k8s_openapi::api::{apps::v1 as apps, core::v1 as core, rbac::v1 as rbac};
    match (doc["apiVersion"].as_str(), doc["kind"].as_str()) {
        (Some("v1"), Some("ServiceAccount")) => typed_roundtrip::<core::ServiceAccount>(doc),
        (Some("v1"), Some("Service")) => typed_roundtrip::<core::Service>(doc),
        (Some("v1"), Some("ConfigMap")) => typed_roundtrip::<core::ConfigMap>(doc),
        (Some("v1"), Some("Namespace")) => typed_roundtrip::<core::Namespace>(doc),
        (Some("apps/v1"), Some("Deployment")) => typed_roundtrip::<apps::Deployment>(doc),
        (Some("rbac.authorization.k8s.io/v1"), Some("ClusterRole")) => {
            typed_roundtrip::<rbac::ClusterRole>(doc)
        }
        (Some("rbac.authorization.k8s.io/v1"), Some("ClusterRoleBinding")) => {
            typed_roundtrip::<rbac::ClusterRoleBinding>(doc)
        }
        (Some("rbac.authorization.k8s.io/v1"), Some("Role")) => typed_roundtrip::<rbac::Role>(doc),
        (Some("rbac.authorization.k8s.io/v1"), Some("RoleBinding")) => {
            typed_roundtrip::<rbac::RoleBinding>(doc)
        }
        (Some("coordination.k8s.io/v1"), Some("Lease")) => {
            typed_roundtrip::<k8s_openapi::api::coordination::v1::Lease>(doc)
        }
        (Some("monitoring.coreos.com/v1"), Some("ServiceMonitor" | "PrometheusRule")) => Ok(()),
        other => Err(format!("unexpected kind {other:?}")),
    }
}

/// Metric names the products export: the operator's (from its registry) and the data plane's
/// (the names in its source; the operator crate does not depend on the data plane).
fn exported_metrics() -> BTreeSet<String> {
    let m = erlmcp_operator::metrics::Metrics::new();
    m.reconciliations.with_label_values(&["success"]).inc();
    m.errors.with_label_values(&["ApplyFailed"]).inc();
    m.duration.observe(0.1);
    let mut names: BTreeSet<String> = m
        .render()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .flat_map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next().unwrap_or_default().to_string();
            let histogram = it.next() == Some("histogram");
            let mut v = vec![name.clone()];
            if histogram {
                v.extend(["_bucket", "_sum", "_count"].map(|s| format!("{name}{s}")));
            }
            v
        })
        .collect();
    let re = regex_lite_names(&source_text("dataplane/src"));
    names.extend(re);
    names
}

fn source_text(dir: &str) -> String {
    fn walk(p: &Path, out: &mut String) {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    let mut s = String::new();
    walk(&root().join(dir), &mut s);
    s
}

/// Every `erlmcp_...` identifier in a text (metric names in PromQL or source).
fn regex_lite_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("erlmcp_") {
        let start = i + pos;
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_lowercase()
                || bytes[end] == b'_'
                || bytes[end].is_ascii_digit())
        {
            end += 1;
        }
        if boundary && end > start + 7 {
            out.insert(text[start..end].to_string());
        }
        i = end.max(start + 1);
    }
    out
}

// ------------------------------------------------------------------------------ CRD and versions

#[test]
fn crd_copies_match_the_generator() {
    let yaml = erlmcp_crds::crd::crd_yaml();
    for want in [
        "charts/erlmcp-operator/crds/erlmcp.io_erlmcpclusters.yaml",
        "config/crd/erlmcp.io_erlmcpclusters.yaml",
    ] {
        assert!(
            erlmcp_operator::CRD_COPIES.contains(&want),
            "CRD_COPIES lacks {want}"
        );
    }
    for rel in erlmcp_operator::CRD_COPIES {
        assert!(
            read(rel) == yaml,
            "{rel} is stale: run `cargo run -p erlmcp-operator -- crd --write`"
        );
    }
}

#[test]
fn chart_and_images_track_the_operator_version() {
    let version = env!("CARGO_PKG_VERSION");
    let chart: serde_yaml::Value =
        serde_yaml::from_str(&read(&format!("{CHART}/Chart.yaml"))).unwrap();
    assert_eq!(
        chart["appVersion"].as_str(),
        Some(version),
        "Chart.yaml appVersion"
    );
    assert_eq!(
        chart["version"].as_str(),
        Some(version),
        "Chart.yaml version"
    );
    let docs = helm_template(&[]);
    let deploy = find(&docs, "Deployment", RELEASE).expect("Deployment");
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("ghcr.io/erlmcp/erlmcp-operator:{version}")
    );
    // The data-plane image the operator gives clusters that name none.
    assert_eq!(
        desired::default_image(),
        format!("ghcr.io/erlmcp/erlmcp:{version}")
    );
    // The kustomize base pins the same tag; the Dockerfiles default to the same version label.
    assert!(
        read("config/manager/kustomization.yaml").contains(&format!("newTag: \"{version}\"")),
        "config/manager/kustomization.yaml newTag"
    );
    for f in ["Dockerfile.operator", "Dockerfile.dataplane"] {
        assert!(
            read(f).contains(&format!("ARG VERSION={version}\n")),
            "{f}: ARG VERSION={version}"
        );
    }
}

// ---------------------------------------------------------------------------------- Helm chart

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

// ------------------------------------------------------------------------------- kustomize

/// Objects keyed by kind/namespace/name, without Helm's own labels.
fn normalized(docs: Vec<Value>) -> BTreeMap<String, Value> {
    docs.into_iter()
        .map(|mut d| {
            if let Some(l) = d["metadata"]["labels"].as_object_mut() {
                l.remove("helm.sh/chart");
                l.remove("app.kubernetes.io/managed-by");
            }
            let key = format!(
                "{}/{}/{}",
                d["kind"].as_str().unwrap_or_default(),
                d["metadata"]["namespace"].as_str().unwrap_or_default(),
                d["metadata"]["name"].as_str().unwrap_or_default()
            );
            (key, d)
        })
        .collect()
}

#[test]
fn kustomize_bases_match_the_chart() {
    let text = run(Command::new(tool("kubectl")).args(["kustomize", "config/default"]));
    let mut kust = normalized(yaml_docs(&text));
    let crd = kust
        .remove("CustomResourceDefinition//erlmcpclusters.erlmcp.io")
        .expect("the CRD in config/default");
    let want_crd = yaml_docs(&erlmcp_crds::crd::crd_yaml()).remove(0);
    assert!(
        drop_nulls(&crd) == drop_nulls(&want_crd),
        "config/crd: kustomize output differs from the CRD"
    );
    let ns = kust
        .remove(&format!("Namespace//{NAMESPACE}"))
        .expect("the Namespace");
    check_typed(&ns).unwrap();
    let helm = normalized(helm_template(&[]));
    assert_eq!(
        kust.keys().collect::<Vec<_>>(),
        helm.keys().collect::<Vec<_>>(),
        "the same objects"
    );
    for (k, v) in &helm {
        assert!(
            drop_nulls(&kust[k]) == drop_nulls(v),
            "{k} differs between config/ and the chart: edit both (config/ = the chart's defaults)\n\
             config/: {:#}\nchart: {:#}",
            drop_nulls(&kust[k]),
            drop_nulls(v)
        );
        assert_eq!(
            kust[k]["metadata"]["labels"]["app.kubernetes.io/name"],
            "erlmcp-operator"
        );
    }
    for rel in ["config/rbac", "config/manager", "config/crd"] {
        run(Command::new(tool("kubectl")).args(["kustomize", rel]));
    }
}

// --------------------------------------------------------------------------------- Dockerfiles

struct Dockerfile {
    text: String,
    /// Instructions of the final stage, joined continuation lines, without comments.
    final_stage: Vec<String>,
    all: Vec<String>,
}

fn dockerfile(rel: &str) -> Dockerfile {
    let text = read(rel);
    let mut all = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || t.is_empty() {
            continue;
        }
        if let Some(body) = t.strip_suffix('\\') {
            cur.push_str(body.trim_end());
            cur.push(' ');
        } else {
            cur.push_str(t);
            all.push(std::mem::take(&mut cur));
        }
    }
    let last_from = all.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    Dockerfile {
        text,
        final_stage: all[last_from..].to_vec(),
        all,
    }
}

fn cargo_bins() -> BTreeMap<String, BTreeSet<String>> {
    let meta: Value = serde_json::from_str(&run(Command::new(env!("CARGO")).args([
        "metadata",
        "--no-deps",
        "--format-version",
        "1",
        "--offline",
    ])))
    .unwrap();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let bins = p["targets"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["kind"].as_array().unwrap().iter().any(|k| k == "bin"))
                .map(|t| t["name"].as_str().unwrap().to_string())
                .collect();
            (p["name"].as_str().unwrap().to_string(), bins)
        })
        .collect()
}

#[test]
fn dockerfiles_lint_clean_and_match_the_crates() {
    let hadolint = lint_tool("hadolint");
    let bins = cargo_bins();
    for (file, package, bin, ports) in [
        (
            "Dockerfile.dataplane",
            "erlmcp-dataplane",
            "erlmcp",
            &[8080, 9090, 9100][..],
        ),
        (
            "Dockerfile.operator",
            "erlmcp-operator",
            "erlmcp-operator",
            &[8080][..],
        ),
    ] {
        let (ok, out, err) = try_run(Command::new(&hadolint).arg(file));
        assert!(ok && out.trim().is_empty(), "hadolint {file}:\n{out}{err}");
        let d = dockerfile(file);
        // Multi-stage: a Rust builder, an empty final stage.
        assert!(d.all[0].starts_with("ARG "), "{file}");
        assert!(
            d.all
                .iter()
                .any(|l| l.starts_with("FROM rust:") && l.ends_with(" AS builder")),
            "{file}: a rust builder stage"
        );
        assert_eq!(d.final_stage[0], "FROM scratch", "{file}: final stage");
        // The build line names a real package and binary, and copies what it built.
        let build = d
            .all
            .iter()
            .find(|l| l.contains("cargo build"))
            .expect("cargo build");
        assert!(build.contains("--release --locked"), "{file}: {build}");
        assert!(
            build.contains(&format!("-p {package} --bin {bin} ")),
            "{file}: {build}"
        );
        assert!(
            bins.get(package).is_some_and(|b| b.contains(bin)),
            "{file}: {package} has no binary {bin}: {bins:?}"
        );
        assert!(
            build.contains(&format!("cp target/release/{bin} /out/{bin}")),
            "{file}"
        );
        let dest = format!("/usr/local/bin/{bin}");
        assert!(
            d.final_stage
                .contains(&format!("COPY --from=builder /out/{bin} {dest}")),
            "{file}: copies the binary to {dest}"
        );
        assert!(
            d.final_stage.contains(&format!("ENTRYPOINT [\"{dest}\"]")),
            "{file}: entrypoint"
        );
        // Non-root, numeric, the StatefulSet's and the chart's user.
        assert!(
            d.final_stage.contains(&format!("USER {UID}:{UID}")),
            "{file}: USER"
        );
        // OCI labels.
        let labels = d
            .final_stage
            .iter()
            .find(|l| l.starts_with("LABEL "))
            .expect("LABEL");
        for key in [
            "version", "revision", "source", "created", "title", "licenses",
        ] {
            assert!(
                labels.contains(&format!("org.opencontainers.image.{key}=")),
                "{file}: label {key}"
            );
        }
        let expose = d
            .final_stage
            .iter()
            .find(|l| l.starts_with("EXPOSE "))
            .unwrap();
        let exposed: Vec<i64> = expose[7..]
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        assert_eq!(exposed, ports, "{file}: EXPOSE");
        assert!(
            !d.text.contains("/bin/sh") || d.text.contains("/sbin/nologin"),
            "{file}"
        );
    }
    // The data plane's HEALTHCHECK is its own client (no shell, no curl in the image).
    let dp = dockerfile("Dockerfile.dataplane");
    let hc = dp
        .final_stage
        .iter()
        .find(|l| l.starts_with("HEALTHCHECK"))
        .unwrap();
    assert!(
        hc.ends_with("CMD [\"/usr/local/bin/erlmcp\", \"healthcheck\"]"),
        "{hc}"
    );
    assert!(dp.final_stage.contains(&"CMD [\"serve\"]".to_string()));
    // The StatefulSet runs the image's entrypoint with its own args (no command).
    let out = erlmcp_operator::render::render(
        &read("config/samples/basic.yaml"),
        ServerCapabilities::default(),
    )
    .expect("render basic sample");
    let sts = yaml_docs(&out)
        .into_iter()
        .find(|d| d["kind"] == "StatefulSet")
        .unwrap();
    let ctr = &sts["spec"]["template"]["spec"]["containers"][0];
    assert!(ctr.get("command").is_none_or(Value::is_null), "{ctr}");
    assert_eq!(ctr["args"][0], "serve");
    assert_eq!(
        sts["spec"]["template"]["spec"]["securityContext"]["runAsUser"],
        UID
    );
    // The build context keeps what cargo needs.
    let ignore = read(".dockerignore");
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "crds",
        "operator",
        "dataplane",
        "e2e",
    ] {
        assert!(
            !ignore
                .lines()
                .any(|l| l.trim() == needed || l.trim() == format!("{needed}/")),
            ".dockerignore drops {needed}"
        );
    }
    assert!(
        ignore.lines().any(|l| l.trim() == "**/target"),
        ".dockerignore keeps target/"
    );
}

/// The images build with `x86_64-unknown-linux-musl` (statically linked). That target is not
/// installable here (rustup cannot download), so this builds the next best thing that proves
/// the same property: both binaries statically linked against glibc (`+crt-static`), i.e. no
/// native library the image would lack. When the musl target is installed, it builds that.
#[test]
fn image_binaries_link_statically() {
    let installed = run(Command::new("rustup").args(["target", "list", "--installed"]));
    let musl = installed
        .lines()
        .any(|l| l.trim() == "x86_64-unknown-linux-musl");
    let target = if musl {
        "x86_64-unknown-linux-musl"
    } else {
        "x86_64-unknown-linux-gnu"
    };
    let dir = root().join("target/packaging-static");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args([
        "build",
        "--locked",
        "--target",
        target,
        "-p",
        "erlmcp-operator",
        "--bin",
        "erlmcp-operator",
        "-p",
        "erlmcp-dataplane",
        "--bin",
        "erlmcp",
    ])
    .env("CARGO_TARGET_DIR", &dir)
    .env("CARGO_PROFILE_DEV_DEBUG", "0");
    if !musl {
        cmd.env("RUSTFLAGS", "-C target-feature=+crt-static");
    }
    run(&mut cmd);
    for (bin, arg) in [("erlmcp-operator", "--version"), ("erlmcp", "version")] {
        let path = dir.join(target).join("debug").join(bin);
        let elf = std::fs::read(&path).unwrap();
        assert!(!has_interpreter(&elf), "{bin} is dynamically linked");
        let out = run(Command::new(&path).arg(arg));
        assert!(
            out.contains(env!("CARGO_PKG_VERSION")),
            "{bin} {arg}: {out}"
        );
    }
}

/// Whether a 64-bit little-endian ELF file has a PT_INTERP program header (dynamic linking).
fn has_interpreter(elf: &[u8]) -> bool {
    assert_eq!(&elf[..4], b"\x7fELF");
    assert_eq!(elf[4], 2, "64-bit");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap());
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| u32_at(phoff + i * phentsize) == 3)
}

// ------------------------------------------------------------------------------------- RBAC

/// (apiGroup, resource[/subresource], verb)
type Call = (String, String, String);

/// Rules as (group, resource, verb) triples; with resourceNames, the names are appended to the
/// verb as "verb@name".
fn expand(rules: &Value) -> BTreeSet<Call> {
    let mut out = BTreeSet::new();
    for r in rules.as_array().unwrap() {
        let names: Vec<&str> = r["resourceNames"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap()).collect())
            .unwrap_or_default();
        for g in r["apiGroups"].as_array().unwrap() {
            for res in r["resources"].as_array().unwrap() {
                for v in r["verbs"].as_array().unwrap() {
                    for field in [g, res, v] {
                        assert_ne!(field, "*", "wildcard in {r}");
                    }
                    let (g, res, v) = (
                        g.as_str().unwrap(),
                        res.as_str().unwrap(),
                        v.as_str().unwrap(),
                    );
                    if names.is_empty() {
                        out.insert((g.into(), res.into(), v.into()));
                    } else {
                        for n in &names {
                            out.insert((g.into(), res.into(), format!("{v}@{n}")));
                        }
                    }
                }
            }
        }
    }
    out
}

/// Whether `granted` allows `call` ("verb@name" calls are allowed by a rule without names too).
fn allows(granted: &BTreeSet<Call>, call: &Call) -> bool {
    if granted.contains(call) {
        return true;
    }
    match call.2.split_once('@') {
        Some((verb, _)) => granted.contains(&(call.0.clone(), call.1.clone(), verb.into())),
        None => false,
    }
}

/// Granted but never seen in a short run, each for a reason.
const NOT_SEEN_BUT_NEEDED: &[(&str, &str, &str, &str)] = &[
    (
        "events.k8s.io",
        "events",
        "patch",
        "kube's event Recorder patches a repeated event's series instead of creating a new one",
    ),
    (
        "erlmcp.io",
        "erlmcpclusters/finalizers",
        "update",
        "owner references with blockOwnerDeletion, where OwnerReferencesPermissionEnforcement is on",
    ),
];

#[test]
fn rbac_matches_the_operator_calls() {
    // What the chart grants: the ClusterRole (every namespace), and the Lease Role.
    let docs = helm_template(&["--set", "replicaCount=2"]);
    let cluster_rules = expand(&find(&docs, "ClusterRole", RELEASE).unwrap()["rules"]);
    let lease_rules =
        expand(&find(&docs, "Role", &format!("{RELEASE}-leader-election")).unwrap()["rules"]);
    assert!(
        lease_rules.iter().all(|c| c.1 == "leases"),
        "{lease_rules:?}"
    );

    // The data plane's Role: the operator must hold what it grants (RBAC escalation check).
    let basic = erlmcp_crds::ErlmcpCluster::from_sample(&read("config/samples/basic.yaml"));
    let desired = desired::build(&basic, &BuildContext::new(ServerCapabilities::default()));
    let dp_role = desired.find("Role").expect("data plane Role");
    let escalation: BTreeSet<Call> = expand(&dp_role.object["rules"])
        .into_iter()
        .map(|(g, r, v)| (g, r, v.split('@').next().unwrap().to_string()))
        .collect();

    // What the operator calls: run it against a recording fake API server.
    let calls = record_operator_calls();
    let (lease_calls, other_calls): (BTreeSet<Call>, BTreeSet<Call>) =
        calls.into_iter().partition(|c| c.1 == "leases");

    let mut problems = Vec::new();
    for c in &other_calls {
        if !allows(&cluster_rules, c) {
            problems.push(format!(
                "the operator calls {c:?}; the chart does not grant it"
            ));
        }
    }
    for c in &lease_calls {
        if !allows(&lease_rules, c) {
            problems.push(format!(
                "the operator calls {c:?}; the chart's Lease Role does not grant it"
            ));
        }
    }
    for c in &escalation {
        if !allows(&cluster_rules, c) {
            problems.push(format!(
                "the data plane's Role grants {c:?}; the operator lacks it"
            ));
        }
    }
    let unseen: BTreeSet<Call> = NOT_SEEN_BUT_NEEDED
        .iter()
        .map(|(g, r, v, _)| (g.to_string(), r.to_string(), v.to_string()))
        .collect();
    for g in &cluster_rules {
        let used = other_calls.contains(g) || escalation.contains(g) || unseen.contains(g);
        if !used {
            problems.push(format!(
                "the chart grants {g:?}; the operator never calls it"
            ));
        }
    }
    for g in &lease_rules {
        if !lease_calls.contains(g) {
            problems.push(format!(
                "the chart's Lease Role grants {g:?}; the operator never calls it"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "RBAC and the operator's calls differ:\n  {}\ncalls: {other_calls:#?}\nlease calls: {lease_calls:#?}",
        problems.join("\n  ")
    );
}

trait FromSample {
    fn from_sample(yaml: &str) -> Self;
}

impl FromSample for erlmcp_crds::ErlmcpCluster {
    fn from_sample(yaml: &str) -> Self {
        let mut c: Self = serde_yaml::from_str(yaml).expect("sample");
        c.metadata.namespace = Some("prod".into());
        c.metadata.uid = Some("uid-sample".into());
        c
    }
}

// ------------------------------------------------------------------------ recording fake API

#[derive(Default)]
struct Fake {
    /// path of the object (no query) -> object
    objects: BTreeMap<String, Value>,
    rv: u64,
    calls: BTreeSet<Call>,
    log: Vec<String>,
}

type Shared = Arc<Mutex<Fake>>;

/// API path split into (group, version, namespace, resource, name, subresource).
struct ApiPath {
    group: String,
    version: String,
    namespace: Option<String>,
    resource: String,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_path(path: &str) -> Option<ApiPath> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        _ => (None, rest),
    };
    let (resource, name, sub) = match rest {
        [r] => (r.to_string(), None, None),
        [r, n] => (r.to_string(), Some(n.to_string()), None),
        [r, n, s] => (r.to_string(), Some(n.to_string()), Some(s.to_string())),
        _ => return None,
    };
    Some(ApiPath {
        group,
        version,
        namespace,
        resource,
        name,
        sub,
    })
}

fn object_path(p: &ApiPath, name: &str) -> String {
    let prefix = if p.group.is_empty() {
        format!("/api/{}", p.version)
    } else {
        format!("/apis/{}/{}", p.group, p.version)
    };
    match &p.namespace {
        Some(ns) => format!("{prefix}/namespaces/{ns}/{}/{name}", p.resource),
        None => format!("{prefix}/{}/{name}", p.resource),
    }
}

fn status(code: u16, reason: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": reason, "reason": reason, "code": code}),
    )
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// Discovery: the group versions a current cluster with every optional CRD serves.
fn discovery(path: &str) -> Option<Value> {
    let res = |gv: &str, list: &[(&str, &str)]| {
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
               "resources": list.iter().map(|(name, kind)| json!({
                   "name": name, "singularName": "", "namespaced": true, "kind": kind,
                   "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})).collect::<Vec<_>>()})
    };
    match path.trim_end_matches('/') {
        "/apis/autoscaling/v2" => Some(res(
            "autoscaling/v2",
            &[("horizontalpodautoscalers", "HorizontalPodAutoscaler")],
        )),
        "/apis/policy/v1" => Some(res(
            "policy/v1",
            &[("poddisruptionbudgets", "PodDisruptionBudget")],
        )),
        "/apis/monitoring.coreos.com/v1" => Some(res(
            "monitoring.coreos.com/v1",
            &[
                ("servicemonitors", "ServiceMonitor"),
                ("prometheusrules", "PrometheusRule"),
            ],
        )),
        "/apis/cert-manager.io/v1" => Some(res(
            "cert-manager.io/v1",
            &[("certificates", "Certificate")],
        )),
        _ => None,
    }
}

fn handle(
    fake: &Shared,
    method: &str,
    path: &str,
    query: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, Value) {
    if let Some(d) = discovery(path) {
        return (200, d);
    }
    let Some(p) = parse_path(path) else {
        return status(404, "NotFound");
    };
    let watch = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match (method, &p.name) {
        ("GET", Some(_)) => "get",
        ("GET", None) if watch => "watch",
        ("GET", None) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", Some(_)) => "delete",
        ("DELETE", None) => "deletecollection",
        _ => return status(405, "MethodNotAllowed"),
    };
    let resource = match &p.sub {
        Some(s) => format!("{}/{s}", p.resource),
        None => p.resource.clone(),
    };
    let mut f = fake.lock().unwrap();
    let call_verb = match (&p.name, p.resource.as_str(), verb) {
        // Lease calls by name are recorded with the name (the chart narrows them by name).
        (Some(n), "leases", v) if v != "create" => format!("{v}@{n}"),
        _ => verb.to_string(),
    };
    f.calls
        .insert((p.group.clone(), resource.clone(), call_verb));
    f.log.push(format!("{method} {path}?{query}"));
    f.rv += 1;
    let rv = f.rv.to_string();
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body)
            .or_else(|_| serde_yaml::from_slice::<Value>(body))
            .unwrap_or(Value::Null)
    };
    match verb {
        "list" | "watch" => {
            let items: Vec<Value> = f
                .objects
                .iter()
                .filter(|(k, _)| {
                    parse_path(k).is_some_and(|o| {
                        o.group == p.group
                            && o.resource == p.resource
                            && (p.namespace.is_none() || o.namespace == p.namespace)
                    })
                })
                .map(|(_, o)| o.clone())
                .collect();
            if verb == "watch" {
                return (0, Value::Null); // streamed: never ends
            }
            (
                200,
                json!({"apiVersion": if p.group.is_empty() { p.version.clone() } else { format!("{}/{}", p.group, p.version) },
                         "kind": "List", "metadata": {"resourceVersion": rv}, "items": items}),
            )
        }
        "get" => {
            let key = object_path(&p, p.name.as_deref().unwrap());
            match f.objects.get(&key) {
                Some(o) => (200, o.clone()),
                None => status(404, "NotFound"),
            }
        }
        "create" => {
            let name = body["metadata"]["name"]
                .as_str()
                .unwrap_or("generated")
                .to_string();
            let key = object_path(&p, &name);
            if f.objects.contains_key(&key) {
                return status(409, "AlreadyExists");
            }
            let mut o = body.clone();
            o["metadata"]["resourceVersion"] = json!(rv);
            o["metadata"]["uid"] = json!(format!("uid-{rv}"));
            o["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
            if let Some(ns) = &p.namespace {
                o["metadata"]["namespace"] = json!(ns);
            }
            f.objects.insert(key, o.clone());
            (201, o)
        }
        "patch" | "update" => {
            let key = object_path(&p, p.name.as_deref().unwrap());
            let existing = f.objects.get(&key).cloned();
            let mut o = match existing {
                Some(o) => o,
                // Server-side apply creates what is missing; the API server then also
                // authorizes the request as a create.
                None if content_type.starts_with("application/apply-patch") && p.sub.is_none() => {
                    f.calls
                        .insert((p.group.clone(), resource.clone(), "create".into()));
                    let mut o = json!({"metadata": {"uid": format!("uid-{rv}"), "creationTimestamp": "2026-01-01T00:00:00Z"}});
                    if let Some(ns) = &p.namespace {
                        o["metadata"]["namespace"] = json!(ns);
                    }
                    o
                }
                None => return status(404, "NotFound"),
            };
            if verb == "update" {
                let meta = o["metadata"].clone();
                o = body.clone();
                o["metadata"]["uid"] = meta["uid"].clone();
            } else {
                merge(&mut o, &body);
            }
            o["metadata"]["resourceVersion"] = json!(rv);
            f.objects.insert(key, o.clone());
            (200, o)
        }
        "delete" => {
            let key = object_path(&p, p.name.as_deref().unwrap());
            match f.objects.remove(&key) {
                Some(_) => (
                    200,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}),
                ),
                None => status(404, "NotFound"),
            }
        }
        _ => status(405, "MethodNotAllowed"),
    }
}

async fn serve_fake(fake: Shared) -> SocketAddr {
    use axum::body::{Body, Bytes};
    use axum::http::{Request, Response};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move |req: Request<Body>| {
        let fake = fake.clone();
        async move {
            let method = req.method().to_string();
            let path = req.uri().path().to_string();
            let query = req.uri().query().unwrap_or_default().to_string();
            let content_type = req
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let body: Bytes = axum::body::to_bytes(req.into_body(), 16 << 20)
                .await
                .unwrap_or_default();
            let (code, v) = handle(&fake, &method, &path, &query, &content_type, &body);
            if code == 0 {
                // A watch: headers now, then nothing until the client goes away.
                let stream = futures::stream::pending::<Result<Bytes, std::io::Error>>();
                return Response::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .body(Body::from_stream(stream))
                    .unwrap();
            }
            Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(Body::from(v.to_string()))
                .unwrap()
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Fill the fake with the sample clusters (plus one with monitoring), and one stale owned object
/// of every managed kind so that pruning (delete) runs for each.
fn populate(fake: &Shared) -> Vec<String> {
    let mut f = fake.lock().unwrap();
    let mut names = Vec::new();
    let mut samples: Vec<String> = std::fs::read_dir(root().join("config/samples"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    samples.push(
        "apiVersion: erlmcp.io/v1alpha1\nkind: ErlmcpCluster\nmetadata: {name: monitored}\n\
         spec:\n  monitoring: {serviceMonitor: {}, prometheusRule: {}}\n"
            .into(),
    );
    for (i, s) in samples.iter().enumerate() {
        let mut c: Value =
            serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(s).unwrap()).unwrap();
        let name = c["metadata"]["name"].as_str().unwrap().to_string();
        c["metadata"]["namespace"] = json!("prod");
        c["metadata"]["uid"] = json!(format!("uid-cluster-{i}"));
        c["metadata"]["generation"] = json!(1);
        c["metadata"]["resourceVersion"] = json!("1");
        c["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        f.objects.insert(
            format!("/apis/erlmcp.io/v1alpha1/namespaces/prod/erlmcpclusters/{name}"),
            c.clone(),
        );
        if i == 0 {
            let labels: BTreeMap<String, String> = desired::managed_selector(Some(&name))
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.into(), v.into()))
                .collect();
            for (api_version, kind) in
                erlmcp_operator::kinds::managed_kinds(&ServerCapabilities::default())
            {
                let ar = erlmcp_operator::kinds::api_resource(&api_version, &kind);
                let prefix = if ar.group.is_empty() {
                    format!("/api/{}", ar.version)
                } else {
                    format!("/apis/{}/{}", ar.group, ar.version)
                };
                let obj = json!({"apiVersion": api_version, "kind": kind, "metadata": {
                    "name": "stale", "namespace": "prod", "labels": labels, "uid": format!("uid-stale-{kind}"),
                    "resourceVersion": "1",
                    "ownerReferences": [{"apiVersion": "erlmcp.io/v1alpha1", "kind": "ErlmcpCluster", "name": name,
                                         "uid": c["metadata"]["uid"], "controller": true}]}});
                f.objects
                    .insert(format!("{prefix}/namespaces/prod/{}/stale", ar.plural), obj);
            }
        }
        names.push(name);
    }
    names
}

fn record_operator_calls() -> BTreeSet<Call> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake: Shared = Arc::default();
    let clusters = populate(&fake);
    let addr = rt.block_on(serve_fake(fake.clone()));
    let dir = std::env::temp_dir().join(format!("erlmcp-rbac-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: \"http://{addr}\"}}}}]\n\
             users: [{{name: fake, user: {{}}}}]\ncontexts: [{{name: fake, context: {{cluster: fake, user: fake, namespace: {NAMESPACE}}}}}]\n\
             current-context: fake\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("operator.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_erlmcp-operator"))
        .args([
            "run",
            "--metrics-addr",
            "127.0.0.1:0",
            "--lease-seconds",
            "5",
            "--log-format",
            "text",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("LEADER_ELECT", "true")
        .env("POD_NAMESPACE", NAMESPACE)
        .env("POD_NAME", "erlmcp-operator-test")
        .env("WATCH_NAMESPACES", "")
        .env("RUST_LOG", "info")
        .env_remove("ERLMCP_BIND_ADDRESS")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start erlmcp-operator");
    // Done when every cluster's status was written and every stale child pruned.
    let deadline = Instant::now() + Duration::from_secs(90);
    let done = |f: &Fake| {
        let statuses = clusters.iter().all(|c| {
            f.log.iter().any(|l| {
                l.starts_with("PATCH ") && l.contains(&format!("/erlmcpclusters/{c}/status"))
            })
        });
        let pruned = f
            .log
            .iter()
            .filter(|l| l.starts_with("DELETE ") && l.contains("/stale?"))
            .count();
        statuses
            && pruned == erlmcp_operator::kinds::managed_kinds(&ServerCapabilities::default()).len()
    };
    while !done(&fake.lock().unwrap()) {
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let f = fake.lock().unwrap();
            panic!(
                "the operator did not finish a reconcile of every sample against the fake API\n\
                 requests:\n{}\noperator log:\n{}",
                f.log.join("\n"),
                std::fs::read_to_string(dir.join("operator.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // SIGTERM: a graceful stop releases the lease (its calls count too).
    run(Command::new("kill").args(["-TERM", &child.id().to_string()]));
    let stop = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < stop,
            "the operator did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let calls = fake.lock().unwrap().calls.clone();
    std::fs::remove_dir_all(&dir).ok();
    drop(rt);
    calls
}
