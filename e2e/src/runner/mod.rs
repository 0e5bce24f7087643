//! The pod runner: a small stand-in for the kubelet, for tests. TEST TOOLING, not product.
//!
//! It registers a few Node objects and keeps them alive, and for every pod bound to them runs
//! each container as a local process (see [`process`]): images map to local programs
//! ([`images`]), each pod is a host of its own in a network namespace on the runner's bridge
//! ([`netns`]; without root: an address of its own on loopback, [`addr`]; see [`network`]),
//! volumes are materialised per pod
//! ([`volumes`]) and bind-mounted at their mount paths in a private mount namespace, probes and
//! hooks run as the kubelet runs them ([`probe`], [`container`]), and pod status is written back
//! ([`pod`]). Deleting a pod runs its preStop hook, sends SIGTERM, waits the grace period,
//! kills, then removes the pod object.

pub mod addr;
pub mod apiproxy;
pub mod container;
pub mod fields;
pub mod images;
pub mod netns;
pub mod network;
pub mod node;
pub mod pod;
pub mod probe;
pub mod process;
pub mod provisioner;
pub mod volumes;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use futures::{stream, StreamExt};
use k8s_openapi::api::core::v1::{Pod, Taint};
use kube::api::{DeleteParams, Preconditions};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::{mpsc, watch};

use self::images::ImageMap;
use self::network::{Network, NetworkMode};
use self::node::{NodeSpec, Nodes};
use self::pod::Signal;

/// Runner settings (the CLI fills these).
#[derive(Debug, Clone)]
pub struct Settings {
    pub state_dir: PathBuf,
    pub nodes: Vec<NodeSpec>,
    pub node_taints: Vec<Taint>,
    pub images: ImageMap,
    /// Pods in network namespaces (`netns`), on loopback addresses, or `auto`.
    pub network: NetworkMode,
    /// `auto` or three octets like `127.0.1` (the pods' /24).
    pub address_base: String,
    /// First restart back-off step (the kubelet's is 10 s).
    pub backoff_base: Duration,
    /// How often ConfigMap/Secret/token volumes are refreshed and pod existence re-checked.
    pub volume_sync: Duration,
    /// Grace period cap for pods when the runner itself stops.
    pub shutdown_grace: Duration,
    /// What the pods get as KUBERNETES_SERVICE_HOST / _PORT.
    pub api_host: String,
    pub api_port: u16,
    /// Delete the Node objects when the runner exits (for clusters that outlive the run).
    pub remove_nodes_on_exit: bool,
    /// Run the [`provisioner`] (a default StorageClass and host-directory volumes).
    pub provision_volumes: bool,
}

/// State shared by all pod workers.
pub struct Shared {
    pub client: Client,
    pub settings: Settings,
    pub net: Network,
    recorder: Recorder,
}

impl Shared {
    /// Publishes a pod event (best effort).
    pub async fn event(&self, pod: &Pod, type_: EventType, reason: &str, note: String) {
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(note.chars().take(1000).collect()),
            action: reason.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &pod.object_ref(&())).await {
            tracing::debug!(error = %e, "event not published");
        }
    }
}

/// Host and port of the API server the client talks to.
pub fn api_endpoint(client_cfg: &kube::Config) -> (String, u16) {
    let uri = &client_cfg.cluster_url;
    let host = uri
        .host()
        .unwrap_or("127.0.0.1")
        .trim_matches(['[', ']'])
        .to_string();
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("http") {
            80
        } else {
            443
        });
    (host, port)
}

/// Runs until `shutdown` resolves; then stops every pod (grace capped by
/// `settings.shutdown_grace`) and removes its network (bridge, namespaces, links, route).
pub async fn run(
    client: Client,
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let version = client
        .apiserver_version()
        .await
        .context("cannot reach the API server")?;
    std::fs::create_dir_all(settings.state_dir.join("pods"))?;
    let net = Network::new(
        settings.network,
        &settings.address_base,
        &settings.api_host,
        settings.api_port,
    )?;
    let info = net.info();
    tracing::info!(mode = %info.mode, subnet = %info.subnet, host = %info.host_ip, "pod network");
    if let Err(e) = std::fs::write(
        settings.state_dir.join(network::INFO_FILE),
        serde_json::to_vec_pretty(&info)?,
    ) {
        net.cleanup();
        return Err(e.into());
    }
    let nodes = Nodes::new(
        client.clone(),
        settings.nodes.clone(),
        settings.node_taints.clone(),
        version.git_version.clone(),
    );
    if let Err(e) = nodes.register().await {
        net.cleanup();
        return Err(e);
    }
    tracing::info!(nodes = ?nodes.names(), "nodes registered");
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "erlmcp-pod-runner".into(),
            instance: Some(std::process::id().to_string()),
        },
    );
    let sh = Arc::new(Shared {
        client: client.clone(),
        settings,
        net,
        recorder,
    });
    let (stop_provisioner, stopped) = watch::channel(false);
    let provisioner = sh.settings.provision_volumes.then(|| {
        let root = sh.settings.state_dir.join("volumes");
        tokio::spawn(provisioner::run(client.clone(), root, stopped))
    });
    let result = dispatch(sh.clone(), &nodes, shutdown).await;
    let _ = stop_provisioner.send(true);
    if let Some(p) = provisioner {
        let _ = tokio::time::timeout(Duration::from_secs(5), p).await;
    }
    sh.net.cleanup();
    if sh.settings.remove_nodes_on_exit {
        nodes.remove().await;
    }
    result
}

async fn dispatch(
    sh: Arc<Shared>,
    nodes: &Nodes,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let pods: Api<Pod> = Api::all(sh.client.clone());
    let streams = nodes.names().into_iter().map(|n| {
        watcher(
            pods.clone(),
            watcher::Config::default().fields(&format!("spec.nodeName={n}")),
        )
        .boxed()
    });
    let mut events = stream::select_all(streams);
    let mut workers: HashMap<String, (watch::Sender<Signal>, tokio::task::JoinHandle<()>)> =
        HashMap::new();
    let mut finished: HashSet<String> = HashSet::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let heartbeats = nodes.heartbeats();
    tokio::pin!(heartbeats);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = &mut heartbeats => {}
            Some(uid) = done_rx.recv() => {
                workers.remove(&uid);
                finished.insert(uid);
            }
            ev = events.next() => {
                let Some(ev) = ev else { break };
                match ev {
                    Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => {
                        let uid = p.uid().unwrap_or_default();
                        if let Some((tx, _)) = workers.get(&uid) {
                            let _ = tx.send(Signal::Update(Box::new(p)));
                        } else if !finished.contains(&uid) {
                            start_pod(&sh, p, &mut workers, &done_tx).await;
                        }
                    }
                    Ok(watcher::Event::Delete(p)) => {
                        if let Some((tx, _)) = workers.get(&p.uid().unwrap_or_default()) {
                            let _ = tx.send(Signal::Deleted);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "pod watch error (retrying)");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }
    }
    tracing::info!(pods = workers.len(), "shutting down: stopping pods");
    let grace = sh.settings.shutdown_grace;
    for (tx, _) in workers.values() {
        let _ = tx.send(Signal::Shutdown(grace));
    }
    for (_, (_, h)) in workers {
        let _ = tokio::time::timeout(grace + Duration::from_secs(5), h).await;
    }
    Ok(())
}

async fn start_pod(
    sh: &Arc<Shared>,
    p: Pod,
    workers: &mut HashMap<String, (watch::Sender<Signal>, tokio::task::JoinHandle<()>)>,
    done: &mpsc::UnboundedSender<String>,
) {
    let uid = p.uid().unwrap_or_default();
    let phase = p
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();
    if p.metadata.deletion_timestamp.is_some() {
        // Being deleted and nothing runs for it here (e.g. after a runner restart): finish it.
        let api: Api<Pod> = Api::namespaced(sh.client.clone(), &p.namespace().unwrap_or_default());
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..Default::default()
        };
        let _ = api.delete(&p.name_any(), &dp).await;
        return;
    }
    if phase == "Succeeded" || phase == "Failed" {
        return;
    }
    let (tx, rx) = watch::channel(Signal::Update(Box::new(p.clone())));
    let sh2 = sh.clone();
    let done = done.clone();
    let uid2 = uid.clone();
    let h = tokio::spawn(async move {
        pod::run(sh2, p, rx).await;
        let _ = done.send(uid2);
    });
    workers.insert(uid, (tx, h));
}
