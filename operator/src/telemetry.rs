//! Logs and traces of the operator. Logs: JSON (or text) on stderr, filtered by `RUST_LOG`.
//! Traces (only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set): a span per reconcile with a child
//! per Kubernetes API call. Those children are kube's own `HTTP` client spans, which it makes
//! at debug level: the trace layer has its own filter that takes them (and info spans), so
//! turning traces on neither needs nor causes debug logs.

use erlmcp_telemetry::Telemetry;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Where kube makes the client span of each API request.
const KUBE_CLIENT_SPANS: &str = "kube_client::client::builder";

/// What the trace layer records: info spans, and kube's per-request client spans.
pub fn trace_filter() -> Targets {
    Targets::new()
        .with_default(Level::INFO)
        .with_target(KUBE_CLIENT_SPANS, Level::DEBUG)
}

/// Install the subscriber; the returned handle (if traces are on) flushes them at exit. Call
/// inside the tokio runtime.
pub fn init(format: &str) -> Option<Telemetry> {
    let telemetry = match Telemetry::from_env("erlmcp-operator") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("erlmcp-operator: traces off: {e}");
            None
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube_lease_manager=warn"));
    let b = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if format == "text" {
        b.boxed()
    } else {
        b.json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(telemetry.is_some())
            .boxed()
    };
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(
            telemetry
                .as_ref()
                .map(|t| t.layer().with_filter(trace_filter())),
        )
        .try_init();
    telemetry
}

/// The current span's `trace_id` field, so its logs name their trace (no-op without traces).
pub fn record_trace_id() {
    let span = tracing::Span::current();
    if let Some(id) = erlmcp_telemetry::trace_id(&span) {
        span.record("trace_id", id.as_str());
    }
}

/// The outcome of a reconcile on its span (the current one): `ok`, or the error.
pub fn record_outcome<T, E: std::fmt::Display>(r: &Result<T, E>) {
    let span = tracing::Span::current();
    match r {
        Ok(_) => span
            .record("erlmcp.reconcile.outcome", "ok")
            .record("otel.status_code", "OK"),
        Err(e) => span
            .record("erlmcp.reconcile.outcome", tracing::field::display(e))
            .record("otel.status_code", "ERROR"),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_filter_takes_kube_request_spans_but_not_other_debug_spans() {
        let f = trace_filter();
        assert!(f.would_enable(KUBE_CLIENT_SPANS, &Level::DEBUG));
        assert!(f.would_enable("erlmcp_operator::reconcile", &Level::INFO));
        assert!(!f.would_enable("erlmcp_operator::reconcile", &Level::DEBUG));
        assert!(!f.would_enable("hyper_util::client", &Level::DEBUG));
    }
}
