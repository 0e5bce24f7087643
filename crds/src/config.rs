//! The data plane's configuration file (`erlmcp.yaml`), as the operator writes it into the
//! ConfigMap and as `erlmcp serve --config` reads it. Every section is optional, so an empty
//! file (or none) is a working single-node server.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cluster::LoggingSpec;
use crate::mcp::McpSpec;

/// Root of `erlmcp.yaml`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataplaneConfig {
    /// The MCP server (the same shape as `ErlmcpCluster.spec.mcp`).
    #[serde(default)]
    pub mcp: McpSpec,
    /// Clustering with peers.
    #[serde(default)]
    pub cluster: PeerConfig,
    /// Logging.
    #[serde(default)]
    pub logging: LoggingSpec,
    /// Health and metrics listeners.
    #[serde(default)]
    pub observe: ObserveConfig,
    /// TLS material, as files (the operator mounts the TLS Secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
    /// Directory for session state that survives restarts (the session volume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_dir: Option<String>,
}

/// How this node finds and talks to its peers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerConfig {
    /// Peer discovery.
    #[serde(default)]
    pub discovery: Discovery,
    /// Peer channel port. Default 9200.
    #[serde(default = "default_peer_port")]
    pub port: u16,
    /// File with the shared cookie (`ERLANG_COOKIE_FILE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie_file: Option<String>,
    /// File with the cookie being rotated out (`ERLANG_COOKIE_PREVIOUS_FILE`); accepted next to
    /// the primary one during a rotation. A missing file means no rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_cookie_file: Option<String>,
    /// The ErlmcpCluster this node belongs to (for status reporting), when on Kubernetes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
}

impl Default for PeerConfig {
    fn default() -> Self {
        Self {
            discovery: Discovery::default(),
            port: default_peer_port(),
            cookie_file: None,
            previous_cookie_file: None,
            cluster_name: None,
        }
    }
}

/// Peer discovery mechanism.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "mode"
)]
pub enum Discovery {
    /// Run alone.
    #[default]
    None,
    /// EndpointSlices of a headless Service, read through the Kubernetes API.
    Kubernetes {
        /// Headless Service name.
        service: String,
        /// Namespace. Default: the pod's namespace (`POD_NAMESPACE`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
    },
    /// A DNS name resolving to every peer (headless Service, or Swarm's `tasks.<service>`).
    Dns {
        /// The name to resolve.
        name: String,
        /// Seconds between lookups. Default 5.
        #[serde(default = "default_dns_interval")]
        #[schemars(range(min = 1))]
        interval_seconds: u32,
    },
    /// A fixed list of `host:port` peer addresses.
    Static {
        /// Peer addresses (`host:port` of their peer channel).
        peers: Vec<String>,
    },
}

/// Health and metrics listeners.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObserveConfig {
    /// Health port (`HEALTH_PORT`). Default 9090.
    #[serde(default = "default_health_port")]
    pub health_port: u16,
    /// Metrics port (`METRICS_PORT`). Default 9100.
    #[serde(default = "default_metrics_port")]
    pub metrics_port: u16,
}

impl Default for ObserveConfig {
    fn default() -> Self {
        Self {
            health_port: default_health_port(),
            metrics_port: default_metrics_port(),
        }
    }
}

/// TLS files inside the pod.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert_file: String,
    /// PEM private key.
    pub key_file: String,
    /// PEM CA bundle that peers' certificates must chain to (mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Mutual TLS on the peer channel.
    #[serde(default)]
    pub peer_mtls: bool,
    /// TLS on the client port.
    #[serde(default)]
    pub client_tls: bool,
}

fn default_peer_port() -> u16 {
    9200
}
fn default_health_port() -> u16 {
    9090
}
fn default_metrics_port() -> u16 {
    9100
}
fn default_dns_interval() -> u32 {
    5
}
