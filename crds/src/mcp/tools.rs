//! `spec.mcp.tools`: the tools clients can call, their backends (built-in, HTTP, command), and
//! the values (inline, Secret, file) those backends and the auth settings read.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema::{free_form_object, optional_free_form_object};

/// A tool clients can call.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpec {
    /// Unique tool name (1-128 characters: letters, digits, `_`, `-`, `.`).
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[A-Za-z0-9_.\-]+$"))]
    pub name: String,
    /// Human-readable title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What the tool does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments; arguments are validated against it before the backend runs.
    /// Default: an object with any properties.
    #[serde(default = "default_input_schema")]
    #[schemars(schema_with = "free_form_object")]
    pub input_schema: serde_json::Value,
    /// JSON Schema of the structured result, when the tool returns one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_free_form_object")]
    pub output_schema: Option<serde_json::Value>,
    /// Behaviour hints for clients (MCP tool annotations: readOnlyHint, destructiveHint, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_free_form_object")]
    pub annotations: Option<serde_json::Value>,
    /// Whether calls may run as MCP Tasks (a handle at once, the result fetched later):
    /// `forbidden` (default), `optional` (a task when the client supports tasks, else a plain
    /// call) or `required` (a client without task support gets an error). Meant for long
    /// command and HTTP backends.
    // Schema of the bare enum: an `Option`'s `null` in `enum` makes Kubernetes 1.20 refuse the CRD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "TaskSupport")]
    pub task_support: Option<TaskSupport>,
    /// What runs when the tool is called.
    pub backend: ToolBackend,
}

/// Per-tool task support (the MCP Tasks extension's `execution.taskSupport`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskSupport {
    #[default]
    Forbidden,
    Optional,
    Required,
}
/// Exactly one backend runs a tool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "(has(self.builtin) ? 1 : 0) + (has(self.http) ? 1 : 0) + (has(self.command) ? 1 : 0) == 1"
).message("exactly one of builtin, http or command must be set"))]
pub struct ToolBackend {
    /// A built-in implementation: `echo` or `cluster_status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builtin: Option<String>,
    /// POST the arguments as JSON to a URL; a JSON response becomes structured content, any other
    /// body becomes text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpBackend>,
    /// Run a program with the arguments as JSON on stdin; its stdout is the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandBackend>,
}

/// An HTTP tool backend.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpBackend {
    /// The URL to call (`http://` or `https://`).
    pub url: String,
    /// HTTP method. Default POST.
    #[serde(default = "default_post")]
    #[schemars(regex(pattern = r"^(GET|POST|PUT|PATCH)$"))]
    pub method: String,
    /// Request headers; values may come from Secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderSpec>,
    /// Time allowed for the whole call, in seconds. Default 30.
    #[serde(default = "default_http_timeout")]
    #[schemars(range(min = 1, max = 3600))]
    pub timeout_seconds: u32,
    /// Largest response body accepted, in bytes. Default 4 MiB.
    #[serde(default = "default_max_output")]
    #[schemars(range(min = 1))]
    pub max_response_bytes: u64,
}

/// One HTTP header.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderSpec {
    /// Header name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Header value: inline, from a Secret, or from a file.
    pub value: ValueSource,
}

/// A string given inline, read from a Secret, or read from a file in the pod. Exactly one is set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "(has(self.value) ? 1 : 0) + (has(self.secretKeyRef) ? 1 : 0) + (has(self.file) ? 1 : 0) == 1"
).message("exactly one of value, secretKeyRef or file must be set"))]
pub struct ValueSource {
    /// The value itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A key of a Secret in the cluster's namespace; the operator mounts it into the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
    /// A path inside the pod (for example from a volume added through `override`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// A key in a Secret of the cluster's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key inside the Secret.
    #[schemars(length(min = 1))]
    pub key: String,
}

/// A command tool backend.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommandBackend {
    /// Program and arguments (no shell). The tool's arguments arrive as JSON on stdin.
    #[schemars(length(min = 1))]
    pub command: Vec<String>,
    /// Time allowed before the program is killed, in seconds. Default 10.
    #[serde(default = "default_command_timeout")]
    #[schemars(range(min = 1, max = 3600))]
    pub timeout_seconds: u32,
    /// Largest stdout accepted, in bytes; more fails the call. Default 4 MiB.
    #[serde(default = "default_max_output")]
    #[schemars(range(min = 1))]
    pub max_output_bytes: u64,
}

fn default_input_schema() -> serde_json::Value {
    serde_json::json!({"type": "object"})
}
fn default_post() -> String {
    "POST".into()
}
fn default_http_timeout() -> u32 {
    30
}
fn default_command_timeout() -> u32 {
    10
}
fn default_max_output() -> u64 {
    4 * 1024 * 1024
}
