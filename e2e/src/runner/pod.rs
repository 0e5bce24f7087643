//! One pod's worker: address, volumes, init containers then containers, status written back
//! through the status subresource, and deletion (stop every container within the grace period,
//! then remove the pod object so its controller proceeds).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::container::{CtrParams, CtrState, CtrView, Runner, StopReq};
use super::fields::PodIps;
use super::network::PodNet;
use super::process::{Identity, Mount};
use super::volumes::PodVolumes;
use super::Shared;

/// What the dispatcher tells a pod worker.
#[derive(Debug, Clone)]
pub enum Signal {
    Update(Box<Pod>),
    Deleted,
    Shutdown(Duration),
}

enum Stop {
    /// deletionTimestamp set: stop within the grace period, then delete the object.
    Delete(Duration),
    /// The object is gone (force-deleted): stop quickly, write nothing.
    Gone,
    /// The runner is exiting.
    Shutdown(Duration),
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Directory of a pod (logs) under the runner's state dir: `pods/<ns>_<name>`.
pub fn pod_dir(state: &std::path::Path, ns: &str, name: &str) -> PathBuf {
    state.join("pods").join(format!("{ns}_{name}"))
}

struct Worker {
    sh: Arc<Shared>,
    pod: Pod,
    rx: watch::Receiver<Signal>,
    net: Option<PodNet>,
    start_time: String,
    init: Vec<CtrView>,
    main: Vec<CtrView>,
    init_done: bool,
    conditions: BTreeMap<String, (bool, String)>,
    waiting_msg: Option<(String, String)>,
    last_written: Option<Value>,
}

impl Worker {
    fn ns(&self) -> String {
        self.pod.namespace().unwrap_or_default()
    }
    fn api(&self) -> Api<Pod> {
        Api::namespaced(self.sh.client.clone(), &self.ns())
    }
    fn grace(&self) -> Duration {
        let s = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                self.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30);
        Duration::from_secs(s.max(0) as u64)
    }

    /// Looks at the latest signal; returns why to stop, if we should.
    fn check(&mut self) -> Option<Stop> {
        let sig = self.rx.borrow_and_update().clone();
        match sig {
            Signal::Update(p) => {
                if p.metadata.uid != self.pod.metadata.uid {
                    return Some(Stop::Gone);
                }
                self.pod = *p;
                self.pod
                    .metadata
                    .deletion_timestamp
                    .is_some()
                    .then(|| Stop::Delete(self.grace()))
            }
            Signal::Deleted => Some(Stop::Gone),
            Signal::Shutdown(d) => Some(Stop::Shutdown(d)),
        }
    }

    async fn pause(&mut self, d: Duration) -> Option<Stop> {
        if let Some(s) = self.check() {
            return Some(s);
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => None,
            r = self.rx.changed() => if r.is_err() { Some(Stop::Gone) } else { self.check() },
        }
    }

    fn set_cond(&mut self, t: &str, v: bool) {
        match self.conditions.get(t) {
            Some((old, _)) if *old == v => {}
            _ => {
                self.conditions.insert(t.into(), (v, now()));
            }
        }
    }

    fn phase(&self) -> &'static str {
        if !self.init_done {
            if self.init.iter().any(|c| c.terminated_ok() == Some(false))
                && self.restart_policy() == "Never"
            {
                return "Failed";
            }
            return "Pending";
        }
        let term: Vec<Option<bool>> = self.main.iter().map(|c| c.terminated_ok()).collect();
        if term.iter().all(|t| t.is_some()) && self.restart_policy() != "Always" {
            return if term.iter().all(|t| *t == Some(true)) {
                "Succeeded"
            } else {
                "Failed"
            };
        }
        if self
            .main
            .iter()
            .any(|c| matches!(c.state, CtrState::Running { .. }) || c.restart_count > 0)
        {
            "Running"
        } else {
            "Pending"
        }
    }

    fn restart_policy(&self) -> String {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into())
    }

    fn status(&mut self) -> Value {
        let ready = self.init_done && !self.main.is_empty() && self.main.iter().all(|c| c.ready);
        self.set_cond("PodScheduled", true);
        self.set_cond("Initialized", self.init_done);
        self.set_cond("ContainersReady", ready);
        self.set_cond("Ready", ready);
        let not_ready: Vec<&str> = self
            .main
            .iter()
            .filter(|c| !c.ready)
            .map(|c| c.name.as_str())
            .collect();
        let conds: Vec<Value> = ["Initialized", "Ready", "ContainersReady", "PodScheduled"]
            .iter()
            .map(|t| {
                let (v, at) = &self.conditions[*t];
                let mut c = json!({"type": t, "status": if *v { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": at});
                if !*v && (*t == "Ready" || *t == "ContainersReady") {
                    c["reason"] = json!("ContainersNotReady");
                    c["message"] = json!(format!("containers with unready status: [{}]", not_ready.join(" ")));
                }
                c
            })
            .collect();
        let views = |v: &[CtrView]| -> Vec<Value> {
            v.iter()
                .map(|c| {
                    let mut c = c.clone();
                    if let (Some((r, m)), CtrState::Waiting { .. }) = (&self.waiting_msg, &c.state)
                    {
                        if c.restart_count == 0 {
                            c.state = CtrState::Waiting {
                                reason: r.clone(),
                                message: m.clone(),
                            };
                        }
                    }
                    c.to_json()
                })
                .collect()
        };
        let init = views(&self.init);
        let main = views(&self.main);
        let ip = self.net.as_ref().map(|n| n.ip.to_string());
        let mut st = json!({
            "phase": self.phase(),
            "hostIP": self.sh.net.host_ip().to_string(),
            "startTime": self.start_time,
            "conditions": conds,
            "containerStatuses": main,
        });
        if let Some(ip) = ip {
            st["podIP"] = json!(ip);
            st["podIPs"] = json!([{"ip": ip}]);
        }
        if !init.is_empty() {
            st["initContainerStatuses"] = json!(init);
        }
        st
    }

    async fn write_status(&mut self) {
        let st = self.status();
        if self.last_written.as_ref() == Some(&st) {
            return;
        }
        let body = json!({"metadata": {"uid": self.pod.metadata.uid}, "status": st});
        match self
            .api()
            .patch_status(
                &self.pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&body),
            )
            .await
        {
            Ok(p) => {
                // Keep spec/metadata fresh too (deletionTimestamp arrives through the watch).
                if p.metadata.uid == self.pod.metadata.uid {
                    self.last_written = Some(st);
                }
            }
            Err(e) => tracing::warn!(pod = %self.pod.name_any(), error = %e, "status write failed"),
        }
    }
}

fn identity(pod: &Pod, c: &Container) -> Identity {
    let psc = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let csc = c.security_context.clone().unwrap_or_default();
    let uid = csc.run_as_user.or(psc.run_as_user).map(|u| u as u32);
    let gid = csc.run_as_group.or(psc.run_as_group).map(|g| g as u32);
    let mut groups: Vec<u32> = gid.into_iter().collect();
    groups.extend(psc.fs_group.map(|g| g as u32));
    groups.extend(psc.supplemental_groups.iter().flatten().map(|g| *g as u32));
    groups.sort_unstable();
    groups.dedup();
    Identity {
        uid,
        gid: gid.or(uid.map(|_| 0)),
        groups,
    }
}

fn mounts(c: &Container, vol_root: &std::path::Path) -> Result<Vec<Mount>, String> {
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        if m.sub_path_expr.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(format!(
                "volumeMount {:?}: subPathExpr is not supported by the pod runner",
                m.name
            ));
        }
        let mut source = vol_root.join(&m.name);
        if !source.exists() {
            return Err(format!("volumeMount {:?}: no such volume", m.name));
        }
        if let Some(sp) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            source = source.join(sp);
            if !source.exists() {
                std::fs::create_dir_all(&source).map_err(|e| e.to_string())?;
            }
        }
        out.push(Mount {
            source,
            target: PathBuf::from(&m.mount_path),
            read_only: m.read_only == Some(true),
        });
    }
    Ok(out)
}

/// Runs the pod until it is deleted (or the runner shuts down).
pub async fn run(sh: Arc<Shared>, pod: Pod, rx: watch::Receiver<Signal>) {
    let name = pod.name_any();
    let ns = pod.namespace().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let dir = pod_dir(&sh.settings.state_dir, &ns, &name);
    let uid_dir = dir.join(&uid);
    let spec = pod.spec.clone().unwrap_or_default();
    let mut w = Worker {
        sh: sh.clone(),
        init: spec
            .init_containers
            .iter()
            .flatten()
            .map(CtrView::new)
            .collect(),
        main: spec.containers.iter().map(CtrView::new).collect(),
        init_done: spec.init_containers.as_ref().is_none_or(|v| v.is_empty()),
        pod,
        rx,
        net: None,
        start_time: now(),
        conditions: BTreeMap::new(),
        waiting_msg: None,
        last_written: None,
    };
    tracing::info!(pod = %format!("{ns}/{name}"), "starting pod");
    let stop = run_inner(&mut w, &uid_dir).await;
    if let Some(n) = w.net.take() {
        sh.net.detach(n).await;
    }
    let _ = std::fs::remove_dir_all(&uid_dir);
    if let Stop::Delete(_) = stop {
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match w.api().delete(&name, &dp).await {
            Ok(_) => tracing::info!(pod = %format!("{ns}/{name}"), "pod stopped and deleted"),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => {
                tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "final delete failed")
            }
        }
    }
}

async fn run_inner(w: &mut Worker, uid_dir: &std::path::Path) -> Stop {
    let sh = w.sh.clone();
    let ns = w.ns();
    let name = w.pod.name_any();
    let log_dir = pod_dir(&sh.settings.state_dir, &ns, &name);
    if let Err(e) = std::fs::create_dir_all(uid_dir) {
        tracing::error!(error = %e, "cannot create pod dir");
    }
    // An address (and in netns mode a network namespace) of its own.
    let mut last_net_err = String::new();
    loop {
        let msg = match sh.net.attach().await {
            Ok(Some(n)) => {
                w.net = Some(n);
                break;
            }
            Ok(None) => "no free pod address".to_string(),
            Err(e) => format!("pod network: {e:#}"),
        };
        if msg != last_net_err {
            tracing::warn!(pod = %name, %msg, "pod network not ready");
            last_net_err = msg.clone();
        }
        w.waiting_msg = Some(("ContainerCreating".into(), msg));
        w.write_status().await;
        if let Some(s) = w.pause(Duration::from_secs(2)).await {
            return s;
        }
    }
    let (ip, netns) = match &w.net {
        Some(n) => (n.ip, n.netns_path()),
        None => unreachable!("attached above"),
    };
    let ips = PodIps {
        pod: ip.to_string(),
        host: sh.net.host_ip().to_string(),
    };
    w.waiting_msg = None;
    w.write_status().await;
    // Volumes.
    let fs_group = w
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.fs_group)
        .map(|g| g as u32);
    let mut vols = PodVolumes::new(sh.client.clone(), uid_dir, fs_group);
    let mut last_err = String::new();
    loop {
        match vols.sync(&w.pod, &ips).await {
            Ok(()) => break,
            Err(e) => {
                let msg = format!("{e:#}");
                if msg != last_err {
                    sh.event(
                        &w.pod,
                        EventType::Warning,
                        "FailedMount",
                        format!("MountVolume failed: {msg}"),
                    )
                    .await;
                    last_err = msg.clone();
                }
                w.waiting_msg = Some(("ContainerCreating".into(), msg));
                w.write_status().await;
                if let Some(s) = w.pause(Duration::from_secs(2)).await {
                    return s;
                }
            }
        }
    }
    w.waiting_msg = None;

    let spec = w.pod.spec.clone().unwrap_or_default();
    let restart_policy = w.restart_policy();
    let pod_grace =
        Duration::from_secs(spec.termination_grace_period_seconds.unwrap_or(30).max(0) as u64);
    let vol_root = vols.path("");
    let (tx, mut ctr_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(None::<StopReq>);
    let make = |idx: usize, init: bool, c: &Container, w: &Worker| -> Result<Runner, String> {
        let csc = c.security_context.clone().unwrap_or_default();
        Ok(Runner::new(
            sh.clone(),
            CtrParams {
                idx,
                init,
                spec: c.clone(),
                pod: w.pod.clone(),
                ip: IpAddr::V4(ip),
                netns: netns.clone(),
                mounts: mounts(c, &vol_root)?,
                identity: identity(&w.pod, c),
                read_only_root: csc.read_only_root_filesystem == Some(true),
                no_new_privs: csc.allow_privilege_escalation == Some(false),
                log: log_dir.join(format!("{}.log", c.name)),
                restart_policy: restart_policy.clone(),
                pod_grace,
            },
            tx.clone(),
            stop_rx.clone(),
        ))
    };
    let mut tasks: Vec<JoinHandle<CtrView>> = Vec::new();
    let init_specs: Vec<Container> = spec.init_containers.clone().unwrap_or_default();
    let mut next_init = 0usize;
    let mut stage_started = false;
    let sync_every = sh.settings.volume_sync;
    let mut sync_tick =
        tokio::time::interval_at(tokio::time::Instant::now() + sync_every, sync_every);
    let mut dirty = true;
    let stop = loop {
        // Start the next stage: init containers one by one, then all containers together.
        if !stage_started {
            let runner = if next_init < init_specs.len() {
                make(next_init, true, &init_specs[next_init], w).map(|r| vec![r])
            } else {
                spec.containers
                    .iter()
                    .enumerate()
                    .map(|(i, c)| make(i, false, c, w))
                    .collect()
            };
            match runner {
                Ok(rs) => {
                    for r in rs {
                        tasks.push(tokio::spawn(r.run()));
                    }
                    stage_started = true;
                }
                Err(msg) => {
                    w.waiting_msg = Some(("CreateContainerConfigError".into(), msg));
                    dirty = true;
                }
            }
        }
        if dirty {
            w.write_status().await;
            dirty = false;
        }
        tokio::select! {
            Some((init, idx, view)) = ctr_rx.recv() => {
                let list = if init { &mut w.init } else { &mut w.main };
                if let Some(slot) = list.get_mut(idx) { *slot = view; }
                while let Ok((init, idx, view)) = ctr_rx.try_recv() {
                    let list = if init { &mut w.init } else { &mut w.main };
                    if let Some(slot) = list.get_mut(idx) { *slot = view; }
                }
                // An init container that completed moves us on.
                if !w.init_done
                    && stage_started
                    && w.init.get(next_init).and_then(|c| c.terminated_ok()) == Some(true)
                {
                    for t in tasks.drain(..) {
                        let _ = t.await;
                    }
                    next_init += 1;
                    stage_started = false;
                    if next_init >= init_specs.len() {
                        w.init_done = true;
                    }
                }
                dirty = true;
            }
            r = w.rx.changed() => {
                let s = if r.is_err() { Some(Stop::Gone) } else { w.check() };
                if let Some(s) = s { break s; }
            }
            _ = sync_tick.tick() => {
                dirty = true; // also retries a failed status write
                if let Err(e) = vols.sync(&w.pod, &ips).await {
                    tracing::warn!(pod = %name, error = %format!("{e:#}"), "volume resync failed");
                }
                match w.api().get_opt(&name).await {
                    Ok(None) => break Stop::Gone,
                    Ok(Some(p)) if p.metadata.uid != w.pod.metadata.uid => break Stop::Gone,
                    _ => {}
                }
                if w.init_done && stage_started && tasks.iter().all(|t| t.is_finished()) {
                    // Every container is done (restartPolicy Never/OnFailure): the address is free.
                    if let Some(n) = w.net.take() { sh.net.detach(n).await; }
                }
            }
        }
    };
    // Stop every container.
    let req = match stop {
        Stop::Delete(g) => StopReq {
            grace: g,
            pre_stop: true,
        },
        Stop::Gone => StopReq {
            grace: Duration::from_secs(2),
            pre_stop: false,
        },
        Stop::Shutdown(g) => StopReq {
            grace: g.min(pod_grace),
            pre_stop: true,
        },
    };
    tracing::info!(pod = %format!("{ns}/{name}"), grace = ?req.grace, "stopping pod");
    let _ = stop_tx.send(Some(req));
    for t in tasks {
        let _ = t.await;
    }
    while let Ok((init, idx, view)) = ctr_rx.try_recv() {
        let list = if init { &mut w.init } else { &mut w.main };
        if let Some(slot) = list.get_mut(idx) {
            *slot = view;
        }
    }
    if let Stop::Delete(_) = stop {
        w.write_status().await;
    }
    stop
}
