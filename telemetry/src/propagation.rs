//! W3C trace context across process boundaries: read a parent from an incoming request,
//! write the current span's context into an outgoing one. The project speaks W3C
//! (`traceparent`, `tracestate`) only, so the propagator is fixed rather than global.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// Make `span` a child of the trace in `headers`, if they carry one. Call before the span is
/// first entered.
pub fn set_parent_from_headers(span: &tracing::Span, headers: &http::HeaderMap) {
    if !headers.contains_key(TRACEPARENT) {
        return;
    }
    let cx = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// [`set_parent_from_headers`] for a context carried as strings (MCP `_meta`).
pub fn set_parent_from_traceparent(
    span: &tracing::Span,
    traceparent: &str,
    tracestate: Option<&str>,
) {
    let mut m = HashMap::new();
    m.insert(TRACEPARENT.to_string(), traceparent.to_string());
    if let Some(s) = tracestate {
        m.insert(TRACESTATE.to_string(), s.to_string());
    }
    let cx = TraceContextPropagator::new().extract(&m);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// Write `span`'s context (`traceparent`, `tracestate`) into `headers`, replacing any there.
/// Nothing is written for a span that is not recorded by OpenTelemetry.
pub fn inject(span: &tracing::Span, headers: &mut http::HeaderMap) {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return;
    }
    headers.remove(TRACEPARENT);
    headers.remove(TRACESTATE);
    TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
}

/// The span's trace id (32 hex digits), for logs; `None` outside a recorded trace.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::layer::SubscriberExt;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn with_otel<R>(f: impl FnOnce() -> R) -> R {
        let provider = SdkTracerProvider::builder().build();
        let sub = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(sub, f)
    }

    fn traceparent_of(span: &tracing::Span) -> String {
        let mut h = http::HeaderMap::new();
        inject(span, &mut h);
        h.get(TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn a_span_joins_the_trace_of_an_incoming_traceparent_header() {
        with_otel(|| {
            let mut h = http::HeaderMap::new();
            h.insert(TRACEPARENT, PARENT.parse().unwrap());
            let span = tracing::info_span!("request");
            set_parent_from_headers(&span, &h);
            assert_eq!(
                trace_id(&span).as_deref(),
                Some("4bf92f3577b34da6a3ce929d0e0e4736")
            );
            // Passed on, the context names this span, not the caller's, as the parent.
            let out = traceparent_of(&span);
            assert!(
                out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
                "{out}"
            );
            assert!(!out.contains("00f067aa0ba902b7"), "{out}");
        });
    }

    #[test]
    fn a_traceparent_string_from_meta_is_honoured() {
        with_otel(|| {
            let span = tracing::info_span!("request");
            set_parent_from_traceparent(&span, PARENT, Some("vendor=1"));
            assert_eq!(
                trace_id(&span).as_deref(),
                Some("4bf92f3577b34da6a3ce929d0e0e4736")
            );
        });
    }

    #[test]
    fn a_malformed_traceparent_starts_a_new_trace() {
        with_otel(|| {
            let span = tracing::info_span!("request");
            set_parent_from_traceparent(&span, "00-zz-yy-01", None);
            let id = trace_id(&span).expect("a recorded span has a trace id");
            assert_ne!(id, "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_eq!(id.len(), 32);
        });
    }

    #[test]
    fn child_spans_share_the_trace_and_carry_it_on() {
        with_otel(|| {
            let root = tracing::info_span!("request");
            let child = root.in_scope(|| tracing::info_span!("backend"));
            assert_eq!(trace_id(&root), trace_id(&child));
            assert_ne!(traceparent_of(&root), traceparent_of(&child));
        });
    }

    #[test]
    fn without_opentelemetry_nothing_is_injected() {
        let span = tracing::info_span!("request");
        let mut h = http::HeaderMap::new();
        h.insert(TRACEPARENT, PARENT.parse().unwrap());
        inject(&span, &mut h);
        // An untraced hop leaves the caller's context as it was.
        assert_eq!(h.get(TRACEPARENT).unwrap(), PARENT);
        assert_eq!(trace_id(&span), None);
    }
}
