//! Request limits: per-client token-bucket rate limiting (sharded map, one small lock per
//! client), a global cap on requests in progress, and the Origin allow-list (DNS-rebinding
//! protection).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use erlmcp_crds::McpSpec;
use tokio::sync::Semaphore;

struct Bucket {
    tokens: f64,
    last: Instant,
}

pub struct RateLimiter {
    enabled: bool,
    rate: f64,
    burst: f64,
    buckets: DashMap<String, Bucket>,
}

impl RateLimiter {
    pub fn new(enabled: bool, per_second: u32, burst: u32) -> Self {
        Self {
            enabled,
            rate: per_second as f64,
            burst: burst.max(1) as f64,
            buckets: DashMap::new(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Take one token for `client`; Err carries the wait until the next token.
    pub fn check(&self, client: &str) -> Result<(), Duration> {
        if !self.enabled {
            return Ok(());
        }
        let now = Instant::now();
        let mut b = self.buckets.entry(client.to_string()).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        let elapsed = now.duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.rate))
        }
    }

    /// Forget clients idle long enough to have a full bucket again.
    pub fn sweep(&self) {
        let full_after =
            Duration::from_secs_f64(self.burst / self.rate.max(1.0)) + Duration::from_secs(1);
        self.buckets.retain(|_, b| b.last.elapsed() < full_after);
    }
}

pub struct OriginPolicy {
    allowed: Vec<String>,
}

impl OriginPolicy {
    pub fn new(allowed: &[String]) -> Self {
        Self {
            allowed: allowed
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        }
    }

    /// Requests without Origin pass (non-browser clients). With an empty list only loopback
    /// origins pass; `*` allows any.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        let Some(o) = origin else { return true };
        let o = o.trim().trim_end_matches('/').to_ascii_lowercase();
        if self.allowed.iter().any(|a| a == "*" || *a == o) {
            return true;
        }
        self.allowed.is_empty() && is_loopback_origin(&o)
    }
}

fn is_loopback_origin(o: &str) -> bool {
    let Some((_, rest)) = o.split_once("://") else {
        return false;
    };
    let host = if let Some(v6) = rest.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        rest.split([':', '/']).next().unwrap_or("")
    };
    matches!(host, "localhost" | "127.0.0.1" | "::1")
}

pub struct Limits {
    pub rate: RateLimiter,
    pub origin: OriginPolicy,
    pub in_flight: Arc<Semaphore>,
    /// The size of `in_flight` (what is running is the difference to its free permits).
    pub max_in_flight: usize,
    pub connections: Arc<Semaphore>,
    pub max_body: usize,
    /// Requests one message-stream connection may have in flight before it is no longer read.
    pub per_connection: usize,
    pub slow: SlowClient,
}

/// Time bounds against clients that are slow on purpose (slowloris) or stop reading.
#[derive(Clone, Copy, Debug)]
pub struct SlowClient {
    /// Until a connection's next request head is complete (also bounds idle HTTP/1 keep-alive).
    pub header_read: Duration,
    /// Until a request body is complete.
    pub body_read: Duration,
    /// A write may wait this long on a client that does not read.
    pub write: Duration,
    /// A message-stream connection with no incoming message for this long is closed.
    pub idle: Duration,
    pub http2_max_streams: u32,
    pub http2_keep_alive: Duration,
}

impl SlowClient {
    pub fn new(l: &erlmcp_crds::LimitsSpec) -> Self {
        let secs = |s: u32| Duration::from_secs(u64::from(s));
        Self {
            header_read: secs(l.header_read_timeout_seconds),
            body_read: secs(l.body_read_timeout_seconds),
            write: secs(l.write_timeout_seconds),
            idle: secs(l.connection_idle_timeout_seconds),
            http2_max_streams: l.http2_max_concurrent_streams,
            http2_keep_alive: secs(l.http2_keep_alive_seconds),
        }
    }
}

impl Default for SlowClient {
    fn default() -> Self {
        Self::new(&erlmcp_crds::LimitsSpec::default())
    }
}

impl Limits {
    pub fn new(mcp: &McpSpec) -> Self {
        Self {
            rate: RateLimiter::new(
                mcp.rate_limit.enabled,
                mcp.rate_limit.requests_per_second,
                mcp.rate_limit.burst,
            ),
            origin: OriginPolicy::new(&mcp.allowed_origins),
            in_flight: Arc::new(Semaphore::new(mcp.limits.max_concurrent_requests as usize)),
            max_in_flight: mcp.limits.max_concurrent_requests as usize,
            connections: Arc::new(Semaphore::new(mcp.limits.max_connections as usize)),
            max_body: mcp.limits.max_request_bytes as usize,
            per_connection: mcp.limits.max_in_flight_per_connection as usize,
            slow: SlowClient::new(&mcp.limits),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_limits_per_client() {
        let r = RateLimiter::new(true, 1, 2);
        assert!(r.check("a").is_ok());
        assert!(r.check("a").is_ok());
        assert!(r.check("a").is_err());
        assert!(r.check("b").is_ok(), "other clients are unaffected");
        assert!(RateLimiter::new(false, 1, 1).check("a").is_ok());
    }

    #[test]
    fn origin_policy() {
        let local = OriginPolicy::new(&[]);
        assert!(local.allows(None));
        assert!(local.allows(Some("http://localhost:3000")));
        assert!(local.allows(Some("http://127.0.0.1:8080")));
        assert!(local.allows(Some("http://[::1]:8080")));
        assert!(!local.allows(Some("http://evil.example.com")));
        assert!(!local.allows(Some("http://localhost.evil.com")));
        let list = OriginPolicy::new(&["https://app.example.com/".into()]);
        assert!(list.allows(Some("https://APP.example.com")));
        assert!(!list.allows(Some("http://localhost")));
        assert!(OriginPolicy::new(&["*".into()]).allows(Some("http://x")));
    }
}
