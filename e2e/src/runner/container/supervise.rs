//! Supervising a running container: startup, liveness and readiness probes, killing it when
//! a probe fails, and termination (preStop hook, SIGTERM, grace period, SIGKILL).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Probe;
use kube::runtime::events::EventType;

use super::{Ended, Runner};
use crate::runner::probe::{self, ExecTarget, Handler};
use crate::runner::process::signal_group;

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
impl Runner {
    fn exec_target(&self) -> Option<ExecTarget<'_>> {
        self.view.pid.map(|pid| ExecTarget {
            pid,
            env: &self.env,
            identity: &self.p.identity,
            working_dir: self.p.spec.working_dir.as_deref(),
        })
    }

    /// Runs one probe now and schedules its next run a period after it answered.
    async fn probe_once(
        &self,
        spec: &k8s_openapi::api::core::v1::Container,
        p: &mut ProbeRun,
    ) -> Result<(), String> {
        let res = probe::run(
            &Handler::of_probe(&p.probe),
            spec,
            self.p.ip,
            self.exec_target(),
            p.timeout(),
        )
        .await;
        p.next = Instant::now() + p.period();
        res
    }

    /// Probes the running process until it exits, a probe kills it, or a stop arrives.
    pub(super) async fn supervise(
        &mut self,
        mut child: tokio::process::Child,
        _started_at: &str,
    ) -> Ended {
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
                    let res = self.probe_once(&spec, p).await;
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
                let res = self.probe_once(&spec, p).await;
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
                let res = self.probe_once(&spec, p).await;
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
