//! `spec.mcp` sessions, auth, rate limit, size and concurrency limits, and the bounds of MCP
//! Tasks.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ValueSource;

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
