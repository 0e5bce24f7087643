//! The CEL cases: one bad object per CEL rule of the CRD, as a change to the basic sample's
//! `spec` (and, for transition rules, the object it updates).

use serde_json::{json, Value};

/// One bad object per CEL rule: the basic sample with one change to `spec`.
pub struct CelCase {
    /// Where the rule sits in the CRD schema (list items as `[]`).
    pub schema_path: &'static str,
    /// The rule's message, which the server repeats.
    pub message: &'static str,
    /// The field path the server names in its refusal.
    pub error_path: &'static str,
    /// Merged into `spec` of the basic sample.
    pub spec_change: Value,
    /// Transition rules (`oldSelf`) judge an update: when not null, the sample with this merged
    /// into its spec is created first (and must be accepted), then `spec_change` is applied on top.
    pub before: Value,
}

pub fn cel_cases() -> Vec<CelCase> {
    let one_of_secret = "exactly one of value, secretKeyRef or file must be set";
    vec![
        CelCase {
            schema_path: "spec.autoscaling",
            message: "minReplicas must not exceed maxReplicas",
            error_path: "spec.autoscaling",
            spec_change: json!({"autoscaling": {
                "minReplicas": 5, "maxReplicas": 3, "targetCPUUtilizationPercentage": 70}}),
            before: Value::Null,
        },
        CelCase {
            schema_path: "spec.autoscaling",
            message: "autoscaling needs at least one target",
            error_path: "spec.autoscaling",
            spec_change: json!({"autoscaling": {"enabled": true, "maxReplicas": 5}}),
            before: Value::Null,
        },
        CelCase {
            schema_path: "spec.mcp.auth",
            message: "mode bearer needs bearerToken",
            error_path: "spec.mcp.auth",
            spec_change: json!({"mcp": {"auth": {"mode": "bearer"}}}),
            before: Value::Null,
        },
        CelCase {
            schema_path: "spec.mcp.auth",
            message: "mode jwt needs jwt",
            error_path: "spec.mcp.auth",
            spec_change: json!({"mcp": {"auth": {"mode": "jwt"}}}),
            before: Value::Null,
        },
        CelCase {
            schema_path: "spec.mcp.auth.bearerToken",
            message: one_of_secret,
            error_path: "spec.mcp.auth.bearerToken",
            spec_change: json!({"mcp": {"auth": {"mode": "bearer", "bearerToken": {}}}}),
            before: Value::Null,
        },
        CelCase {
            schema_path: "spec.mcp.auth.jwt.jwks",
            message: one_of_secret,
            error_path: "spec.mcp.auth.jwt.jwks",
            spec_change: json!({"mcp": {"auth": {"mode": "jwt", "jwt": {
                "issuer": "https://issuer.test", "audience": "erlmcp",
                "jwks": {"value": "{\"keys\":[]}", "file": "/etc/jwks.json"}}}}}),
            before: Value::Null,
        },
        CelCase {
            schema_path: "spec.mcp.resources[]",
            message: "exactly one of text, file or blob must be set",
            error_path: "spec.mcp.resources[0]",
            spec_change: json!({"mcp": {"resources": [{"name": "r", "uri": "file:///r"}]}}),
            before: Value::Null,
        },
        CelCase {
            schema_path: "spec.mcp.tools[].backend",
            message: "exactly one of builtin, http or command must be set",
            error_path: "spec.mcp.tools[0].backend",
            spec_change: json!({"mcp": {"tools": [{"name": "t", "backend": {
                "builtin": "echo", "command": {"command": ["true"]}}}]}}),
            before: Value::Null,
        },
        CelCase {
            schema_path: "spec.mcp.tools[].backend.http.headers[].value",
            message: one_of_secret,
            error_path: "spec.mcp.tools[0].backend.http.headers[0].value",
            spec_change: json!({"mcp": {"tools": [{"name": "t", "backend": {"http": {
                "url": "http://127.0.0.1:1/", "headers": [{"name": "h", "value": {}}]}}}]}}),
            before: Value::Null,
        },
        CelCase {
            schema_path: "spec.podDisruptionBudget",
            message: "set minAvailable or maxUnavailable, not both",
            error_path: "spec.podDisruptionBudget",
            spec_change: json!({"podDisruptionBudget": {"minAvailable": 1, "maxUnavailable": 1}}),
            before: Value::Null,
        },
        CelCase {
            schema_path: "spec.tls",
            message: "exactly one TLS source: secretName, issuerRef or operatorCa",
            error_path: "spec.tls",
            spec_change: json!({"tls": {"secretName": "tls", "operatorCa": {}}}),
            before: Value::Null,
        },
        CelCase {
            schema_path: "spec",
            message: "spec.storage cannot be added or removed after creation: create a new cluster",
            error_path: "spec",
            spec_change: json!({"storage": {"size": "1Gi"}}),
            before: json!({}),
        },
        CelCase {
            schema_path: "spec.storage",
            message: "spec.storage.storageClassName cannot change after creation",
            error_path: "spec.storage",
            spec_change: json!({"storage": {"storageClassName": "other"}}),
            before: json!({"storage": {"size": "1Gi", "storageClassName": "first"}}),
        },
    ]
}
