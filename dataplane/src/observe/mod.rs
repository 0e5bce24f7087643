//! Prometheus metrics and logging setup. (The health and metrics endpoints that serve them are
//! in `transport::health`.)

pub mod metrics;

/// Structured logs on stderr (stdout may carry stdio JSON-RPC): JSON in production, text for
/// humans.
pub fn init_logging(level: &str, format: &str) {
    let level = if level == "warning" { "warn" } else { level };
    let filter =
        tracing_subscriber::EnvFilter::try_new(format!("{level},hyper=warn,h2=warn,rustls=warn"))
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        b.json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        b.try_init()
    };
}
