//! `spec.mcp`: what the data plane serves and how. The data plane reads the same shape from its
//! configuration file, so the operator copies this section into the ConfigMap as it is (with
//! Secret references turned into the paths where it mounts them).
//!
//! The tool and backend types are in `tools`, the session, auth, rate and size limits in
//! `limits`; everything is re-exported here, so the paths stay `crate::mcp::*`.

mod limits;
mod tools;

pub use limits::*;
pub use tools::*;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The MCP server: transports, what it serves, and its limits.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpSpec {
    /// Client-facing transports. Streamable HTTP (`/mcp`), legacy HTTP+SSE and WebSocket share
    /// one port; TCP (newline-delimited JSON-RPC) has its own.
    #[serde(default)]
    pub transports: TransportsSpec,
    /// Tools declared for clients, in addition to the built-ins (`echo`, `cluster_status`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    /// Static resources (inline text, a file, or a base64 blob), in addition to the built-in
    /// `erlmcp://node/status`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceSpec>,
    /// Resource templates (RFC 6570 level-1 URI templates such as `docs://{name}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_templates: Vec<ResourceTemplateSpec>,
    /// Prompts with arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<PromptSpec>,
    /// Session limits for the session revisions (2025-11-25 and older). The stateless revision
    /// (2026-07-28) keeps no sessions.
    #[serde(default)]
    pub sessions: SessionsSpec,
    /// Client authentication on the MCP endpoints.
    #[serde(default)]
    pub auth: AuthSpec,
    /// Origins allowed to call the HTTP endpoints from a browser (DNS-rebinding protection).
    /// Requests without an `Origin` header are always allowed; an empty list allows only
    /// loopback origins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
    /// Per-client request rate limit.
    #[serde(default)]
    pub rate_limit: RateLimitSpec,
    /// Request size and concurrency limits.
    #[serde(default)]
    pub limits: LimitsSpec,
    /// Bounds of MCP Tasks (long-running tool calls).
    #[serde(default)]
    pub tasks: TasksSpec,
}

/// Which client transports are enabled.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransportsSpec {
    /// Port of the HTTP listener (Streamable HTTP, legacy SSE, WebSocket). Default 8080 (`ERLMCP_PORT`).
    #[serde(default = "default_mcp_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// Serve Streamable HTTP on `/mcp`. Default true.
    #[serde(default = "default_true")]
    pub streamable_http: bool,
    /// Serve the legacy HTTP+SSE transport (`GET /sse`, `POST /messages`). Default true.
    #[serde(default = "default_true")]
    pub legacy_sse: bool,
    /// Serve JSON-RPC over WebSocket on `/ws`. Default true.
    #[serde(default = "default_true")]
    pub websocket: bool,
    /// Newline-delimited JSON-RPC over TCP.
    #[serde(default)]
    pub tcp: TcpTransportSpec,
}

impl Default for TransportsSpec {
    fn default() -> Self {
        Self {
            port: default_mcp_port(),
            streamable_http: true,
            legacy_sse: true,
            websocket: true,
            tcp: TcpTransportSpec::default(),
        }
    }
}

/// The TCP transport.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TcpTransportSpec {
    /// Serve newline-delimited JSON-RPC over TCP. Default false. Refused while `auth.mode` is
    /// bearer or jwt: a TCP frame carries no credential. With client TLS on, TCP is TLS too,
    /// with the client port's certificate.
    #[serde(default)]
    pub enabled: bool,
    /// TCP port. Default 8081.
    #[serde(default = "default_tcp_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
}

impl Default for TcpTransportSpec {
    fn default() -> Self {
        Self {
            enabled: false,
            port: default_tcp_port(),
        }
    }
}
/// A static resource.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "(has(self.text) ? 1 : 0) + (has(self.file) ? 1 : 0) + (has(self.blob) ? 1 : 0) == 1"
).message("exactly one of text, file or blob must be set"))]
pub struct ResourceSpec {
    /// The resource's URI, unique among resources.
    #[schemars(length(min = 1))]
    pub uri: String,
    /// Short name.
    pub name: String,
    /// Human-readable title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// MIME type. Default `text/plain` for text and files, `application/octet-stream` for blobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Inline text content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// A file in the pod, read on each request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Inline binary content, base64-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<String>,
}

/// A resource template: URIs that match it are answered by substituting the variables into `text`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceTemplateSpec {
    /// RFC 6570 URI template with simple `{variable}` expressions.
    #[schemars(length(min = 1))]
    pub uri_template: String,
    /// Short name.
    pub name: String,
    /// Human-readable title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// MIME type of the produced content. Default `text/plain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Content with `{variable}` placeholders filled from the URI.
    pub text: String,
}

/// A prompt.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromptSpec {
    /// Unique prompt name.
    #[schemars(length(min = 1, max = 128))]
    pub name: String,
    /// Human-readable title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Arguments the prompt accepts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<PromptArgumentSpec>,
    /// Messages returned, with `{{argument}}` placeholders filled in.
    #[schemars(length(min = 1))]
    pub messages: Vec<PromptMessageSpec>,
}

/// A prompt argument.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromptArgumentSpec {
    /// Argument name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether a client must give it. Default false.
    #[serde(default)]
    pub required: bool,
    /// Values offered by `completion/complete` for this argument.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub completions: Vec<String>,
}

/// One message of a prompt.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromptMessageSpec {
    /// `user` or `assistant`.
    #[serde(default = "default_role")]
    #[schemars(regex(pattern = r"^(user|assistant)$"))]
    pub role: String,
    /// Message text with `{{argument}}` placeholders.
    pub text: String,
}
fn default_true() -> bool {
    true
}
fn default_mcp_port() -> u16 {
    8080
}
fn default_tcp_port() -> u16 {
    8081
}
fn default_role() -> String {
    "user".into()
}
