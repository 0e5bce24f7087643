//! The `ErlmcpCluster` API (`erlmcp.io/v1alpha1`), shared by the operator and the data plane.
//!
//! The doc comments on every field become the CRD's OpenAPI descriptions, so they are written
//! for `kubectl explain erlmcpcluster.spec...` readers.

pub mod cluster;
pub mod config;
pub mod crd;
pub mod mcp;
mod schema;
pub mod status;
pub mod strict;
pub mod tracing;
pub mod validate;

pub use cluster::*;
pub use config::*;
pub use mcp::*;
pub use status::*;
pub use tracing::TracingSpec;

/// API group of every resource we define.
pub const GROUP: &str = "erlmcp.io";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";

/// Health endpoints of every pod (`HEALTH_PORT`).
pub const HEALTH_PORT: u16 = 9090;
/// Prometheus endpoint of every pod (`METRICS_PORT`).
pub const METRICS_PORT: u16 = 9100;
