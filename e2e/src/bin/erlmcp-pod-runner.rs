//! `erlmcp-pod-runner`: runs the pods bound to a few fake nodes as local processes, for tests.
//! TEST TOOLING, not product; see e2e/README.md ("Pod runner").

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use erlmcp_e2e::runner::{self, images::ImageMap, node::node_specs, Settings};
use k8s_openapi::api::core::v1::Taint;

#[derive(Parser, Debug)]
#[command(
    name = "erlmcp-pod-runner",
    version,
    about = "Runs pods bound to its nodes as local processes (test tooling)"
)]
struct Cli {
    /// Kubeconfig of the cluster (else $KUBECONFIG, else ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Where pod logs (`pods/<ns>_<name>/<container>.log`) and volumes live.
    #[arg(long, default_value = ".cache/pod-runner")]
    state_dir: PathBuf,
    /// How many nodes to register: <prefix>-a, <prefix>-b, ... in zones zone-a, zone-b, ...
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Node name prefix.
    #[arg(long, default_value = "node")]
    node_prefix: String,
    /// Taint for every node, KEY[=VALUE]:EFFECT (repeatable); e.g. to keep other pods off
    /// the runner's nodes in a cluster that has real ones.
    #[arg(long = "node-taint")]
    node_taints: Vec<String>,
    /// Image rule REGEX=PROGRAM [ARG...] (repeatable, first match wins, checked before the
    /// defaults): our images → the binaries next to this one; busybox/alpine/debian → /bin/sh.
    #[arg(long = "image-map")]
    image_map: Vec<String>,
    /// Do not add the default image rules.
    #[arg(long)]
    no_default_images: bool,
    /// Pod networking: `netns` (each pod in a network namespace of its own on a bridge the
    /// runner creates; needs root), `loopback` (pods share the host's network, each on its
    /// own address), or `auto` (`netns` as root, else `loopback`).
    #[arg(long, default_value = "auto")]
    network: String,
    /// The pods' /24: `auto` (a free one in 198.18.0.0/15; in loopback mode an AnyIP route,
    /// else 127.0.1.x) or three octets, e.g. 127.0.1 (pods get .2, .3, ...).
    #[arg(long, default_value = "auto")]
    address_base: String,
    /// First step of the restart back-off, seconds (the kubelet's is 10).
    #[arg(long, default_value_t = 10)]
    backoff_base_seconds: u64,
    /// Refresh ConfigMap/Secret/token volumes every N seconds.
    #[arg(long, default_value_t = 5)]
    volume_sync_seconds: u64,
    /// On SIGTERM/SIGINT, give pods at most this many seconds to stop.
    #[arg(long, default_value_t = 5)]
    shutdown_grace_seconds: u64,
    /// Delete the Node objects (and their leases) on exit, for clusters that outlive the run.
    #[arg(long)]
    remove_nodes_on_exit: bool,
    /// Serve PersistentVolumeClaims: a default StorageClass `erlmcp-local` whose claims get
    /// host directories under the state dir (for control planes without storage).
    #[arg(long)]
    provision_volumes: bool,
}

fn parse_taint(s: &str) -> Result<Taint> {
    let Some((kv, effect)) = s.rsplit_once(':') else {
        bail!("taint {s:?}: expected KEY[=VALUE]:EFFECT");
    };
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k.to_string(), Some(v.to_string())),
        None => (kv.to_string(), None),
    };
    Ok(Taint {
        key,
        value,
        effect: effect.to_string(),
        time_added: None,
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn,erlmcp_e2e=info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .init();
    let cli = Cli::parse();
    let kcfg = match &cli.kubeconfig {
        Some(p) => {
            let kc = kube::config::Kubeconfig::read_from(p)
                .with_context(|| format!("reading {}", p.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    let (api_host, api_port) = runner::api_endpoint(&kcfg);
    let client = kube::Client::try_from(kcfg)?;
    let bin_dir = std::env::current_exe()?
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_default();
    let mut rules = cli.image_map.clone();
    if !cli.no_default_images {
        rules.extend(ImageMap::defaults(&bin_dir));
    }
    std::fs::create_dir_all(&cli.state_dir)?;
    let settings = Settings {
        state_dir: std::fs::canonicalize(&cli.state_dir)?,
        nodes: node_specs(&cli.node_prefix, cli.nodes),
        node_taints: cli
            .node_taints
            .iter()
            .map(|t| parse_taint(t))
            .collect::<Result<_>>()?,
        images: ImageMap::new(&rules)?,
        network: cli.network.parse()?,
        address_base: cli.address_base.clone(),
        backoff_base: Duration::from_secs(cli.backoff_base_seconds),
        volume_sync: Duration::from_secs(cli.volume_sync_seconds.max(1)),
        shutdown_grace: Duration::from_secs(cli.shutdown_grace_seconds),
        api_host,
        api_port,
        remove_nodes_on_exit: cli.remove_nodes_on_exit,
        provision_volumes: cli.provision_volumes,
    };
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("signal received");
    };
    runner::run(client, settings, shutdown).await
}
