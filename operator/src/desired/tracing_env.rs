//! The pods' OpenTelemetry environment from the CR's `tracing` section: the standard `OTEL_*`
//! variables the data plane reads (nothing at all when the section is absent).

use erlmcp_crds::TracingSpec;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};

/// Default `service.name` of the pods' spans.
pub const DEFAULT_SERVICE_NAME: &str = "erlmcp";

fn var(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

/// The variables, in order, leaving out any the user's `env` sets itself (theirs win, and a
/// name twice in a container's env would fail server-side apply). `$(POD_NAME)` and
/// `$(POD_NAMESPACE)` are expanded by the kubelet (they are defined earlier in the env).
pub fn tracing_env(spec: Option<&TracingSpec>, cluster: &str, user: &[EnvVar]) -> Vec<EnvVar> {
    let Some(t) = spec else {
        return Vec::new();
    };
    let mut v = vec![
        var("OTEL_EXPORTER_OTLP_ENDPOINT", t.endpoint.trim()),
        var("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        var(
            "OTEL_SERVICE_NAME",
            t.service_name.as_deref().unwrap_or(DEFAULT_SERVICE_NAME),
        ),
        var(
            "OTEL_RESOURCE_ATTRIBUTES",
            format!(
                "k8s.namespace.name=$(POD_NAMESPACE),k8s.pod.name=$(POD_NAME),service.instance.id=$(POD_NAME),erlmcp.cluster={cluster}"
            ),
        ),
        var("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        var(
            "OTEL_TRACES_SAMPLER_ARG",
            t.sampling_ratio.unwrap_or(1.0).clamp(0.0, 1.0).to_string(),
        ),
    ];
    if let Some(h) = &t.headers_secret {
        v.push(EnvVar {
            name: "OTEL_EXPORTER_OTLP_HEADERS".into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: h.name.clone(),
                    key: h.key.clone(),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    v.retain(|e| user.iter().all(|u| u.name != e.name));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use erlmcp_crds::SecretKeyRef;

    fn value<'a>(env: &'a [EnvVar], name: &str) -> Option<&'a str> {
        env.iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value.as_deref())
    }

    #[test]
    fn no_section_no_variables() {
        assert!(tracing_env(None, "c", &[]).is_empty());
    }

    #[test]
    fn the_section_becomes_the_standard_variables() {
        let t = TracingSpec {
            endpoint: " http://otel.observability:4318 ".into(),
            sampling_ratio: Some(0.25),
            headers_secret: None,
            service_name: None,
        };
        let env = tracing_env(Some(&t), "demo", &[]);
        assert_eq!(
            value(&env, "OTEL_EXPORTER_OTLP_ENDPOINT"),
            Some("http://otel.observability:4318")
        );
        assert_eq!(value(&env, "OTEL_SERVICE_NAME"), Some(DEFAULT_SERVICE_NAME));
        assert_eq!(
            value(&env, "OTEL_TRACES_SAMPLER"),
            Some("parentbased_traceidratio")
        );
        assert_eq!(value(&env, "OTEL_TRACES_SAMPLER_ARG"), Some("0.25"));
        let attrs = value(&env, "OTEL_RESOURCE_ATTRIBUTES").unwrap();
        assert!(attrs.contains("k8s.pod.name=$(POD_NAME)"), "{attrs}");
        assert!(attrs.contains("erlmcp.cluster=demo"), "{attrs}");
        assert!(env.iter().all(|e| e.name != "OTEL_EXPORTER_OTLP_HEADERS"));
    }

    #[test]
    fn headers_come_from_the_secret_and_never_inline() {
        let t = TracingSpec {
            endpoint: "https://otlp.example:4318".into(),
            sampling_ratio: None,
            headers_secret: Some(SecretKeyRef {
                name: "otlp-auth".into(),
                key: "headers".into(),
            }),
            service_name: Some("mcp-prod".into()),
        };
        let env = tracing_env(Some(&t), "demo", &[]);
        assert_eq!(value(&env, "OTEL_TRACES_SAMPLER_ARG"), Some("1"));
        assert_eq!(value(&env, "OTEL_SERVICE_NAME"), Some("mcp-prod"));
        let h = env
            .iter()
            .find(|e| e.name == "OTEL_EXPORTER_OTLP_HEADERS")
            .unwrap();
        assert_eq!(h.value, None);
        let r = h
            .value_from
            .as_ref()
            .and_then(|f| f.secret_key_ref.as_ref())
            .unwrap();
        assert_eq!((r.name.as_str(), r.key.as_str()), ("otlp-auth", "headers"));
    }

    #[test]
    fn the_users_env_wins_over_the_section() {
        let t = TracingSpec {
            endpoint: "http://otel:4318".into(),
            ..Default::default()
        };
        let user = [var("OTEL_TRACES_SAMPLER", "always_off")];
        let env = tracing_env(Some(&t), "demo", &user);
        assert!(env.iter().all(|e| e.name != "OTEL_TRACES_SAMPLER"));
        assert_eq!(
            value(&env, "OTEL_EXPORTER_OTLP_ENDPOINT"),
            Some("http://otel:4318")
        );
    }
}
