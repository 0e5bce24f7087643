//! The optional `tracing` section: OpenTelemetry traces of the data plane.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::mcp::SecretKeyRef;

/// OpenTelemetry traces of the data plane, exported over OTLP (HTTP/protobuf): a span per MCP
/// request, with children for backend calls and for requests forwarded between pods. The
/// operator turns this into the pods' standard `OTEL_*` variables; `env` entries of the same
/// names win over it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TracingSpec {
    /// Base URL of the OTLP HTTP receiver, e.g. `http://otel-collector.observability:4318`
    /// (`OTEL_EXPORTER_OTLP_ENDPOINT`; spans go to `<endpoint>/v1/traces`).
    #[schemars(regex(pattern = r"^https?://[^\s]+$"))]
    pub endpoint: String,
    /// Fraction of new traces recorded, 0 to 1. Default 1. A request that arrives inside a
    /// trace follows its caller's decision (parent-based sampling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub sampling_ratio: Option<f64>,
    /// A Secret key holding OTLP request headers as `name=value,name2=value2` (an API key for
    /// a hosted collector): `OTEL_EXPORTER_OTLP_HEADERS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers_secret: Option<SecretKeyRef>,
    /// `service.name` of the spans. Default `erlmcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub service_name: Option<String>,
}

impl TracingSpec {
    /// What the OpenAPI schema says, again for the operator: `(field under spec.tracing, problem)`.
    pub fn problems(&self) -> Vec<(&'static str, &'static str)> {
        let mut out = Vec::new();
        let e = self.endpoint.trim();
        let rest = e
            .strip_prefix("http://")
            .or_else(|| e.strip_prefix("https://"));
        if !rest.is_some_and(|r| !r.is_empty() && !r.chars().any(char::is_whitespace)) {
            out.push(("endpoint", "must be an http:// or https:// URL"));
        }
        if self
            .sampling_ratio
            .is_some_and(|r| !(0.0..=1.0).contains(&r))
        {
            out.push(("samplingRatio", "must be between 0 and 1"));
        }
        if self
            .service_name
            .as_deref()
            .is_some_and(|n| n.trim().is_empty())
        {
            out.push(("serviceName", "must not be empty"));
        }
        out
    }
}
