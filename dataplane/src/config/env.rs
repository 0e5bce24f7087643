//! Where environment values come from ([`Env`]: the process, or a map in tests), and parsing
//! the port and boolean ones.

use std::collections::BTreeMap;

use super::ConfigError;

/// Where environment values come from (the process, or a map in tests).
pub trait Env {
    fn get(&self, key: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
}

impl Env for BTreeMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        BTreeMap::get(self, key).cloned()
    }
}
pub(super) fn parse_port(errs: &mut Vec<ConfigError>, var: &str, v: &str) -> Option<u16> {
    match v.trim().parse::<u16>() {
        Ok(p) if p > 0 => Some(p),
        _ => {
            errs.push(ConfigError {
                field: var.into(),
                message: format!("{v:?} is not a port (1-65535)"),
            });
            None
        }
    }
}

pub(super) fn parse_bool(errs: &mut Vec<ConfigError>, var: &str, v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => {
            errs.push(ConfigError {
                field: var.into(),
                message: format!("{v:?} is not a boolean (true/false)"),
            });
            None
        }
    }
}
