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

#[path = "support/deploy.rs"]
mod deploy;

use std::collections::BTreeSet;
use std::path::Path;

use deploy::{
    binary_env_vars, container_port, default_ports, dockerfile, environment, erlmcp, helm_show,
    interpolate, load, load_dataplane, read, root, schema_errors, validator, yaml, CHART, COMPOSE,
    DASHBOARD, RULES, SERVICE, STACK,
};
use erlmcp_crds::Discovery;
use serde_json::{json, Value};

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
