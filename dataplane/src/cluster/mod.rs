//! Clustering: the pods find each other, check each other, route sessions between them and
//! report what they see (the role distributed Erlang plays in the original).
//!
//! - [`discovery`]: who the peers are (Kubernetes EndpointSlices, DNS, a static list).
//! - [`auth`]: the peer channel's authentication (mutual TLS and/or the cookie challenge);
//!   [`peer_identity`]: a peer's certificate must name this cluster, not only chain to its CA.
//! - [`peer`]: the peer channel itself (HTTP/2 on `cluster.port`, default 9200), the probes
//!   that feed the [`detector`] (phi accrual), and the forwarding of session requests.
//! - [`status`]: this pod's entry in `ErlmcpCluster.status.members` (server-side apply).
//! - [`persist`]: session records on the session volume, so a restarted pod keeps them.
//! - [`drain`]: leaving the cluster (preStop `erlmcp drain`, SIGTERM).

pub mod auth;
pub mod detector;
pub mod discovery;
pub mod drain;
pub mod peer;
pub mod peer_identity;
pub mod persist;
pub mod status;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use erlmcp_crds::Discovery;

use crate::config::{ConfigError, ConfigErrors, Env, RuntimeConfig};
use auth::Cookies;
use detector::DetectorParams;

pub use peer::ClusterNode;

/// Everything the cluster needs, validated from the file and the environment.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub discovery: Discovery,
    /// Peer channel port (listen, and dial when discovery gives bare hosts).
    pub port: u16,
    pub bind: IpAddr,
    pub node_name: String,
    /// Member name: the pod name on Kubernetes, else the host part of the node name.
    pub member: String,
    /// Own addresses (to skip self in discovery results).
    pub own_ips: Vec<IpAddr>,
    pub namespace: Option<String>,
    /// The ErlmcpCluster to report into.
    pub cluster_name: Option<String>,
    /// The cookie (and, during a rotation, the previous one).
    pub cookie: Option<Cookies>,
    /// Mutual TLS on the peer channel: (cert, key, CA).
    pub tls: Option<(String, String, String)>,
    pub detector: DetectorParams,
    pub session_dir: Option<PathBuf>,
    /// Write `status.members` (on Kubernetes, with a cluster name). `ERLMCP_STATUS_REPORT`.
    pub report_status: bool,
    /// preStop: how long the drain keeps serving after leaving the ready set, so load balancers
    /// catch up before SIGTERM stops new work (`ERLMCP_DRAIN_DELAY_SECONDS`, default 5).
    pub drain_delay: Duration,
    /// DNS discovery asks this server instead of the system resolver (`ERLMCP_DNS_SERVER`,
    /// `ip[:port]`, port 53 by default): a given resolver, uncached, for A and AAAA.
    pub dns_server: Option<SocketAddr>,
}

impl ClusterSettings {
    /// Is there anyone to cluster with?
    pub fn clustered(&self) -> bool {
        !matches!(self.discovery, Discovery::None)
    }
}

/// Parse `ERLMCP_DNS_SERVER`: `ip`, `ip:port` or `[v6]:port` (port 53 when left out).
pub fn parse_dns_server(v: &str) -> Result<SocketAddr, String> {
    let v = v.trim();
    if let Ok(a) = v.parse::<SocketAddr>() {
        return Ok(a);
    }
    v.trim_matches(['[', ']'])
        .parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("{v:?} is not ip, ip:port or [ipv6]:port"))
}

/// Parse `ERLMCP_DISCOVERY`: `none`, `static:host:port,host:port`, `dns:name[,seconds]`,
/// `kubernetes:service[/namespace]`.
pub fn parse_discovery(v: &str) -> Result<Discovery, String> {
    let v = v.trim();
    let (mode, arg) = v.split_once(':').unwrap_or((v, ""));
    let arg = arg.trim();
    match mode.to_ascii_lowercase().as_str() {
        "none" | "" => Ok(Discovery::None),
        "static" => {
            let peers: Vec<String> = arg
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            if peers.is_empty() {
                return Err("static: needs host:port[,host:port...]".into());
            }
            Ok(Discovery::Static { peers })
        }
        "dns" => {
            let (name, secs) = arg.split_once(',').unwrap_or((arg, "5"));
            if name.is_empty() {
                return Err("dns: needs a name (a headless Service, or tasks.<service>)".into());
            }
            let interval_seconds = secs
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| format!("dns: {secs:?} is not a positive number of seconds"))?;
            Ok(Discovery::Dns {
                name: name.into(),
                interval_seconds,
            })
        }
        "kubernetes" | "k8s" => {
            let (service, ns) = match arg.split_once('/') {
                Some((s, n)) => (s, Some(n.to_string())),
                None => (arg, None),
            };
            if service.is_empty() {
                return Err("kubernetes: needs the headless Service name".into());
            }
            Ok(Discovery::Kubernetes {
                service: service.into(),
                namespace: ns,
            })
        }
        other => Err(format!(
            "unknown mode {other:?} (none, static:, dns:, kubernetes:)"
        )),
    }
}

fn err(errs: &mut Vec<ConfigError>, field: &str, message: impl Into<String>) {
    errs.push(ConfigError {
        field: field.into(),
        message: message.into(),
    });
}

/// The cluster settings from the runtime configuration and the environment:
/// `ERLMCP_DISCOVERY`, `ERLMCP_PEERS` (a static list), `ERLMCP_DNS_NAME`, `ERLMCP_PEER_PORT`,
/// `ERLMCP_CLUSTER`, `POD_NAME`, `POD_NAMESPACE`, `POD_IP`, `ERLMCP_PROBE_INTERVAL_MS`,
/// `ERLMCP_DNS_SERVER`.
/// Inside a Kubernetes pod that names its cluster, Kubernetes discovery is the default.
pub fn settings(cfg: &RuntimeConfig, env: &dyn Env) -> Result<ClusterSettings, ConfigErrors> {
    let mut errs = Vec::new();
    let file = &cfg.file.cluster;
    let cluster_name = env
        .get("ERLMCP_CLUSTER")
        .or_else(|| file.cluster_name.clone());
    let mut discovery = file.discovery.clone();
    if let Some(v) = env.get("ERLMCP_DISCOVERY") {
        match parse_discovery(&v) {
            Ok(d) => discovery = d,
            Err(e) => err(&mut errs, "ERLMCP_DISCOVERY", e),
        }
    } else if let Some(v) = env.get("ERLMCP_PEERS") {
        match parse_discovery(&format!("static:{v}")) {
            Ok(d) => discovery = d,
            Err(e) => err(&mut errs, "ERLMCP_PEERS", e),
        }
    } else if let Some(v) = env.get("ERLMCP_DNS_NAME") {
        discovery = Discovery::Dns {
            name: v,
            interval_seconds: 5,
        };
    } else if matches!(discovery, Discovery::None)
        && env.get("KUBERNETES_SERVICE_HOST").is_some()
        && env.get("POD_NAME").is_some()
    {
        if let Some(c) = &cluster_name {
            discovery = Discovery::Kubernetes {
                service: format!("{c}-headless"),
                namespace: None,
            };
        }
    }
    let mut port = file.port;
    if let Some(v) = env.get("ERLMCP_PEER_PORT") {
        match v.trim().parse::<u16>() {
            Ok(p) if p > 0 => port = p,
            _ => err(
                &mut errs,
                "ERLMCP_PEER_PORT",
                format!("{v:?} is not a port (1-65535)"),
            ),
        }
    }
    for (p, what) in [
        (cfg.mcp_port(), "mcp.transports.port"),
        (cfg.health_port(), "observe.healthPort"),
        (cfg.metrics_port(), "observe.metricsPort"),
    ] {
        if p == port && !matches!(discovery, Discovery::None) {
            err(
                &mut errs,
                "cluster.port (ERLMCP_PEER_PORT)",
                format!("port {port} is already used by {what}"),
            );
        }
    }
    let interval = match env.get("ERLMCP_PROBE_INTERVAL_MS") {
        None => Duration::from_secs(1),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(ms) if (50..=60_000).contains(&ms) => Duration::from_millis(ms),
            _ => {
                err(
                    &mut errs,
                    "ERLMCP_PROBE_INTERVAL_MS",
                    format!("{v:?} is not between 50 and 60000"),
                );
                Duration::from_secs(1)
            }
        },
    };
    let drain_delay = match env.get("ERLMCP_DRAIN_DELAY_SECONDS") {
        None => Duration::from_secs(5),
        Some(v) => match v.trim().parse::<f64>() {
            Ok(s) if (0.0..=300.0).contains(&s) => Duration::from_secs_f64(s),
            _ => {
                err(
                    &mut errs,
                    "ERLMCP_DRAIN_DELAY_SECONDS",
                    format!("{v:?} is not between 0 and 300"),
                );
                Duration::from_secs(5)
            }
        },
    };
    let tls = match &cfg.file.tls {
        Some(t) if t.peer_mtls => match &t.ca_file {
            Some(ca) => Some((t.cert_file.clone(), t.key_file.clone(), ca.clone())),
            None => {
                err(
                    &mut errs,
                    "tls.caFile",
                    "is required for peer mutual TLS (tls.peerMtls)",
                );
                None
            }
        },
        _ => None,
    };
    let cookie = cfg.cookie.as_ref().map(|c| {
        Cookies::new(
            c.as_bytes(),
            cfg.previous_cookie.as_ref().map(|p| p.as_bytes().to_vec()),
        )
    });
    if !matches!(discovery, Discovery::None) && cookie.is_none() && tls.is_none() {
        err(
            &mut errs,
            "ERLANG_COOKIE",
            "clustering needs a shared cookie (ERLANG_COOKIE / ERLANG_COOKIE_FILE / cluster.cookieFile) or peer mutual TLS (tls.peerMtls); peers are never unauthenticated",
        );
    }
    if let Some(c) = &cookie {
        if c.primary.len() < 16 && !matches!(discovery, Discovery::None) {
            tracing::warn!(
                "the cluster cookie is shorter than 16 bytes; use `openssl rand -base64 48`"
            );
        }
    }
    let member = env
        .get("POD_NAME")
        .unwrap_or_else(|| crate::node::session_prefix_for(&cfg.node_name));
    let mut own_ips = vec![cfg.bind];
    if let Some(ip) = env.get("POD_IP").and_then(|v| v.trim().parse().ok()) {
        own_ips.push(ip);
    }
    let namespace = env.get("POD_NAMESPACE").or_else(|| match &discovery {
        Discovery::Kubernetes { namespace, .. } => namespace.clone(),
        _ => None,
    });
    let dns_server = match env.get("ERLMCP_DNS_SERVER") {
        None => None,
        Some(v) => match parse_dns_server(&v) {
            Ok(a) => Some(a),
            Err(e) => {
                err(&mut errs, "ERLMCP_DNS_SERVER", e);
                None
            }
        },
    };
    let report_status = match env.get("ERLMCP_STATUS_REPORT") {
        None => true,
        Some(v) => !matches!(v.trim(), "0" | "false" | "no" | "off"),
    };
    if !errs.is_empty() {
        return Err(ConfigErrors(errs));
    }
    Ok(ClusterSettings {
        discovery,
        port,
        bind: cfg.bind,
        node_name: cfg.node_name.clone(),
        member,
        own_ips,
        namespace,
        cluster_name,
        cookie,
        tls,
        detector: DetectorParams::with_interval(interval),
        session_dir: cfg.file.session_dir.clone().map(PathBuf::from),
        report_status,
        drain_delay,
        dns_server,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use erlmcp_crds::DataplaneConfig;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn rc(pairs: &[(&str, &str)]) -> RuntimeConfig {
        crate::config::from_parts(DataplaneConfig::default(), &env(pairs)).unwrap()
    }

    #[test]
    fn discovery_strings() {
        assert_eq!(parse_discovery("none").unwrap(), Discovery::None);
        assert_eq!(
            parse_discovery("static:a:9200, b:9200").unwrap(),
            Discovery::Static {
                peers: vec!["a:9200".into(), "b:9200".into()]
            }
        );
        assert_eq!(
            parse_discovery("dns:tasks.erlmcp").unwrap(),
            Discovery::Dns {
                name: "tasks.erlmcp".into(),
                interval_seconds: 5
            }
        );
        assert_eq!(
            parse_discovery("kubernetes:mcp-headless/prod").unwrap(),
            Discovery::Kubernetes {
                service: "mcp-headless".into(),
                namespace: Some("prod".into())
            }
        );
        assert!(parse_discovery("static:").is_err());
        assert!(parse_discovery("dns:x,0").is_err());
        assert!(parse_discovery("gossip:x").is_err());
    }

    #[test]
    fn clustering_requires_authentication() {
        let c = rc(&[]);
        let e = settings(&c, &env(&[("ERLMCP_PEERS", "a:9200")])).unwrap_err();
        assert_eq!(e.0[0].field, "ERLANG_COOKIE");
        let c = rc(&[("ERLANG_COOKIE", "0123456789abcdef0123")]);
        let s = settings(&c, &env(&[("ERLMCP_PEERS", "a:9200")])).unwrap();
        assert!(s.clustered());
        assert_eq!(s.port, 9200);
    }

    #[test]
    fn kubernetes_is_the_default_in_a_pod() {
        let c = rc(&[("ERLANG_COOKIE", "0123456789abcdef0123")]);
        let s = settings(
            &c,
            &env(&[
                ("KUBERNETES_SERVICE_HOST", "10.0.0.1"),
                ("POD_NAME", "mcp-1"),
                ("POD_NAMESPACE", "prod"),
                ("ERLMCP_CLUSTER", "mcp"),
            ]),
        )
        .unwrap();
        assert_eq!(
            s.discovery,
            Discovery::Kubernetes {
                service: "mcp-headless".into(),
                namespace: None
            }
        );
        assert_eq!(s.member, "mcp-1");
        assert_eq!(s.namespace.as_deref(), Some("prod"));
        // Alone, nothing to do.
        let s = settings(&c, &env(&[])).unwrap();
        assert!(!s.clustered());
    }

    #[test]
    fn port_collisions_and_bad_values() {
        let c = rc(&[("ERLANG_COOKIE", "0123456789abcdef0123")]);
        let e = settings(
            &c,
            &env(&[
                ("ERLMCP_PEERS", "a:1"),
                ("ERLMCP_PEER_PORT", "9090"),
                ("ERLMCP_PROBE_INTERVAL_MS", "1"),
            ]),
        )
        .unwrap_err();
        let fields: Vec<_> = e.0.iter().map(|e| e.field.as_str()).collect();
        assert!(
            fields.contains(&"cluster.port (ERLMCP_PEER_PORT)"),
            "{fields:?}"
        );
        assert!(fields.contains(&"ERLMCP_PROBE_INTERVAL_MS"), "{fields:?}");
    }

    #[test]
    fn dns_server_is_an_address_with_port_53_by_default() {
        assert_eq!(
            parse_dns_server("127.0.0.11").unwrap(),
            "127.0.0.11:53".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            parse_dns_server(" 127.0.0.1:5353 ").unwrap(),
            "127.0.0.1:5353".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            parse_dns_server("::1").unwrap(),
            "[::1]:53".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            parse_dns_server("[::1]:5353").unwrap(),
            "[::1]:5353".parse::<SocketAddr>().unwrap()
        );
        assert!(parse_dns_server("dns.example").is_err());
        assert!(parse_dns_server("127.0.0.1:99999").is_err());

        let c = rc(&[("ERLANG_COOKIE", "0123456789abcdef0123")]);
        let s = settings(
            &c,
            &env(&[
                ("ERLMCP_DISCOVERY", "dns:erlmcp,1"),
                ("ERLMCP_DNS_SERVER", "127.0.0.11"),
            ]),
        )
        .unwrap();
        assert_eq!(s.dns_server, Some("127.0.0.11:53".parse().unwrap()));
        // Unset: the system resolver (None), as before.
        let s = settings(&c, &env(&[("ERLMCP_DISCOVERY", "dns:erlmcp")])).unwrap();
        assert_eq!(s.dns_server, None);
        let e = settings(
            &c,
            &env(&[
                ("ERLMCP_DISCOVERY", "dns:erlmcp"),
                ("ERLMCP_DNS_SERVER", "resolver"),
            ]),
        )
        .unwrap_err();
        assert_eq!(e.0[0].field, "ERLMCP_DNS_SERVER");
    }
}
