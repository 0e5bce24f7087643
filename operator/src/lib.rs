//! erlmcp-operator: reconciles `ErlmcpCluster` resources into the objects that run a clustered
//! MCP server, and reports what the pods say back into the resource's status.

pub mod apply;
pub mod build;
pub mod controller;
pub mod discovery;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod render;
pub mod server;
pub mod status;

/// Where the generated CRD is checked in: the crate's copy, and the Helm chart's.
pub const CRD_COPIES: &[&str] = &[erlmcp_crds::crd::CRD_PATH];
