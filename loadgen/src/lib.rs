//! erlmcp-load: an open-loop load generator for MCP servers with the original erlmcp kit's
//! client profiles and scenarios, HDR latency histograms, Prometheus scrapes and JSON + HTML
//! reports. See loadgen/README.md.

pub mod cli;
pub mod client;
pub mod hold;
pub mod html;
pub mod mcp;
pub mod profiles;
pub mod recorder;
pub mod report;
pub mod run;
pub mod scenarios;
pub mod schedule;
pub mod scrape;
pub mod transport;
