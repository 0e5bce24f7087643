//! Prometheus metrics, traces and logging setup. (The health and metrics endpoints that serve
//! them are in `transport::health`.)

pub mod metrics;
pub mod trace;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Structured logs on stderr (stdout may carry stdio JSON-RPC): JSON in production, text for
/// humans; and OpenTelemetry traces when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the returned
/// handle flushes them at exit). With traces on, JSON logs list their spans, so a line carries
/// the `trace_id` of the request it belongs to.
pub fn init_logging(level: &str, format: &str) -> Option<erlmcp_telemetry::Telemetry> {
    let level = if level == "warning" { "warn" } else { level };
    let filter =
        tracing_subscriber::EnvFilter::try_new(format!("{level},hyper=warn,h2=warn,rustls=warn"))
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let telemetry = match erlmcp_telemetry::Telemetry::from_env("erlmcp") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("erlmcp: traces off: {e}");
            None
        }
    };
    let b = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if format == "json" {
        b.json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(telemetry.is_some())
            .boxed()
    } else {
        b.boxed()
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(telemetry.as_ref().map(|t| t.layer()))
        .try_init();
    telemetry
}
