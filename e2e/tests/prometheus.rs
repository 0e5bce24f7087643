//! A real Prometheus server (Debian's, from `scripts/tools.sh prometheus`) scraping the e2e
//! plane: the pods of a cluster at their network-namespace IPs and the operator, found through
//! file-based service discovery, labelled as the operator's ServiceMonitor and the Prometheus
//! Operator label them (`namespace`, `pod`, `erlmcp_cluster`). Every PromQL expression of the
//! shipped Grafana dashboard must then return a number: the query part is
//! `charts/erlmcp-operator/tests/prometheus_check.py dashboard-all`, shared with the chart's
//! loopback check (which excuses the operator panels that only this suite can feed).
//!
//! Prometheus listens on a free loopback port; every wait is bounded.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use erlmcp_e2e::cluster::{free_port, pod_addr};
use erlmcp_e2e::env::Process;
use erlmcp_e2e::http;
use erlmcp_e2e::TestEnv;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

const CLUSTER: &str = "demo";
const OPERATOR_POD: &str = "op-prom";
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// The path `scripts/tools.sh <tool>` prints last (installing the tool once).
fn tool(env: &TestEnv, name: &str) -> Result<PathBuf> {
    let out = Command::new("bash")
        .arg(env.workspace.join("scripts/tools.sh"))
        .arg(name)
        .stderr(Stdio::inherit())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = stdout.lines().last().unwrap_or("").trim();
    ensure!(
        out.status.success() && !path.is_empty(),
        "scripts/tools.sh {name} failed"
    );
    Ok(PathBuf::from(path))
}

/// `s` percent-encoded for a URL query value.
fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn query_escape_keeps_only_unreserved_bytes() {
    assert_eq!(
        query_escape(r#"sum(up{job="a b"})"#),
        "sum%28up%7Bjob%3D%22a%20b%22%7D%29"
    );
}

/// The values of an instant query (one per series).
async fn instant(prom: SocketAddr, promql: &str) -> Result<Vec<f64>> {
    let path = format!("/api/v1/query?query={}", query_escape(promql));
    let (code, body) = http::get(prom, &path).await?;
    ensure!(code == 200, "{promql}: HTTP {code}: {body}");
    let v: Value = serde_json::from_str(&body)?;
    v["data"]["result"]
        .as_array()
        .context("no result")?
        .iter()
        .map(|r| {
            r["value"][1]
                .as_str()
                .context("no value")?
                .parse::<f64>()
                .context("not a number")
        })
        .collect()
}

/// Waits until `promql` has a series with a value of at least `min`.
async fn wait_at_least(
    env: &TestEnv,
    prom: SocketAddr,
    promql: &str,
    min: f64,
    ns: &str,
) -> Result<f64> {
    env.wait_for(
        &format!("{promql} >= {min}"),
        Duration::from_secs(60),
        Some(ns),
        || async {
            let vals = instant(prom, promql).await?;
            Ok(vals.into_iter().find(|v| *v >= min))
        },
    )
    .await
}

/// The file-SD target groups: one per pod (its IP and `metrics` container port), labelled with
/// what the ServiceMonitor relabelling gives; the operator's with the `pod` label the
/// Prometheus Operator adds to pod targets.
fn target_groups(pods: &[Pod], ns: &str, operator: SocketAddr) -> Result<(Value, Value)> {
    let mut groups = Vec::new();
    for p in pods {
        let name = p.metadata.name.clone().context("pod name")?;
        let ip = p
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .context("pod IP")?;
        let port = p
            .spec
            .as_ref()
            .into_iter()
            .flat_map(|s| &s.containers)
            .flat_map(|c| c.ports.iter().flatten())
            .find(|cp| cp.name.as_deref() == Some("metrics"))
            .map(|cp| cp.container_port)
            .with_context(|| format!("{name}: no container port named metrics"))?;
        groups.push(json!({
            "targets": [format!("{ip}:{port}")],
            "labels": {"namespace": ns, "pod": name, "erlmcp_cluster": CLUSTER},
        }));
    }
    let operator = json!([{
        "targets": [operator.to_string()],
        "labels": {"namespace": ns, "pod": OPERATOR_POD},
    }]);
    Ok((Value::Array(groups), operator))
}

fn prometheus_config(dir: &Path) -> String {
    format!(
        "global: {{scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}}\n\
         scrape_configs:\n\
         \x20 - job_name: erlmcp\n\
         \x20   file_sd_configs: [{{files: ['{pods}'], refresh_interval: 1s}}]\n\
         \x20 - job_name: erlmcp-operator\n\
         \x20   file_sd_configs: [{{files: ['{operator}'], refresh_interval: 1s}}]\n",
        pods = dir.join("pods.json").display(),
        operator = dir.join("operator.json").display(),
    )
}

/// A tools/call in the stateless revision (no session): `echo` answers, an unknown tool is an
/// error the error panels count.
async fn tools_call(addr: SocketAddr, id: u64, tool: &str) -> Result<http::Response> {
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "e2e-prometheus", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": tool, "arguments": {"message": "hi"}, "_meta": meta}});
    http::request(
        addr,
        "POST",
        "/mcp",
        &[
            ("Accept", "application/json, text/event-stream"),
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", tool),
        ],
        Some(&call),
        HTTP_TIMEOUT,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_pods_and_operator_and_every_dashboard_query_answers() -> Result<()> {
    let env = TestEnv::get();
    env.install_crd()?;
    let ns = env.namespace("prom").await?;
    let ns = ns.name.clone();
    let prometheus = tool(env, "prometheus")?;
    let python = tool(env, "pyyaml")?;
    let helm = tool(env, "helm")?;

    let dir = env.run_dir.join(format!("prometheus-{ns}"));
    std::fs::create_dir_all(&dir)?;
    let op_metrics = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let mut op_cmd = Command::new(env.bin_dir.join("erlmcp-operator"));
    op_cmd
        .arg("run")
        .env("KUBECONFIG", &env.kubeconfig)
        .env("WATCH_NAMESPACES", &ns)
        .env("POD_NAMESPACE", &ns)
        .env("POD_NAME", OPERATOR_POD)
        .env("METRICS_ADDR", op_metrics.to_string())
        .env("LOG_FORMAT", "text")
        .env("NO_COLOR", "1");
    let operator = Process::spawn(op_cmd, dir.join("operator.log"))?;

    let sample = format!(
        "apiVersion: erlmcp.io/v1alpha1\nkind: ErlmcpCluster\n\
         metadata: {{name: {CLUSTER}}}\nspec: {{replicas: 3}}\n"
    );
    env.apply(&ns, &sample).await?;
    let selector = format!("app.kubernetes.io/instance={CLUSTER}");
    let pods = env
        .wait_pods_ready(&ns, &selector, 3, Duration::from_secs(180))
        .await?;

    let (pod_groups, op_groups) = target_groups(&pods, &ns, op_metrics)?;
    std::fs::write(dir.join("pods.json"), pod_groups.to_string())?;
    std::fs::write(dir.join("operator.json"), op_groups.to_string())?;
    std::fs::write(dir.join("prometheus.yml"), prometheus_config(&dir))?;
    let prom = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let mut cmd = Command::new(&prometheus);
    cmd.arg(format!(
        "--config.file={}",
        dir.join("prometheus.yml").display()
    ))
    .arg(format!(
        "--storage.tsdb.path={}",
        dir.join("tsdb").display()
    ))
    .arg(format!("--web.listen-address={prom}"))
    // Debian's defaults point at /usr/share/prometheus, which a binary from the .deb lacks.
    .arg(format!(
        "--web.console.templates={}",
        dir.join("none").display()
    ))
    .arg(format!(
        "--web.console.libraries={}",
        dir.join("none").display()
    ));
    let server = Process::spawn(cmd, dir.join("prometheus.log"))?;
    env.wait_for(
        "prometheus ready",
        Duration::from_secs(60),
        None,
        || async { Ok(matches!(http::get(prom, "/-/ready").await, Ok((200, _))).then_some(())) },
    )
    .await
    .with_context(|| format!("prometheus log:\n{}", server.log_tail(20)))?;

    wait_at_least(env, prom, r#"sum(up{job="erlmcp"})"#, 3.0, &ns).await?;
    wait_at_least(env, prom, r#"sum(up{job="erlmcp-operator"})"#, 1.0, &ns)
        .await
        .with_context(|| format!("operator log:\n{}", operator.log_tail(20)))?;
    wait_at_least(env, prom, "min(erlmcp_cluster_nodes)", 3.0, &ns).await?;

    // After the first scrapes, so every counter and histogram grows between two samples:
    // tools/call traffic on every pod, one error, and a cluster the API server refuses (an
    // invalid Service label: a reconcile error the operator counts).
    let mcp_port = 8080;
    let mut id = 0;
    for p in &pods {
        for _ in 0..5 {
            id += 1;
            let r = tools_call(pod_addr(p, mcp_port)?, id, "echo").await?;
            ensure!(
                r.status == 200 && r.body.contains("\"hi\""),
                "echo on {:?}: {r:?}",
                p.metadata.name
            );
        }
    }
    let r = tools_call(pod_addr(&pods[0], mcp_port)?, 999, "no-such-tool").await?;
    ensure!(
        !r.body.contains("\"hi\""),
        "an unknown tool answered like echo: {r:?}"
    );
    let refused = "apiVersion: erlmcp.io/v1alpha1\nkind: ErlmcpCluster\n\
         metadata: {name: refused}\n\
         spec: {replicas: 1, service: {labels: {'not a label key!': x}}}\n";
    env.apply(&ns, refused).await?;
    wait_at_least(
        env,
        prom,
        r#"sum(erlmcp_requests_total{method="tools/call"})"#,
        (id + 1) as f64,
        &ns,
    )
    .await?;
    wait_at_least(
        env,
        prom,
        "sum(erlmcp_operator_reconcile_errors_total)",
        1.0,
        &ns,
    )
    .await
    .with_context(|| format!("operator log:\n{}", operator.log_tail(20)))?;

    // The dashboard as the chart ships it.
    let out = Command::new(&helm)
        .current_dir(&env.workspace)
        .args([
            "template",
            "erlmcp-operator",
            "charts/erlmcp-operator",
            "-n",
            "erlmcp-system",
            "-f",
            "charts/erlmcp-operator/ci/monitoring-values.yaml",
            "--show-only",
            "templates/dashboard.yaml",
        ])
        .output()?;
    ensure!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dashboard = dir.join("dashboard.yaml");
    std::fs::write(&dashboard, &out.stdout)?;

    // Rates need two samples past the last change: a few tries, one scrape apart.
    let check = env
        .workspace
        .join("charts/erlmcp-operator/tests/prometheus_check.py");
    let mut last = String::new();
    for _ in 0..20 {
        let out = Command::new(&python)
            .arg(&check)
            .arg("dashboard-all")
            .arg(format!("http://{prom}"))
            .arg(&dashboard)
            .arg(format!("namespace={ns}"))
            .arg(format!("cluster={CLUSTER}"))
            .output()?;
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            eprintln!("{last}");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    bail!(
        "dashboard queries without data on the e2e plane:\n{last}\noperator log:\n{}",
        operator.log_tail(20)
    )
}
