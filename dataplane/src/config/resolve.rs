//! [`from_parts`]: the environment laid over the file (ports, logging, rate limit, TLS, bind
//! address, node name, cookies, page size), then the cross-field checks (the `mcp` section's
//! validation, DNS discovery interval, port collisions), into one [`RuntimeConfig`].
//!
//! Each section below collects its own errors into the shared list, so one start reports every
//! bad value at once rather than the first.

use std::collections::BTreeMap;
use std::net::IpAddr;

use erlmcp_crds::{DataplaneConfig, TlsFiles};

use super::env::{parse_bool, parse_port};
use super::{ConfigError, ConfigErrors, Env, RuntimeConfig};

const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "warning", "error"];

type Errors = Vec<ConfigError>;

fn error(errs: &mut Errors, field: &str, message: impl Into<String>) {
    errs.push(ConfigError {
        field: field.into(),
        message: message.into(),
    });
}

pub fn from_parts(mut file: DataplaneConfig, env: &dyn Env) -> Result<RuntimeConfig, ConfigErrors> {
    let mut errs = Vec::new();
    overlay_ports(&mut file, env, &mut errs);
    let (environment, log_format) = resolve_logging(&mut file, env, &mut errs);
    overlay_rate_limit(&mut file, env, &mut errs);
    let client_tls = resolve_client_tls(&mut file, env, &mut errs);
    let bind = bind_address(env, &mut errs);
    let node_name = node_name(env);
    let cookie = cookie(&file, env, &mut errs);
    let previous_cookie = previous_cookie(&file, env);
    let page_size = page_size(env, &mut errs);
    check_sections(&file, &mut errs);
    check_ports(&file, &mut errs);

    if !errs.is_empty() {
        return Err(ConfigErrors(errs));
    }
    Ok(RuntimeConfig {
        log_level: file.logging.level.clone(),
        log_format,
        file,
        bind,
        node_name,
        environment,
        cookie,
        previous_cookie,
        client_tls,
        page_size,
    })
}

fn overlay_ports(file: &mut DataplaneConfig, env: &dyn Env, errs: &mut Errors) {
    let mut port = |name: &str| {
        let v = env.get(name)?;
        parse_port(errs, name, &v)
    };
    if let Some(p) = port("ERLMCP_PORT") {
        file.mcp.transports.port = p;
    }
    if let Some(p) = port("HEALTH_PORT") {
        file.observe.health_port = p;
    }
    if let Some(p) = port("METRICS_PORT") {
        file.observe.metrics_port = p;
    }
    if let Some(p) = port("ERLMCP_TCP_PORT") {
        file.mcp.transports.tcp.port = p;
        file.mcp.transports.tcp.enabled = true;
    }
}

/// The level and format after the environment, and the environment's name, which picks the
/// text format for development unless a format is given.
fn resolve_logging(
    file: &mut DataplaneConfig,
    env: &dyn Env,
    errs: &mut Errors,
) -> (String, String) {
    if let Some(v) = env.get("ERLMCP_LOG_LEVEL") {
        if LOG_LEVELS.contains(&v.to_ascii_lowercase().as_str()) {
            file.logging.level = v.to_ascii_lowercase();
        } else {
            let levels = LOG_LEVELS.join(", ");
            error(
                errs,
                "ERLMCP_LOG_LEVEL",
                format!("{v:?} is not one of {levels}"),
            );
        }
    }
    if !LOG_LEVELS.contains(&file.logging.level.as_str()) {
        let (level, levels) = (&file.logging.level, LOG_LEVELS.join(", "));
        error(
            errs,
            "logging.level",
            format!("{level:?} is not one of {levels}"),
        );
    }
    let environment = env.get("ERLMCP_ENV").unwrap_or_else(|| "production".into());
    let mut log_format = file.logging.format.clone();
    if let Some(f) = env.get("ERLMCP_LOG_FORMAT") {
        log_format = f;
    } else if matches!(
        environment.as_str(),
        "development" | "dev" | "local" | "test"
    ) {
        log_format = "text".into();
    }
    if log_format != "json" && log_format != "text" {
        let message = format!("{log_format:?} is not json or text");
        error(errs, "logging.format", message);
    }
    (environment, log_format)
}

fn overlay_rate_limit(file: &mut DataplaneConfig, env: &dyn Env, errs: &mut Errors) {
    if let Some(v) = env.get("RATE_LIMIT_ENABLED") {
        if let Some(b) = parse_bool(errs, "RATE_LIMIT_ENABLED", &v) {
            file.mcp.rate_limit.enabled = b;
        }
    }
    if let Some(v) = env.get("RATE_LIMIT_PER_SECOND") {
        match v.trim().parse::<u32>() {
            Ok(n) if n > 0 => {
                // The original only knows a rate; the burst follows it (two seconds' worth).
                file.mcp.rate_limit.requests_per_second = n;
                file.mcp.rate_limit.burst = n.saturating_mul(2);
            }
            _ => error(
                errs,
                "RATE_LIMIT_PER_SECOND",
                format!("{v:?} is not a positive integer"),
            ),
        }
    }
}

/// TLS on the client port: the file's `tls` section, or the original's variables laid over it.
/// Returns the section when client TLS is on, after checking its files exist.
fn resolve_client_tls(
    file: &mut DataplaneConfig,
    env: &dyn Env,
    errs: &mut Errors,
) -> Option<TlsFiles> {
    let var = |name: &str| env.get(name).or_else(|| env.get(&format!("ERLMCP_{name}")));
    let tls_enabled = var("TLS_ENABLED").and_then(|v| parse_bool(errs, "TLS_ENABLED", &v));
    let (cert, key, ca) = (
        var("TLS_CERT_FILE"),
        var("TLS_KEY_FILE"),
        var("TLS_CA_FILE"),
    );
    if cert.is_some() || key.is_some() || tls_enabled == Some(true) {
        let mut t = file.tls.clone().unwrap_or(TlsFiles {
            cert_file: String::new(),
            key_file: String::new(),
            ca_file: None,
            peer_mtls: false,
            client_tls: false,
        });
        if let Some(c) = cert {
            t.cert_file = c;
        }
        if let Some(k) = key {
            t.key_file = k;
        }
        if ca.is_some() {
            t.ca_file = ca;
        }
        if let Some(en) = tls_enabled {
            t.client_tls = en;
        }
        file.tls = Some(t);
    } else if tls_enabled == Some(false) {
        if let Some(t) = file.tls.as_mut() {
            t.client_tls = false;
        }
    }
    let client_tls = file.tls.clone().filter(|t| t.client_tls);
    if let Some(t) = &client_tls {
        for (field, path) in [
            ("tls.certFile (TLS_CERT_FILE)", &t.cert_file),
            ("tls.keyFile (TLS_KEY_FILE)", &t.key_file),
        ] {
            if path.is_empty() {
                error(errs, field, "is required when TLS is enabled");
            } else if let Err(e) = std::fs::metadata(path) {
                error(errs, field, format!("{path}: {e}"));
            }
        }
    }
    client_tls
}

fn bind_address(env: &dyn Env, errs: &mut Errors) -> IpAddr {
    let any = IpAddr::from([0, 0, 0, 0]);
    let Some(v) = env.get("ERLMCP_BIND_ADDRESS") else {
        return any;
    };
    v.trim().parse::<IpAddr>().unwrap_or_else(|_| {
        let message = format!("{v:?} is not an IP address");
        error(errs, "ERLMCP_BIND_ADDRESS", message);
        any
    })
}

fn node_name(env: &dyn Env) -> String {
    env.get("ERLMCP_NODE_NAME").unwrap_or_else(|| {
        let host = env
            .get("HOSTNAME")
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|s| s.trim().to_string())
            })
            .unwrap_or_else(|| "localhost".into());
        format!("erlmcp@{host}")
    })
}

fn cookie(file: &DataplaneConfig, env: &dyn Env, errs: &mut Errors) -> Option<String> {
    if let Some(c) = env.get("ERLANG_COOKIE") {
        return Some(c);
    }
    let path = env
        .get("ERLANG_COOKIE_FILE")
        .or_else(|| file.cluster.cookie_file.clone())?;
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Ok(_) => {
            error(errs, "ERLANG_COOKIE_FILE", format!("{path} is empty"));
            None
        }
        Err(e) => {
            error(errs, "ERLANG_COOKIE_FILE", format!("{path}: {e}"));
            None
        }
    }
}

/// Optional by design: the operator always points at the Secret key, which exists only while a
/// rotation is under way.
fn previous_cookie(file: &DataplaneConfig, env: &dyn Env) -> Option<String> {
    env.get("ERLANG_COOKIE_PREVIOUS")
        .or_else(|| {
            env.get("ERLANG_COOKIE_PREVIOUS_FILE")
                .or_else(|| file.cluster.previous_cookie_file.clone())
                .and_then(|path| std::fs::read_to_string(path).ok())
        })
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn page_size(env: &dyn Env, errs: &mut Errors) -> usize {
    let Some(v) = env.get("ERLMCP_LIST_PAGE_SIZE") else {
        return 100;
    };
    match v.trim().parse::<usize>() {
        Ok(n) if n > 0 => n,
        _ => {
            let message = format!("{v:?} is not a positive integer");
            error(errs, "ERLMCP_LIST_PAGE_SIZE", message);
            100
        }
    }
}

/// The `mcp` section's own validation and the discovery interval.
fn check_sections(file: &DataplaneConfig, errs: &mut Errors) {
    for fe in erlmcp_crds::validate::validate_mcp(&file.mcp, "mcp") {
        error(errs, &fe.path, fe.message);
    }
    // Zero would mean a lookup loop without pause; the env form (`dns:name,secs`) refuses it too.
    if let erlmcp_crds::Discovery::Dns {
        interval_seconds: 0,
        ..
    } = file.cluster.discovery
    {
        let field = "cluster.discovery.intervalSeconds";
        error(errs, field, "must be at least 1 (got 0)");
    }
}

/// Every listening port is in range and used once.
fn check_ports(file: &DataplaneConfig, errs: &mut Errors) {
    let t = &file.mcp.transports;
    let mut listeners = vec![
        (t.port, "mcp.transports.port (ERLMCP_PORT)"),
        (file.observe.health_port, "observe.healthPort (HEALTH_PORT)"),
        (
            file.observe.metrics_port,
            "observe.metricsPort (METRICS_PORT)",
        ),
    ];
    if t.tcp.enabled {
        listeners.push((t.tcp.port, "mcp.transports.tcp.port"));
    }
    let mut taken: BTreeMap<u16, &str> = BTreeMap::new();
    for (port, what) in listeners {
        if port == 0 {
            error(errs, what, "must be between 1 and 65535");
        } else if let Some(other) = taken.insert(port, what) {
            error(
                errs,
                what,
                format!("port {port} is already used by {other}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::parse_file;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_without_file_or_env() {
        let c = from_parts(DataplaneConfig::default(), &env(&[])).unwrap();
        assert_eq!(
            (c.mcp_port(), c.health_port(), c.metrics_port()),
            (8080, 9090, 9100)
        );
        assert_eq!(c.bind.to_string(), "0.0.0.0");
        assert!(c.node_name.starts_with("erlmcp@"));
        assert_eq!(c.log_format, "json");
    }

    #[test]
    fn env_overrides_file() {
        let file = parse_file("mcp:\n  transports:\n    port: 7000\n").unwrap();
        let c = from_parts(
            file,
            &env(&[
                ("ERLMCP_PORT", "8181"),
                ("RATE_LIMIT_ENABLED", "true"),
                ("RATE_LIMIT_PER_SECOND", "1000"),
                ("ERLMCP_ENV", "development"),
                ("ERLMCP_NODE_NAME", "erlmcp@n1"),
                ("ERLANG_COOKIE", "c00kie"),
            ]),
        )
        .unwrap();
        assert_eq!(c.mcp_port(), 8181);
        assert!(c.file.mcp.rate_limit.enabled);
        assert_eq!(c.file.mcp.rate_limit.requests_per_second, 1000);
        assert_eq!(c.file.mcp.rate_limit.burst, 2000);
        assert_eq!(c.log_format, "text");
        assert_eq!(c.node_name, "erlmcp@n1");
        assert_eq!(c.cookie.as_deref(), Some("c00kie"));
    }

    #[test]
    fn bad_values_name_their_field() {
        let errs = from_parts(
            DataplaneConfig::default(),
            &env(&[
                ("ERLMCP_PORT", "http"),
                ("HEALTH_PORT", "70000"),
                ("RATE_LIMIT_ENABLED", "maybe"),
                ("ERLMCP_LOG_LEVEL", "loud"),
                ("ERLMCP_BIND_ADDRESS", "nowhere"),
                ("TLS_ENABLED", "true"),
            ]),
        )
        .unwrap_err();
        let fields: Vec<&str> = errs.0.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "ERLMCP_PORT",
            "HEALTH_PORT",
            "RATE_LIMIT_ENABLED",
            "ERLMCP_LOG_LEVEL",
            "ERLMCP_BIND_ADDRESS",
            "tls.certFile (TLS_CERT_FILE)",
        ] {
            assert!(fields.contains(&f), "{f} missing from {fields:?}");
        }
    }

    #[test]
    fn port_collisions_are_errors() {
        let errs =
            from_parts(DataplaneConfig::default(), &env(&[("ERLMCP_PORT", "9090")])).unwrap_err();
        assert!(
            errs.0.iter().any(|e| e.message.contains("already used")),
            "{errs}"
        );
    }

    #[test]
    fn file_errors_name_the_field() {
        let e = parse_file("mcp:\n  tools:\n    - name: 7\n").unwrap_err();
        assert!(e.field.starts_with("mcp.tools"), "{e}");
        let errs = from_parts(
            parse_file("mcp:\n  tools:\n    - name: x\n      backend: {}\n").unwrap(),
            &env(&[]),
        )
        .unwrap_err();
        assert!(
            errs.0.iter().any(|e| e.field.starts_with("mcp.tools[0]")),
            "{errs}"
        );
    }

    #[test]
    fn cookie_file_must_exist() {
        let errs = from_parts(
            DataplaneConfig::default(),
            &env(&[("ERLANG_COOKIE_FILE", "/nonexistent/cookie")]),
        )
        .unwrap_err();
        assert_eq!(errs.0[0].field, "ERLANG_COOKIE_FILE");
    }

    #[test]
    fn a_previous_cookie_is_optional_and_read_when_present() {
        let dir = std::env::temp_dir().join(format!("prev-cookie-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |prev: &std::path::Path| {
            parse_file(&format!(
                "cluster:\n  previousCookieFile: {}\n",
                prev.display()
            ))
            .unwrap()
        };
        let prev = dir.join("cookie-previous");
        let cookie = [("ERLANG_COOKIE", "new-cookie")];
        // No rotation under way: the Secret key, hence the file, is absent.
        let c = from_parts(file(&prev), &env(&cookie)).unwrap();
        assert_eq!(c.previous_cookie, None);
        std::fs::write(&prev, "old-cookie\n").unwrap();
        let c = from_parts(file(&prev), &env(&cookie)).unwrap();
        assert_eq!(c.previous_cookie.as_deref(), Some("old-cookie"));
        let c = from_parts(
            file(&prev),
            &env(&[
                ("ERLANG_COOKIE", "new"),
                ("ERLANG_COOKIE_PREVIOUS", "env-old"),
            ]),
        )
        .unwrap();
        assert_eq!(c.previous_cookie.as_deref(), Some("env-old"), "env wins");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn zero_limits_and_timeouts_are_refused_with_their_field() {
        let file = parse_file(
            "mcp:\n  limits: {maxConnections: 0, maxConcurrentRequests: 0, maxRequestBytes: 0, requestTimeoutSeconds: 0, headerReadTimeoutSeconds: 0, bodyReadTimeoutSeconds: 0, writeTimeoutSeconds: 0, connectionIdleTimeoutSeconds: 0, maxInFlightPerConnection: 0, http2MaxConcurrentStreams: 0, http2KeepAliveSeconds: 0}\n  sessions: {maxSessions: 0, idleTimeoutSeconds: 0, maxSessionsPerClient: 0}\n  rateLimit: {enabled: true, requestsPerSecond: 0, burst: 0}\n  tools:\n    - name: slow\n      backend: {command: {command: [cat], timeoutSeconds: 0, maxOutputBytes: 0}}\ncluster:\n  discovery: {mode: dns, name: peers, intervalSeconds: 0}\n",
        )
        .unwrap();
        let errs = from_parts(file, &env(&[])).unwrap_err();
        let fields: Vec<&str> = errs.0.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "mcp.limits.maxConnections",
            "mcp.limits.maxConcurrentRequests",
            "mcp.limits.maxRequestBytes",
            "mcp.limits.requestTimeoutSeconds",
            "mcp.sessions.maxSessions",
            "mcp.sessions.idleTimeoutSeconds",
            "mcp.sessions.maxSessionsPerClient",
            "mcp.limits.headerReadTimeoutSeconds",
            "mcp.limits.bodyReadTimeoutSeconds",
            "mcp.limits.writeTimeoutSeconds",
            "mcp.limits.connectionIdleTimeoutSeconds",
            "mcp.limits.maxInFlightPerConnection",
            "mcp.limits.http2MaxConcurrentStreams",
            "mcp.limits.http2KeepAliveSeconds",
            "mcp.rateLimit.requestsPerSecond",
            "mcp.rateLimit.burst",
            "mcp.tools[0].backend.command.timeoutSeconds",
            "mcp.tools[0].backend.command.maxOutputBytes",
            "cluster.discovery.intervalSeconds",
        ] {
            assert!(fields.contains(&f), "{f} missing from {fields:?}");
        }
        assert_eq!(fields.len(), 19, "{errs}");
    }

    #[test]
    fn tcp_with_auth_refuses_to_start() {
        // ERLMCP_TCP_PORT turns TCP on after the file is read: the check sees the result.
        let file =
            parse_file("mcp:\n  auth: {mode: bearer, bearerToken: {value: s3cret}}\n").unwrap();
        let errs = from_parts(file, &env(&[("ERLMCP_TCP_PORT", "8081")])).unwrap_err();
        assert!(
            errs.0
                .iter()
                .any(|e| e.field == "mcp.transports.tcp.enabled"
                    && e.message.contains("carries no credential")),
            "{errs}"
        );
    }
}
