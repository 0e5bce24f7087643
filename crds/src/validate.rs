//! Validation of an ErlmcpCluster in Rust. The CRD's OpenAPI and CEL rules catch most of this on
//! current API servers, but older servers drop CEL and `render` runs offline, so the operator and
//! `render` both call [`validate`]. It returns every problem, each with its field path.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use base64::Engine;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::mcp::{McpSpec, ToolBackend, ValueSource};
use crate::{ErlmcpCluster, ErlmcpClusterSpec};

mod mcp;
mod tool_schema;
use mcp::validate_mcp_into;

/// Built-in tool implementations a `builtin` backend may name.
pub const BUILTIN_TOOLS: &[&str] = &["echo", "cluster_status"];

/// Longest ErlmcpCluster name: pods are `<name>-<ordinal>` and the StatefulSet controller adds a
/// `controller-revision-hash` label of `<name>-<10 chars>`, which must fit in 63 characters.
pub const MAX_NAME_LEN: usize = 52;

/// One problem with a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the offending field, e.g. `spec.autoscaling.minReplicas`.
    pub path: String,
    /// What is wrong, for a human.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Every problem with a whole resource (name and spec).
pub fn validate(cluster: &ErlmcpCluster) -> Vec<FieldError> {
    let mut errs = Errors(Vec::new());
    let name = cluster.metadata.name.as_deref().unwrap_or_default();
    if name.is_empty() {
        errs.push("metadata.name", "is required");
    } else if name.len() > MAX_NAME_LEN {
        errs.push(
            "metadata.name",
            format!(
                "must be at most {MAX_NAME_LEN} characters (pod names and labels derive from it)"
            ),
        );
    } else if !is_dns_label(name) {
        errs.push(
            "metadata.name",
            "must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit",
        );
    }
    validate_spec_into(&cluster.spec, &mut errs);
    errs.0
}

/// Every problem with a spec alone.
pub fn validate_spec(spec: &ErlmcpClusterSpec) -> Vec<FieldError> {
    let mut errs = Errors(Vec::new());
    validate_spec_into(spec, &mut errs);
    errs.0
}

/// Every problem with an `mcp` section alone (the data plane checks its file with this).
pub fn validate_mcp(mcp: &McpSpec, path: &str) -> Vec<FieldError> {
    let mut errs = Errors(Vec::new());
    validate_mcp_into(mcp, path, &mut errs);
    errs.0
}

fn validate_spec_into(spec: &ErlmcpClusterSpec, errs: &mut Errors) {
    for (field, problem) in spec.tracing.iter().flat_map(|t| t.problems()) {
        errs.push(format!("spec.tracing.{field}"), problem);
    }
    if spec.replicas < 0 {
        errs.push("spec.replicas", "must be 0 or more");
    }
    if let Some(image) = &spec.image {
        if image.trim().is_empty() || image.chars().any(char::is_whitespace) {
            errs.push("spec.image", "must be an image reference without spaces");
        }
    }
    if let Some(policy) = &spec.image_pull_policy {
        if !["Always", "IfNotPresent", "Never"].contains(&policy.as_str()) {
            errs.push(
                "spec.imagePullPolicy",
                "must be Always, IfNotPresent or Never",
            );
        }
    }

    validate_mcp_into(&spec.mcp, "spec.mcp", errs);

    // Ports must not collide inside a pod.
    let mut ports: BTreeMap<u16, &str> = BTreeMap::new();
    let mut claim = |port: u16, path: &'static str, errs: &mut Errors| {
        if port == 0 {
            errs.push(path, "must be between 1 and 65535");
        } else if let Some(other) = ports.insert(port, path) {
            errs.push(path, format!("port {port} is already used by {other}"));
        }
    };
    claim(crate::HEALTH_PORT, "(health port)", errs);
    claim(crate::METRICS_PORT, "(metrics port)", errs);
    claim(spec.mcp.transports.port, "spec.mcp.transports.port", errs);
    if spec.mcp.transports.tcp.enabled {
        claim(
            spec.mcp.transports.tcp.port,
            "spec.mcp.transports.tcp.port",
            errs,
        );
    }
    claim(spec.cluster.port, "spec.cluster.port", errs);

    if let Some(cookie) = &spec.cluster.cookie_secret {
        if cookie.name.is_empty() || cookie.key.is_empty() {
            errs.push("spec.cluster.cookieSecret", "needs both name and key");
        }
    }

    if let Some(tls) = &spec.tls {
        let sources = [
            tls.secret_name.is_some(),
            tls.issuer_ref.is_some(),
            tls.operator_ca.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        if sources != 1 {
            errs.push(
                "spec.tls",
                "exactly one TLS source: secretName, issuerRef or operatorCa",
            );
        }
        if let Some(issuer) = &tls.issuer_ref {
            if !["Issuer", "ClusterIssuer"].contains(&issuer.kind.as_str()) {
                errs.push("spec.tls.issuerRef.kind", "must be Issuer or ClusterIssuer");
            }
        }
    }

    if !["ClusterIP", "NodePort", "LoadBalancer"].contains(&spec.service.type_.as_str()) {
        errs.push(
            "spec.service.type",
            "must be ClusterIP, NodePort or LoadBalancer",
        );
    }

    if let Some(storage) = &spec.storage {
        if storage.access_modes.is_empty() {
            errs.push("spec.storage.accessModes", "must not be empty");
        }
        if storage.size.0.trim().is_empty() {
            errs.push("spec.storage.size", "is required, e.g. 1Gi");
        }
        if let Some(p) = &storage.persistent_volume_claim_retention_policy {
            for (field, v) in [
                ("whenDeleted", &p.when_deleted),
                ("whenScaled", &p.when_scaled),
            ] {
                if v != "Retain" && v != "Delete" {
                    errs.push(
                        format!("spec.storage.persistentVolumeClaimRetentionPolicy.{field}"),
                        "must be Retain or Delete",
                    );
                }
            }
        }
    }
    if !(30..=86400).contains(&spec.progress_deadline_seconds) {
        errs.push(
            "spec.progressDeadlineSeconds",
            "must be between 30 and 86400",
        );
    }

    if let Some(hpa) = &spec.autoscaling {
        if hpa.min_replicas < 1 {
            errs.push("spec.autoscaling.minReplicas", "must be at least 1");
        }
        if hpa.max_replicas < 1 {
            errs.push("spec.autoscaling.maxReplicas", "must be at least 1");
        }
        if hpa.min_replicas > hpa.max_replicas {
            errs.push(
                "spec.autoscaling.minReplicas",
                format!(
                    "({}) must not exceed maxReplicas ({})",
                    hpa.min_replicas, hpa.max_replicas
                ),
            );
        }
        if hpa.enabled
            && hpa.target_cpu_utilization_percentage.is_none()
            && hpa.target_memory_utilization_percentage.is_none()
            && hpa.target_sessions_per_pod.is_none()
        {
            errs.push(
                "spec.autoscaling",
                "needs at least one target: targetCPUUtilizationPercentage, targetMemoryUtilizationPercentage or targetSessionsPerPod",
            );
        }
        for (v, path) in [
            (
                hpa.target_cpu_utilization_percentage,
                "spec.autoscaling.targetCPUUtilizationPercentage",
            ),
            (
                hpa.target_memory_utilization_percentage,
                "spec.autoscaling.targetMemoryUtilizationPercentage",
            ),
        ] {
            if let Some(v) = v {
                if !(1..=100).contains(&v) {
                    errs.push(path, "must be between 1 and 100");
                }
            }
        }
        if let Some(v) = hpa.target_sessions_per_pod {
            if v < 1 {
                errs.push(
                    "spec.autoscaling.targetSessionsPerPod",
                    "must be at least 1",
                );
            }
        }
    }

    let pdb = &spec.pod_disruption_budget;
    if pdb.min_available.is_some() && pdb.max_unavailable.is_some() {
        errs.push(
            "spec.podDisruptionBudget",
            "set minAvailable or maxUnavailable, not both",
        );
    }
    for (v, path) in [
        (&pdb.min_available, "spec.podDisruptionBudget.minAvailable"),
        (
            &pdb.max_unavailable,
            "spec.podDisruptionBudget.maxUnavailable",
        ),
    ] {
        if let Some(v) = v {
            if let Err(msg) = check_int_or_percent(v) {
                errs.push(path, msg);
            }
        }
    }

    if !["trace", "debug", "info", "warn", "warning", "error"]
        .contains(&spec.logging.level.as_str())
    {
        errs.push(
            "spec.logging.level",
            "must be trace, debug, info, warn or error",
        );
    }
    if !["json", "text"].contains(&spec.logging.format.as_str()) {
        errs.push("spec.logging.format", "must be json or text");
    }
    if spec.termination_grace_period_seconds < 1 {
        errs.push("spec.terminationGracePeriodSeconds", "must be at least 1");
    }
    if let Some(o) = &spec.override_ {
        for (v, path) in [
            (&o.stateful_set, "spec.override.statefulSet"),
            (&o.service, "spec.override.service"),
        ] {
            if let Some(v) = v {
                if !v.is_object() {
                    errs.push(path, "must be an object");
                }
            }
        }
        // What ties the StatefulSet to its pods, claims and peer DNS is the operator's: the
        // server refuses to change it later, and a different one orphans the pods.
        if let Some(sts) = o.stateful_set.as_ref().filter(|v| v.is_object()) {
            for (field, ptr) in [
                ("metadata.name", "/metadata/name"),
                ("metadata.namespace", "/metadata/namespace"),
                ("spec.selector", "/spec/selector"),
                ("spec.serviceName", "/spec/serviceName"),
            ] {
                if sts.pointer(ptr).is_some() {
                    errs.push(
                        format!("spec.override.statefulSet.{field}"),
                        "cannot be overridden: the operator owns the StatefulSet's identity",
                    );
                }
            }
        }
    }
}

fn check_int_or_percent(v: &IntOrString) -> Result<(), String> {
    match v {
        IntOrString::Int(i) if *i < 0 => Err("must be 0 or more".into()),
        IntOrString::Int(_) => Ok(()),
        IntOrString::String(s) => match s.strip_suffix('%').map(str::parse::<u32>) {
            Some(Ok(p)) if p <= 100 => Ok(()),
            _ => Err(format!(
                "{s:?} must be a number or a percentage like \"25%\""
            )),
        },
    }
}

/// Whether `s` is an RFC 1123 DNS label.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Variable names of a level-1 URI template (`{name}` expressions), in order.
pub fn template_variables(template: &str) -> Result<Vec<String>, String> {
    let mut vars = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or("has an unclosed '{'")?;
        let var = &after[..close];
        if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("variable {{{var}}} must be letters, digits or '_'"));
        }
        vars.push(var.to_string());
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err("has an unmatched '}'".into());
    }
    Ok(vars)
}

/// `{{name}}` placeholders of a prompt message.
pub fn prompt_placeholders(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        match after.find("}}") {
            Some(close) => {
                out.push(after[..close].trim().to_string());
                rest = &after[close + 2..];
            }
            None => break,
        }
    }
    out
}
