//! One container's life, as the kubelet runs it: start, startup/liveness/readiness probes,
//! restarts with exponential back-off per `restartPolicy`, and termination (preStop hook,
//! SIGTERM, grace period, SIGKILL). Every change is reported to the pod worker as a
//! [`CtrView`], which it turns into the pod's `containerStatuses`.
//!
//! This module holds the [`Runner`] and its restart loop; `start` resolves and launches the
//! process, `supervise` probes it and terminates it, `status` holds the [`CtrView`] reported.

mod start;
mod status;
mod supervise;

pub use status::{CtrState, CtrView};

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::runtime::events::EventType;
use tokio::sync::{mpsc, watch};

use super::process::{Identity, Mount};
use super::Shared;

/// A request to stop: how long the container gets, and whether its preStop hook runs.
#[derive(Debug, Clone, Copy)]
pub struct StopReq {
    pub grace: Duration,
    pub pre_stop: bool,
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
}
