//! The command line.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;

use crate::hold::{self, HoldKind, HoldOptions};
use crate::mcp::{Family, DEFAULT_SESSION_VERSION};
use crate::profiles::Overrides;
use crate::run::Options;
use crate::scenarios::{self, PlanOptions};
use crate::transport;

/// Drive MCP servers with the original erlmcp kit's client profiles and scenarios; write a JSON
/// result and an HTML report.
#[derive(Parser, Debug)]
#[command(name = "erlmcp-load", version)]
pub struct Args {
    /// baseline, connection-flood, message-bombing or soak.
    #[arg(long, default_value = "baseline")]
    pub scenario: String,
    /// Client profile instead of the scenario's: high-load, normal, low-load, slow-client,
    /// message-bomber.
    #[arg(long)]
    pub profile: Option<String>,
    /// Clients (replaces the profile's; the peak for connection-flood).
    #[arg(long)]
    pub clients: Option<u32>,
    /// Messages per second per client (replaces the profile's).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Message size in bytes (replaces the profile's).
    #[arg(long)]
    pub size: Option<usize>,
    /// Pause before reading each answer, e.g. 250ms (replaces the profile's).
    #[arg(long, value_parser = parse_duration)]
    pub read_delay: Option<Duration>,
    /// Length of the main phase, e.g. 10s, 5m, 1h (default: the scenario's).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Multiplies the scenario's default phase lengths (0.1 runs the flood in a minute).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Endpoint to drive; repeat for several (clients are spread round-robin). The scheme picks
    /// the transport: http://host:port/mcp, ws://host:port/ws, tcp://host:port.
    #[arg(long = "url", required = true)]
    pub urls: Vec<String>,
    /// stateless (2026-07-28, no initialize) or session (each client initialises).
    #[arg(long, value_enum, default_value = "stateless")]
    pub family: Family,
    /// Revision the session clients negotiate.
    #[arg(long, default_value = DEFAULT_SESSION_VERSION)]
    pub protocol_version: String,
    /// Tool to call; it must echo its `message` argument back as text.
    #[arg(long, default_value = "echo")]
    pub tool: String,
    /// Open a GET (SSE) stream per session client on Streamable HTTP.
    #[arg(long)]
    pub sse: bool,
    /// Prometheus endpoint to scrape during the run, e.g. http://127.0.0.1:9100/metrics; repeat
    /// for several servers.
    #[arg(long = "metrics-url")]
    pub metrics_urls: Vec<String>,
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub scrape_interval: Duration,
    /// Requests one client may have unanswered; beyond it sends wait (their latency still
    /// counts from the scheduled time).
    #[arg(long, default_value_t = 64)]
    pub max_in_flight: usize,
    /// A request unanswered this long is an error.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// After the schedule ends, how long clients wait for outstanding answers.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub drain: Duration,
    /// The most requests the whole run sends.
    #[arg(long, default_value_t = 100_000_000)]
    pub max_requests: u64,
    /// Directory for report.json and report.html.
    #[arg(long, default_value = "erlmcp-load-report")]
    pub out: std::path::PathBuf,
    /// No progress bar and no summary line.
    #[arg(long)]
    pub quiet: bool,
    /// Session family on http://: initialize at this URL, then send every request to --url
    /// (a session owned by one node, driven through another: the cluster forwards it).
    #[arg(long)]
    pub handshake_url: Option<String>,
    /// Idle hold instead of a load scenario: `connections` opens --clients connections, each
    /// handshakes once and then idles; `sessions` initialises --clients sessions over
    /// --hold-connections connections and leaves them idle. --duration is the hold; writes
    /// hold.json (see the README).
    #[arg(long, value_enum)]
    pub hold: Option<HoldKind>,
    /// Keep-alive connections a session hold opens its sessions over.
    #[arg(long, default_value_t = 64)]
    pub hold_connections: u32,
    /// Handshakes in progress at once during a connection hold.
    #[arg(long, default_value_t = 256)]
    pub open_concurrency: usize,
    /// The longest a hold may take to open everything.
    #[arg(long, value_parser = parse_duration, default_value = "300s")]
    pub open_limit: Duration,
    /// Pause between the last open and the hold's "held" memory scrape.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub settle: Duration,
    /// The most held connections or sessions checked with one request at the end.
    #[arg(long, default_value_t = 1_000_000)]
    pub hold_check: u32,
    /// Local addresses client sockets bind to before connecting, round-robin: a list
    /// (127.0.0.2,127.0.0.3) or a last-octet range (127.0.0.2-9). Holds only.
    #[arg(long)]
    pub source_addrs: Option<String>,
}

/// `250ms`, `10s`, `5m`, `1h`, or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .with_context(|| format!("{s:?} is not a duration (e.g. 500ms, 10s, 5m, 1h)"))?;
    if !(v >= 0.0 && v.is_finite()) {
        bail!("{s:?} is not a duration");
    }
    Ok(Duration::from_secs_f64(v * mult))
}

impl Args {
    /// The hold this command line asks for, if any.
    pub fn hold_options(&self) -> Result<Option<HoldOptions>> {
        let Some(kind) = self.hold else {
            return Ok(None);
        };
        let [url] = self.urls.as_slice() else {
            bail!("--hold drives exactly one --url");
        };
        let count = self.clients.context("--hold needs --clients N")?;
        let source_addrs = match &self.source_addrs {
            Some(s) => hold::parse_source_addrs(s)?,
            None => vec![],
        };
        Ok(Some(HoldOptions {
            kind,
            endpoint: transport::parse(url)?,
            url: url.clone(),
            family: self.family,
            session_version: self.protocol_version.clone(),
            count,
            connections: self.hold_connections.max(1),
            source_addrs,
            open_concurrency: self.open_concurrency.max(1),
            open_limit: self.open_limit,
            settle: self.settle,
            hold: self.duration.unwrap_or(Duration::from_secs(30)),
            check: self.hold_check,
            metrics_url: self.metrics_urls.first().cloned(),
        }))
    }

    pub fn options(&self) -> Result<Options> {
        let plan = scenarios::plan(&PlanOptions {
            scenario: self.scenario.clone(),
            profile: self.profile.clone(),
            overrides: Overrides {
                clients: self.clients,
                rate: self.rate,
                size: self.size,
                read_delay: self.read_delay,
            },
            duration: self.duration,
            time_scale: self.time_scale,
        })?;
        let endpoints = self
            .urls
            .iter()
            .map(|u| transport::parse(u))
            .collect::<Result<Vec<_>>>()?;
        for m in &self.metrics_urls {
            m.parse::<http::Uri>()
                .with_context(|| format!("--metrics-url {m:?} is not a URL"))?;
        }
        if let Some(h) = &self.handshake_url {
            let ep = transport::parse(h)?;
            if ep.kind != transport::Kind::Http || self.family != Family::Session {
                bail!("--handshake-url is for --family session over http:// URLs");
            }
        }
        if self.scrape_interval < Duration::from_millis(100) {
            bail!("--scrape-interval must be at least 100ms");
        }
        Ok(Options {
            plan,
            endpoints,
            urls: self.urls.clone(),
            family: self.family,
            session_version: self.protocol_version.clone(),
            tool: self.tool.clone(),
            sse: self.sse,
            metrics_urls: self.metrics_urls.clone(),
            scrape_interval: self.scrape_interval,
            max_in_flight: self.max_in_flight,
            timeout: self.timeout,
            drain: self.drain,
            max_requests: self.max_requests,
            handshake_url: self.handshake_url.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn the_done_when_command_line_parses() {
        let a = Args::try_parse_from([
            "erlmcp-load",
            "--scenario",
            "baseline",
            "--duration",
            "10s",
            "--url",
            "http://127.0.0.1:8080/mcp",
            "--out",
            "/tmp/x",
        ])
        .unwrap();
        let o = a.options().unwrap();
        assert_eq!(o.plan.total(), Duration::from_secs(10));
        assert_eq!(o.family, Family::Stateless);
        assert!(
            Args::try_parse_from(["erlmcp-load"]).is_err(),
            "a URL is required"
        );
        let bad = Args::try_parse_from(["erlmcp-load", "--url", "ftp://x"]).unwrap();
        assert!(bad.options().is_err());
        assert!(o.handshake_url.is_none());
        assert!(a.hold_options().unwrap().is_none());
    }

    #[test]
    fn a_hold_command_line_parses() {
        let a = Args::try_parse_from([
            "erlmcp-load",
            "--hold",
            "connections",
            "--clients",
            "50000",
            "--duration",
            "20s",
            "--url",
            "ws://127.0.0.1:8080/ws",
            "--source-addrs",
            "127.0.0.2-9",
        ])
        .unwrap();
        let h = a.hold_options().unwrap().unwrap();
        assert_eq!(
            (h.kind, h.count, h.hold),
            (HoldKind::Connections, 50_000, Duration::from_secs(20))
        );
        assert_eq!(h.source_addrs.len(), 8);
        let no_count =
            Args::try_parse_from(["erlmcp-load", "--hold", "sessions", "--url", "http://h/mcp"])
                .unwrap();
        assert!(no_count.hold_options().is_err());
    }

    #[test]
    fn a_handshake_url_is_for_http_sessions() {
        let parse = |family: &str, hs: &str| {
            Args::try_parse_from([
                "erlmcp-load",
                "--family",
                family,
                "--url",
                "http://127.0.0.2:1/mcp",
                "--handshake-url",
                hs,
            ])
            .unwrap()
            .options()
        };
        assert!(parse("session", "http://127.0.0.1:1/mcp").is_ok());
        assert!(parse("stateless", "http://127.0.0.1:1/mcp").is_err());
        assert!(parse("session", "ws://127.0.0.1:1/ws").is_err());
    }
}
