//! The harness every suite under `e2e/tests/` uses: one [`TestEnv`] per test binary, started
//! on first use and shared by its tests.
//!
//! - `KUBECONFIG` set: that cluster (kind, k3d, a real one, or a plane you started yourself).
//!   Otherwise a local control plane from `e2e/scripts/k8s-up.sh` in a per-run state dir, torn
//!   down when the test process exits: `E2E_K8S=current` (default) or `1.20` chooses its version.
//! - The binaries under test are built once (`cargo build -p erlmcp-dataplane -p
//!   erlmcp-operator --bins`).
//! - The pod runner (`erlmcp-pod-runner`) is started unless the cluster has nodes of its own
//!   (`ERLMCP_E2E_POD_RUNNER=always|never|auto`). In a cluster with real nodes its nodes are
//!   tainted, and [`TestEnv::runner_placement`] puts a pod on them.
//! - If no API server comes up, every test fails (the start error is the panic message):
//!   nothing is ever skipped.
//!
//! Env: `ERLMCP_E2E_KEEP=1` keeps the control plane, namespaces and state for inspection;
//! `ERLMCP_E2E_SKIP_BUILD=1` uses the binaries as they are.
//!
//! This file is the start-up; the helpers the suites call are in [`kubectl`] (kubectl, apply,
//! namespaces, waiting) and [`diagnostics`] (pod logs, the dump a failed wait prints); the
//! HTTP client is [`crate::http`].

mod diagnostics;
mod kubectl;
mod process;

pub use self::diagnostics::tail;
pub use self::kubectl::{node_ready, pod_ready, TestNamespace};
pub use self::process::Process;
/// The suites' GET (kept here for the suites that import it from `env`).
pub use crate::http::get as http_get;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::Node;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use crate::pod_network::PodNetwork;
use crate::runner::network::NetworkInfo;
use crate::runner::node::RUNNER_LABEL;

/// Field manager of everything the suites apply.
pub const FIELD_MANAGER: &str = "erlmcp-e2e";
const RUNNER_TAINT: &str = "erlmcp.io/pod-runner";

/// The shared test environment of this test binary.
pub struct TestEnv {
    /// Admin kubeconfig of the cluster under test.
    pub kubeconfig: PathBuf,
    /// The workspace root.
    pub workspace: PathBuf,
    /// Where the built binaries are (`target/debug`).
    pub bin_dir: PathBuf,
    /// Per-run state: `runner/` (pod logs), `runner.log`, `k8s/` (local plane).
    pub run_dir: PathBuf,
    /// State dir of the local control plane, when this run started one.
    pub local_plane: Option<PathBuf>,
    /// The pod runner, when one runs: its state dir and nodes.
    pub runner: Option<RunnerInfo>,
    /// The kubectl used by [`TestEnv::kubectl`]: `$KUBECTL`, else `kubectl` on PATH, else
    /// the one `scripts/tools.sh kubectl` installs.
    pub kubectl: PathBuf,
    config: kube::Config,
}

#[derive(Debug, Clone)]
pub struct RunnerInfo {
    pub pid: u32,
    pub state_dir: PathBuf,
    pub log: PathBuf,
    pub nodes: Vec<String>,
    /// True when its nodes carry the `erlmcp.io/pod-runner` NoSchedule taint.
    pub tainted: bool,
    /// Its pod network (netns or loopback mode), from `<state_dir>/network.json`.
    pub network: NetworkInfo,
}

static ENV: OnceLock<Result<TestEnv, String>> = OnceLock::new();

fn keep() -> bool {
    std::env::var("ERLMCP_E2E_KEEP").is_ok_and(|v| v == "1")
}

fn log(msg: &str) {
    eprintln!("[e2e] {msg}");
}

impl TestEnv {
    /// The environment, started on first call. Panics (failing the test) if it cannot start.
    pub fn get() -> &'static TestEnv {
        let r = ENV.get_or_init(|| {
            // Started on a plain thread: callers are inside a tokio runtime.
            std::thread::spawn(|| TestEnv::start().map_err(|e| format!("{e:#}")))
                .join()
                .unwrap_or_else(|_| Err("test environment start panicked".into()))
        });
        match r {
            Ok(env) => env,
            Err(e) => panic!("e2e environment did not come up (this fails, it never skips): {e}"),
        }
    }

    fn start() -> Result<TestEnv> {
        let t0 = Instant::now();
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("workspace root")?
            .to_path_buf();
        let exe = std::env::current_exe()?;
        // Test binaries live in target/<profile>/deps/.
        let bin_dir = exe
            .parent()
            .and_then(|d| {
                if d.ends_with("deps") {
                    d.parent()
                } else {
                    Some(d)
                }
            })
            .context("binary dir")?
            .to_path_buf();
        let run_dir = match std::env::var_os("ERLMCP_E2E_STATE_DIR") {
            Some(d) => PathBuf::from(d),
            None => bin_dir
                .parent()
                .unwrap_or(&bin_dir)
                .join("e2e")
                .join(format!(
                    "run-{}-{}",
                    chrono::Utc::now().format("%Y%m%dT%H%M%S"),
                    std::process::id()
                )),
        };
        prune_old_runs(run_dir.parent(), 10);
        std::fs::create_dir_all(&run_dir)?;
        log(&format!("state in {}", run_dir.display()));

        if std::env::var("ERLMCP_E2E_SKIP_BUILD").is_ok_and(|v| v == "1") {
            log("ERLMCP_E2E_SKIP_BUILD=1: using the binaries as they are");
        } else {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let t = Instant::now();
            let out = Command::new(&cargo)
                .current_dir(&workspace)
                .args([
                    "build",
                    "-p",
                    "erlmcp-dataplane",
                    "-p",
                    "erlmcp-operator",
                    "--bins",
                ])
                .output()
                .context("running cargo build")?;
            if !out.status.success() {
                bail!(
                    "cargo build -p erlmcp-dataplane -p erlmcp-operator --bins failed:\n{}",
                    tail(&String::from_utf8_lossy(&out.stderr), 40)
                );
            }
            log(&format!(
                "binaries built in {:.1}s",
                t.elapsed().as_secs_f64()
            ));
        }
        for b in ["erlmcp", "erlmcp-operator", "erlmcp-pod-runner"] {
            if !bin_dir.join(b).exists() {
                bail!(
                    "{} missing (build it, or unset ERLMCP_E2E_SKIP_BUILD)",
                    bin_dir.join(b).display()
                );
            }
        }

        let (kubeconfig, local_plane) =
            match std::env::var("KUBECONFIG").ok().filter(|s| !s.is_empty()) {
                Some(k) => {
                    log(&format!("using KUBECONFIG={k}"));
                    (PathBuf::from(k.split(':').next().unwrap_or(&k)), None)
                }
                None => {
                    let state = run_dir.join("k8s");
                    let t = Instant::now();
                    let out = Command::new(workspace.join("e2e/scripts/k8s-up.sh"))
                        .arg(&state)
                        .stderr(Stdio::inherit())
                        .output()
                        .context("running e2e/scripts/k8s-up.sh")?;
                    let stdout = String::from_utf8_lossy(&out.stdout);
                    let path = stdout.lines().last().unwrap_or("").trim().to_string();
                    if !out.status.success() || path.is_empty() {
                        bail!(
                            "e2e/scripts/k8s-up.sh failed (exit {:?}); see its output above",
                            out.status.code()
                        );
                    }
                    log(&format!(
                        "local control plane (E2E_K8S={}) up in {:.1}s",
                        std::env::var("E2E_K8S").unwrap_or_else(|_| "current".into()),
                        t.elapsed().as_secs_f64()
                    ));
                    (PathBuf::from(path), Some(state))
                }
            };

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let config = rt.block_on(async {
            let kc = kube::config::Kubeconfig::read_from(&kubeconfig)?;
            anyhow::Ok(kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?)
        })?;
        let kubectl = kubectl::find_kubectl(&workspace)?;
        let mut env = TestEnv {
            kubectl,
            kubeconfig,
            workspace,
            bin_dir,
            run_dir,
            local_plane,
            runner: None,
            config,
        };
        // From here on, a failure must still tear the local plane down.
        let reaper_runner = match rt.block_on(env.start_runner()) {
            Ok(r) => r,
            Err(e) => {
                env.teardown_now();
                return Err(e);
            }
        };
        env.runner = reaper_runner;
        env.spawn_reaper();
        log(&format!(
            "environment ready in {:.1}s",
            t0.elapsed().as_secs_f64()
        ));
        Ok(env)
    }

    async fn start_runner(&self) -> Result<Option<RunnerInfo>> {
        let client = self.client();
        let version = client.apiserver_version().await.with_context(|| {
            format!("API server of {} not reachable", self.kubeconfig.display())
        })?;
        log(&format!(
            "API server {} at {}",
            version.git_version, self.config.cluster_url
        ));
        let mode = std::env::var("ERLMCP_E2E_POD_RUNNER").unwrap_or_else(|_| "auto".into());
        let nodes: Api<Node> = Api::all(client.clone());
        let others = nodes
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|n| !n.labels().contains_key(RUNNER_LABEL))
            .count();
        let (start, tainted) = match mode.as_str() {
            "never" => (false, false),
            "always" => (true, others > 0),
            _ => (others == 0, false),
        };
        if !start {
            log(&format!(
                "no pod runner: the cluster has {others} node(s) of its own"
            ));
            return Ok(None);
        }
        let state_dir = self.run_dir.join("runner");
        let log_path = self.run_dir.join("runner.log");
        std::fs::create_dir_all(&state_dir)?;
        let prefix = if tainted { "erlmcp-e2e" } else { "node" };
        let mut cmd = Command::new(self.bin_dir.join("erlmcp-pod-runner"));
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--state-dir")
            .arg(&state_dir)
            .args(["--nodes", "3", "--node-prefix", prefix])
            .args(["--backoff-base-seconds", "2", "--volume-sync-seconds", "2"])
            .env("RUST_LOG", "info,kube=warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path)?);
        if self.local_plane.is_none() {
            cmd.arg("--remove-nodes-on-exit");
        } else {
            // The local plane has no storage of its own.
            cmd.arg("--provision-volumes");
        }
        if tainted {
            cmd.args(["--node-taint", &format!("{RUNNER_TAINT}=true:NoSchedule")]);
        }
        // SAFETY: prctl only. SIGTERM when the spawning thread (alive as long as this test
        // process) dies: the runner then stops its pods and exits.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("pod-runner".into())
            .spawn(move || match cmd.spawn() {
                Ok(mut child) => {
                    let _ = tx.send(Ok(child.id()));
                    let _ = child.wait();
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            })?;
        let pid = rx.recv()?.context("starting erlmcp-pod-runner")?;
        let names: Vec<String> = crate::runner::node::node_specs(prefix, 3)
            .into_iter()
            .map(|n| n.name)
            .collect();
        // Wait for its nodes to be Ready.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = nodes
                .list(&ListParams::default().labels(&format!("{RUNNER_LABEL}=true")))
                .await?
                .items
                .iter()
                .filter(|n| names.contains(&n.name_any()) && node_ready(n))
                .count();
            if ready == names.len() {
                break;
            }
            if !Path::new(&format!("/proc/{pid}")).exists() || Instant::now() > deadline {
                bail!(
                    "pod runner nodes not Ready ({ready}/{}); runner log:\n{}",
                    names.len(),
                    tail(&std::fs::read_to_string(&log_path).unwrap_or_default(), 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Written before the nodes were registered.
        let network = NetworkInfo::read(&state_dir)?;
        log(&format!(
            "pod runner pid {pid}, nodes {names:?}, {} network {}.0/24 (host {}), log {}",
            network.mode,
            network.subnet,
            network.host_ip,
            log_path.display()
        ));
        Ok(Some(RunnerInfo {
            pid,
            state_dir,
            log: log_path,
            nodes: names,
            tainted,
            network,
        }))
    }

    /// A watchdog outliving this process: once it (and the runner) are gone, stop the local
    /// control plane. Runs even if the test binary crashes.
    fn spawn_reaper(&self) {
        let Some(plane) = &self.local_plane else {
            return;
        };
        if keep() {
            log(&format!("ERLMCP_E2E_KEEP=1: control plane left running; stop it with e2e/scripts/k8s-down.sh {}", plane.display()));
            return;
        }
        let runner_pid = self.runner.as_ref().map(|r| r.pid).unwrap_or(0);
        let script = format!(
            "while kill -0 {me} 2>/dev/null; do sleep 0.5; done; \
             i=0; while [ {rp} -gt 0 ] && kill -0 {rp} 2>/dev/null && [ $i -lt 60 ]; do sleep 0.25; i=$((i+1)); done; \
             exec {down} {plane} >>{log} 2>&1",
            me = std::process::id(),
            rp = runner_pid,
            down = self.workspace.join("e2e/scripts/k8s-down.sh").display(),
            plane = plane.display(),
            log = self.run_dir.join("teardown.log").display(),
        );
        let mut cmd = Command::new("bash");
        cmd.args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        if let Err(e) = cmd.spawn() {
            log(&format!("cannot start the teardown watchdog: {e}"));
        }
    }

    fn teardown_now(&self) {
        if let (Some(plane), false) = (&self.local_plane, keep()) {
            let _ = Command::new(self.workspace.join("e2e/scripts/k8s-down.sh"))
                .arg(plane)
                .status();
        }
    }

    /// A new client (one per call: clients are tied to the runtime they are used on, and
    /// every `#[tokio::test]` has its own).
    pub fn client(&self) -> Client {
        Client::try_from(self.config.clone()).expect("kube client")
    }

    /// The pod runner's network, to cut links between pods; fails unless the runner puts pods
    /// in network namespaces (root).
    pub fn pod_network(&self) -> Result<PodNetwork> {
        let r = self
            .runner
            .as_ref()
            .context("no pod runner in this environment: pods are not in namespaces of ours")?;
        PodNetwork::load(&r.state_dir, &self.workspace)
    }
}

/// Keeps the `keep` newest `run-*` dirs (logs of earlier runs) in `dir`.
fn prune_old_runs(dir: Option<&Path>, keep: usize) {
    let Some(dir) = dir else { return };
    let mut runs: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("run-"))
        })
        .filter(|p| !p.join("k8s").exists()) // a plane may still run there
        .collect();
    runs.sort();
    let n = runs.len().saturating_sub(keep);
    for p in &runs[..n] {
        let _ = std::fs::remove_dir_all(p);
    }
}
