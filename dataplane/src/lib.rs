//! erlmcp data plane: one binary that serves MCP (the stateless 2026-07-28 revision and the
//! session revisions back to 2024-11-05) over Streamable HTTP, legacy HTTP+SSE, WebSocket, TCP
//! and stdio, with health, metrics, limits and authentication around it.

pub mod app;
pub mod auth;
pub mod catalog;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod context;
pub mod init;
pub mod limits;
pub mod node;
pub mod observe;
pub mod protocol;
pub mod resource_metadata;
pub mod session;
pub mod small_map;
pub mod tasks;
pub mod tls_reload;
pub mod transport;
pub mod wire;
