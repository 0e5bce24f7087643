//! `erlmcp-operator run`: discovery, the controllers (one per watched namespace, or one for all),
//! leader election, the health/metrics server, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use erlmcp_crds::ErlmcpCluster;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::core::DynamicObject;
use kube::runtime::controller::Config as ControllerConfig;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{watcher, Controller, WatchStreamExt};
use kube::Client;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::desired::{self, ServerCapabilities};
use crate::health::Health;
use crate::kinds;
use crate::leader::Leadership;
use crate::metrics::Metrics;
use crate::own_writes;
use crate::reconcile::{error_policy, reconcile, Context};
use crate::server::{self, ServerState};
use crate::stores::{self, ChildStores};
use crate::triggers::{self, Scope};

/// Settings of `run`.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub metrics_addr: SocketAddr,
    /// Namespaces to watch; empty means all.
    pub namespaces: Vec<String>,
    pub leader_election: bool,
    pub leader_election_namespace: String,
    pub lease_seconds: u64,
    /// Reconciles run at once, at most (0: unbounded).
    pub max_concurrent_reconciles: u16,
    /// Wait between a member report or Pod change and the status refresh it causes.
    pub status_debounce: Duration,
    /// How long a Secret write takes to reach every pod (the operator CA roll's step wait).
    pub ca_propagation: Duration,
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

/// How the controllers run.
#[derive(Debug, Clone, Copy)]
struct Tuning {
    concurrency: u16,
    status_debounce: Duration,
}

/// Ask for a status refresh of the cluster an object belongs to.
fn refresh_owner<K: kube::Resource>(ctx: &Context, o: &K, debounce: Duration) {
    if let Some(owner) = stores::owner_of(o) {
        ctx.watched.refresh_later(owner, debounce);
    }
}

/// Run one controller (for one namespace or all) until `shutdown` flips to true.
///
/// The watches feed two paths. Reconciles (apply children) run on a cluster's first sight, on
/// a spec (generation) change, on a stalled rollout's new partition hold, and on a child's
/// creation, spec change or deletion. The rest, member reports in the cluster's status, Pod readiness and StatefulSet status, only asks the
/// status trigger for a debounced refresh. Every watch also fills a cache the reconciles read.
async fn run_controller(
    ctx: Arc<Context>,
    health: Arc<Health>,
    ns: Option<String>,
    shutdown: watch::Receiver<bool>,
    tuning: Tuning,
    rediscovered: watch::Receiver<()>,
) {
    let client = ctx.client.clone();
    let ns = ns.as_deref();
    let scope = ns.unwrap_or_default().to_string();
    let debounce = tuning.status_debounce;
    // Heartbeats (the pods' member reports, many per minute) wait out the debounce; a StatefulSet
    // or Pod change (rare: a pod died, became ready, rolled) is reported within a moment, so a
    // pod that dies and is back in seconds still shows as Ready=False while it is gone.
    let prompt = debounce.min(Duration::from_millis(500));
    // Children are watched by our label only, so the caches hold our objects, not the cluster's.
    let owned = watcher::Config::default().labels(&desired::managed_selector(None));
    let dynamic = |ar: &kube::core::ApiResource| match ns {
        Some(ns) => Api::<DynamicObject>::namespaced_with(client.clone(), ns, ar),
        None => Api::<DynamicObject>::all_with(client.clone(), ar),
    };
    let mut stop = shutdown.clone();
    let store_metrics = ctx.metrics.clone();

    let (store, writer) = reflector::store::<ErlmcpCluster>();
    let on_cluster = ctx.clone();
    let (synced_health, synced_scope, synced_store) =
        (health.clone(), scope.clone(), store.clone());
    let clusters = watcher(
        api::<ErlmcpCluster>(&client, ns),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(stores::slim_cluster)
    .reflect(writer)
    .inspect_ok(move |ev| match ev {
        watcher::Event::Apply(c) | watcher::Event::InitApply(c) => {
            on_cluster
                .watched
                .refresh_later(ObjectRef::from_obj(c), debounce);
        }
        watcher::Event::Delete(c) => on_cluster.watched.forget(&crate::reconcile::key(c)),
        // The first LIST is in (the reflector applied it just before): ready. Seen here, not
        // through Store::wait_until_ready, which wakes only one of several waiters.
        watcher::Event::InitDone => {
            let clusters = synced_store.state().len();
            info!(scope = %synced_scope, clusters, "first sync of the watch");
            synced_health.controller_synced(&synced_scope);
        }
        _ => {}
    })
    .applied_objects()
    .predicate_filter(triggers::reconcile_key, Default::default());
    let mut controller = Controller::for_stream(clusters, store.clone()).with_config(
        ControllerConfig::default()
            .concurrency(tuning.concurrency)
            .debounce(Duration::from_millis(500)),
    );
    let mut caches = Vec::new();
    for ar in kinds::watched(&ctx.capabilities()) {
        let writer = reflector::store::Writer::<DynamicObject>::new(ar.clone());
        caches.push((ar.clone(), writer.as_reader()));
        let on_child = ctx.clone();
        let is_statefulset = ar.kind == "StatefulSet";
        let kind = ar.kind.clone();
        let events = watcher(dynamic(&ar), owned.clone())
            .default_backoff()
            .modify(move |o| stores::slim_child(&kind, o))
            .reflect(writer)
            .inspect_ok(move |ev| {
                if let (true, watcher::Event::Apply(o) | watcher::Event::Delete(o)) =
                    (is_statefulset, ev)
                {
                    refresh_owner(&on_child, o, prompt);
                }
            });
        controller = controller.owns_stream_with(
            own_writes::child_changes(events, ctx.own_writes.clone()),
            ar,
        );
    }
    let (pods, writer) = reflector::store::<Pod>();
    let on_pod = ctx.clone();
    let pod_events = watcher(api::<Pod>(&client, ns), owned.clone())
        .default_backoff()
        .modify(stores::slim_pod)
        .reflect(writer)
        .inspect_ok(move |ev| {
            if let watcher::Event::Apply(p) | watcher::Event::Delete(p) = ev {
                refresh_owner(&on_pod, p, prompt);
            }
        })
        .touched_objects();
    // Pods never reconcile: the controller only drives their watch (and stops it with itself).
    let controller =
        controller.watches_stream(pod_events, |_: Pod| Vec::<ObjectRef<ErlmcpCluster>>::new());
    // An optional CRD installed or removed: every cluster applies (or prunes) its objects.
    let rediscoveries = futures::stream::unfold(rediscovered, |mut rx| async move {
        rx.changed().await.ok()?;
        Some(((), rx))
    });
    let controller = controller.reconcile_all_on(rediscoveries);
    ctx.watched.add_scope(
        &scope,
        Scope {
            clusters: store.clone(),
            children: ChildStores {
                kinds: caches,
                pods,
            },
        },
    );
    health.controller_started(&scope, Instant::now());
    // Ready only once the first LIST of the clusters is in: before, we reconcile nothing.
    controller
        .graceful_shutdown_on(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .run(reconcile, error_policy, ctx.clone())
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
    ctx.watched.remove_scope(&scope);
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
    cfg: &RunConfig,
    stop: watch::Receiver<bool>,
) {
    let tuning = Tuning {
        concurrency: cfg.max_concurrent_reconciles,
        status_debounce: cfg.status_debounce,
    };
    // One status trigger for every scope, stopped with the controllers.
    let (asks, rx) = mpsc::unbounded_channel();
    ctx.watched.set_trigger(asks);
    let trigger = tokio::spawn(triggers::run_status_trigger(ctx.clone(), rx, stop.clone()));
    let (rediscovered_tx, rediscovered) = watch::channel(());
    let rediscovery = tokio::spawn(crate::discovery::run_rediscovery(
        ctx.clone(),
        crate::discovery::REDISCOVERY_INTERVAL,
        rediscovered_tx,
        stop.clone(),
    ));
    if cfg.namespaces.is_empty() {
        run_controller(ctx, health.clone(), None, stop, tuning, rediscovered).await;
    } else {
        futures::future::join_all(cfg.namespaces.iter().map(|ns| {
            run_controller(
                ctx.clone(),
                health.clone(),
                Some(ns.clone()),
                stop.clone(),
                tuning,
                rediscovered.clone(),
            )
        }))
        .await;
    }
    trigger.abort();
    rediscovery.abort();
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
    let mut ctx = Context::new(
        client.clone(),
        capabilities,
        metrics.clone(),
        Recorder::new(client.clone(), reporter),
    );
    ctx.ca_propagation = cfg.ca_propagation;
    let ctx = Arc::new(ctx);
    health.discovered();

    if !cfg.leader_election {
        metrics.leader.set(1);
        run_controllers(ctx, &health, &cfg, shutdown_rx.clone()).await;
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
            run_controllers(ctx.clone(), &health, &cfg, stop_rx).await;
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
