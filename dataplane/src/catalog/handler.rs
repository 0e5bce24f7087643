//! The catalog's plug-in seam: tools and prompts whose behaviour is code. A handler sees the
//! request context (era, client capabilities, progress, logs, questions to the client, the
//! response stream) and a narrow [`Server`], never the whole protocol core. The built-ins
//! implement it, and so does anything an embedding binary registers (the conformance server's
//! fixtures).

use futures::future::BoxFuture;
use serde_json::{Map, Value};

use crate::context::Ctx;
use crate::wire::jsonrpc::RpcError;
use crate::wire::mrtr::StateKey;

/// What a handler may ask of the server it runs in.
pub trait Server: Send + Sync {
    /// Announce that the `tools`, `prompts` or `resources` list changed.
    fn notify_list_changed(&self, what: &'static str);
    /// Announce that the resource at `uri` changed (to its subscribers).
    fn notify_resource_updated(&self, uri: &str);
    /// This node and its peers, as `cluster_status` and `erlmcp://node/status` report them.
    fn node_status(&self) -> Value;
    /// The key that signs and verifies `requestState` (multi-round tool calls).
    fn state_key(&self) -> &StateKey;
}

/// One `tools/call`, its arguments already validated against the tool's input schema.
pub struct ToolCall<'a> {
    pub name: &'a str,
    pub args: &'a Value,
    /// The whole request params (the multi-round fields `inputResponses`, `requestState`).
    pub params: &'a Value,
    pub ctx: &'a Ctx,
    pub server: &'a dyn Server,
}

pub trait ToolHandler: Send + Sync {
    /// The `CallToolResult` (or an `InputRequiredResult`); `Err` is a protocol error.
    fn call<'a>(&'a self, call: ToolCall<'a>) -> BoxFuture<'a, Result<Value, RpcError>>;
}

/// One `prompts/get`, its required arguments present and every argument a string.
pub struct PromptGet<'a> {
    pub name: &'a str,
    pub args: &'a Map<String, Value>,
    pub params: &'a Value,
    pub ctx: &'a Ctx,
    pub server: &'a dyn Server,
}

pub trait PromptHandler: Send + Sync {
    /// The `GetPromptResult` (or an `InputRequiredResult`).
    fn get<'a>(&'a self, get: PromptGet<'a>) -> BoxFuture<'a, Result<Value, RpcError>>;
}
