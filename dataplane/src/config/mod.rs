//! Configuration: the `erlmcp.yaml` file (`erlmcp_crds::DataplaneConfig`), the original erlmcp v3's
//! environment variables on top, validated into one runtime configuration. Every error names
//! the field or variable at fault, and nothing starts until all of it is good.
//!
//! This module holds the error types, [`RuntimeConfig`] and reading the file; `env` holds where
//! environment values come from, `resolve` the overlay and checks ([`from_parts`]).

mod env;
mod resolve;

pub use env::{Env, ProcessEnv};
pub use resolve::from_parts;

use std::net::IpAddr;
use std::path::Path;

use erlmcp_crds::strict::Decoded;
use erlmcp_crds::{DataplaneConfig, TlsFiles};

/// A configuration problem, naming its field (`mcp.tools[0].name`) or variable (`ERLMCP_PORT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// All problems found, one per line.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// The file with environment overrides applied.
    pub file: DataplaneConfig,
    pub bind: IpAddr,
    pub node_name: String,
    /// `production`, `staging`, `development`, ...
    pub environment: String,
    pub log_level: String,
    /// `json` or `text`.
    pub log_format: String,
    /// Shared cluster secret (also keys MRTR request state so any node can verify it).
    pub cookie: Option<String>,
    /// The cookie being rotated out, still accepted from peers during a rotation.
    pub previous_cookie: Option<String>,
    /// TLS on the client port, when enabled.
    pub client_tls: Option<TlsFiles>,
    /// Items per page for list results.
    pub page_size: usize,
}

impl RuntimeConfig {
    pub fn mcp_port(&self) -> u16 {
        self.file.mcp.transports.port
    }
    pub fn health_port(&self) -> u16 {
        self.file.observe.health_port
    }
    pub fn metrics_port(&self) -> u16 {
        self.file.observe.metrics_port
    }
}
/// Read the file (if any), overlay the environment, validate.
pub fn load(path: Option<&Path>, env: &dyn Env) -> Result<RuntimeConfig, ConfigErrors> {
    let file = match path {
        None => DataplaneConfig::default(),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| one(&p.display().to_string(), format!("cannot read: {e}")))?;
            let decoded = parse_file_reporting(&text).map_err(|e| ConfigErrors(vec![e]))?;
            // Keys from a newer operator: ignored, never fatal (logging is not set up yet).
            for key in &decoded.unknown {
                eprintln!(
                    "erlmcp: warning: {}: ignoring unknown key {key}",
                    p.display()
                );
            }
            decoded.value
        }
    };
    from_parts(file, env)
}

/// Parse YAML text; serde's message carries the path of the bad field. Unknown keys are
/// ignored (see [`parse_file_reporting`]).
pub fn parse_file(text: &str) -> Result<DataplaneConfig, ConfigError> {
    parse_file_reporting(text).map(|d| d.value)
}

/// Parse YAML text, with the paths of the keys it does not know (a newer operator's).
pub fn parse_file_reporting(text: &str) -> Result<Decoded<DataplaneConfig>, ConfigError> {
    if text.trim().is_empty() {
        return Ok(Decoded {
            value: DataplaneConfig::default(),
            unknown: Vec::new(),
        });
    }
    erlmcp_crds::strict::from_yaml_str(text).map_err(|e| {
        let msg = e.to_string();
        // serde_yaml puts the field path before the first ": "; keep it as the field.
        match msg.split_once(": ") {
            Some((path, rest)) if !path.contains(' ') => ConfigError {
                field: path.to_string(),
                message: rest.to_string(),
            },
            _ => ConfigError {
                field: "(file)".into(),
                message: msg,
            },
        }
    })
}

fn one(field: &str, message: impl Into<String>) -> ConfigErrors {
    ConfigErrors(vec![ConfigError {
        field: field.into(),
        message: message.into(),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_a_newer_operator_are_reported_not_fatal() {
        let d = parse_file_reporting(
            "mcp:\n  tools:\n    - name: x\n      backend: {}\n      bogus: 1\nnewer: {}\n",
        )
        .unwrap();
        assert_eq!(d.value.mcp.tools[0].name, "x");
        assert_eq!(d.unknown, vec!["mcp.tools[0].bogus", "newer"]);
    }
}
