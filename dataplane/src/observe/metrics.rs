//! Prometheus metrics with the original erlmcp v3's names. Label values come from fixed sets (known methods,
//! transports, ok/error), and every labelled series is resolved once at start so the request
//! path only increments atomics.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Methods with their own label value; anything else counts as `other`.
pub const METHODS: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "subscriptions/listen",
    "notification",
    "response",
    "other",
];

pub const TRANSPORTS: &[&str] = &["http", "sse", "websocket", "tcp", "stdio"];

pub fn method_index(m: &str) -> usize {
    METHODS
        .iter()
        .position(|x| *x == m)
        .unwrap_or(METHODS.len() - 1)
}

pub fn transport_index(t: &str) -> usize {
    TRANSPORTS.iter().position(|x| *x == t).unwrap_or(0)
}

pub struct Metrics {
    pub registry: Registry,
    pub up: IntGauge,
    pub ready: IntGauge,
    requests: Vec<IntCounter>,
    durations: Vec<Histogram>,
    errors: Vec<IntCounter>,
    pub sessions_active: IntGauge,
    pub sessions_created: IntCounter,
    pub sessions_closed: IntCounter,
    connections: Vec<IntCounter>,
    sent: Vec<IntCounter>,
    received: Vec<IntCounter>,
    pub memory: IntGauge,
    pub cluster_nodes: IntGauge,
    pub cluster_nodes_expected: IntGauge,
    pub rate_limited: IntCounter,
    pub tasks_created: IntCounter,
    pub tasks_running: IntGauge,
    pub tasks_completed: IntCounter,
    pub tasks_failed: IntCounter,
    pub tasks_cancelled: IntCounter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let gauge = |n: &str, h: &str| {
            let g = IntGauge::new(n, h).expect("metric");
            registry.register(Box::new(g.clone())).expect("register");
            g
        };
        let counter = |n: &str, h: &str| {
            let c = IntCounter::new(n, h).expect("metric");
            registry.register(Box::new(c.clone())).expect("register");
            c
        };
        let up = gauge("erlmcp_up", "1 while the process runs");
        let ready = gauge("erlmcp_ready", "1 while the node accepts traffic");
        let req_vec = IntCounterVec::new(
            Opts::new("erlmcp_requests_total", "MCP requests handled"),
            &["method", "transport", "status"],
        )
        .expect("metric");
        registry
            .register(Box::new(req_vec.clone()))
            .expect("register");
        let mut requests = Vec::new();
        for m in METHODS {
            for t in TRANSPORTS {
                for s in ["ok", "error"] {
                    requests.push(req_vec.with_label_values(&[m, t, s]));
                }
            }
        }
        let dur_vec = prometheus::HistogramVec::new(
            HistogramOpts::new(
                "erlmcp_request_duration_seconds",
                "Time to answer an MCP request",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 5.0, 10.0,
            ]),
            &["method"],
        )
        .expect("metric");
        registry
            .register(Box::new(dur_vec.clone()))
            .expect("register");
        let durations = METHODS
            .iter()
            .map(|m| dur_vec.with_label_values(&[m]))
            .collect();
        let err_vec = IntCounterVec::new(
            Opts::new(
                "erlmcp_request_errors_total",
                "MCP requests answered with an error",
            ),
            &["method"],
        )
        .expect("metric");
        registry
            .register(Box::new(err_vec.clone()))
            .expect("register");
        let errors = METHODS
            .iter()
            .map(|m| err_vec.with_label_values(&[m]))
            .collect();
        let per_transport = |n: &str, h: &str| {
            let v = IntCounterVec::new(Opts::new(n, h), &["transport"]).expect("metric");
            registry.register(Box::new(v.clone())).expect("register");
            TRANSPORTS
                .iter()
                .map(|t| v.with_label_values(&[t]))
                .collect::<Vec<_>>()
        };
        let connections = per_transport(
            "erlmcp_transport_connections_total",
            "Client connections accepted, per transport",
        );
        let sent = per_transport(
            "erlmcp_transport_messages_sent_total",
            "JSON-RPC messages sent, per transport",
        );
        let received = per_transport(
            "erlmcp_transport_messages_received_total",
            "JSON-RPC messages received, per transport",
        );
        let m = Self {
            up,
            ready,
            requests,
            durations,
            errors,
            sessions_active: gauge(
                "erlmcp_sessions_active",
                "Open sessions (session revisions)",
            ),
            sessions_created: counter("erlmcp_sessions_created_total", "Sessions created"),
            sessions_closed: counter("erlmcp_sessions_closed_total", "Sessions closed or expired"),
            connections,
            sent,
            received,
            memory: gauge(
                "erlmcp_memory_total",
                "Resident set size of the process in bytes",
            ),
            cluster_nodes: gauge(
                "erlmcp_cluster_nodes",
                "Cluster nodes this node sees (itself included)",
            ),
            cluster_nodes_expected: gauge(
                "erlmcp_cluster_nodes_expected",
                "Cluster nodes expected",
            ),
            rate_limited: counter(
                "erlmcp_rate_limited_total",
                "Requests refused by the rate limiter",
            ),
            tasks_created: counter("erlmcp_tasks_created_total", "MCP Tasks created"),
            tasks_running: gauge(
                "erlmcp_tasks_running",
                "MCP Tasks working or waiting for input",
            ),
            tasks_completed: counter(
                "erlmcp_tasks_completed_total",
                "MCP Tasks that completed (tool errors included)",
            ),
            tasks_failed: counter(
                "erlmcp_tasks_failed_total",
                "MCP Tasks that failed with a protocol error",
            ),
            tasks_cancelled: counter(
                "erlmcp_tasks_cancelled_total",
                "MCP Tasks cancelled by the client or expired while running",
            ),
            registry,
        };
        m.up.set(1);
        m
    }

    /// Count one answered request.
    pub fn request(&self, method: &str, transport: &str, ok: bool, seconds: f64) {
        let mi = method_index(method);
        let idx = (mi * TRANSPORTS.len() + transport_index(transport)) * 2 + usize::from(!ok);
        self.requests[idx].inc();
        self.durations[mi].observe(seconds);
        if !ok {
            self.errors[mi].inc();
        }
    }

    pub fn connection(&self, transport: &str) {
        self.connections[transport_index(transport)].inc();
    }
    pub fn sent(&self, transport: &str, n: u64) {
        self.sent[transport_index(transport)].inc_by(n);
    }
    pub fn received(&self, transport: &str, n: u64) {
        self.received[transport_index(transport)].inc_by(n);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        self.memory.set(rss_bytes() as i64);
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Resident set size from /proc (0 where there is no /proc).
pub fn rss_bytes() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_seed_names() {
        let m = Metrics::new();
        m.request("tools/call", "http", true, 0.001);
        m.request("weird/method", "stdio", false, 0.002);
        m.connection("websocket");
        let text = m.render();
        for name in [
            "erlmcp_up 1",
            "erlmcp_ready 0",
            "erlmcp_requests_total{method=\"tools/call\",status=\"ok\",transport=\"http\"} 1",
            "erlmcp_requests_total{method=\"other\",status=\"error\",transport=\"stdio\"} 1",
            "erlmcp_request_duration_seconds_bucket",
            "erlmcp_request_errors_total{method=\"other\"} 1",
            "erlmcp_sessions_active",
            "erlmcp_sessions_created_total",
            "erlmcp_sessions_closed_total",
            "erlmcp_transport_connections_total{transport=\"websocket\"} 1",
            "erlmcp_transport_messages_sent_total",
            "erlmcp_transport_messages_received_total",
            "erlmcp_memory_total",
            "erlmcp_cluster_nodes",
            "erlmcp_cluster_nodes_expected",
        ] {
            assert!(text.contains(name), "missing {name}");
        }
    }
}
