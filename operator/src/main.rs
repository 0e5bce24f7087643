//! `erlmcp-operator`: `run` (the default) reconciles ErlmcpClusters; `render` prints what would be
//! applied for a file; `crd` prints or writes the CRD.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use erlmcp_operator::controller::{parse_namespaces, RunConfig};
use erlmcp_operator::desired::ServerCapabilities;
use erlmcp_operator::render::{render, RenderError};

#[derive(Parser)]
#[command(
    name = "erlmcp-operator",
    version,
    about = "Kubernetes operator for clustered MCP servers (erlmcp)"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Address of the health and metrics server.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: String,
    /// Namespaces to watch, comma-separated; empty watches all.
    #[arg(long, env = "WATCH_NAMESPACES", default_value = "")]
    watch_namespaces: String,
    /// Compete for a Lease so that only one replica reconciles.
    #[arg(long, env = "LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Namespace of the leader Lease. Default: the pod's namespace, else "default".
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    leader_election_namespace: String,
    /// Lease duration in seconds (a follower takes over this long after the leader vanishes).
    #[arg(long, default_value_t = 15)]
    lease_seconds: u64,
    /// Reconciles run at once, at most (0: unbounded). Status refreshes run apart from these.
    #[arg(long, env = "MAX_CONCURRENT_RECONCILES", default_value_t = 8)]
    max_concurrent_reconciles: u16,
    /// Seconds between a member report or Pod change and the status refresh it causes.
    #[arg(long, env = "STATUS_DEBOUNCE_SECONDS", default_value_t = 5)]
    status_debounce_seconds: u64,
    /// Seconds a Secret update takes to reach every pod (kubelet's sync period plus its Secret
    /// cache TTL, plus margin): the operator CA's roll waits this long between dependent steps,
    /// and never more than a sixth of a leaf's life. Lower it where kubelet syncs faster.
    #[arg(long, env = "CA_PROPAGATION_SECONDS", default_value_t = 300)]
    ca_propagation_seconds: u64,
    /// Log format: json or text.
    #[arg(long, env = "LOG_FORMAT", default_value = "json", value_parser = ["json", "text"])]
    log_format: String,
}

#[derive(Subcommand)]
enum Command {
    /// Reconcile ErlmcpClusters (the default).
    Run(RunArgs),
    /// Print every object the operator would apply for the ErlmcpClusters in a file (offline).
    Render {
        /// YAML file with one or more ErlmcpCluster documents ("-" for stdin).
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        /// Render for an API server without autoscaling/v2 and policy/v1 (Kubernetes < 1.23).
        #[arg(long)]
        legacy_apis: bool,
    },
    /// Print the ErlmcpCluster CRD, or write it where it is checked in.
    Crd {
        /// Write crds/erlmcp.io_erlmcpclusters.yaml and its copies (Helm chart, kustomize base).
        #[arg(long)]
        write: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Render { file, legacy_apis }) => {
            let input = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
            } else {
                std::fs::read_to_string(&file)
            };
            let input = match input {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: cannot read {}: {e}", file.display());
                    return ExitCode::from(1);
                }
            };
            let mut caps = ServerCapabilities::default();
            if legacy_apis {
                caps.hpa_api_version = "autoscaling/v2beta2".into();
                caps.pdb_api_version = "policy/v1beta1".into();
                caps.pdb_unhealthy_pod_eviction_policy = false;
            }
            match render(&input, caps) {
                Ok(out) => {
                    print!("{out}");
                    ExitCode::SUCCESS
                }
                Err(e @ RenderError::Invalid(_)) => {
                    eprintln!("{e}");
                    ExitCode::from(2)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Some(Command::Crd { write }) => {
            let yaml = erlmcp_crds::crd::crd_yaml();
            if write {
                let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
                for rel in erlmcp_operator::CRD_COPIES {
                    let path = root.join(rel);
                    if let Some(dir) = path.parent() {
                        std::fs::create_dir_all(dir).ok();
                    }
                    if let Err(e) = std::fs::write(&path, &yaml) {
                        eprintln!("error: cannot write {}: {e}", path.display());
                        return ExitCode::from(1);
                    }
                    eprintln!("wrote {}", path.display());
                }
            } else {
                print!("{yaml}");
            }
            ExitCode::SUCCESS
        }
        Some(Command::Run(args)) => run(args),
        // No subcommand: `run` with its defaults (and environment).
        None => match Cli::parse_from(["erlmcp-operator", "run"]).command {
            Some(Command::Run(args)) => run(args),
            _ => unreachable!("parsed as run"),
        },
    }
}

fn run(args: RunArgs) -> ExitCode {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let telemetry = {
        let _in_runtime = rt.enter();
        erlmcp_operator::telemetry::init(&args.log_format)
    };
    // Test beds give each local "pod" its own loopback address; production binds all interfaces.
    let mut addr = args.metrics_addr.clone();
    if let Ok(bind) = std::env::var("ERLMCP_BIND_ADDRESS") {
        if let Some((_, port)) = addr.rsplit_once(':') {
            addr = format!("{bind}:{port}");
        }
    }
    let metrics_addr = match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: --metrics-addr {addr:?}: {e}");
            return ExitCode::from(2);
        }
    };
    let cfg = RunConfig {
        metrics_addr,
        namespaces: parse_namespaces(&args.watch_namespaces),
        leader_election: args.leader_elect,
        leader_election_namespace: args.leader_election_namespace,
        lease_seconds: args.lease_seconds,
        max_concurrent_reconciles: args.max_concurrent_reconciles,
        status_debounce: std::time::Duration::from_secs(args.status_debounce_seconds),
        ca_propagation: std::time::Duration::from_secs(args.ca_propagation_seconds),
    };
    let code = match rt.block_on(erlmcp_operator::controller::run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "operator failed");
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    };
    if let Some(t) = telemetry {
        rt.block_on(t.shutdown());
    }
    code
}
