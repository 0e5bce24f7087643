//! erlmcp-operator: reconciles `ErlmcpCluster` resources into the objects that run a clustered
//! MCP server, and reports what the pods say back into the resource's status.

pub mod build;
pub mod render;

/// Where the generated CRD is checked in: the crate's copy, and the Helm chart's.
pub const CRD_COPIES: &[&str] = &[erlmcp_crds::crd::CRD_PATH];
