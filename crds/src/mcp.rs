//! `spec.mcp`: what the data plane serves and how. The data plane reads the same shape from its
//! configuration file, so the operator copies this section into the ConfigMap as it is (with
//! Secret references turned into the paths where it mounts them).

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema::{free_form_object, optional_free_form_object};

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

/// Bounds of the MCP Tasks a pod keeps (per client: the authenticated principal, or one
/// shared bucket without authentication).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TasksSpec {
    /// Most tasks one client may have stored at once (running or finished, until expiry).
    /// Default 100.
    #[serde(default = "default_max_tasks")]
    #[schemars(range(min = 1))]
    pub max_per_client: u32,
    /// Largest task result kept, in bytes of JSON; a bigger result fails the task. Default 1 MiB.
    #[serde(default = "default_max_task_result")]
    #[schemars(range(min = 1024))]
    pub max_result_bytes: u32,
    /// How long a task (and its result) is kept from creation. Default 3600.
    #[serde(default = "default_task_ttl")]
    #[schemars(range(min = 1))]
    pub ttl_seconds: u32,
}

impl Default for TasksSpec {
    fn default() -> Self {
        Self {
            max_per_client: default_max_tasks(),
            max_result_bytes: default_max_task_result(),
            ttl_seconds: default_task_ttl(),
        }
    }
}

fn default_max_tasks() -> u32 {
    100
}
fn default_max_task_result() -> u32 {
    1 << 20
}
fn default_task_ttl() -> u32 {
    3600
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

/// Session limits.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionsSpec {
    /// Most sessions one pod keeps open; new `initialize` requests beyond it get HTTP 503. Default 10000.
    #[serde(default = "default_max_sessions")]
    #[schemars(range(min = 1))]
    pub max_sessions: u32,
    /// A session with no request for this long expires (its id then answers 404). Default 1800.
    #[serde(default = "default_idle_timeout")]
    #[schemars(range(min = 1))]
    pub idle_timeout_seconds: u32,
    /// Most sessions open at once from one client address, so one client cannot take the whole
    /// table; beyond it `initialize` gets HTTP 503. Default 1000.
    #[serde(default = "default_max_sessions_per_client")]
    #[schemars(range(min = 1))]
    pub max_sessions_per_client: u32,
}

impl Default for SessionsSpec {
    fn default() -> Self {
        Self {
            max_sessions: default_max_sessions(),
            idle_timeout_seconds: default_idle_timeout(),
            max_sessions_per_client: default_max_sessions_per_client(),
        }
    }
}

/// How clients authenticate.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AuthMode {
    /// No authentication.
    #[default]
    #[serde(rename = "none")]
    None,
    /// A static bearer token (`Authorization: Bearer ...`).
    #[serde(rename = "bearer")]
    Bearer,
    /// A JWT signed by a key in a JWKS document (OIDC).
    #[serde(rename = "jwt")]
    Jwt,
}

/// Client authentication.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.mode != 'bearer' || has(self.bearerToken)")
    .message("mode bearer needs bearerToken"))]
#[x_kube(validation = kube::core::Rule::new("self.mode != 'jwt' || has(self.jwt)")
    .message("mode jwt needs jwt"))]
pub struct AuthSpec {
    /// `none`, `bearer` or `jwt`. Default none.
    #[serde(default)]
    pub mode: AuthMode,
    /// The accepted bearer token (mode bearer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<ValueSource>,
    /// JWT validation (mode jwt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtSpec>,
}

/// JWT / OIDC validation settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JwtSpec {
    /// Required `iss` claim.
    #[schemars(length(min = 1))]
    pub issuer: String,
    /// Required `aud` claim.
    #[schemars(length(min = 1))]
    pub audience: String,
    /// The JWKS document with the signing keys.
    pub jwks: ValueSource,
}

/// Per-client rate limit (token bucket, keyed by client address or token).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitSpec {
    /// Enforce the limit. Default false (`RATE_LIMIT_ENABLED`).
    #[serde(default)]
    pub enabled: bool,
    /// Sustained requests per second per client. Default 100 (`RATE_LIMIT_PER_SECOND`).
    #[serde(default = "default_rate")]
    #[schemars(range(min = 1))]
    pub requests_per_second: u32,
    /// Burst size. Default 200.
    #[serde(default = "default_burst")]
    #[schemars(range(min = 1))]
    pub burst: u32,
}

impl Default for RateLimitSpec {
    fn default() -> Self {
        Self {
            enabled: false,
            requests_per_second: default_rate(),
            burst: default_burst(),
        }
    }
}

/// Size and concurrency limits of the client listeners.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitsSpec {
    /// Largest request body or message, in bytes; larger gets HTTP 413. Default 1 MiB.
    #[serde(default = "default_max_request_bytes")]
    #[schemars(range(min = 1024))]
    pub max_request_bytes: u64,
    /// Requests processed at once per pod; more wait in line. Default 1024.
    #[serde(default = "default_max_concurrent")]
    #[schemars(range(min = 1))]
    pub max_concurrent_requests: u32,
    /// Open client connections per pod. Default 10000.
    #[serde(default = "default_max_connections")]
    #[schemars(range(min = 1))]
    pub max_connections: u32,
    /// Time a single request may take, in seconds. Default 60.
    #[serde(default = "default_request_timeout")]
    #[schemars(range(min = 1))]
    pub request_timeout_seconds: u32,
    /// Time a client has to send a request's headers, in seconds (slowloris). Default 10.
    #[serde(default = "default_header_read_timeout")]
    #[schemars(range(min = 1))]
    pub header_read_timeout_seconds: u32,
    /// Time a client has to send a whole request body, in seconds; a slower body is cut and its
    /// connection slot freed. Default 30.
    #[serde(default = "default_body_read_timeout")]
    #[schemars(range(min = 1))]
    pub body_read_timeout_seconds: u32,
    /// Time a write to a client may wait on a client that does not read before the connection is
    /// closed, in seconds. Default 10.
    #[serde(default = "default_write_timeout")]
    #[schemars(range(min = 1))]
    pub write_timeout_seconds: u32,
    /// A WebSocket, TCP or HTTP keep-alive connection with no incoming message for this long is
    /// closed, in seconds. Default 300.
    #[serde(default = "default_connection_idle_timeout")]
    #[schemars(range(min = 1))]
    pub connection_idle_timeout_seconds: u32,
    /// Requests one connection (WebSocket, TCP, stdio, legacy SSE) may have in flight; the server
    /// stops reading it at the cap. Default 64.
    #[serde(default = "default_max_in_flight_per_connection")]
    #[schemars(range(min = 1))]
    pub max_in_flight_per_connection: u32,
    /// HTTP/2 streams one connection may have open at once. Default 100.
    #[serde(default = "default_http2_max_concurrent_streams")]
    #[schemars(range(min = 1))]
    pub http2_max_concurrent_streams: u32,
    /// Interval of HTTP/2 keep-alive pings, in seconds; a connection that does not answer one
    /// within the same interval is closed. Default 30.
    #[serde(default = "default_http2_keep_alive")]
    #[schemars(range(min = 1))]
    pub http2_keep_alive_seconds: u32,
}

impl Default for LimitsSpec {
    fn default() -> Self {
        Self {
            max_request_bytes: default_max_request_bytes(),
            max_concurrent_requests: default_max_concurrent(),
            max_connections: default_max_connections(),
            request_timeout_seconds: default_request_timeout(),
            header_read_timeout_seconds: default_header_read_timeout(),
            body_read_timeout_seconds: default_body_read_timeout(),
            write_timeout_seconds: default_write_timeout(),
            connection_idle_timeout_seconds: default_connection_idle_timeout(),
            max_in_flight_per_connection: default_max_in_flight_per_connection(),
            http2_max_concurrent_streams: default_http2_max_concurrent_streams(),
            http2_keep_alive_seconds: default_http2_keep_alive(),
        }
    }
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
fn default_role() -> String {
    "user".into()
}
fn default_max_sessions() -> u32 {
    10_000
}
fn default_idle_timeout() -> u32 {
    1800
}
fn default_rate() -> u32 {
    100
}
fn default_burst() -> u32 {
    200
}
fn default_max_request_bytes() -> u64 {
    1024 * 1024
}
fn default_max_concurrent() -> u32 {
    1024
}
fn default_max_connections() -> u32 {
    10_000
}
fn default_request_timeout() -> u32 {
    60
}
fn default_max_sessions_per_client() -> u32 {
    1000
}
fn default_header_read_timeout() -> u32 {
    10
}
fn default_body_read_timeout() -> u32 {
    30
}
fn default_write_timeout() -> u32 {
    10
}
fn default_connection_idle_timeout() -> u32 {
    300
}
fn default_max_in_flight_per_connection() -> u32 {
    64
}
fn default_http2_max_concurrent_streams() -> u32 {
    100
}
fn default_http2_keep_alive() -> u32 {
    30
}
