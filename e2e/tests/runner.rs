//! The pod runner itself, with the data-plane image run directly (no operator): a StatefulSet's
//! pods run as local processes on their own addresses, see their volumes where a real pod
//! would, use a real service-account token, are listed by the headless Service, stop through
//! preStop + SIGTERM, are recreated, and go away on scale-down; a failing liveness probe
//! restarts the container. Pods as hosts of their own (network namespaces): `runner/network.rs`.

#[path = "runner/network.rs"]
mod network;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use erlmcp_e2e::env::{http_get, pod_ready};
use erlmcp_e2e::TestEnv;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

const ZONE: &str = "topology.kubernetes.io/zone";

fn pid_of(p: &Pod) -> Option<u32> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .container_id
        .as_ref()?
        .strip_prefix("erlmcp-pod-runner://")?
        .parse()
        .ok()
}

fn ip_of(p: &Pod) -> IpAddr {
    p.status
        .as_ref()
        .and_then(|s| s.pod_ip.as_ref())
        .expect("pod IP")
        .parse()
        .expect("IP")
}

/// A file as the container's process sees it (its root and mount namespace, via /proc).
/// Absolute symlinks on the way would be resolved in *our* namespace, hence /var/run → /run.
fn read_in(pid: u32, path: &str) -> Result<String> {
    let path = match path.strip_prefix("/var/run/") {
        Some(rest) if std::fs::read_link("/var/run").is_ok() => format!("/run/{rest}"),
        _ => path.to_string(),
    };
    std::fs::read_to_string(format!("/proc/{pid}/root{path}"))
        .with_context(|| format!("{path} in pid {pid}"))
}

fn web_yaml(env: &TestEnv, replicas: i32) -> String {
    let mut template_spec = json!({
        "terminationGracePeriodSeconds": 10,
        "securityContext": {"runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001, "runAsNonRoot": true},
        "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}},
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "web"}}}],
        "containers": [{
            "name": "erlmcp",
            "image": "ghcr.io/erlmcp/erlmcp:0.1.0",
            "args": ["serve", "--config", "/etc/erlmcp/config/erlmcp.yaml"],
            "env": [
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "ERLMCP_NODE_NAME", "value": "$(POD_NAME)"},
                {"name": "ERLANG_COOKIE_FILE", "value": "/etc/erlmcp/cookie/cookie"},
            ],
            "ports": [{"name": "mcp", "containerPort": 8080}, {"name": "health", "containerPort": 9090}],
            "startupProbe": {"httpGet": {"path": "/live", "port": "health"}, "periodSeconds": 1, "failureThreshold": 30},
            "livenessProbe": {"httpGet": {"path": "/live", "port": "health"}, "periodSeconds": 5},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": "health"}, "periodSeconds": 2},
            "lifecycle": {"preStop": {"exec": {"command": ["erlmcp", "drain", "--timeout-seconds", "5"]}}},
            "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false},
            "volumeMounts": [
                {"name": "config", "mountPath": "/etc/erlmcp/config", "readOnly": true},
                {"name": "cookie", "mountPath": "/etc/erlmcp/cookie", "readOnly": true},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
        }],
        "volumes": [
            {"name": "config", "configMap": {"name": "web-config"}},
            {"name": "cookie", "secret": {"secretName": "web-cookie", "defaultMode": 0o440}},
            {"name": "tmp", "emptyDir": {}},
        ],
    });
    json_merge(&mut template_spec, env.runner_placement());
    let sts = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas, "serviceName": "web-headless", "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": template_spec},
        },
    });
    format!(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {{name: web-config}}
data:
  erlmcp.yaml: |
    logging:
      level: info
      format: json
  marker: one
---
apiVersion: v1
kind: Secret
metadata: {{name: web-cookie}}
stringData: {{cookie: e2e-cookie-value}}
---
apiVersion: v1
kind: Service
metadata: {{name: web-headless}}
spec:
  clusterIP: None
  selector: {{app: web}}
  ports: [{{name: mcp, port: 8080, protocol: TCP}}, {{name: health, port: 9090, protocol: TCP}}]
---
{}
"#,
        serde_json::to_string(&sts).unwrap()
    )
}

fn json_merge(a: &mut serde_json::Value, b: serde_json::Value) {
    if let (Some(a), serde_json::Value::Object(b)) = (a.as_object_mut(), b) {
        for (k, v) in b {
            a.insert(k, v);
        }
    }
}

#[tokio::test]
async fn statefulset_pods_run_as_local_processes() -> Result<()> {
    let env = TestEnv::get();
    let ns = env.namespace("runner").await?;
    let client = env.client();
    let network = &env.runner.as_ref().context("no pod runner")?.network;
    let t0 = std::time::Instant::now();
    env.apply(&ns, &web_yaml(env, 2)).await?;
    let pods = env
        .wait_pods_ready(&ns, "app=web", 2, Duration::from_secs(90))
        .await?;
    eprintln!(
        "2 pods Ready {:.1}s after apply",
        t0.elapsed().as_secs_f64()
    );

    // Own addresses, own nodes in distinct zones (required anti-affinity + zone spread).
    let ips: BTreeSet<IpAddr> = pods.iter().map(ip_of).collect();
    ensure!(ips.len() == 2, "pod IPs not distinct: {ips:?}");
    let nodes: Api<Node> = Api::all(client.clone());
    let mut zones = BTreeSet::new();
    for p in &pods {
        let node = nodes
            .get(p.spec.as_ref().unwrap().node_name.as_deref().unwrap())
            .await?;
        zones.insert(
            node.labels()
                .get(ZONE)
                .cloned()
                .context("node without zone label")?,
        );
        let st = p.status.as_ref().unwrap();
        ensure!(st.phase.as_deref() == Some("Running"));
        // The host as the pod reaches it: the bridge's address (netns mode) or 127.0.0.1.
        let host_ip = network.host_ip.to_string();
        ensure!(st.host_ip.as_deref() == Some(host_ip.as_str()), "{st:?}");
        let cs = &st.container_statuses.as_ref().unwrap()[0];
        ensure!(
            cs.ready && cs.started == Some(true) && cs.restart_count == 0,
            "{cs:?}"
        );
        ensure!(cs.state.as_ref().unwrap().running.is_some());
    }
    ensure!(zones.len() == 2, "pods not spread over zones: {zones:?}");

    // What the process sees: the downward API, $(VAR) expansion, its address, its files.
    for p in &pods {
        let name = p.name_any();
        let ip = ip_of(p);
        let (code, body) = http_get(SocketAddr::new(ip, 9090), "/status").await?;
        ensure!(code == 200, "/status on {ip}: {code} {body}");
        let status: serde_json::Value = serde_json::from_str(&body)?;
        ensure!(
            status["node"] == name,
            "node name from $(POD_NAME): {status}"
        );
        let pid = pid_of(p).context("container pid")?;
        let environ = std::fs::read(format!("/proc/{pid}/environ"))?;
        let environ = String::from_utf8_lossy(&environ);
        for want in [
            format!("POD_IP={ip}"),
            format!("POD_NAMESPACE={}", &*ns),
            "KUBERNETES_SERVICE_HOST=".to_string(),
        ] {
            ensure!(
                environ.split('\0').any(|e| e.starts_with(&want)),
                "{want} not in the env of {name}"
            );
        }
        // Only pods that share the host's network are told which address to bind; in a
        // namespace of their own they bind 0.0.0.0, as in production.
        let bind = environ
            .split('\0')
            .find_map(|e| e.strip_prefix("ERLMCP_BIND_ADDRESS="));
        if network.is_netns() {
            ensure!(
                bind.is_none(),
                "ERLMCP_BIND_ADDRESS={bind:?} in a pod namespace"
            );
        } else {
            ensure!(
                bind == Some(&ip.to_string()),
                "ERLMCP_BIND_ADDRESS={bind:?} for {ip}"
            );
        }
        let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        ensure!(
            proc_status
                .lines()
                .any(|l| l.starts_with("Uid:") && l.contains("10001")),
            "runAsUser not applied"
        );
        ensure!(read_in(pid, "/etc/erlmcp/config/marker")? == "one");
        ensure!(read_in(pid, "/etc/erlmcp/config/erlmcp.yaml")?.contains("format: json"));
        ensure!(read_in(pid, "/etc/erlmcp/cookie/cookie")? == "e2e-cookie-value");
        ensure!(read_in(pid, "/etc/hostname").is_ok());
        ensure!(
            !std::path::Path::new("/etc/erlmcp/cookie/cookie").exists(),
            "the cookie leaked onto the host file system"
        );
        // The service-account token is real, and least-privilege: the default SA may not list pods.
        let token = read_in(pid, "/var/run/secrets/kubernetes.io/serviceaccount/token")?;
        let sa_ns = read_in(
            pid,
            "/var/run/secrets/kubernetes.io/serviceaccount/namespace",
        )?;
        ensure!(sa_ns == *ns);
        let denied = env
            .kubectl(&["get", "pods", "-n", &ns, "--token", token.trim()])
            .expect_err("the default service account must not list pods");
        ensure!(
            format!("{denied:#}").contains(&format!("system:serviceaccount:{}:default", &*ns)),
            "token is not the pod's service account: {denied:#}"
        );
    }

    // The headless Service's EndpointSlice lists both pods (the legacy Endpoints too, when
    // the runner's addresses are not loopback).
    // (kubectl, not a typed API: 1.20 serves discovery.k8s.io/v1beta1 only.)
    env.wait_for(
        "EndpointSlice with both pods",
        Duration::from_secs(30),
        Some(&ns),
        || {
            let ips = ips.clone();
            let ns = ns.name.clone();
            async move {
                let out = env.kubectl(&[
                    "get",
                    "endpointslices",
                    "-n",
                    &ns,
                    "-l",
                    "kubernetes.io/service-name=web-headless",
                    "-o",
                    "json",
                ])?;
                let v: serde_json::Value = serde_json::from_str(&out)?;
                let listed: BTreeSet<IpAddr> = v["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
                    .filter(|e| e["conditions"]["ready"] == true)
                    .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
                    .filter_map(|a| a.as_str().and_then(|a| a.parse().ok()))
                    .collect();
                Ok((listed == ips).then_some(()))
            }
        },
    )
    .await?;
    if ips.iter().all(|ip| !ip.is_loopback()) {
        let eps = env.kubectl(&[
            "get",
            "endpoints",
            "web-headless",
            "-n",
            &ns,
            "-o",
            "jsonpath={.subsets[*].addresses[*].ip}",
        ])?;
        for ip in &ips {
            ensure!(eps.contains(&ip.to_string()), "Endpoints {eps:?} lack {ip}");
        }
    }

    // A ConfigMap change reaches the running pod's files (atomic-writer update).
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), &ns);
    cms.patch(
        "web-config",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"marker": "two"}})),
    )
    .await?;
    let pid0 = pid_of(&pods[0]).unwrap();
    env.wait_for(
        "updated ConfigMap in the pod",
        Duration::from_secs(30),
        Some(&ns),
        || async move { Ok((read_in(pid0, "/etc/erlmcp/config/marker")? == "two").then_some(())) },
    )
    .await?;

    // Deleting a pod: preStop, SIGTERM, exit; the StatefulSet makes it again.
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let old_uid = pods[0].uid().unwrap();
    let t_del = std::time::Instant::now();
    pods_api.delete("web-0", &Default::default()).await?;
    env.wait_for(
        "web-0 recreated and Ready",
        Duration::from_secs(60),
        Some(&ns),
        || {
            let pods_api = pods_api.clone();
            let old_uid = old_uid.clone();
            async move {
                let p = pods_api.get_opt("web-0").await?;
                Ok(p.filter(|p| p.uid().as_deref() != Some(&old_uid) && pod_ready(p)))
            }
        },
    )
    .await?;
    eprintln!(
        "web-0 deleted and Ready again in {:.1}s",
        t_del.elapsed().as_secs_f64()
    );
    ensure!(
        !std::path::Path::new(&format!("/proc/{pid0}")).exists(),
        "old web-0 process still alive"
    );
    let log = env.pod_log(&ns, "web-0", "erlmcp");
    let hook = log
        .find("running preStop hook")
        .context(format!("no preStop in log:\n{log}"))?;
    let term = log
        .find("SIGTERM (grace 10s)")
        .context("no SIGTERM in log")?;
    ensure!(hook < term, "preStop must run before SIGTERM");
    ensure!(
        !log.contains("preStop hook failed"),
        "the exec preStop (erlmcp drain) failed:\n{log}"
    );
    ensure!(
        log[term..].contains("draining"),
        "the data plane did not see SIGTERM:\n{log}"
    );

    // Scale to zero: every process goes away, and so do the pods.
    let mut pids: Vec<u32> = pods_api
        .list(&ListParams::default().labels("app=web"))
        .await?
        .items
        .iter()
        .filter_map(pid_of)
        .collect();
    pids.push(pid_of(&pods[1]).unwrap());
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    sts.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 0}})),
    )
    .await?;
    env.wait_for("no web pods", Duration::from_secs(60), Some(&ns), || {
        let pods_api = pods_api.clone();
        async move {
            Ok(pods_api
                .list(&ListParams::default().labels("app=web"))
                .await?
                .items
                .is_empty()
                .then_some(()))
        }
    })
    .await?;
    for pid in pids {
        ensure!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} survived scale to 0"
        );
    }
    Ok(())
}

/// An exec liveness probe that starts failing: the container is killed and restarted, the
/// restart count goes up, lastState records the kill, and the probe ran inside the container
/// (it looks at the pod's own /tmp).
#[tokio::test]
async fn liveness_failure_restarts_the_container() -> Result<()> {
    let env = TestEnv::get();
    let ns = env.namespace("liveness").await?;
    let mut spec = json!({
        "terminationGracePeriodSeconds": 2,
        "initContainers": [{
            "name": "init",
            "image": "busybox:1.36",
            "command": ["/bin/sh", "-c", "echo from-init > /tmp/init-ran"],
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        }],
        "containers": [{
            "name": "app",
            "image": "busybox:1.36",
            "command": ["/bin/sh", "-c", "cat /tmp/init-ran; touch /tmp/healthy; echo started; sleep 3; rm /tmp/healthy; exec sleep 600"],
            "livenessProbe": {"exec": {"command": ["/bin/sh", "-c", "test -f /tmp/healthy"]},
                              "periodSeconds": 1, "failureThreshold": 2},
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        }],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    });
    json_merge(&mut spec, env.runner_placement());
    let pod =
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "flaky"}, "spec": spec});
    env.apply(&ns, &serde_json::to_string(&pod)?).await?;
    let pods: Api<Pod> = Api::namespaced(env.client(), &ns);
    let p = env
        .wait_for(
            "restartCount >= 2",
            Duration::from_secs(60),
            Some(&ns),
            || {
                let pods = pods.clone();
                async move {
                    let p = pods.get("flaky").await?;
                    let n = p
                        .status
                        .as_ref()
                        .and_then(|s| s.container_statuses.as_ref())
                        .and_then(|c| c.first())
                        .map(|c| c.restart_count);
                    Ok((n >= Some(2)).then_some(p))
                }
            },
        )
        .await?;
    let cs = &p
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0];
    let last = cs
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .context("lastState.terminated")?;
    ensure!(
        last.exit_code != 0,
        "killed container exits non-zero: {last:?}"
    );
    ensure!(
        last.message
            .as_deref()
            .unwrap_or("")
            .contains("liveness probe failed"),
        "{last:?}"
    );
    let log = env.pod_log(&ns, "flaky", "app");
    ensure!(
        log.matches("started").count() >= 2,
        "container ran once only:\n{log}"
    );
    let events = env.kubectl(&[
        "get",
        "events",
        "-n",
        &ns,
        "--field-selector",
        "involvedObject.name=flaky",
    ])?;
    ensure!(
        events.contains("Unhealthy") && events.contains("Liveness probe failed"),
        "{events}"
    );
    Ok(())
}
