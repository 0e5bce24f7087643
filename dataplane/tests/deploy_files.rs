//! The Compose and Swarm files (`deploy/`), checked without a Docker engine:
//! - both are valid against the Compose specification's JSON schema (the one Docker Compose
//!   validates with, vendored in tests/fixtures/compose-spec/), and the check rejects bad files;
//! - every variable they give `erlmcp` is one the data plane reads, and the values load: the
//!   real configuration loaders run on them (secrets materialised as files) and give the data
//!   plane's default ports, DNS discovery on the service name, and the cookie from the secret;
//! - the ports, healthcheck and user agree with the data plane's defaults and Dockerfile;
//! - Prometheus gets the chart's alert rules (a generated copy, compared with `helm template`)
//!   and the labels they group by; Grafana gets the chart's dashboard file itself.
//!
//! Regenerate the rules copy with `UPDATE_DEPLOY_RULES=1 cargo test -p erlmcp-dataplane --test
//! deploy_files`.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use erlmcp_crds::{DataplaneConfig, Discovery};
use erlmcp_dataplane::{cluster, config};
use serde_json::{json, Value};

const COMPOSE: &str = "deploy/compose/compose.yaml";
const STACK: &str = "deploy/swarm/stack.yaml";
const SCHEMA: &str = "dataplane/tests/fixtures/compose-spec/compose-spec.json";
const SCHEMA_SHA256: &str = "f266dcbb043229405d7cedd5aec918f9102c2b3d5e3850808fdd8edd564a43ff";
const RULES: &str = "deploy/monitoring/erlmcp.rules.yml";
const DASHBOARD: &str = "charts/erlmcp-operator/files/dashboard.json";
const CHART: &str = "charts/erlmcp-operator";
const SERVICE: &str = "erlmcp";

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

fn yaml(text: &str) -> Value {
    let v: serde_yaml::Value = serde_yaml::from_str(text).expect("valid YAML");
    serde_json::to_value(v).expect("YAML as JSON")
}

/// Compose interpolation with every variable unset: `${X:-d}` and `${X-d}` give `d`, `$$` is
/// a `$`. A variable without a default is an error: the files must work without a `.env`.
fn interpolate(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = rest.strip_prefix('{') {
            let end = r.find('}').ok_or("unclosed ${")?;
            let body = &r[..end];
            let default = body
                .split_once(":-")
                .or_else(|| body.split_once('-'))
                .map(|(_, d)| d)
                .ok_or_else(|| format!("${{{body}}} has no default"))?;
            out.push_str(default);
            rest = &r[end + 1..];
        } else {
            return Err(format!("bare $ before {:?}", &rest[..rest.len().min(10)]));
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A deploy file as Docker would read it (variables at their defaults).
fn load(rel: &str) -> Value {
    yaml(&interpolate(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}")))
}

fn validator() -> jsonschema::Validator {
    use sha2::Digest;
    let text = read(SCHEMA);
    assert_eq!(
        hex::encode(sha2::Sha256::digest(text.as_bytes())),
        SCHEMA_SHA256,
        "{SCHEMA} differs from the vendored release (see SOURCE.md beside it)"
    );
    let schema: Value = serde_json::from_str(&text).expect("schema JSON");
    jsonschema::validator_for(&schema).expect("the Compose schema compiles")
}

fn schema_errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// `scripts/tools.sh helm` (installed once, cached): the chart rendered as users get it.
fn helm_show(template: &str, set: &str) -> Value {
    let out = Command::new("bash")
        .args(["scripts/tools.sh", "helm"])
        .current_dir(root())
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/tools.sh");
    assert!(
        out.status.success(),
        "scripts/tools.sh helm: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let helm = stdout.lines().last().unwrap_or_default().trim().to_string();
    let out = Command::new(&helm)
        .args(["template", "erlmcp-operator", CHART, "--set", set])
        .args(["--show-only", template])
        .current_dir(root())
        .stdin(Stdio::null())
        .output()
        .expect("run helm");
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    yaml(&String::from_utf8_lossy(&out.stdout))
}

fn erlmcp(doc: &Value) -> &Value {
    &doc["services"][SERVICE]
}

/// `environment:` as a map (Compose allows a map or a list of `K=V`).
fn environment(svc: &Value) -> BTreeMap<String, String> {
    let scalar = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match &svc["environment"] {
        Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), scalar(v))).collect(),
        Value::Array(a) => a
            .iter()
            .filter_map(|e| e.as_str()?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// Where each secret of the service appears inside the container.
fn secret_paths(svc: &Value) -> Vec<String> {
    svc["secrets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let target = s
                .as_str()
                .or_else(|| s["target"].as_str())
                .or_else(|| s["source"].as_str())
                .expect("secret name");
            if target.starts_with('/') {
                target.to_string()
            } else {
                format!("/run/secrets/{target}")
            }
        })
        .collect()
}

/// An `Env` that remembers every variable the loaders ask for.
struct Recording {
    vars: BTreeMap<String, String>,
    asked: RefCell<BTreeSet<String>>,
}

impl config::Env for Recording {
    fn get(&self, key: &str) -> Option<String> {
        self.asked.borrow_mut().insert(key.to_string());
        self.vars.get(key).cloned()
    }
}

/// The variables the `erlmcp` binary reads: through its subcommands' flags (`[env: X=]` in
/// their help) and `std::env` calls in the source; the loaders' own come from `Recording`.
fn binary_env_vars() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for sub in ["serve", "healthcheck"] {
        let o = Command::new(env!("CARGO_BIN_EXE_erlmcp"))
            .args([sub, "--help"])
            .env_clear()
            .output()
            .expect("erlmcp --help");
        let help = String::from_utf8_lossy(&o.stdout).into_owned();
        for part in help.split("[env: ").skip(1) {
            out.insert(part.split('=').next().unwrap().to_string());
        }
    }
    fn walk(p: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(p).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                for pat in ["env::var(\"", "env::var_os(\""] {
                    for part in text.split(pat).skip(1) {
                        out.insert(part.split('"').next().unwrap().to_string());
                    }
                }
            }
        }
    }
    walk(&root().join("dataplane/src"), &mut out);
    out
}

/// What the data plane makes of the service's environment, secrets written where Docker
/// mounts them (here: files in a scratch directory, the variables pointed at them).
struct Loaded {
    cfg: config::RuntimeConfig,
    cluster: cluster::ClusterSettings,
    asked: BTreeSet<String>,
    cookie: String,
}

fn load_dataplane(rel: &str, svc: &Value) -> Loaded {
    let dir = std::env::temp_dir().join(format!(
        "erlmcp-deploy-{}-{}",
        std::process::id(),
        rel.replace('/', "_")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let cookie = format!("cookie-of-{}-0123456789abcdef", rel.replace('/', "-"));
    let mut vars = environment(svc);
    for (i, path) in secret_paths(svc).iter().enumerate() {
        let file = dir.join(format!("secret-{i}"));
        std::fs::write(&file, format!("{cookie}\n")).unwrap();
        for v in vars.values_mut().filter(|v| *v == path) {
            *v = file.display().to_string();
        }
    }
    let env = Recording {
        vars,
        asked: RefCell::new(BTreeSet::new()),
    };
    let cfg = config::from_parts(DataplaneConfig::default(), &env)
        .unwrap_or_else(|e| panic!("{rel}: the data plane rejects its environment: {e}"));
    let cluster = cluster::settings(&cfg, &env)
        .unwrap_or_else(|e| panic!("{rel}: the data plane rejects its cluster settings: {e}"));
    std::fs::remove_dir_all(&dir).ok();
    Loaded {
        cfg,
        cluster,
        asked: env.asked.into_inner(),
        cookie,
    }
}

/// The data plane's defaults: (mcp, health, metrics, peer).
fn default_ports() -> (u16, u16, u16, u16) {
    let d = config::from_parts(DataplaneConfig::default(), &BTreeMap::new()).unwrap();
    (
        d.mcp_port(),
        d.health_port(),
        d.metrics_port(),
        DataplaneConfig::default().cluster.port,
    )
}

/// `HOST:CONTAINER[/proto]` (or a long-syntax entry): the container port.
fn container_port(p: &Value) -> u16 {
    if let Some(t) = p["target"].as_u64() {
        return t as u16;
    }
    let s = p
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| p.to_string());
    let s = s.split('/').next().unwrap();
    s.rsplit(':')
        .next()
        .unwrap()
        .parse()
        .expect("container port")
}

/// (ENTRYPOINT binary, USER, EXPOSE ports, ENV) of Dockerfile.dataplane.
fn dockerfile() -> (String, String, BTreeSet<u16>, BTreeMap<String, String>) {
    let text = read("Dockerfile.dataplane").replace("\\\n", " ");
    let mut entry = String::new();
    let mut user = String::new();
    let mut expose = BTreeSet::new();
    let mut env = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if let Some(r) = line.strip_prefix("ENTRYPOINT ") {
            let v: Vec<String> = serde_json::from_str(r).expect("ENTRYPOINT in exec form");
            entry = v[0].clone();
        } else if let Some(r) = line.strip_prefix("USER ") {
            user = r.trim().to_string();
        } else if let Some(r) = line.strip_prefix("EXPOSE ") {
            expose.extend(r.split_whitespace().map(|p| p.parse::<u16>().unwrap()));
        } else if let Some(r) = line.strip_prefix("ENV ") {
            for kv in r.split_whitespace() {
                if let Some((k, v)) = kv.split_once('=') {
                    env.insert(k.to_string(), v.to_string());
                }
            }
        }
    }
    (entry, user, expose, env)
}

// -------------------------------------------------------------------------------------- tests

#[test]
fn files_are_valid_compose_and_the_check_rejects_bad_ones() {
    let v = validator();
    for rel in [COMPOSE, STACK] {
        let doc = load(rel);
        let errs = schema_errors(&v, &doc);
        assert!(
            errs.is_empty(),
            "{rel} is not valid Compose:\n{}",
            errs.join("\n")
        );
    }
    // The same check on broken copies: a misspelt key, a value outside its enum, a wrong type.
    let base = load(STACK);
    let mut typo = base.clone();
    typo["services"][SERVICE]["healthchek"] = typo["services"][SERVICE]["healthcheck"].take();
    let mut order = base.clone();
    order["services"][SERVICE]["deploy"]["update_config"]["order"] = json!("sideways-first");
    let mut ports = load(COMPOSE);
    ports["services"][SERVICE]["ports"] = json!({"mcp": 8080});
    for (what, doc) in [
        ("unknown key", typo),
        ("bad enum", order),
        ("wrong type", ports),
    ] {
        assert!(
            !schema_errors(&v, &doc).is_empty(),
            "the schema check accepts a file with a {what}"
        );
    }
    assert!(interpolate("${NO_DEFAULT}").is_err());
    assert_eq!(interpolate("a${X:-b}c$${Y}${Z-d}").unwrap(), "abc${Y}d");
}

#[test]
fn every_variable_is_read_by_the_data_plane_and_loads() {
    let from_binary = binary_env_vars();
    let (mcp, health, metrics, peer) = default_ports();
    for (rel, dns_name) in [
        (COMPOSE, SERVICE.to_string()),
        (STACK, format!("tasks.{SERVICE}")),
    ] {
        let doc = load(rel);
        let svc = erlmcp(&doc);
        let vars = environment(svc);
        assert!(
            vars.contains_key("ERLANG_COOKIE_FILE"),
            "{rel}: cookie from a secret"
        );
        assert!(
            !vars.contains_key("ERLANG_COOKIE"),
            "{rel}: never the cookie itself"
        );
        let loaded = load_dataplane(rel, svc);
        let known: BTreeSet<&String> = loaded.asked.iter().chain(&from_binary).collect();
        for k in vars.keys() {
            assert!(
                known.contains(k),
                "{rel} sets {k}, which the data plane never reads"
            );
        }
        // The check can fail: variables of the original only (Erlang's), or made up.
        for foreign in ["ERL_DIST_PORT", "ERLMCP_BOGUS"] {
            assert!(
                !known.contains(&foreign.to_string()),
                "{foreign} counted as read"
            );
        }
        let c = &loaded.cfg;
        assert_eq!(
            (
                c.mcp_port(),
                c.health_port(),
                c.metrics_port(),
                loaded.cluster.port
            ),
            (mcp, health, metrics, peer),
            "{rel}: the data plane's default ports"
        );
        assert_eq!(
            loaded.cluster.discovery,
            Discovery::Dns {
                name: dns_name,
                interval_seconds: 5
            },
            "{rel}"
        );
        assert_eq!(
            c.cookie.as_deref(),
            Some(loaded.cookie.as_str()),
            "{rel}: cookie read from the secret"
        );
        // Docker's own DNS: no resolver override in the shipped files.
        assert_eq!(loaded.cluster.dns_server, None, "{rel}");
        assert_eq!(c.environment, "production");
    }
}

#[test]
fn ports_healthcheck_and_user_match_the_data_plane_and_its_image() {
    let (mcp, health, metrics, peer) = default_ports();
    let (entry, user, expose, image_env) = dockerfile();
    assert_eq!(
        expose,
        BTreeSet::from([mcp, health, metrics]),
        "Dockerfile EXPOSE"
    );
    for (k, want) in [
        ("ERLMCP_PORT", mcp),
        ("HEALTH_PORT", health),
        ("METRICS_PORT", metrics),
    ] {
        assert_eq!(
            image_env.get(k),
            Some(&want.to_string()),
            "Dockerfile ENV {k}"
        );
    }
    for rel in [COMPOSE, STACK] {
        let doc = load(rel);
        let svc = erlmcp(&doc);
        let published: Vec<u16> = svc["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(container_port)
            .collect();
        assert_eq!(
            published,
            vec![mcp],
            "{rel}: clients reach the MCP port only"
        );
        assert_eq!(
            svc["healthcheck"]["test"],
            json!(["CMD", entry, "healthcheck"]),
            "{rel}: the image's own healthcheck command"
        );
        assert_eq!(svc["user"], json!(user), "{rel}: the image's user");
        assert_eq!(svc["read_only"], json!(true), "{rel}");
        assert_eq!(svc["cap_drop"], json!(["ALL"]), "{rel}");
    }
    let compose = load(COMPOSE);
    let exposed: BTreeSet<u16> = erlmcp(&compose)["expose"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(exposed, BTreeSet::from([health, metrics, peer]));
    assert_eq!(erlmcp(&compose)["deploy"]["replicas"], json!(3));
    // The Prometheus of each finds the replicas by the nodes' own DNS name, on the metrics port.
    for (rel, prom, name) in [
        (
            COMPOSE,
            "deploy/compose/prometheus.yml",
            SERVICE.to_string(),
        ),
        (
            STACK,
            "deploy/swarm/prometheus.yml",
            format!("tasks.{SERVICE}"),
        ),
    ] {
        let p = yaml(&read(prom));
        let sd = &p["scrape_configs"][0]["dns_sd_configs"][0];
        assert_eq!(sd["port"], json!(metrics), "{prom}");
        assert_eq!(sd["names"], json!([name]), "{prom}");
        let vars = environment(erlmcp(&load(rel)));
        assert!(vars["ERLMCP_DISCOVERY"].starts_with(&format!("dns:{name},")));
    }
}

#[test]
fn swarm_rolls_start_first_rolls_back_and_spreads() {
    let doc = load(STACK);
    let d = &erlmcp(&doc)["deploy"];
    assert_eq!(d["update_config"]["order"], json!("start-first"));
    assert_eq!(d["update_config"]["failure_action"], json!("rollback"));
    assert_eq!(d["update_config"]["parallelism"], json!(1));
    assert!(d["rollback_config"].is_object());
    assert!(d["placement"]["preferences"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["spread"].is_string()));
    // start-first needs room for a second task on a node when nodes == replicas.
    let per_node = d["placement"]["max_replicas_per_node"]
        .as_u64()
        .unwrap_or(u64::MAX);
    assert!(
        per_node >= 2,
        "max_replicas_per_node {per_node} blocks start-first"
    );
    for k in ["limits", "reservations"] {
        assert!(d["resources"][k]["memory"].is_string(), "resources.{k}");
        assert!(d["resources"][k]["cpus"].is_string(), "resources.{k}");
    }
    // Secrets come from the swarm, readable by the image's user only.
    let s = &erlmcp(&doc)["secrets"][0];
    assert_eq!(
        doc["secrets"][s["source"].as_str().unwrap()]["external"],
        json!(true)
    );
    assert_eq!(s["uid"], json!("10001"));
}

/// The chart's `erlmcp` alert group (the operator's own group needs the operator).
fn chart_rules() -> Value {
    let pr = helm_show(
        "templates/prometheusrule.yaml",
        "prometheusRule.enabled=true",
    );
    let groups: Vec<Value> = pr["spec"]["groups"]
        .as_array()
        .expect("PrometheusRule groups")
        .iter()
        .filter(|g| g["name"] == "erlmcp")
        .cloned()
        .collect();
    assert_eq!(groups.len(), 1, "the chart's erlmcp group");
    json!({ "groups": groups })
}

#[test]
fn prometheus_gets_the_charts_alert_rules_and_their_labels() {
    let want = chart_rules();
    if std::env::var_os("UPDATE_DEPLOY_RULES").is_some() {
        let text = format!(
            "# GENERATED from the chart's PrometheusRule ({CHART}/templates/prometheusrule.yaml,\n\
             # group `erlmcp`, default thresholds) by dataplane/tests/deploy_files.rs; do not edit.\n\
             # Regenerate: UPDATE_DEPLOY_RULES=1 cargo test -p erlmcp-dataplane --test deploy_files\n{}",
            serde_yaml::to_string(&want).unwrap()
        );
        std::fs::write(root().join(RULES), text).unwrap();
    }
    assert_eq!(
        yaml(&read(RULES)),
        want,
        "{RULES} is stale: UPDATE_DEPLOY_RULES=1 cargo test -p erlmcp-dataplane --test deploy_files"
    );
    // Every label the rules group by (and `pod`, in their descriptions) is set on the targets.
    let mut used: BTreeSet<String> = BTreeSet::from(["pod".to_string()]);
    for r in want["groups"][0]["rules"].as_array().unwrap() {
        let expr = r["expr"].as_str().unwrap();
        for part in expr.split("by (").skip(1) {
            let inner = part.split(')').next().unwrap();
            used.extend(inner.split(',').map(|l| l.trim().to_string()));
        }
    }
    used.remove("le");
    assert!(used.contains("erlmcp_cluster") && used.contains("namespace"));
    let compose = load(COMPOSE);
    let stack = load(STACK);
    let compose_rules = compose["services"]["prometheus"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .find_map(|v| v.strip_prefix("../monitoring/erlmcp.rules.yml:"))
        .expect("compose mounts the rules")
        .trim_end_matches(":ro")
        .to_string();
    let swarm_rules = stack["services"]["prometheus"]["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            stack["configs"][c["source"].as_str().unwrap()]["file"]
                == "../monitoring/erlmcp.rules.yml"
        })
        .expect("swarm gives the rules as a config")["target"]
        .as_str()
        .unwrap()
        .to_string();
    for (prom, mounted) in [
        ("deploy/compose/prometheus.yml", compose_rules),
        ("deploy/swarm/prometheus.yml", swarm_rules),
    ] {
        let p = yaml(&read(prom));
        assert_eq!(
            p["rule_files"],
            json!([mounted]),
            "{prom} loads the mounted rules"
        );
        let set: BTreeSet<String> = p["scrape_configs"][0]["relabel_configs"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["target_label"].as_str().map(String::from))
            .collect();
        for l in &used {
            assert!(
                set.contains(l),
                "{prom} does not set label {l}, which the rules use"
            );
        }
    }
}

#[test]
fn grafana_gets_the_charts_dashboard_file_itself() {
    let cm = helm_show("templates/dashboard.yaml", "grafanaDashboard.enabled=true");
    let shipped: Value =
        serde_json::from_str(cm["data"]["erlmcp.json"].as_str().expect("dashboard data")).unwrap();
    let file: Value = serde_json::from_str(&read(DASHBOARD)).unwrap();
    assert_eq!(shipped, file, "the chart ships {DASHBOARD}");

    let provider = yaml(&read(
        "deploy/monitoring/grafana/provisioning/dashboards/erlmcp.yml",
    ));
    let dash_dir = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap()
        .to_string();
    let datasource = yaml(&read(
        "deploy/monitoring/grafana/provisioning/datasources/prometheus.yml",
    ));
    assert_eq!(
        datasource["datasources"][0]["url"],
        json!("http://prometheus:9090")
    );

    // Compose mounts the file (a path relative to the compose file) into the provider's dir.
    let compose = load(COMPOSE);
    let target = compose["services"]["grafana"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .find_map(|v| {
            let (src, rest) = v.split_once(':')?;
            let src = root()
                .join("deploy/compose")
                .join(src)
                .canonicalize()
                .ok()?;
            (src == root().join(DASHBOARD)).then(|| rest.trim_end_matches(":ro").to_string())
        })
        .expect("compose mounts the chart's dashboard file");
    assert_eq!(Path::new(&target).parent().unwrap(), Path::new(&dash_dir));
    // Swarm gives it as a config made from the same file.
    let stack = load(STACK);
    let cfg = stack["services"]["grafana"]["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            let f = stack["configs"][c["source"].as_str().unwrap()]["file"]
                .as_str()
                .unwrap();
            root().join("deploy/swarm").join(f).canonicalize().ok() == Some(root().join(DASHBOARD))
        })
        .expect("swarm gives the chart's dashboard file as a config");
    assert_eq!(
        Path::new(cfg["target"].as_str().unwrap()).parent().unwrap(),
        Path::new(&dash_dir)
    );
}

#[test]
fn every_referenced_file_exists_except_the_secrets_users_make() {
    for (rel, dir) in [(COMPOSE, "deploy/compose"), (STACK, "deploy/swarm")] {
        let doc = load(rel);
        let base = root().join(dir);
        for (_, svc) in doc["services"].as_object().unwrap() {
            for v in svc["volumes"].as_array().into_iter().flatten() {
                if let Some(src) = v.as_str().and_then(|v| v.split_once(':')).map(|(s, _)| s) {
                    if src.starts_with('.') {
                        assert!(base.join(src).exists(), "{rel}: {src} is missing");
                    }
                }
            }
        }
        for (name, c) in doc["configs"].as_object().into_iter().flatten() {
            let f = c["file"].as_str().unwrap();
            assert!(
                base.join(f).is_file(),
                "{rel}: config {name}: {f} is missing"
            );
        }
        // Secret files are made per machine, in a directory whose .gitignore keeps them out.
        for (name, s) in doc["secrets"].as_object().into_iter().flatten() {
            if let Some(f) = s["file"].as_str() {
                let d = base.join(f).parent().unwrap().to_path_buf();
                let ignore = std::fs::read_to_string(d.join(".gitignore")).unwrap_or_default();
                assert!(
                    ignore.lines().any(|l| l.trim() == "*"),
                    "{rel}: secret {name} lives where git would commit it"
                );
            }
        }
    }
}
