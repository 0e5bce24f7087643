//! OpenTelemetry traces for the operator and the data plane.
//!
//! Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set:
//! then spans from `tracing` are exported over OTLP HTTP/protobuf, and the other standard
//! variables apply as the SDK reads them (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_TRACES_SAMPLER`/`_ARG`, `OTEL_EXPORTER_OTLP_HEADERS`, `..._TIMEOUT`, `OTEL_SDK_DISABLED`).
//! When off, [`enabled`] is false and callers skip building spans at all, so a request pays one
//! relaxed load. W3C trace context (`traceparent`, `tracestate`) crosses process boundaries.

mod client;
pub mod propagation;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing::Subscriber;
use tracing_subscriber::registry::LookupSpan;

pub use client::OtlpHttpClient;
pub use propagation::{inject, set_parent_from_headers, set_parent_from_traceparent, trace_id};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// True once [`Telemetry::from_env`] has installed an exporter: span building is worth it.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The settings read from the environment (a pure view, so it is tested without a process).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Whether any OTLP traces endpoint is configured (the SDK reads the value itself).
    pub export: bool,
    pub timeout: Duration,
    /// `service.name` when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` names one.
    pub default_service: Option<String>,
}

impl Settings {
    pub fn from_lookup(default_service: &str, get: impl Fn(&str) -> Option<String>) -> Self {
        let set = |k: &str| get(k).is_some_and(|v| !v.trim().is_empty());
        let disabled = get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || get("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim() == "none");
        let export = !disabled
            && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"));
        let timeout = get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
            .or_else(|| get("OTEL_EXPORTER_OTLP_TIMEOUT"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_millis)
            .unwrap_or(Duration::from_secs(10));
        let named = set("OTEL_SERVICE_NAME")
            || get("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|a| {
                a.split(',')
                    .any(|kv| kv.split('=').next().map(str::trim) == Some("service.name"))
            });
        Self {
            export,
            timeout,
            default_service: (!named).then(|| default_service.to_string()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("tracing needs a tokio runtime at start-up")]
    NoRuntime,
    #[error("OTLP client: {0}")]
    Client(#[from] std::io::Error),
    #[error("OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// The installed exporter; keep it for the process's life and [`Telemetry::shutdown`] it last.
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl Telemetry {
    /// `None` when the environment asks for no export. Call inside the tokio runtime.
    pub fn from_env(default_service: &str) -> Result<Option<Self>, Error> {
        let s = Settings::from_lookup(default_service, |k| std::env::var(k).ok());
        if !s.export {
            return Ok(None);
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        if let Ok(p) = std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL") {
            if p.trim() != "http/protobuf" {
                tracing::warn!(protocol = %p, "only OTLP http/protobuf is built in; exporting with it");
            }
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_timeout(s.timeout)
            .with_http_client(OtlpHttpClient::new(runtime, s.timeout)?)
            .build()?;
        let mut resource = Resource::builder();
        if let Some(name) = &s.default_service {
            resource = resource.with_service_name(name.clone());
        }
        // The sampler and limits come from OTEL_TRACES_SAMPLER & co. (the SDK's defaults).
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        let tracer = provider.tracer(env!("CARGO_PKG_NAME"));
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        opentelemetry::global::set_tracer_provider(provider.clone());
        ENABLED.store(true, Ordering::Relaxed);
        Ok(Some(Self { provider, tracer }))
    }

    /// The `tracing` layer that turns spans into OpenTelemetry spans.
    pub fn layer<S>(&self) -> tracing_opentelemetry::OpenTelemetryLayer<S, SdkTracer>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.tracer.clone())
            .with_error_records_to_exceptions(true)
    }

    /// Flush what is queued and stop the exporter. The SDK blocks on its export thread, which
    /// needs the runtime, so this waits off the async workers.
    pub async fn shutdown(self) {
        ENABLED.store(false, Ordering::Relaxed);
        let provider = self.provider;
        let r = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(e)) = r {
            tracing::warn!(error = %e, "trace exporter shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Settings {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup("erlmcp", |k| m.get(k).cloned())
    }

    #[test]
    fn nothing_is_exported_without_an_endpoint() {
        assert!(!settings(&[]).export);
        assert!(!settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "  ")]).export);
        assert!(!settings(&[("OTEL_SERVICE_NAME", "x")]).export);
    }

    #[test]
    fn either_endpoint_variable_turns_export_on() {
        assert!(settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")]).export);
        assert!(
            settings(&[(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://127.0.0.1:4318/v1/traces"
            )])
            .export
        );
    }

    #[test]
    fn the_sdk_switches_win_over_an_endpoint() {
        let ep = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
        assert!(!settings(&[ep, ("OTEL_SDK_DISABLED", "TRUE")]).export);
        assert!(!settings(&[ep, ("OTEL_TRACES_EXPORTER", "none")]).export);
        assert!(settings(&[ep, ("OTEL_SDK_DISABLED", "false")]).export);
    }

    #[test]
    fn the_default_service_name_yields_to_the_standard_variables() {
        assert_eq!(settings(&[]).default_service.as_deref(), Some("erlmcp"));
        assert_eq!(
            settings(&[("OTEL_SERVICE_NAME", "mine")]).default_service,
            None
        );
        assert_eq!(
            settings(&[("OTEL_RESOURCE_ATTRIBUTES", "a=b, service.name=mine")]).default_service,
            None
        );
        assert_eq!(
            settings(&[("OTEL_RESOURCE_ATTRIBUTES", "service.namespace=x")])
                .default_service
                .as_deref(),
            Some("erlmcp")
        );
    }

    #[test]
    fn the_export_timeout_prefers_the_traces_variable() {
        assert_eq!(settings(&[]).timeout, Duration::from_secs(10));
        assert_eq!(
            settings(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "2500")]).timeout,
            Duration::from_millis(2500)
        );
        assert_eq!(
            settings(&[
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
                ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "700")
            ])
            .timeout,
            Duration::from_millis(700)
        );
    }
}
