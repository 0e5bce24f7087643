//! Scrapes each server's Prometheus `/metrics` during the run (the data plane serves it on its
//! metrics port, 9100 by default) into the run's timeline: resident memory, open sessions,
//! requests and errors the server counted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};

/// One scrape of one server, `t` seconds after the start of the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    pub t: f64,
    pub url: String,
    /// Set when the scrape failed; the values are then absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub rss_bytes: Option<f64>,
    pub sessions_active: Option<f64>,
    pub requests_total: Option<f64>,
    pub request_errors_total: Option<f64>,
    pub rate_limited_total: Option<f64>,
}

/// The value of a metric in Prometheus text format, summed over its label sets (None when the
/// exposition has no sample of it).
pub fn metric(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        // The name must end here: `erlmcp_requests_total_x` is another metric.
        let value = if let Some(labels) = rest.strip_prefix('{') {
            match labels.rfind('}') {
                Some(i) => &labels[i + 1..],
                None => continue,
            }
        } else if rest.starts_with(' ') {
            rest
        } else {
            continue;
        };
        if let Some(v) = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// A sample from one exposition: the data plane's names, with the standard process metric as
/// a fallback for memory (other servers).
pub fn sample(t: f64, url: &str, text: &str) -> Sample {
    Sample {
        t,
        url: url.to_string(),
        error: None,
        rss_bytes: metric(text, "erlmcp_memory_total")
            .or_else(|| metric(text, "process_resident_memory_bytes")),
        sessions_active: metric(text, "erlmcp_sessions_active"),
        requests_total: metric(text, "erlmcp_requests_total"),
        request_errors_total: metric(text, "erlmcp_request_errors_total"),
        rate_limited_total: metric(text, "erlmcp_rate_limited_total"),
    }
}

/// The HTTP client scrapes go through.
pub type ScrapeClient = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

pub fn client() -> ScrapeClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// One scrape of `url` (at most 2 s), stamped `t`.
pub async fn once(client: &ScrapeClient, url: &str, t: f64) -> Sample {
    let got = async {
        let uri: http::Uri = url.parse().map_err(|_| "bad_url".to_string())?;
        let resp = client
            .get(uri)
            .await
            .map_err(|_| "unreachable".to_string())?;
        if resp.status() != 200 {
            return Err(format!("http_{}", resp.status().as_u16()));
        }
        let body = crate::transport::http::read_body(resp).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    };
    let failed = |e: String| Sample {
        t,
        url: url.to_string(),
        error: Some(e),
        ..Default::default()
    };
    match tokio::time::timeout(Duration::from_secs(2), got).await {
        Ok(Ok(text)) => sample(t, url, &text),
        Ok(Err(e)) => failed(e),
        Err(_) => failed("timeout".into()),
    }
}

/// Scrape every URL each `interval` until `until` or `stop` (at most `max_rounds` rounds).
pub async fn run(
    urls: Vec<String>,
    start: Instant,
    interval: Duration,
    until: Instant,
    max_rounds: u64,
    stop: Arc<AtomicBool>,
) -> Vec<Sample> {
    let client = client();
    let mut out = Vec::new();
    if urls.is_empty() {
        return out;
    }
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    for _ in 0..max_rounds {
        tick.tick().await;
        if Instant::now() >= until || stop.load(Ordering::Relaxed) {
            break;
        }
        for url in &urls {
            out.push(once(&client, url, start.elapsed().as_secs_f64()).await);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# HELP erlmcp_memory_total Resident set size of the process in bytes
# TYPE erlmcp_memory_total gauge
erlmcp_memory_total 16252928
erlmcp_sessions_active 3
erlmcp_requests_total{method=\"tools/call\",status=\"ok\",transport=\"http\"} 10
erlmcp_requests_total{method=\"tools/call\",status=\"error\",transport=\"tcp\"} 2
erlmcp_requests_total_extra 99
erlmcp_request_errors_total{method=\"tools/call\"} 2
";

    #[test]
    fn metrics_are_read_and_summed_over_labels() {
        assert_eq!(metric(TEXT, "erlmcp_memory_total"), Some(16252928.0));
        assert_eq!(metric(TEXT, "erlmcp_requests_total"), Some(12.0));
        assert_eq!(metric(TEXT, "erlmcp_cluster_nodes"), None);
    }

    #[test]
    fn a_sample_picks_the_data_planes_names() {
        let s = sample(1.5, "http://127.0.0.1:9100/metrics", TEXT);
        assert_eq!(s.rss_bytes, Some(16252928.0));
        assert_eq!(s.sessions_active, Some(3.0));
        assert_eq!(s.request_errors_total, Some(2.0));
        assert_eq!(s.rate_limited_total, None);
        let other = sample(0.0, "u", "process_resident_memory_bytes 1e6\n");
        assert_eq!(other.rss_bytes, Some(1e6));
    }
}
