//! The conformance server's fixtures: the tools, resources and prompts the official MCP
//! conformance suite calls, named as the SDKs' "everything" servers name them. They are
//! registered through the catalog's handler seam by the `erlmcp-conformance` binary and are
//! never part of the product `erlmcp`. Where a fixture needs the client (sampling, elicitation,
//! roots), legacy revisions get a server-to-client request and the modern revision gets an
//! `InputRequiredResult` to retry with.

mod ask;
mod mrtr;
mod prompts;
mod tasks;
mod tools;

use std::collections::HashMap;
use std::sync::Arc;

use erlmcp_dataplane::catalog::template::UriTemplate;
use erlmcp_dataplane::catalog::{
    Catalog, PromptBody, PromptEntry, ResourceBody, ResourceEntry, TemplateBody, TemplateEntry,
    ToolDescription, ToolEntry,
};
use serde_json::{json, Value};

pub use ask::{PNG_1X1, WAV_EMPTY};

const NO_ARGS: &str = r#"{"type":"object","properties":{}}"#;

fn no_args() -> Value {
    serde_json::from_str(NO_ARGS).expect("schema")
}

fn tool(name: &'static str, description: &str, input: Value) -> ToolEntry {
    ToolEntry::with_handler(
        ToolDescription {
            name,
            title: None,
            description,
            input,
            output: None,
            annotations: None,
        },
        Arc::new(tools::Fixtures),
    )
}

/// Add every fixture to `c` (the [`Register`](erlmcp_dataplane::catalog::Register) of the
/// conformance server). An entry the configuration already defines stays as configured.
pub fn register(c: &mut Catalog) {
    let simple: &[(&'static str, &str)] = &[
        ("test_simple_text", "Returns simple text"),
        ("test_image_content", "Returns an image"),
        ("test_audio_content", "Returns audio"),
        ("test_embedded_resource", "Returns an embedded resource"),
        (
            "test_multiple_content_types",
            "Returns text, image and resource",
        ),
        (
            "test_tool_with_logging",
            "Logs three messages while running",
        ),
        ("test_tool_with_progress", "Reports progress while running"),
        ("test_error_handling", "Always fails with isError"),
        (
            "test_elicitation_sep1034_defaults",
            "Elicitation with defaults for every primitive type",
        ),
        (
            "test_elicitation_sep1330_enums",
            "Elicitation with every enum variant",
        ),
        (
            "test_reconnection",
            "Closes its SSE stream mid-call; the result arrives on resumption",
        ),
        (
            "test_missing_capability",
            "Needs the client's sampling capability",
        ),
        (
            "test_streaming_elicitation",
            "Streams a notification, then asks for input",
        ),
        ("test_logging_tool", "Logs when the request asks for logs"),
        ("test_trigger_tool_change", "Announces a tool list change"),
        (
            "test_trigger_prompt_change",
            "Announces a prompt list change",
        ),
        (
            "test_trigger_resource_update",
            "Announces an update of test://watched-resource",
        ),
        (
            "test_input_required_result_elicitation",
            "MRTR: asks for a name",
        ),
        (
            "test_input_required_result_sampling",
            "MRTR: asks for a sampling result",
        ),
        (
            "test_input_required_result_list_roots",
            "MRTR: asks for roots",
        ),
        (
            "test_input_required_result_request_state",
            "MRTR: round-trips requestState",
        ),
        (
            "test_input_required_result_multiple_inputs",
            "MRTR: three input requests at once",
        ),
        ("test_input_required_result_multi_round", "MRTR: two rounds"),
        (
            "test_input_required_result_tampered_state",
            "MRTR: rejects tampered state",
        ),
        (
            "test_input_required_result_capabilities",
            "MRTR: asks only for declared capabilities",
        ),
    ];
    for (n, d) in simple {
        c.add_tool(tool(n, d, no_args()));
    }
    tasks::register(c);
    c.add_tool(tool("test_sampling", "Asks the client's LLM", json!({"type": "object", "properties": {"prompt": {"type": "string"}}, "required": ["prompt"]})));
    c.add_tool(tool("test_elicitation", "Asks the user", json!({"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]})));
    c.add_tool(tool(
        "json_schema_2020_12_tool",
        "Tool with JSON Schema 2020-12 features",
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "$defs": {"address": {"$anchor": "addressDef", "type": "object", "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
            "properties": {
                "name": {"type": "string"},
                "address": {"$ref": "#/$defs/address"},
                "contactMethod": {"type": "string", "enum": ["phone", "email"]},
                "phone": {"type": "string"},
                "email": {"type": "string"}
            },
            "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
            "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
            "then": {"required": ["phone"]},
            "else": {"required": ["email"]},
            "additionalProperties": false
        }),
    ));
    c.add_tool(tool(
        "test_header_param",
        "Mirrors its region argument into the Mcp-Param-Region header",
        json!({"type": "object", "properties": {"region": {"type": "string", "x-mcp-header": "Region"}, "query": {"type": "string"}}, "required": ["region"]}),
    ));

    for (uri, name, mime, body) in [
        (
            "test://static-text",
            "static-text",
            "text/plain",
            ResourceBody::Text("This is the content of the static text resource.".into()),
        ),
        (
            "test://static-binary",
            "static-binary",
            "image/png",
            ResourceBody::Blob(PNG_1X1.into()),
        ),
        (
            "test://watched-resource",
            "watched-resource",
            "text/plain",
            ResourceBody::Text("Watched resource content".into()),
        ),
    ] {
        c.add_resource(ResourceEntry { def: json!({"uri": uri, "name": name, "description": format!("Fixture {name}"), "mimeType": mime}), uri: uri.into(), mime: mime.into(), body });
    }
    if c.template_for("test://template/1/data").is_none() {
        c.templates.push(TemplateEntry {
            def: json!({"uriTemplate": "test://template/{id}/data", "name": "template-data", "description": "Fixture template", "mimeType": "application/json"}),
            template: UriTemplate::parse("test://template/{id}/data").expect("template"),
            mime: "application/json".into(),
            body: TemplateBody::Text(r#"{"id":"{id}","templateTest":true,"data":"Data for ID: {id}"}"#.into()),
        });
    }

    let prompt = |name: &'static str,
                  description: &str,
                  args: &[(&str, bool)],
                  completions: &[(&str, &[&str])]| {
        let mut def = json!({"name": name, "description": description});
        if !args.is_empty() {
            def["arguments"] = Value::Array(args.iter().map(|(n, r)| json!({"name": n, "description": format!("Argument {n}"), "required": r})).collect());
        }
        PromptEntry {
            name: name.into(),
            def,
            required: args
                .iter()
                .filter(|(_, r)| *r)
                .map(|(n, _)| n.to_string())
                .collect(),
            completions: completions
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect::<HashMap<_, _>>(),
            body: PromptBody::Handler(Arc::new(prompts::Fixtures)),
        }
    };
    c.add_prompt(prompt(
        "test_simple_prompt",
        "A simple prompt without arguments",
        &[],
        &[],
    ));
    c.add_prompt(prompt(
        "test_prompt_with_arguments",
        "A prompt with arguments",
        &[("arg1", true), ("arg2", true)],
        &[
            ("arg1", &["paris", "park", "party"]),
            ("arg2", &["red", "green", "blue"]),
        ],
    ));
    c.add_prompt(prompt(
        "test_prompt_with_embedded_resource",
        "A prompt embedding a resource",
        &[("resourceUri", true)],
        &[],
    ));
    c.add_prompt(prompt(
        "test_prompt_with_image",
        "A prompt with an image",
        &[],
        &[],
    ));
    c.add_prompt(prompt(
        "test_input_required_result_prompt",
        "MRTR: a prompt that needs context",
        &[],
        &[],
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use erlmcp_crds::McpSpec;

    #[test]
    fn registers_the_fixtures_beside_the_built_ins() {
        let mut c = Catalog::build(&McpSpec::default()).unwrap();
        assert!(c.tool("test_simple_text").is_none());
        register(&mut c);
        assert!(c.tool("test_simple_text").is_some());
        assert!(c.tool("json_schema_2020_12_tool").is_some());
        assert!(c.tool("echo").is_some() && c.tool("cluster_status").is_some());
        assert!(c.prompt("test_prompt_with_arguments").is_some());
        assert!(c.resource("test://watched-resource").is_some());
        assert!(c.template_for("test://template/7/data").is_some());
    }
}
