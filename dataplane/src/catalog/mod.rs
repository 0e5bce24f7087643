//! What the server offers: tools (with compiled argument schemas and a backend), resources,
//! resource templates and prompts, built once at start from the configuration plus the
//! built-ins, and whatever an embedding binary registers through [`handler`].

pub mod builtin;
pub mod command;
pub mod handler;
pub mod http;
pub mod template;

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
pub use erlmcp_crds::TaskSupport;
use erlmcp_crds::{McpSpec, PromptSpec, ValueSource};
use serde_json::{json, Map, Value};

use crate::config::ConfigError;
use template::UriTemplate;

/// What runs when a tool is called.
pub enum Backend {
    /// Code in this process: a built-in, or a tool an embedding binary registered.
    Handler(Arc<dyn handler::ToolHandler>),
    Http(Arc<http::HttpTool>),
    Command(Arc<command::CommandTool>),
}

/// Extra entries an embedding binary adds once the configured ones are in (an entry whose
/// name or URI is taken already is not added).
pub type Register = fn(&mut Catalog);

pub struct ToolEntry {
    pub name: String,
    /// The `Tool` object as listed.
    pub def: Value,
    pub validator: Option<jsonschema::Validator>,
    pub backend: Backend,
    /// `x-mcp-header` annotations: (property name, header suffix).
    pub header_params: Vec<(String, String)>,
    /// Whether calls run as MCP Tasks.
    pub task_support: TaskSupport,
}

/// How a tool served by a [`handler::ToolHandler`] is listed.
pub struct ToolDescription<'a> {
    pub name: &'a str,
    pub title: Option<&'a str>,
    pub description: &'a str,
    pub input: Value,
    pub output: Option<Value>,
    pub annotations: Option<Value>,
}

impl ToolEntry {
    /// A tool whose calls `handler` serves; its input schema validates the arguments first.
    pub fn with_handler(d: ToolDescription<'_>, handler: Arc<dyn handler::ToolHandler>) -> Self {
        ToolEntry {
            name: d.name.into(),
            def: tool_def(
                d.name,
                d.title,
                Some(d.description),
                &d.input,
                d.output.as_ref(),
                d.annotations.as_ref(),
            ),
            validator: compile_schema(&d.input).ok(),
            header_params: header_params(&d.input),
            backend: Backend::Handler(handler),
            task_support: TaskSupport::Forbidden,
        }
    }

    /// The same tool with calls running as tasks as `ts` says (listed as `execution.taskSupport`).
    pub fn with_task_support(mut self, ts: TaskSupport) -> Self {
        self.task_support = ts;
        set_execution(&mut self.def, ts);
        self
    }
}

fn set_execution(def: &mut Value, ts: TaskSupport) {
    let Some(o) = def.as_object_mut() else { return };
    match ts {
        TaskSupport::Forbidden => {
            o.remove("execution");
        }
        TaskSupport::Optional => {
            o.insert("execution".into(), json!({"taskSupport": "optional"}));
        }
        TaskSupport::Required => {
            o.insert("execution".into(), json!({"taskSupport": "required"}));
        }
    }
}

pub enum ResourceBody {
    Text(String),
    File(String),
    Blob(String),
    /// Generated at read time (`erlmcp://node/status`).
    NodeStatus,
}

pub struct ResourceEntry {
    pub def: Value,
    pub uri: String,
    pub mime: String,
    pub body: ResourceBody,
}

pub enum TemplateBody {
    Text(String),
}

pub struct TemplateEntry {
    pub def: Value,
    pub template: UriTemplate,
    pub mime: String,
    pub body: TemplateBody,
}

pub enum PromptBody {
    Spec(PromptSpec),
    Handler(Arc<dyn handler::PromptHandler>),
}

pub struct PromptEntry {
    pub name: String,
    pub def: Value,
    /// Required argument names.
    pub required: Vec<String>,
    /// Completion values per argument.
    pub completions: HashMap<String, Vec<String>>,
    pub body: PromptBody,
}

#[derive(Default)]
pub struct Catalog {
    pub tools: Vec<ToolEntry>,
    tool_index: HashMap<String, usize>,
    pub resources: Vec<ResourceEntry>,
    resource_index: HashMap<String, usize>,
    pub templates: Vec<TemplateEntry>,
    pub prompts: Vec<PromptEntry>,
    prompt_index: HashMap<String, usize>,
}

fn err(field: String, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        message: message.into(),
    }
}

/// Compile a tool's input schema (draft from `$schema`, 2020-12 by default). External `$ref`s
/// are never fetched (the crate is built without network retrieval).
pub fn compile_schema(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::options()
        .build(schema)
        .map_err(|e| e.to_string())
}

/// `x-mcp-header` annotations reachable through `properties` only.
fn header_params(schema: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            if let Some(h) = v.get("x-mcp-header").and_then(Value::as_str) {
                out.push((k.clone(), h.to_string()));
            }
        }
    }
    out
}

fn tool_def(
    name: &str,
    title: Option<&str>,
    description: Option<&str>,
    input: &Value,
    output: Option<&Value>,
    annotations: Option<&Value>,
) -> Value {
    let mut d = Map::new();
    d.insert("name".into(), json!(name));
    if let Some(t) = title {
        d.insert("title".into(), json!(t));
    }
    d.insert("description".into(), json!(description.unwrap_or(name)));
    d.insert("inputSchema".into(), input.clone());
    if let Some(o) = output {
        d.insert("outputSchema".into(), o.clone());
    }
    if let Some(a) = annotations {
        d.insert("annotations".into(), a.clone());
    }
    Value::Object(d)
}

/// Read a [`ValueSource`]: inline, a file, or a mounted Secret key.
pub fn read_value_source(v: &ValueSource) -> Result<String, String> {
    if let Some(s) = &v.value {
        return Ok(s.clone());
    }
    if let Some(f) = &v.file {
        return std::fs::read_to_string(f)
            .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|e| format!("{f}: {e}"));
    }
    if let Some(r) = &v.secret_key_ref {
        let dir =
            std::env::var("ERLMCP_SECRETS_DIR").unwrap_or_else(|_| "/etc/erlmcp/secrets".into());
        let path = format!("{dir}/{}/{}", r.name, r.key);
        return std::fs::read_to_string(&path)
            .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|e| format!("{path}: {e}"));
    }
    Err("no value given".into())
}

impl Catalog {
    /// Build from the `mcp` section; errors name the field.
    pub fn build(mcp: &McpSpec) -> Result<Self, Vec<ConfigError>> {
        let mut c = Catalog::default();
        let mut errs = Vec::new();
        for b in builtin::tools() {
            c.add_tool(b);
        }
        for (i, t) in mcp.tools.iter().enumerate() {
            let p = format!("mcp.tools[{i}]");
            if t.backend.builtin.is_some() {
                // Declared built-ins only re-describe the built-in; it is already listed.
                continue;
            }
            let validator = match compile_schema(&t.input_schema) {
                Ok(v) => Some(v),
                Err(e) => {
                    errs.push(err(
                        format!("{p}.inputSchema"),
                        format!("invalid JSON Schema: {e}"),
                    ));
                    continue;
                }
            };
            if t.input_schema.get("type").and_then(Value::as_str) != Some("object") {
                errs.push(err(format!("{p}.inputSchema.type"), "must be \"object\""));
                continue;
            }
            if let Some(o) = &t.output_schema {
                if let Err(e) = compile_schema(o) {
                    errs.push(err(
                        format!("{p}.outputSchema"),
                        format!("invalid JSON Schema: {e}"),
                    ));
                    continue;
                }
            }
            let backend = if let Some(h) = &t.backend.http {
                match http::HttpTool::new(h) {
                    Ok(b) => Backend::Http(Arc::new(b)),
                    Err(e) => {
                        errs.push(err(format!("{p}.backend.http"), e));
                        continue;
                    }
                }
            } else if let Some(cmd) = &t.backend.command {
                Backend::Command(Arc::new(command::CommandTool::new(cmd)))
            } else {
                errs.push(err(
                    format!("{p}.backend"),
                    "exactly one of builtin, http or command must be set",
                ));
                continue;
            };
            let mut def = tool_def(
                &t.name,
                t.title.as_deref(),
                t.description.as_deref(),
                &t.input_schema,
                t.output_schema.as_ref(),
                t.annotations.as_ref(),
            );
            let task_support = t.task_support.unwrap_or_default();
            set_execution(&mut def, task_support);
            if c.tool_index.contains_key(&t.name) {
                errs.push(err(
                    format!("{p}.name"),
                    format!("{:?} is already a tool", t.name),
                ));
                continue;
            }
            c.add_tool(ToolEntry {
                name: t.name.clone(),
                header_params: header_params(&t.input_schema),
                def,
                validator,
                backend,
                task_support,
            });
        }
        c.add_resource(ResourceEntry {
            def: json!({"uri": builtin::NODE_STATUS_URI, "name": "node-status", "title": "Node status", "description": "This erlmcp node and its peers", "mimeType": "application/json"}),
            uri: builtin::NODE_STATUS_URI.into(),
            mime: "application/json".into(),
            body: ResourceBody::NodeStatus,
        });
        for (i, r) in mcp.resources.iter().enumerate() {
            let p = format!("mcp.resources[{i}]");
            let (body, default_mime) = if let Some(t) = &r.text {
                (ResourceBody::Text(t.clone()), "text/plain")
            } else if let Some(f) = &r.file {
                (ResourceBody::File(f.clone()), "text/plain")
            } else if let Some(b) = &r.blob {
                if base64::engine::general_purpose::STANDARD.decode(b).is_err() {
                    errs.push(err(format!("{p}.blob"), "is not valid base64"));
                    continue;
                }
                (ResourceBody::Blob(b.clone()), "application/octet-stream")
            } else {
                errs.push(err(p, "exactly one of text, file or blob must be set"));
                continue;
            };
            if c.resource_index.contains_key(&r.uri) {
                errs.push(err(
                    format!("{p}.uri"),
                    format!("{:?} is already a resource", r.uri),
                ));
                continue;
            }
            let mime = r
                .mime_type
                .clone()
                .unwrap_or_else(|| default_mime.to_string());
            let mut def = json!({"uri": r.uri, "name": r.name, "mimeType": mime});
            if let Some(t) = &r.title {
                def["title"] = json!(t);
            }
            if let Some(d) = &r.description {
                def["description"] = json!(d);
            }
            c.add_resource(ResourceEntry {
                def,
                uri: r.uri.clone(),
                mime,
                body,
            });
        }
        for (i, t) in mcp.resource_templates.iter().enumerate() {
            let p = format!("mcp.resourceTemplates[{i}]");
            let template = match UriTemplate::parse(&t.uri_template) {
                Ok(x) => x,
                Err(e) => {
                    errs.push(err(format!("{p}.uriTemplate"), e));
                    continue;
                }
            };
            let mime = t.mime_type.clone().unwrap_or_else(|| "text/plain".into());
            let mut def = json!({"uriTemplate": t.uri_template, "name": t.name, "mimeType": mime});
            if let Some(x) = &t.title {
                def["title"] = json!(x);
            }
            if let Some(d) = &t.description {
                def["description"] = json!(d);
            }
            c.templates.push(TemplateEntry {
                def,
                template,
                mime,
                body: TemplateBody::Text(t.text.clone()),
            });
        }
        for (i, pr) in mcp.prompts.iter().enumerate() {
            let p = format!("mcp.prompts[{i}]");
            if c.prompt_index.contains_key(&pr.name) {
                errs.push(err(
                    format!("{p}.name"),
                    format!("{:?} is already a prompt", pr.name),
                ));
                continue;
            }
            c.add_prompt(prompt_entry(pr));
        }
        if errs.is_empty() {
            Ok(c)
        } else {
            Err(errs)
        }
    }

    pub fn add_tool(&mut self, t: ToolEntry) {
        if self.tool_index.contains_key(&t.name) {
            return;
        }
        self.tool_index.insert(t.name.clone(), self.tools.len());
        self.tools.push(t);
    }
    pub fn add_resource(&mut self, r: ResourceEntry) {
        if self.resource_index.contains_key(&r.uri) {
            return;
        }
        self.resource_index
            .insert(r.uri.clone(), self.resources.len());
        self.resources.push(r);
    }
    pub fn add_prompt(&mut self, p: PromptEntry) {
        if self.prompt_index.contains_key(&p.name) {
            return;
        }
        self.prompt_index.insert(p.name.clone(), self.prompts.len());
        self.prompts.push(p);
    }
    pub fn tool(&self, name: &str) -> Option<&ToolEntry> {
        self.tool_index.get(name).map(|i| &self.tools[*i])
    }
    pub fn resource(&self, uri: &str) -> Option<&ResourceEntry> {
        self.resource_index.get(uri).map(|i| &self.resources[*i])
    }
    pub fn prompt(&self, name: &str) -> Option<&PromptEntry> {
        self.prompt_index.get(name).map(|i| &self.prompts[*i])
    }
    pub fn template_for(&self, uri: &str) -> Option<(&TemplateEntry, Vec<(String, String)>)> {
        self.templates
            .iter()
            .find_map(|t| t.template.matches(uri).map(|v| (t, v)))
    }
}

pub fn prompt_entry(pr: &PromptSpec) -> PromptEntry {
    let mut def = json!({"name": pr.name, "description": pr.description.clone().unwrap_or_else(|| pr.name.clone())});
    if let Some(t) = &pr.title {
        def["title"] = json!(t);
    }
    if !pr.arguments.is_empty() {
        def["arguments"] = Value::Array(
            pr.arguments
                .iter()
                .map(|a| {
                    let mut o = json!({"name": a.name, "required": a.required});
                    if let Some(d) = &a.description {
                        o["description"] = json!(d);
                    }
                    o
                })
                .collect(),
        );
    }
    PromptEntry {
        name: pr.name.clone(),
        def,
        required: pr
            .arguments
            .iter()
            .filter(|a| a.required)
            .map(|a| a.name.clone())
            .collect(),
        completions: pr
            .arguments
            .iter()
            .map(|a| (a.name.clone(), a.completions.clone()))
            .collect(),
        body: PromptBody::Spec(pr.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_default_catalog_and_reports_bad_schemas() {
        let c = Catalog::build(&McpSpec::default()).unwrap();
        assert!(c.tool("echo").is_some() && c.tool("cluster_status").is_some());
        assert!(c.tool("test_simple_text").is_none());
        assert!(c.resource(builtin::NODE_STATUS_URI).is_some());
        let spec: McpSpec = serde_yaml::from_str("tools:\n  - name: bad\n    inputSchema: {type: object, properties: {a: {type: 12}}}\n    backend: {command: {command: [cat]}}\n").unwrap();
        let errs = Catalog::build(&spec).err().unwrap();
        assert_eq!(errs[0].field, "mcp.tools[0].inputSchema");
    }

    #[test]
    fn declared_task_support_is_kept_and_listed() {
        let spec: McpSpec = serde_yaml::from_str("tools:\n  - name: slow\n    taskSupport: required\n    backend: {command: {command: [sleep, '5']}}\n  - name: quick\n    backend: {command: {command: [cat]}}\n").unwrap();
        let c = Catalog::build(&spec).unwrap();
        let slow = c.tool("slow").unwrap();
        assert_eq!(slow.task_support, TaskSupport::Required);
        assert_eq!(slow.def["execution"]["taskSupport"], "required");
        let quick = c.tool("quick").unwrap();
        assert_eq!(quick.task_support, TaskSupport::Forbidden);
        assert!(quick.def.get("execution").is_none());
        let opt = registered("r").with_task_support(TaskSupport::Optional);
        assert_eq!(opt.def["execution"]["taskSupport"], "optional");
        assert!(registered("r")
            .with_task_support(TaskSupport::Optional)
            .with_task_support(TaskSupport::Forbidden)
            .def
            .get("execution")
            .is_none());
    }

    struct Nothing;
    impl handler::ToolHandler for Nothing {
        fn call<'a>(
            &'a self,
            _: handler::ToolCall<'a>,
        ) -> futures::future::BoxFuture<'a, Result<Value, crate::wire::jsonrpc::RpcError>> {
            Box::pin(async { Ok(json!({"content": []})) })
        }
    }

    fn registered(name: &str) -> ToolEntry {
        ToolEntry::with_handler(
            ToolDescription {
                name,
                title: None,
                description: "registered",
                input: json!({"type": "object", "properties": {"region": {"type": "string", "x-mcp-header": "Region"}}}),
                output: None,
                annotations: None,
            },
            Arc::new(Nothing),
        )
    }

    #[test]
    fn registered_handlers_are_listed_after_and_never_over_the_configured_tools() {
        let spec: McpSpec = serde_yaml::from_str("tools:\n  - name: mine\n    description: configured\n    inputSchema: {type: object}\n    backend: {command: {command: [cat]}}\n").unwrap();
        let mut c = Catalog::build(&spec).unwrap();
        c.add_tool(registered("extra"));
        c.add_tool(registered("mine"));
        let extra = c.tool("extra").unwrap();
        assert!(matches!(extra.backend, Backend::Handler(_)));
        assert_eq!(extra.def["description"], "registered");
        assert!(extra.validator.is_some());
        assert_eq!(
            extra.header_params,
            vec![("region".to_string(), "Region".to_string())]
        );
        assert_eq!(c.tools.last().unwrap().name, "extra");
        let mine = c.tool("mine").unwrap();
        assert!(matches!(mine.backend, Backend::Command(_)));
        assert_eq!(mine.def["description"], "configured");
    }
}
