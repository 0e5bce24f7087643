//! `erlmcp serve | healthcheck | drain | version`: the command line of the `erlmcp` binary, and of any
//! binary that serves the same server with extra catalog entries (the conformance server).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::catalog::Register;
use crate::transport::{admin, health};
use crate::{app, cluster, config, node, observe};

#[derive(Parser)]
#[command(name = "erlmcp", version, about = "erlmcp: a clustered MCP server")]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve MCP (no flags: the built-ins on port 8080).
    Serve {
        /// Configuration file (erlmcp.yaml).
        #[arg(long, env = "ERLMCP_CONFIG")]
        config: Option<PathBuf>,
        /// Speak JSON-RPC on stdin/stdout (for desktop clients); HTTP listeners are not opened.
        #[arg(long)]
        stdio: bool,
        /// Seconds to drain in-flight work on SIGTERM.
        #[arg(long, env = "ERLMCP_DRAIN_SECONDS", default_value_t = 20)]
        drain_seconds: u64,
        /// Port of the admin listener (`erlmcp drain`), on 127.0.0.1 only.
        #[arg(long, env = "ERLMCP_ADMIN_PORT", default_value_t = admin::DEFAULT_PORT)]
        admin_port: u16,
    },
    /// Drain the local server (for an exec preStop hook): not ready, peers told, no new
    /// sessions, in-flight requests finished (at most --timeout-seconds). Exit 0 when drained.
    Drain {
        #[arg(long, env = "ERLMCP_ADMIN_PORT", default_value_t = admin::DEFAULT_PORT)]
        port: u16,
        #[arg(long, default_value_t = 20)]
        timeout_seconds: u64,
    },
    /// Exit 0 if the local node is healthy (or ready, with --ready), 1 otherwise.
    Healthcheck {
        #[arg(long)]
        ready: bool,
        #[arg(long, env = "HEALTH_PORT", default_value_t = 9090)]
        port: u16,
    },
    /// Print the version.
    Version,
}

/// Parse the command line, run it, and return the process exit code. `register` adds catalog
/// entries to what `serve` offers.
pub fn run(register: Option<Register>) -> i32 {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = rt.block_on(async move {
        match cli.cmd.unwrap_or(Cmd::Serve {
            config: None,
            stdio: false,
            drain_seconds: 20,
            admin_port: admin::DEFAULT_PORT,
        }) {
            Cmd::Version => {
                println!("erlmcp {}", env!("CARGO_PKG_VERSION"));
                0
            }
            Cmd::Healthcheck { ready, port } => match health::check(
                port,
                if ready { "/ready" } else { "/health" },
                Duration::from_secs(3),
            )
            .await
            {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("unhealthy: {e}");
                    1
                }
            },
            Cmd::Drain {
                port,
                timeout_seconds,
            } => match admin::request_drain(port, Duration::from_secs(timeout_seconds)).await {
                Ok(v) => {
                    println!("{v}");
                    i32::from(v["status"] != "drained")
                }
                Err(e) => {
                    eprintln!("drain: {e}");
                    1
                }
            },
            Cmd::Serve {
                config,
                stdio,
                drain_seconds,
                admin_port,
            } => {
                let drain = Duration::from_secs(drain_seconds);
                serve(config, stdio, drain, admin_port, register).await
            }
        }
    });
    code
}

async fn serve(
    path: Option<PathBuf>,
    stdio: bool,
    drain: Duration,
    admin_port: u16,
    register: Option<Register>,
) -> i32 {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cfg = match config::load(path.as_deref(), &config::ProcessEnv) {
        Ok(c) => c,
        Err(e) => {
            eprint!("erlmcp: {e}");
            return 2;
        }
    };
    let telemetry =
        observe::init_logging(&cfg.log_level, if stdio { "text" } else { &cfg.log_format });
    let lifecycle = Arc::new(node::Lifecycle::new());
    let settings = match cluster::settings(&cfg, &config::ProcessEnv) {
        Ok(s) => s,
        Err(e) => {
            eprint!("erlmcp: {e}");
            return 2;
        }
    };
    let peers = if settings.clustered() && !stdio {
        match cluster::ClusterNode::new(settings, lifecycle.clone()) {
            Ok(n) => Some(n),
            Err(e) => {
                eprintln!("erlmcp: {e:#}");
                return 2;
            }
        }
    } else {
        None
    };
    let cluster: Arc<dyn node::ClusterView> = match &peers {
        Some(n) => Arc::new(cluster::peer::Handle(n.clone())),
        None => Arc::new(node::SingleNode),
    };
    if stdio {
        let state = match app::build_state_with(&cfg, cluster, lifecycle.clone(), register) {
            Ok(s) => s,
            Err(e) => {
                eprint!("erlmcp: {e}");
                return 2;
            }
        };
        lifecycle.set_ready(true);
        crate::transport::stdio::serve(state).await;
        return 0;
    }
    let listeners = match app::Listeners::bind(&cfg).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("erlmcp: {e:#}");
            return 2;
        }
    };
    let peer_listener = match &peers {
        Some(n) => match n.bind().await {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("erlmcp: {e:#}");
                return 2;
            }
        },
        None => None,
    };
    let router_cfg = cfg.clone();
    let running = match app::start_with(cfg, cluster, lifecycle, listeners, register).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("erlmcp: {e:#}");
            return 2;
        }
    };
    serve_admin(&running, admin_port).await;
    if let (Some(n), Some(l)) = (&peers, peer_listener) {
        n.start(
            l,
            app::mcp_router(running.state.clone(), &router_cfg),
            running.state.clone(),
        );
    }
    wait_for_signal().await;
    if let Some(n) = &peers {
        // Not ready, peers told, load balancers given time (at once if preStop did this).
        cluster::drain::leave(n).await;
        cluster::persist::flush(n);
    }
    running.shutdown(drain).await;
    if let Some(n) = &peers {
        cluster::status::remove(n).await;
        n.stop();
    }
    if let Some(t) = telemetry {
        t.shutdown().await;
    }
    0
}

/// The loopback-only admin listener. Not fatal when its port is taken (several servers on one
/// host, as in tests): `erlmcp drain` then fails loudly instead.
async fn serve_admin(running: &app::Running, port: u16) {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => {
            tokio::spawn(app::serve_http(
                l,
                admin::router(running.state.clone()),
                None,
                None,
                crate::limits::SlowClient::default(),
                std::future::pending::<()>(),
                Duration::from_secs(1),
            ));
        }
        Err(e) => {
            tracing::warn!(%addr, error = %e, "admin listener not started; erlmcp drain is unavailable")
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT"),
    }
}
