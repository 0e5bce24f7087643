//! erlmcp-operator: reconciles `ErlmcpCluster` resources into the objects that run a clustered
//! MCP server, and reports what the pods say back into the resource's status.

pub mod apply;
pub mod controller;
pub mod desired;
pub mod discovery;
pub mod events;
pub mod health;
pub mod kinds;
pub mod leader;
pub mod metrics;
pub mod own_writes;
pub mod reconcile;
pub mod render;
pub mod server;
pub mod status;
pub mod stores;
pub mod telemetry;
pub mod triggers;

/// Where the generated CRD is checked in (relative to the workspace root): the crate's copy, the
/// Helm chart's and the kustomize base's. `erlmcp-operator crd --write` writes them all, and a
/// test fails when any differs from the code.
pub const CRD_COPIES: &[&str] = &[
    erlmcp_crds::crd::CRD_PATH,
    "charts/erlmcp-operator/crds/erlmcp.io_erlmcpclusters.yaml",
    "config/crd/erlmcp.io_erlmcpclusters.yaml",
];
