//! Wiring: build the core from the configuration, bind every listener before anything serves
//! (nothing half-starts), serve, and drain on SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::auth::Auth;
use crate::catalog::{Catalog, Register};
use crate::config::{ConfigError, ConfigErrors, RuntimeConfig};
use crate::limits::{Limits, SlowClient};
use crate::node::{ClusterView, Lifecycle, NodeIdentity};
use crate::observe::metrics::Metrics;
use crate::protocol::{Core, CoreParts};
use crate::resource_metadata;
use crate::session::SessionRegistry;
use crate::transport::deadline_body::DeadlineBody;
use crate::transport::{
    self, health, legacy_sse, streamable_http, tcp, websocket, AppState, ConnSlot, Shared,
};

/// Listeners bound up front.
pub struct Listeners {
    pub mcp: TcpListener,
    pub health: TcpListener,
    pub metrics: TcpListener,
    pub tcp: Option<TcpListener>,
}

impl Listeners {
    pub async fn bind(cfg: &RuntimeConfig) -> anyhow::Result<Self> {
        let bind = |port: u16, what: &'static str| {
            let addr = SocketAddr::new(cfg.bind, port);
            async move {
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("{what}: cannot listen on {addr}"))
            }
        };
        Ok(Self {
            mcp: bind(cfg.mcp_port(), "ERLMCP_PORT").await?,
            health: bind(cfg.health_port(), "HEALTH_PORT").await?,
            metrics: bind(cfg.metrics_port(), "METRICS_PORT").await?,
            tcp: if cfg.file.mcp.transports.tcp.enabled {
                Some(bind(cfg.file.mcp.transports.tcp.port, "mcp.transports.tcp.port").await?)
            } else {
                None
            },
        })
    }
}

/// Everything needed to run; built (and validated) before any listener serves.
pub fn build_state(
    cfg: &RuntimeConfig,
    cluster: Arc<dyn ClusterView>,
    lifecycle: Arc<Lifecycle>,
) -> Result<Shared, ConfigErrors> {
    build_state_with(cfg, cluster, lifecycle, None)
}

/// [`build_state`] with extra catalog entries an embedding binary registers.
pub fn build_state_with(
    cfg: &RuntimeConfig,
    cluster: Arc<dyn ClusterView>,
    lifecycle: Arc<Lifecycle>,
    register: Option<Register>,
) -> Result<Shared, ConfigErrors> {
    let mut catalog = Catalog::build(&cfg.file.mcp).map_err(ConfigErrors)?;
    if let Some(register) = register {
        register(&mut catalog);
    }
    let auth = Auth::from_spec(&cfg.file.mcp.auth)
        .map_err(|(field, message)| ConfigErrors(vec![ConfigError { field, message }]))?
        .served_over_tls(cfg.client_tls.is_some());
    let metrics = Arc::new(Metrics::new());
    let node = NodeIdentity::new(&cfg.node_name);
    let sessions = SessionRegistry::new(
        node.clone(),
        cfg.file.mcp.sessions.max_sessions as usize,
        Duration::from_secs(cfg.file.mcp.sessions.idle_timeout_seconds as u64),
        metrics.clone(),
    )
    .with_max_per_client(cfg.file.mcp.sessions.max_sessions_per_client as usize);
    let core = Core::shared(CoreParts {
        catalog,
        sessions,
        node,
        cluster,
        lifecycle,
        metrics,
        cookie: cfg.cookie.clone(),
        previous_cookie: cfg.previous_cookie.clone(),
        page_size: cfg.page_size,
        authenticated: auth.enabled(),
        request_timeout: Duration::from_secs(cfg.file.mcp.limits.request_timeout_seconds as u64),
        task_limits: (&cfg.file.mcp.tasks).into(),
        task_dir: cfg
            .file
            .session_dir
            .as_ref()
            .map(|d| std::path::Path::new(d).join("tasks")),
    });
    Ok(Arc::new(AppState {
        core,
        limits: Limits::new(&cfg.file.mcp),
        auth,
        retry_ms: 1000,
        keepalive: Duration::from_secs(15),
        sse_conns: dashmap::DashMap::new(),
    }))
}

pub fn mcp_router(state: Shared, cfg: &RuntimeConfig) -> Router {
    let t = &cfg.file.mcp.transports;
    let mut r = Router::new();
    if t.streamable_http {
        r = r.route(
            "/mcp",
            post(streamable_http::post)
                .get(streamable_http::get)
                .delete(streamable_http::delete),
        );
    }
    if t.legacy_sse {
        r = r
            .route("/sse", get(legacy_sse::open))
            .route("/messages", post(legacy_sse::message));
    }
    if t.websocket {
        r = r.route("/ws", get(websocket::upgrade));
    }
    if matches!(cfg.file.mcp.auth.mode, erlmcp_crds::AuthMode::Jwt) {
        let wk = resource_metadata::WELL_KNOWN;
        r = r.route(wk, get(transport::resource_metadata::serve)).route(
            &format!("{wk}/mcp"),
            get(transport::resource_metadata::serve),
        );
    }
    // The trace middleware only exists with an exporter: without one, requests pay nothing.
    if crate::observe::trace::enabled() {
        r = r.layer(axum::middleware::from_fn(crate::observe::trace::http_layer));
    }
    r.layer(DefaultBodyLimit::max(state.limits.max_body))
        .with_state(state)
}

/// Client TLS for the HTTP port and for the TCP transport: one certificate, which follows its
/// files, so a renewal needs no restart. HTTP offers h2 and http/1.1 by ALPN; the TCP transport
/// carries newline-delimited JSON-RPC and offers none.
struct ClientTls {
    http: tokio_rustls::TlsAcceptor,
    tcp: tokio_rustls::TlsAcceptor,
}

fn client_tls(cfg: &RuntimeConfig) -> anyhow::Result<Option<ClientTls>> {
    let Some(t) = &cfg.client_tls else {
        return Ok(None);
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let files = crate::tls_reload::TlsWatcher::load(
        crate::tls_reload::TlsPaths {
            cert: t.cert_file.clone(),
            key: t.key_file.clone(),
            ca: None,
        },
        provider.clone(),
    )?;
    files.watch(crate::tls_reload::interval_from_env());
    let config = |alpn: Vec<Vec<u8>>| -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let mut sc = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("tls: protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(files.server_resolver());
        sc.alpn_protocols = alpn;
        Ok(Arc::new(sc))
    };
    Ok(Some(ClientTls {
        http: config(vec![b"h2".to_vec(), b"http/1.1".to_vec()])?.into(),
        tcp: config(Vec::new())?.into(),
    }))
}

/// Serve HTTP (optionally TLS) with a connection cap, keep-alive, slow-client bounds and
/// graceful shutdown.
pub async fn serve_http(
    listener: TcpListener,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    conns: Option<Arc<tokio::sync::Semaphore>>,
    slow: SlowClient,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    // hyper's header timer also runs while an HTTP/1 keep-alive connection waits idle.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(slow.header_read)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(slow.http2_max_streams)
        .keep_alive_interval(slow.http2_keep_alive)
        .keep_alive_timeout(slow.http2_keep_alive);
    let builder = Arc::new(builder);
    tokio::pin!(stop);
    loop {
        let (sock, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let permit = match &conns {
            Some(sem) => match sem.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    tracing::warn!(%peer, "connection limit reached; refusing client");
                    continue;
                }
            },
            None => None,
        };
        let _ = sock.set_nodelay(true);
        // The slot travels with the connection; a WebSocket upgrade takes it along.
        let slot = ConnSlot::new(permit);
        let first_request = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let router = router.clone();
        let seen = first_request.clone();
        let svc_slot = slot.clone();
        let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
            seen.store(true, std::sync::atomic::Ordering::Relaxed);
            let mut req = req.map(|b| DeadlineBody::new(b, slow.body_read));
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            req.extensions_mut().insert(svc_slot.clone());
            router.clone().oneshot(req)
        });
        let builder = builder.clone();
        let tls = tls.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            // hyper's header timer starts only once it knows the protocol: a client that sends
            // nothing, or stalls inside the TLS handshake or the HTTP/2 preface, is cut here.
            let stalled = async {
                tokio::time::sleep(slow.header_read).await;
                if first_request.load(std::sync::atomic::Ordering::Relaxed) {
                    std::future::pending::<()>().await;
                }
            };
            let serve = async {
                match tls {
                    None => {
                        let conn = builder.serve_connection_with_upgrades(TokioIo::new(sock), svc);
                        let _ = watcher.watch(conn.into_owned()).await;
                    }
                    Some(acc) => {
                        let Ok(stream) = acc.accept(sock).await else {
                            return;
                        };
                        let conn =
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                        let _ = watcher.watch(conn.into_owned()).await;
                    }
                }
            };
            tokio::select! {
                _ = serve => {}
                _ = stalled => tracing::debug!(%peer, "no request head in time; closing"),
            }
        });
    }
    let _ = tokio::time::timeout(grace, graceful.shutdown()).await;
}

/// A running server.
pub struct Running {
    pub state: Shared,
    pub mcp_addr: SocketAddr,
    pub health_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub tcp_addr: Option<SocketAddr>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Drain: not ready at once, refuse new work, let in-flight requests finish (bounded),
    /// close streams with a retry hint, then stop the listeners.
    pub async fn shutdown(self, grace: Duration) {
        let core = self.state.core.clone();
        core.lifecycle.begin_drain();
        tracing::info!("draining");
        // Requests hold permits; wait until every permit is back or the grace period ends.
        transport::admin::wait_idle(&self.state, grace).await;
        self.stop.send_replace(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(grace, t).await;
        }
        core.sessions.close_all();
        tracing::info!("stopped");
    }
}

pub async fn start(
    cfg: RuntimeConfig,
    cluster: Arc<dyn ClusterView>,
    lifecycle: Arc<Lifecycle>,
    listeners: Listeners,
) -> anyhow::Result<Running> {
    start_with(cfg, cluster, lifecycle, listeners, None).await
}

/// [`start`] with extra catalog entries an embedding binary registers.
pub async fn start_with(
    cfg: RuntimeConfig,
    cluster: Arc<dyn ClusterView>,
    lifecycle: Arc<Lifecycle>,
    listeners: Listeners,
    register: Option<Register>,
) -> anyhow::Result<Running> {
    let state = build_state_with(&cfg, cluster, lifecycle.clone(), register)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (tls, tcp_tls) = match client_tls(&cfg)? {
        Some(t) => (Some(t.http), Some(t.tcp)),
        None => (None, None),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopper = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let grace = Duration::from_secs(5);
    let mcp_addr = listeners.mcp.local_addr()?;
    let health_addr = listeners.health.local_addr()?;
    let metrics_addr = listeners.metrics.local_addr()?;
    let tcp_addr = listeners.tcp.as_ref().map(|l| l.local_addr()).transpose()?;
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(serve_http(
        listeners.mcp,
        mcp_router(state.clone(), &cfg),
        tls,
        Some(state.limits.connections.clone()),
        state.limits.slow,
        stopper(),
        grace,
    )));
    tasks.push(tokio::spawn(serve_http(
        listeners.health,
        health::health_router(state.core.clone()),
        None,
        None,
        SlowClient::default(),
        stopper(),
        grace,
    )));
    tasks.push(tokio::spawn(serve_http(
        listeners.metrics,
        health::metrics_router(state.core.clone()),
        None,
        None,
        SlowClient::default(),
        stopper(),
        grace,
    )));
    if let Some(l) = listeners.tcp {
        tasks.push(tokio::spawn(tcp::serve(state.clone(), l, tcp_tls)));
    }
    // Housekeeping: expire idle sessions, forget idle rate-limit buckets.
    let st = state.clone();
    let stop = stopper();
    tokio::spawn(async move {
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let n = st.core.sessions.reap();
                    if n > 0 {
                        tracing::info!(expired = n, "idle sessions expired");
                    }
                    st.limits.rate.sweep();
                }
                _ = &mut stop => return,
            }
        }
    });
    lifecycle.set_ready(true);
    tracing::info!(node = %state.core.node.name, %mcp_addr, %health_addr, %metrics_addr, tools = state.core.catalog.tools.len(), "erlmcp serving");
    Ok(Running {
        state,
        mcp_addr,
        health_addr,
        metrics_addr,
        tcp_addr,
        stop: stop_tx,
        tasks,
    })
}
