//! `erlmcp-operator run`: discovery, the controllers (one per watched namespace, or one for all),
//! leader election, the health/metrics server, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use erlmcp_crds::ErlmcpCluster;
use futures::StreamExt;
use kube::api::Api;
use kube::core::DynamicObject;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{watcher, Controller};
use kube::Client;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::desired::{self, ServerCapabilities};
use crate::health::Health;
use crate::kinds;
use crate::leader::Leadership;
use crate::metrics::Metrics;
use crate::reconcile::{error_policy, reconcile, Context};
use crate::server::{self, ServerState};

/// Settings of `run`.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub metrics_addr: SocketAddr,
    /// Namespaces to watch; empty means all.
    pub namespaces: Vec<String>,
    pub leader_election: bool,
    pub leader_election_namespace: String,
    pub lease_seconds: u64,
}

/// Parse `WATCH_NAMESPACES` (comma list; blanks ignored).
pub fn parse_namespaces(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(String::from)
        .collect()
}

fn api<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Run one controller (for one namespace or all) until `shutdown` flips to true.
async fn run_controller(
    ctx: Arc<Context>,
    health: Arc<Health>,
    ns: Option<String>,
    shutdown: watch::Receiver<bool>,
) {
    let client = ctx.client.clone();
    let ns = ns.as_deref();
    let scope = ns.unwrap_or_default().to_string();
    // Children are watched by our label only, so the caches hold our objects, not the cluster's.
    let owned = watcher::Config::default().labels(&desired::managed_selector(None));
    let dynamic = |ar: &kube::core::ApiResource| match ns {
        Some(ns) => Api::<DynamicObject>::namespaced_with(client.clone(), ns, ar),
        None => Api::<DynamicObject>::all_with(client.clone(), ar),
    };
    let mut stop = shutdown.clone();
    let store_metrics = ctx.metrics.clone();
    let controller = kinds::watched(&ctx.capabilities).into_iter().fold(
        Controller::new(
            api::<ErlmcpCluster>(&client, ns),
            watcher::Config::default(),
        ),
        |controller, ar| controller.owns_with(dynamic(&ar), ar, owned.clone()),
    );
    let store = controller.store();
    health.controller_started(&scope, Instant::now());
    // Ready only once the first LIST of the clusters is in: before, we reconcile nothing.
    let first_sync = tokio::spawn({
        let (store, health, scope) = (store.clone(), health.clone(), scope.clone());
        async move {
            if store.wait_until_ready().await.is_ok() {
                info!(scope = %scope, clusters = store.state().len(), "first sync of the watch");
                health.controller_synced(&scope);
            }
        }
    });
    controller
        .graceful_shutdown_on(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|res| {
            store_metrics.set_managed(&scope, store.state().len());
            if let Err(e) = res {
                // Reconcile errors are logged by error_policy; these are watch/queue errors.
                if !matches!(e, kube::runtime::controller::Error::ReconcilerFailed(..)) {
                    warn!(error = %e, "controller stream error");
                }
            }
            futures::future::ready(())
        })
        .await;
    first_sync.abort();
    store_metrics.forget_managed(&scope);
    let asked = *shutdown.borrow();
    if !asked {
        error!(scope = %scope, "controller stopped on its own: liveness fails");
    }
    health.controller_stopped(&scope, asked);
}

async fn run_controllers(
    ctx: Arc<Context>,
    health: &Arc<Health>,
    namespaces: &[String],
    stop: watch::Receiver<bool>,
) {
    if namespaces.is_empty() {
        run_controller(ctx, health.clone(), None, stop).await;
    } else {
        futures::future::join_all(
            namespaces.iter().map(|ns| {
                run_controller(ctx.clone(), health.clone(), Some(ns.clone()), stop.clone())
            }),
        )
        .await;
    }
}

/// Resolve on SIGTERM or SIGINT.
async fn termination() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => info!("SIGINT: shutting down"),
    }
}

async fn discover(client: &Client) -> ServerCapabilities {
    let mut delay = Duration::from_secs(1);
    loop {
        match crate::discovery::capabilities(client).await {
            Ok(c) => return c,
            Err(e) => {
                warn!(error = %e, retry_in = ?delay, "API discovery failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

pub async fn run(cfg: RunConfig) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    let health = Arc::new(Health::default());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    tokio::spawn(async move {
        termination().await;
        let _ = shutdown_tx.send(true);
    });

    let mut server_stop = shutdown_rx.clone();
    let server = tokio::spawn(server::serve(
        cfg.metrics_addr,
        ServerState {
            metrics: metrics.clone(),
            health: health.clone(),
        },
        async move {
            let _ = server_stop.wait_for(|s| *s).await;
        },
    ));

    let client = Client::try_default()
        .await
        .map_err(|e| anyhow::anyhow!("no Kubernetes API: {e} (set KUBECONFIG or run in a pod)"))?;
    let capabilities = discover(&client).await;
    info!(?capabilities, namespaces = ?cfg.namespaces, "discovered the API server");
    let reporter = Reporter {
        controller: desired::FIELD_MANAGER.into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        capabilities,
        metrics.clone(),
        Recorder::new(client.clone(), reporter),
    ));
    health.discovered();

    if !cfg.leader_election {
        metrics.leader.set(1);
        run_controllers(ctx, &health, &cfg.namespaces, shutdown_rx.clone()).await;
    } else {
        let identity = crate::leader::identity();
        let leadership = Leadership::start(
            client.clone(),
            &cfg.leader_election_namespace,
            &identity,
            cfg.lease_seconds,
        )
        .await?;
        let mut is_leader = leadership.is_leader.clone();
        let mut shutdown = shutdown_rx.clone();
        info!(%identity, "waiting for the leader lease");
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => break,
                r = is_leader.wait_for(|l| *l) => { if r.is_err() { error!("lease manager stopped"); break; } }
            }
            info!(%identity, "became leader: reconciling");
            metrics.leader.set(1);
            // Stop reconciling when leadership is lost or on shutdown, whichever comes first.
            let (stop_tx, stop_rx) = watch::channel(false);
            let mut lost = is_leader.clone();
            let mut sd = shutdown_rx.clone();
            let watcher = tokio::spawn(async move {
                tokio::select! {
                    _ = lost.wait_for(|l| !*l) => warn!("lost the leader lease: stopping reconciles"),
                    _ = sd.wait_for(|s| *s) => {}
                }
                let _ = stop_tx.send(true);
            });
            run_controllers(ctx.clone(), &health, &cfg.namespaces, stop_rx).await;
            watcher.abort();
            metrics.leader.set(0);
            if *shutdown_rx.borrow() {
                break;
            }
        }
        // Every receiver must be gone for the lease manager to release the lease.
        drop(is_leader);
        leadership.release(Duration::from_secs(5)).await;
    }
    let _ = server.await;
    info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_namespaces_parsing() {
        assert!(parse_namespaces("").is_empty());
        assert_eq!(parse_namespaces(" a, b,,c "), vec!["a", "b", "c"]);
    }
}
