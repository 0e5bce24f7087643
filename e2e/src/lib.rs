//! End-to-end test tooling for erlmcp: the pod runner (a kubelet stand-in that runs pods as
//! local processes) and the harness the suites under `tests/` use ([`env::TestEnv`]).
//! TEST TOOLING, not product.

pub mod cluster;
pub mod env;
pub mod http;
pub mod mcp;
pub mod operator;
pub mod pod_network;
pub mod runner;

pub use env::{TestEnv, TestNamespace};
