//! One container's life, as the kubelet runs it: start, startup/liveness/readiness probes,
//! restarts with exponential back-off per `restartPolicy`, and termination (preStop hook,
//! SIGTERM, grace period, SIGKILL). Every change is reported to the pod worker as a
//! [`CtrView`], which it turns into the pod's `containerStatuses`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use kube::runtime::events::EventType;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use super::fields::{container_env, expand, PodIps};
use super::images::argv as image_argv;
use super::probe::{self, ExecTarget, Handler};
use super::process::{self, signal_group, Identity, Launch, Mount};
use super::Shared;

/// A request to stop: how long the container gets, and whether its preStop hook runs.
#[derive(Debug, Clone, Copy)]
pub struct StopReq {
    pub grace: Duration,
    pub pre_stop: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CtrState {
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        started_at: String,
    },
    Terminated {
        exit_code: i32,
        signal: Option<i32>,
        reason: String,
        message: String,
        started_at: String,
        finished_at: String,
    },
}

impl CtrState {
    fn to_json(&self) -> Value {
        match self {
            CtrState::Waiting { reason, message } => {
                json!({"waiting": {"reason": reason, "message": if message.is_empty() { Value::Null } else { json!(message) }}})
            }
            CtrState::Running { started_at } => json!({"running": {"startedAt": started_at}}),
            CtrState::Terminated {
                exit_code,
                signal,
                reason,
                message,
                started_at,
                finished_at,
            } => json!({"terminated": {
                "exitCode": exit_code, "signal": signal, "reason": reason,
                "message": if message.is_empty() { Value::Null } else { json!(message) },
                "startedAt": started_at, "finishedAt": finished_at,
                "containerID": Value::Null,
            }}),
        }
    }
}

/// What the pod status says about one container.
#[derive(Debug, Clone, PartialEq)]
pub struct CtrView {
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub pid: Option<u32>,
    pub state: CtrState,
    pub last_state: Option<CtrState>,
    pub restart_count: i32,
    pub started: bool,
    pub ready: bool,
}

impl CtrView {
    pub fn new(c: &Container) -> Self {
        Self {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            image_id: String::new(),
            pid: None,
            state: CtrState::Waiting {
                reason: "ContainerCreating".into(),
                message: String::new(),
            },
            last_state: None,
            restart_count: 0,
            started: false,
            ready: false,
        }
    }

    pub fn to_json(&self) -> Value {
        let running = matches!(self.state, CtrState::Running { .. });
        json!({
            "name": self.name,
            "image": self.image,
            "imageID": self.image_id,
            "containerID": self.pid.filter(|_| running).map(|p| format!("erlmcp-pod-runner://{p}")),
            "state": self.state.to_json(),
            "lastState": self.last_state.as_ref().map(|s| s.to_json()).unwrap_or(json!({})),
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
        })
    }

    pub fn terminated_ok(&self) -> Option<bool> {
        match &self.state {
            CtrState::Terminated { exit_code, .. } => Some(*exit_code == 0),
            _ => None,
        }
    }
}

/// Everything a container needs that the pod worker prepared.
pub struct CtrParams {
    pub idx: usize,
    pub init: bool,
    pub spec: Container,
    pub pod: Pod,
    pub ip: IpAddr,
    /// netns mode: the pod's network namespace (`/run/netns/<name>`).
    pub netns: Option<PathBuf>,
    pub mounts: Vec<Mount>,
    pub identity: Identity,
    pub read_only_root: bool,
    pub no_new_privs: bool,
    pub log: PathBuf,
    pub restart_policy: String,
    pub pod_grace: Duration,
}

/// Why a run of the process ended.
enum Ended {
    Exited(std::process::ExitStatus),
    Killed {
        status: std::process::ExitStatus,
        reason: String,
    },
    Stopped(std::process::ExitStatus),
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn exit_of(st: std::process::ExitStatus) -> (i32, Option<i32>) {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => (c, None),
        (None, Some(s)) => (128 + s, Some(s)),
        _ => (-1, None),
    }
}

struct ProbeRun {
    probe: Probe,
    next: Instant,
    successes: i32,
    failures: i32,
}

impl ProbeRun {
    fn new(p: &Probe, start: Instant) -> Self {
        Self {
            probe: p.clone(),
            next: start + Duration::from_secs(p.initial_delay_seconds.unwrap_or(0).max(0) as u64),
            successes: 0,
            failures: 0,
        }
    }
    fn period(&self) -> Duration {
        Duration::from_secs(self.probe.period_seconds.unwrap_or(10).max(1) as u64)
    }
    fn timeout(&self) -> Duration {
        Duration::from_secs(self.probe.timeout_seconds.unwrap_or(1).max(1) as u64)
    }
    fn failure_threshold(&self) -> i32 {
        self.probe.failure_threshold.unwrap_or(3).max(1)
    }
    fn success_threshold(&self) -> i32 {
        self.probe.success_threshold.unwrap_or(1).max(1)
    }
}

pub struct Runner {
    sh: Arc<Shared>,
    p: CtrParams,
    tx: mpsc::UnboundedSender<(bool, usize, CtrView)>,
    stop: watch::Receiver<Option<StopReq>>,
    view: CtrView,
    env: Vec<(String, String)>,
}

impl Runner {
    pub fn new(
        sh: Arc<Shared>,
        p: CtrParams,
        tx: mpsc::UnboundedSender<(bool, usize, CtrView)>,
        stop: watch::Receiver<Option<StopReq>>,
    ) -> Self {
        let view = CtrView::new(&p.spec);
        Self {
            sh,
            p,
            tx,
            stop,
            view,
            env: Vec::new(),
        }
    }

    fn report(&self) {
        let _ = self.tx.send((self.p.init, self.p.idx, self.view.clone()));
    }

    fn stop_req(&self) -> Option<StopReq> {
        *self.stop.borrow()
    }

    /// Sleeps, or returns early with the stop request.
    async fn pause(&mut self, d: Duration) -> Option<StopReq> {
        if let Some(s) = self.stop_req() {
            return Some(s);
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => None,
            _ = self.stop.changed() => self.stop_req(),
        }
    }

    async fn event(&self, type_: EventType, reason: &str, note: String) {
        self.sh.event(&self.p.pod, type_, reason, note).await;
    }

    fn log_line(&self, line: &str) {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.p.log)
        {
            let _ = writeln!(f, "---- erlmcp-pod-runner {}: {line}", now());
        }
    }

    fn wait_reason(&mut self, reason: &str, message: String) {
        let st = CtrState::Waiting {
            reason: reason.into(),
            message,
        };
        if self.view.state != st {
            self.view.state = st;
            self.view.ready = false;
            self.report();
        }
    }

    /// Runs until stopped, or (init containers, or restartPolicy Never/OnFailure) until done.
    pub async fn run(mut self) -> CtrView {
        loop {
            if self.view.restart_count > 0 {
                // The kubelet's back-off: 0 for the first restart, then base, 2x base, ..., 5 min.
                let n = self.view.restart_count.max(1) as u32;
                let delay = if n <= 1 {
                    Duration::ZERO
                } else {
                    (self.sh.settings.backoff_base * 2u32.saturating_pow(n - 2))
                        .min(Duration::from_secs(300))
                };
                if !delay.is_zero() {
                    self.wait_reason(
                        "CrashLoopBackOff",
                        format!(
                            "back-off {}s restarting failed container={} pod={}",
                            delay.as_secs(),
                            self.p.spec.name,
                            self.p.pod.metadata.name.clone().unwrap_or_default()
                        ),
                    );
                    self.event(
                        EventType::Warning,
                        "BackOff",
                        "Back-off restarting failed container".into(),
                    )
                    .await;
                }
                if self.pause(delay).await.is_some() {
                    return self.view;
                }
            }
            let child = match self.start().await {
                Ok(c) => c,
                Err((reason, msg)) => {
                    self.wait_reason(&reason, msg.clone());
                    tracing::warn!(container = %self.p.spec.name, %reason, %msg, "container not started");
                    if self.pause(Duration::from_secs(2)).await.is_some() {
                        return self.view;
                    }
                    continue;
                }
            };
            let started_at = now();
            let ended = self.supervise(child, &started_at).await;
            let (status, reason, stopped) = match ended {
                Ended::Exited(st) => (st, None, false),
                Ended::Killed { status, reason } => (status, Some(reason), false),
                Ended::Stopped(st) => (st, None, true),
            };
            let (exit_code, signal) = exit_of(status);
            let term = CtrState::Terminated {
                exit_code,
                signal,
                reason: if exit_code == 0 {
                    "Completed".into()
                } else {
                    "Error".into()
                },
                message: reason.clone().unwrap_or_default(),
                started_at,
                finished_at: now(),
            };
            self.log_line(&format!(
                "container {} exited: code {exit_code}{}",
                self.p.spec.name,
                reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ));
            self.view.state = term.clone();
            self.view.ready = false;
            self.view.pid = None;
            if stopped {
                self.report();
                return self.view;
            }
            let restart = match (self.p.init, self.p.restart_policy.as_str()) {
                (true, "Never") => false,
                (true, _) => exit_code != 0,
                (false, "Always") => true,
                (false, "OnFailure") => exit_code != 0,
                (false, _) => false,
            };
            if !restart {
                self.view.started = false;
                self.report();
                return self.view;
            }
            // Restarting: the terminated state becomes lastState.
            self.view.last_state = Some(term);
            self.view.restart_count += 1;
            self.view.started = false;
            self.report();
        }
    }

    /// Resolves image, env, argv, mounts and starts the process.
    async fn start(&mut self) -> Result<tokio::process::Child, (String, String)> {
        let c = &self.p.spec;
        let image = c.image.clone().unwrap_or_default();
        let Some(entry) = self.sh.settings.images.resolve(&image) else {
            return Err((
                "ErrImagePull".into(),
                format!("image {image:?} is not in the pod runner's image map (--image-map)"),
            ));
        };
        let entry = entry.to_vec();
        let ip = self.p.ip.to_string();
        let pod = &self.p.pod;
        let s = &self.sh.settings;
        // The image's own binaries are on its PATH (erlmcp is /usr/local/bin/erlmcp there), so
        // an exec hook or probe naming `erlmcp` finds it: here that is the mapped binary's dir.
        let mut path = String::new();
        if let Some(dir) = std::path::Path::new(&entry[0])
            .parent()
            .filter(|d| d.is_absolute())
        {
            path = format!("{}:", dir.display());
        }
        path.push_str("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        let mut base = vec![
            ("PATH".to_string(), path),
            (
                "HOSTNAME".to_string(),
                pod.spec
                    .as_ref()
                    .and_then(|s| s.hostname.clone())
                    .or_else(|| pod.metadata.name.clone())
                    .unwrap_or_default(),
            ),
            ("KUBERNETES_SERVICE_HOST".to_string(), s.api_host.clone()),
            (
                "KUBERNETES_SERVICE_PORT".to_string(),
                s.api_port.to_string(),
            ),
            (
                "KUBERNETES_SERVICE_PORT_HTTPS".to_string(),
                s.api_port.to_string(),
            ),
            (
                "KUBERNETES_PORT".to_string(),
                format!("tcp://{}:{}", s.api_host, s.api_port),
            ),
        ];
        if self.sh.net.pods_share_host_network() {
            // Loopback fallback only: pods share the host's network, so each binds its own
            // address. In a namespace of its own a pod binds 0.0.0.0, as in production.
            base.push(("ERLMCP_BIND_ADDRESS".to_string(), ip.clone()));
        }
        let ips = PodIps {
            pod: ip.clone(),
            host: self.sh.net.host_ip().to_string(),
        };
        let env = container_env(&self.sh.client, pod, c, &ips, base)
            .await
            .map_err(|e| ("CreateContainerConfigError".to_string(), format!("{e:#}")))?;
        let vars: std::collections::HashMap<String, String> = env.iter().cloned().collect();
        let argv: Vec<String> = image_argv(&entry, c.command.as_deref(), c.args.as_deref())
            .iter()
            .enumerate()
            .map(|(i, a)| {
                if i < entry.len() && c.command.is_none() {
                    a.clone()
                } else {
                    expand(a, &vars)
                }
            })
            .collect();
        let mut mounts = self.p.mounts.clone();
        process::prepare_mount_points(&mut mounts)
            .map_err(|e| ("CreateContainerError".to_string(), format!("{e:#}")))?;
        let launch = Launch {
            argv: argv.clone(),
            env: env.clone(),
            working_dir: c.working_dir.clone(),
            mounts,
            identity: self.p.identity.clone(),
            hostname: pod.metadata.name.clone().unwrap_or_default(),
            netns: self.p.netns.clone(),
            read_only_root: self.p.read_only_root,
            no_new_privs: self.p.no_new_privs,
            log: self.p.log.clone(),
        };
        self.log_line(&format!(
            "starting container {} (restart {}) on {ip}: {argv:?}",
            c.name, self.view.restart_count
        ));
        let child = process::spawn(&launch)
            .map_err(|e| ("RunContainerError".to_string(), format!("{e:#}")))?;
        self.env = env;
        self.view.pid = child.id();
        self.view.image_id = format!("erlmcp-pod-runner://{}", argv[0]);
        self.view.state = CtrState::Running { started_at: now() };
        self.view.started = c.startup_probe.is_none();
        self.view.ready = self.view.started && c.readiness_probe.is_none();
        self.report();
        self.event(
            EventType::Normal,
            "Started",
            format!("Started container {}", c.name),
        )
        .await;
        Ok(child)
    }

    fn exec_target(&self) -> Option<ExecTarget<'_>> {
        self.view.pid.map(|pid| ExecTarget {
            pid,
            env: &self.env,
            identity: &self.p.identity,
            working_dir: self.p.spec.working_dir.as_deref(),
        })
    }

    /// Probes the running process until it exits, a probe kills it, or a stop arrives.
    async fn supervise(&mut self, mut child: tokio::process::Child, _started_at: &str) -> Ended {
        let pgid = child.id().unwrap_or(0);
        let t0 = Instant::now();
        let spec = self.p.spec.clone();
        let mut startup = spec.startup_probe.as_ref().map(|p| ProbeRun::new(p, t0));
        let mut liveness = spec.liveness_probe.as_ref().map(|p| ProbeRun::new(p, t0));
        let mut readiness = spec.readiness_probe.as_ref().map(|p| ProbeRun::new(p, t0));
        enum Wake {
            Exit(std::io::Result<std::process::ExitStatus>),
            Stop,
            Probe,
        }
        loop {
            let next = if self.view.started {
                [&liveness, &readiness]
                    .into_iter()
                    .flatten()
                    .map(|p| p.next)
                    .min()
            } else {
                startup.as_ref().map(|p| p.next)
            }
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            if let Some(req) = self.stop_req() {
                let st = self
                    .terminate(&mut child, pgid, req.grace, req.pre_stop)
                    .await;
                return Ended::Stopped(st);
            }
            let wake = tokio::select! {
                st = child.wait() => Wake::Exit(st),
                _ = self.stop.changed() => Wake::Stop,
                _ = tokio::time::sleep_until(next.into()) => Wake::Probe,
            };
            match wake {
                Wake::Exit(st) => {
                    signal_group(pgid, libc::SIGKILL);
                    return Ended::Exited(st.unwrap_or_else(|_| {
                        std::os::unix::process::ExitStatusExt::from_raw(255 << 8)
                    }));
                }
                Wake::Stop => continue,
                Wake::Probe => {}
            }
            let now_i = Instant::now();
            // Startup probe gates the others.
            if !self.view.started {
                if let Some(p) = startup.as_mut().filter(|p| p.next <= now_i) {
                    let res = probe::run(
                        &Handler::of_probe(&p.probe),
                        &spec,
                        self.p.ip,
                        self.exec_target(),
                        p.timeout(),
                    )
                    .await;
                    p.next = Instant::now() + p.period();
                    match res {
                        Ok(()) => {
                            self.view.started = true;
                            self.view.ready = readiness.is_none();
                            let now2 = Instant::now();
                            for q in [&mut liveness, &mut readiness].into_iter().flatten() {
                                q.next = q.next.max(now2);
                            }
                            self.report();
                        }
                        Err(msg) => {
                            p.failures += 1;
                            if p.failures >= p.failure_threshold() {
                                self.event(
                                    EventType::Warning,
                                    "Unhealthy",
                                    format!("Startup probe failed: {msg}"),
                                )
                                .await;
                                let reason = format!("startup probe failed: {msg}");
                                let st = self
                                    .kill_for_probe(&mut child, pgid, &p.probe, &reason)
                                    .await;
                                return Ended::Killed { status: st, reason };
                            }
                        }
                    }
                }
                continue;
            }
            if let Some(p) = liveness.as_mut().filter(|p| p.next <= now_i) {
                let res = probe::run(
                    &Handler::of_probe(&p.probe),
                    &spec,
                    self.p.ip,
                    self.exec_target(),
                    p.timeout(),
                )
                .await;
                p.next = Instant::now() + p.period();
                match res {
                    Ok(()) => p.failures = 0,
                    Err(msg) => {
                        p.failures += 1;
                        self.event(
                            EventType::Warning,
                            "Unhealthy",
                            format!("Liveness probe failed: {msg}"),
                        )
                        .await;
                        if p.failures >= p.failure_threshold() {
                            let reason = format!("liveness probe failed: {msg}");
                            let st = self
                                .kill_for_probe(&mut child, pgid, &p.probe, &reason)
                                .await;
                            return Ended::Killed { status: st, reason };
                        }
                    }
                }
            }
            if let Some(p) = readiness.as_mut().filter(|p| p.next <= now_i) {
                let res = probe::run(
                    &Handler::of_probe(&p.probe),
                    &spec,
                    self.p.ip,
                    self.exec_target(),
                    p.timeout(),
                )
                .await;
                p.next = Instant::now() + p.period();
                let was = self.view.ready;
                match res {
                    Ok(()) => {
                        p.failures = 0;
                        p.successes += 1;
                        if p.successes >= p.success_threshold() {
                            self.view.ready = true;
                        }
                    }
                    Err(msg) => {
                        p.successes = 0;
                        p.failures += 1;
                        if p.failures >= p.failure_threshold() {
                            if was {
                                self.event(
                                    EventType::Warning,
                                    "Unhealthy",
                                    format!("Readiness probe failed: {msg}"),
                                )
                                .await;
                            }
                            self.view.ready = false;
                        }
                    }
                }
                if was != self.view.ready {
                    self.report();
                }
            }
        }
    }

    async fn kill_for_probe(
        &mut self,
        child: &mut tokio::process::Child,
        pgid: u32,
        probe: &Probe,
        reason: &str,
    ) -> std::process::ExitStatus {
        self.event(
            EventType::Normal,
            "Killing",
            format!("Container {} {reason}, will be restarted", self.p.spec.name),
        )
        .await;
        let grace = probe
            .termination_grace_period_seconds
            .map(|s| Duration::from_secs(s.max(0) as u64))
            .unwrap_or(self.p.pod_grace);
        self.view.ready = false;
        self.report();
        self.terminate(child, pgid, grace, true).await
    }

    /// preStop hook (within the grace period), SIGTERM, wait the rest (at least 2 s, like the
    /// kubelet), SIGKILL. Kills the whole process group.
    async fn terminate(
        &mut self,
        child: &mut tokio::process::Child,
        pgid: u32,
        grace: Duration,
        pre_stop: bool,
    ) -> std::process::ExitStatus {
        let deadline = Instant::now() + grace;
        let hook = self
            .p
            .spec
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.clone());
        if let (true, Some(h)) = (pre_stop, hook) {
            if let Ok(None) = child.try_wait() {
                self.log_line("running preStop hook");
                let spec = self.p.spec.clone();
                let res = probe::run(
                    &Handler::of_hook(&h),
                    &spec,
                    self.p.ip,
                    self.exec_target(),
                    grace.max(Duration::from_secs(1)),
                )
                .await;
                if let Err(msg) = res {
                    self.log_line(&format!("preStop hook failed: {msg}"));
                    self.event(EventType::Warning, "FailedPreStopHook", msg)
                        .await;
                }
            }
        }
        self.log_line(&format!("SIGTERM (grace {}s)", grace.as_secs()));
        signal_group(pgid, libc::SIGTERM);
        let rest = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(2).min(grace.max(Duration::from_millis(100))));
        let st = match tokio::time::timeout(rest, child.wait()).await {
            Ok(Ok(st)) => st,
            _ => {
                self.log_line("grace period over: SIGKILL");
                signal_group(pgid, libc::SIGKILL);
                child.wait().await.unwrap_or_else(|_| {
                    std::os::unix::process::ExitStatusExt::from_raw(libc::SIGKILL)
                })
            }
        };
        signal_group(pgid, libc::SIGKILL);
        st
    }
}
