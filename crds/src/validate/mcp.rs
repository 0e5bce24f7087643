//! Validation of the `mcp` section (tools, their backends, limits, value sources): shared by the
//! cluster spec (`spec.mcp`) and by the data plane's own configuration file.

use super::*;

pub(super) fn validate_mcp_into(mcp: &McpSpec, base: &str, errs: &mut Errors) {
    let mut names = BTreeSet::new();
    for (i, tool) in mcp.tools.iter().enumerate() {
        let p = format!("{base}.tools[{i}]");
        if tool.name.is_empty()
            || tool.name.len() > 128
            || !tool
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        {
            errs.push(
                format!("{p}.name"),
                "must be 1-128 characters of letters, digits, '_', '-' or '.'",
            );
        }
        if BUILTIN_TOOLS.contains(&tool.name.as_str())
            && tool.backend.builtin.as_deref() != Some(tool.name.as_str())
        {
            errs.push(
                format!("{p}.name"),
                format!("{:?} is a built-in tool name", tool.name),
            );
        }
        if !names.insert(tool.name.as_str()) {
            errs.push(
                format!("{p}.name"),
                format!("duplicate tool name {:?}", tool.name),
            );
        }
        if tool.input_schema.get("type").and_then(|t| t.as_str()) != Some("object") {
            errs.push(
                format!("{p}.inputSchema"),
                "must be a JSON Schema with \"type\": \"object\"",
            );
        }
        if let Some(out) = &tool.output_schema {
            if out.get("type").and_then(|t| t.as_str()) != Some("object") {
                errs.push(
                    format!("{p}.outputSchema"),
                    "must be a JSON Schema with \"type\": \"object\"",
                );
            }
        }
        tool_schema::check_header_params(&tool.input_schema, &format!("{p}.inputSchema"), errs);
        if let Some(a) = &tool.annotations {
            tool_schema::check_annotations(a, &format!("{p}.annotations"), errs);
        }
        validate_backend(&tool.backend, &format!("{p}.backend"), errs);
    }

    let mut uris = BTreeSet::new();
    for (i, res) in mcp.resources.iter().enumerate() {
        let p = format!("{base}.resources[{i}]");
        if res.uri.is_empty() || !res.uri.contains(':') {
            errs.push(format!("{p}.uri"), "must be an absolute URI (scheme:...)");
        }
        if !uris.insert(res.uri.as_str()) {
            errs.push(
                format!("{p}.uri"),
                format!("duplicate resource URI {:?}", res.uri),
            );
        }
        let sources = [res.text.is_some(), res.file.is_some(), res.blob.is_some()]
            .iter()
            .filter(|s| **s)
            .count();
        if sources != 1 {
            errs.push(p.clone(), "exactly one of text, file or blob must be set");
        }
        if let Some(blob) = &res.blob {
            if base64::engine::general_purpose::STANDARD
                .decode(blob)
                .is_err()
            {
                errs.push(format!("{p}.blob"), "must be valid base64");
            }
        }
    }

    for (i, t) in mcp.resource_templates.iter().enumerate() {
        let p = format!("{base}.resourceTemplates[{i}]");
        match template_variables(&t.uri_template) {
            Ok(vars) if vars.is_empty() => errs.push(
                format!("{p}.uriTemplate"),
                "has no {variable}; use a static resource instead",
            ),
            Ok(_) => {}
            Err(msg) => errs.push(format!("{p}.uriTemplate"), msg),
        }
    }

    let mut prompt_names = BTreeSet::new();
    for (i, prompt) in mcp.prompts.iter().enumerate() {
        let p = format!("{base}.prompts[{i}]");
        if prompt.name.is_empty() {
            errs.push(format!("{p}.name"), "is required");
        }
        if !prompt_names.insert(prompt.name.as_str()) {
            errs.push(
                format!("{p}.name"),
                format!("duplicate prompt name {:?}", prompt.name),
            );
        }
        if prompt.messages.is_empty() {
            errs.push(format!("{p}.messages"), "needs at least one message");
        }
        let declared: BTreeSet<&str> = prompt.arguments.iter().map(|a| a.name.as_str()).collect();
        for (j, m) in prompt.messages.iter().enumerate() {
            if m.role != "user" && m.role != "assistant" {
                errs.push(
                    format!("{p}.messages[{j}].role"),
                    "must be user or assistant",
                );
            }
            for var in prompt_placeholders(&m.text) {
                if !declared.contains(var.as_str()) {
                    errs.push(
                        format!("{p}.messages[{j}].text"),
                        format!("uses {{{{{var}}}}} but no argument {var:?} is declared"),
                    );
                }
            }
        }
    }

    validate_limits(mcp, base, errs);

    let auth = &mcp.auth;
    match auth.mode {
        crate::AuthMode::None => {}
        crate::AuthMode::Bearer => match &auth.bearer_token {
            None => errs.push(
                format!("{base}.auth.bearerToken"),
                "is required for mode bearer",
            ),
            Some(v) => validate_value_source(v, &format!("{base}.auth.bearerToken"), errs),
        },
        crate::AuthMode::Jwt => match &auth.jwt {
            None => errs.push(format!("{base}.auth.jwt"), "is required for mode jwt"),
            Some(j) => validate_value_source(&j.jwks, &format!("{base}.auth.jwt.jwks"), errs),
        },
    }
    // Newline-delimited JSON-RPC over TCP has no place for a credential: with auth on, a TCP
    // listener would serve every client that HTTP and WebSocket refuse.
    if !matches!(auth.mode, crate::AuthMode::None) && mcp.transports.tcp.enabled {
        errs.push(
            format!("{base}.transports.tcp.enabled"),
            "must be false while auth.mode is bearer or jwt: the TCP transport carries no \
             credential and would serve unauthenticated clients (use Streamable HTTP or WebSocket)",
        );
    }

    for (i, origin) in mcp.allowed_origins.iter().enumerate() {
        if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
            errs.push(
                format!("{base}.allowedOrigins[{i}]"),
                "must be \"*\" or an origin like https://app.example.com",
            );
        }
    }
}

/// Limits and timeouts. Zero is never "unlimited" here: a zero-permit semaphore hangs every
/// request, a zero timeout fails it, a zero rate divides by zero. The minimums are the CRD
/// schema's (`#[schemars(range(min = ..))]` on the same fields), so both refuse the same values.
fn validate_limits(mcp: &McpSpec, base: &str, errs: &mut Errors) {
    let s = &mcp.sessions;
    let r = &mcp.rate_limit;
    let l = &mcp.limits;
    for (value, field, min) in [
        (u64::from(s.max_sessions), "sessions.maxSessions", 1),
        (
            u64::from(s.idle_timeout_seconds),
            "sessions.idleTimeoutSeconds",
            1,
        ),
        (
            u64::from(r.requests_per_second),
            "rateLimit.requestsPerSecond",
            1,
        ),
        (u64::from(r.burst), "rateLimit.burst", 1),
        (l.max_request_bytes, "limits.maxRequestBytes", 1024),
        (
            u64::from(l.max_concurrent_requests),
            "limits.maxConcurrentRequests",
            1,
        ),
        (u64::from(l.max_connections), "limits.maxConnections", 1),
        (
            u64::from(l.request_timeout_seconds),
            "limits.requestTimeoutSeconds",
            1,
        ),
        (
            u64::from(s.max_sessions_per_client),
            "sessions.maxSessionsPerClient",
            1,
        ),
        (
            u64::from(l.header_read_timeout_seconds),
            "limits.headerReadTimeoutSeconds",
            1,
        ),
        (
            u64::from(l.body_read_timeout_seconds),
            "limits.bodyReadTimeoutSeconds",
            1,
        ),
        (
            u64::from(l.write_timeout_seconds),
            "limits.writeTimeoutSeconds",
            1,
        ),
        (
            u64::from(l.connection_idle_timeout_seconds),
            "limits.connectionIdleTimeoutSeconds",
            1,
        ),
        (
            u64::from(l.max_in_flight_per_connection),
            "limits.maxInFlightPerConnection",
            1,
        ),
        (
            u64::from(l.http2_max_concurrent_streams),
            "limits.http2MaxConcurrentStreams",
            1,
        ),
        (
            u64::from(l.http2_keep_alive_seconds),
            "limits.http2KeepAliveSeconds",
            1,
        ),
    ] {
        at_least(value, min, &format!("{base}.{field}"), errs);
    }
}

fn at_least(value: u64, min: u64, path: &str, errs: &mut Errors) {
    if value < min {
        errs.push(path, format!("must be at least {min} (got {value})"));
    }
}

fn timeout_in_range(value: u32, path: &str, errs: &mut Errors) {
    if !(1..=3600).contains(&value) {
        errs.push(path, format!("must be between 1 and 3600 (got {value})"));
    }
}

fn validate_backend(b: &ToolBackend, p: &str, errs: &mut Errors) {
    let set = [b.builtin.is_some(), b.http.is_some(), b.command.is_some()]
        .iter()
        .filter(|s| **s)
        .count();
    if set != 1 {
        errs.push(p, "exactly one of builtin, http or command must be set");
    }
    if let Some(name) = &b.builtin {
        if !BUILTIN_TOOLS.contains(&name.as_str()) {
            errs.push(
                format!("{p}.builtin"),
                format!(
                    "unknown built-in {name:?}; known: {}",
                    BUILTIN_TOOLS.join(", ")
                ),
            );
        }
    }
    if let Some(h) = &b.http {
        if !(h.url.starts_with("http://") || h.url.starts_with("https://")) {
            errs.push(
                format!("{p}.http.url"),
                "must start with http:// or https://",
            );
        }
        if !["GET", "POST", "PUT", "PATCH"].contains(&h.method.as_str()) {
            errs.push(
                format!("{p}.http.method"),
                "must be GET, POST, PUT or PATCH",
            );
        }
        for (i, hdr) in h.headers.iter().enumerate() {
            if hdr.name.is_empty()
                || !hdr
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                errs.push(
                    format!("{p}.http.headers[{i}].name"),
                    "must be a header name (letters, digits, '-')",
                );
            }
            validate_value_source(&hdr.value, &format!("{p}.http.headers[{i}].value"), errs);
        }
        timeout_in_range(h.timeout_seconds, &format!("{p}.http.timeoutSeconds"), errs);
        at_least(
            h.max_response_bytes,
            1,
            &format!("{p}.http.maxResponseBytes"),
            errs,
        );
    }
    if let Some(c) = &b.command {
        if c.command.is_empty() || c.command[0].is_empty() {
            errs.push(format!("{p}.command.command"), "must name a program");
        }
        timeout_in_range(
            c.timeout_seconds,
            &format!("{p}.command.timeoutSeconds"),
            errs,
        );
        at_least(
            c.max_output_bytes,
            1,
            &format!("{p}.command.maxOutputBytes"),
            errs,
        );
    }
}

fn validate_value_source(v: &ValueSource, p: &str, errs: &mut Errors) {
    let set = [
        v.value.is_some(),
        v.secret_key_ref.is_some(),
        v.file.is_some(),
    ]
    .iter()
    .filter(|s| **s)
    .count();
    if set != 1 {
        errs.push(p, "exactly one of value, secretKeyRef or file must be set");
    }
    if let Some(r) = &v.secret_key_ref {
        if r.name.is_empty() || r.key.is_empty() {
            errs.push(format!("{p}.secretKeyRef"), "needs both name and key");
        }
    }
}
