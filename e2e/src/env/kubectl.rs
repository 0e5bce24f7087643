//! Helpers the suites call to act on the cluster: `kubectl`, server-side apply, a namespace
//! per test, and waiting for conditions and Ready pods.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use kube::api::{DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{pinned_kind, Scope};
use kube::{Api, ResourceExt};
use serde::Deserialize;
use serde_json::json;

use super::{keep, TestEnv, FIELD_MANAGER, RUNNER_TAINT};
use crate::runner::node::RUNNER_LABEL;

impl TestEnv {
    /// Install (or update) the CRD the way users on any server version can: a plain apply without
    /// client-side validation (servers before 1.25 do not know the CEL rules).
    pub fn install_crd(&self) -> Result<()> {
        let crd = self.workspace.join("crds/erlmcp.io_erlmcpclusters.yaml");
        // Tests of one binary run side by side: a concurrent create may win the race.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let applied = self.kubectl(&["apply", "--validate=false", "-f", crd.to_str().unwrap()]);
            let established = self
                .kubectl(&[
                    "get",
                    "crd/erlmcpclusters.erlmcp.io",
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
                ])
                .unwrap_or_default();
            if applied.is_ok() && established.trim() == "True" {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("CRD not established: {applied:?} {established:?}");
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// `kubectl` against the cluster under test; Ok(stdout) on success, else the stderr.
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.kubectl)
            .env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .output()
            .context("running kubectl")?;
        let stderr: String = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| !l.contains("version difference between client"))
            .map(|l| format!("{l}\n"))
            .collect();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(anyhow!("kubectl {}: {}", args.join(" "), stderr.trim()))
        }
    }

    /// A fresh namespace `e2e-<prefix>-<random>`, ready for pods (its `default` service account
    /// exists, with its token secret on clusters before 1.24). Deleted when the guard drops.
    pub async fn namespace(&'static self, prefix: &str) -> Result<TestNamespace> {
        let name = format!("e2e-{prefix}-{:05x}", rand::random::<u32>() & 0xfffff);
        let client = self.client();
        let api: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(
            json!({"metadata": {"name": name, "labels": {"erlmcp.io/e2e": "true"}}}),
        )?;
        api.create(&PostParams::default(), &ns).await?;
        let guard = TestNamespace {
            env: self,
            name: name.clone(),
        };
        let legacy_tokens = client
            .apiserver_version()
            .await
            .map(|v| v.minor.trim_end_matches('+').parse::<u32>().unwrap_or(99) < 24)
            .unwrap_or(false);
        let sas: Api<ServiceAccount> = Api::namespaced(client, &name);
        self.wait_for(
            &format!("service account default in {name}"),
            Duration::from_secs(30),
            Some(&name),
            || {
                let sas = sas.clone();
                async move {
                    Ok(sas.get_opt("default").await?.filter(|sa| {
                        !legacy_tokens || sa.secrets.as_ref().is_some_and(|s| !s.is_empty())
                    }))
                }
            },
        )
        .await?;
        Ok(guard)
    }

    /// Server-side applies every document of `yaml` (namespaced ones into `ns`), as
    /// [`FIELD_MANAGER`], forcing conflicts.
    pub async fn apply(&self, ns: &str, yaml: &str) -> Result<Vec<DynamicObject>> {
        let client = self.client();
        let mut out = Vec::new();
        for doc in serde_yaml::Deserializer::from_str(yaml) {
            let value = serde_json::to_value(serde_yaml::Value::deserialize(doc)?)?;
            if value.is_null() {
                continue;
            }
            let obj: DynamicObject = serde_json::from_value(value.clone())?;
            let tm = obj
                .types
                .clone()
                .ok_or_else(|| anyhow!("document without apiVersion/kind"))?;
            let gvk = GroupVersionKind::try_from(&tm)?;
            let (ar, caps) = pinned_kind(&client, &gvk).await?;
            let api: Api<DynamicObject> = if caps.scope == Scope::Namespaced {
                Api::namespaced_with(
                    client.clone(),
                    obj.namespace().as_deref().unwrap_or(ns),
                    &ar,
                )
            } else {
                Api::all_with(client.clone(), &ar)
            };
            let name = obj.name_any();
            let applied = api
                .patch(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&value),
                )
                .await
                .map_err(|e| anyhow!("applying {} {name}: {e:?}", tm.kind))?;
            out.push(applied);
        }
        Ok(out)
    }

    /// Polls `f` (every 250 ms) until it gives `Some`, or fails after `timeout` with what was
    /// last seen and a dump of the namespace (pods, events, pod logs, runner log).
    pub async fn wait_for<T, F, Fut>(
        &self,
        what: &str,
        timeout: Duration,
        ns: Option<&str>,
        mut f: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>>>,
    {
        let deadline = Instant::now() + timeout;
        let mut last: String;
        loop {
            match f().await {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => last = "condition not met".into(),
                Err(e) => last = format!("error: {e:#}"),
            }
            if Instant::now() >= deadline {
                bail!(
                    "timed out after {timeout:?} waiting for {what}; last: {last}\n{}",
                    self.dump(ns)
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits for `n` pods matching `selector` in `ns` to be Ready (and no others), returning them
    /// sorted by name.
    pub async fn wait_pods_ready(
        &self,
        ns: &str,
        selector: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<Pod>> {
        let api: Api<Pod> = Api::namespaced(self.client(), ns);
        self.wait_for(
            &format!("{n} ready pods {selector} in {ns}"),
            timeout,
            Some(ns),
            || {
                let api = api.clone();
                async move {
                    let mut pods = api
                        .list(&ListParams::default().labels(selector))
                        .await?
                        .items;
                    pods.sort_by_key(|p| p.name_any());
                    let ready = pods
                        .iter()
                        .filter(|p| pod_ready(p) && p.metadata.deletion_timestamp.is_none())
                        .count();
                    Ok((ready == n && pods.len() == n).then_some(pods))
                }
            },
        )
        .await
    }

    /// What a pod spec needs to land on the runner's nodes: `{}` when they take every pod,
    /// else a nodeSelector and a toleration for their taint. Merge into `spec.template.spec`.
    pub fn runner_placement(&self) -> serde_json::Value {
        match &self.runner {
            Some(r) if r.tainted => json!({
                "nodeSelector": {RUNNER_LABEL: "true"},
                "tolerations": [{"key": RUNNER_TAINT, "operator": "Exists", "effect": "NoSchedule"}],
            }),
            _ => json!({}),
        }
    }
}

/// A namespace for one test; deleted (without waiting) when dropped, unless ERLMCP_E2E_KEEP=1.
pub struct TestNamespace {
    env: &'static TestEnv,
    pub name: String,
}

impl std::ops::Deref for TestNamespace {
    type Target = str;
    fn deref(&self) -> &str {
        &self.name
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if !keep() {
            let _ = self
                .env
                .kubectl(&["delete", "namespace", &self.name, "--wait=false"]);
        }
    }
}

pub fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub(super) fn find_kubectl(workspace: &Path) -> Result<PathBuf> {
    if let Some(k) = std::env::var_os("KUBECTL") {
        return Ok(PathBuf::from(k));
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("kubectl"))
                .find(|k| k.is_file())
        })
        .unwrap_or_default();
    if let Some(k) = on_path {
        return Ok(k);
    }
    let out = Command::new(workspace.join("scripts/tools.sh"))
        .arg("kubectl")
        .stderr(Stdio::inherit())
        .output()
        .context("scripts/tools.sh kubectl")?;
    let path = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .to_string();
    if !out.status.success() || path.is_empty() {
        bail!("no kubectl: set KUBECTL, put one on PATH, or fix scripts/tools.sh kubectl");
    }
    Ok(PathBuf::from(path))
}
