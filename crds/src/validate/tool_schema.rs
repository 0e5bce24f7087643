//! Checks of what a tool declares beyond its name: the `x-mcp-header` annotations in its input
//! schema (2026-07-28 mirrors those arguments into `Mcp-Param-*` headers) and its behaviour
//! annotations. A mistake here would otherwise surface only as confusing mismatches per call.

use serde_json::Value;

use super::Errors;

/// Behaviour hints a tool's `annotations` may carry, all booleans.
const HINTS: &[&str] = &[
    "readOnlyHint",
    "destructiveHint",
    "idempotentHint",
    "openWorldHint",
];

/// `x-mcp-header` only on a top-level property of a primitive type, naming a valid header
/// suffix, each suffix once (header names are case-insensitive).
pub(super) fn check_header_params(schema: &Value, p: &str, errs: &mut Errors) {
    let mut seen = std::collections::BTreeSet::new();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            let Some(h) = prop.get("x-mcp-header") else {
                nested_headers(prop, &format!("{p}.properties.{name}"), errs);
                continue;
            };
            let at = format!("{p}.properties.{name}.x-mcp-header");
            match h.as_str() {
                Some(s) if !s.is_empty() && s.bytes().all(is_tchar) => {
                    if !seen.insert(s.to_ascii_lowercase()) {
                        errs.push(
                            &at,
                            format!("{s:?} is already the header of another argument"),
                        );
                    }
                }
                _ => errs.push(
                    &at,
                    "must be a non-empty header name suffix (letters, digits and !#$%&'*+-.^_`|~)",
                ),
            }
            let primitive = matches!(
                prop.get("type").and_then(Value::as_str),
                Some("string" | "number" | "integer" | "boolean")
            );
            if !primitive {
                errs.push(
                    &at,
                    "only a string, number, integer or boolean argument can travel in a header",
                );
            }
            nested_headers_below(prop, &format!("{p}.properties.{name}"), errs);
        }
    }
    for key in [
        "items",
        "additionalProperties",
        "$defs",
        "definitions",
        "allOf",
        "anyOf",
        "oneOf",
    ] {
        if let Some(v) = schema.get(key) {
            nested_headers(v, &format!("{p}.{key}"), errs);
        }
    }
}

/// An `x-mcp-header` at `v` or anywhere below it is refused: only top-level arguments map to
/// headers.
fn nested_headers(v: &Value, p: &str, errs: &mut Errors) {
    if v.get("x-mcp-header").is_some() {
        errs.push(
            format!("{p}.x-mcp-header"),
            "allowed only on a top-level property of inputSchema",
        );
    }
    nested_headers_below(v, p, errs);
}

fn nested_headers_below(v: &Value, p: &str, errs: &mut Errors) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                if k != "x-mcp-header" {
                    nested_headers(child, &format!("{p}.{k}"), errs);
                }
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                nested_headers(child, &format!("{p}[{i}]"), errs);
            }
        }
        _ => {}
    }
}

/// `annotations`: an object whose hints are booleans and whose `title` is a string.
pub(super) fn check_annotations(a: &Value, p: &str, errs: &mut Errors) {
    let Some(m) = a.as_object() else {
        errs.push(p, "must be an object");
        return;
    };
    for hint in HINTS {
        if m.get(*hint).is_some_and(|v| !v.is_boolean()) {
            errs.push(format!("{p}.{hint}"), "must be true or false");
        }
    }
    if m.get("title").is_some_and(|v| !v.is_string()) {
        errs.push(format!("{p}.title"), "must be a string");
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
