//! `erlmcp-operator`: `run` (the default) reconciles ErlmcpClusters; `render` prints what would be
//! applied for a file; `crd` prints or writes the CRD.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use erlmcp_operator::build::ServerCapabilities;
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

#[derive(Subcommand)]
enum Command {
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
        /// Write crds/erlmcp.io_erlmcpclusters.yaml (and the chart's copy) instead of printing.
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
        None => run(),
    }
}

fn run() -> ExitCode {
    eprintln!("the controller arrives in the next commit");
    ExitCode::from(1)
}
