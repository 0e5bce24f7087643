//! The rmcp side of `bench/compare.sh`: rmcp's own Streamable HTTP service (sessions for the
//! 2025 revisions, stateless for 2026-07-28, as rmcp serves them by default) with one `echo`
//! tool that answers like erlmcp's: the `message` argument back as one text block.
//! Benchmark only; binds loopback.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use axum::serve::ListenerExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{json, Value};

#[derive(Clone)]
struct Echo {
    tool: Tool,
}

impl Echo {
    fn new() -> Self {
        let schema = json!({
            "type": "object",
            "properties": {"message": {"type": "string"}},
            "required": ["message"]
        });
        let Value::Object(schema) = schema else {
            unreachable!("a JSON object literal")
        };
        Echo {
            tool: Tool::new("echo", "Echoes back the message", Arc::new(schema)),
        }
    }
}

impl ServerHandler for Echo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("rmcp-echo", env!("CARGO_PKG_VERSION")))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(vec![self.tool.clone()]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if request.name != "echo" {
            return Err(ErrorData::invalid_params("unknown tool", None));
        }
        let message = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("message"))
            .and_then(Value::as_str)
            .ok_or_else(|| ErrorData::invalid_params("message must be a string", None))?;
        Ok(CallToolResult::success(vec![ContentBlock::text(message.to_string())]).into())
    }
}

/// `--port N` (default 8081); nothing else.
fn port_from_args() -> Result<u16> {
    let mut args = std::env::args().skip(1);
    let mut port = 8081;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => {
                port = args
                    .next()
                    .context("--port needs a value")?
                    .parse()
                    .context("--port is not a port number")?
            }
            other => bail!("unknown argument {other:?} (usage: rmcp-echo [--port N])"),
        }
    }
    Ok(port)
}

#[tokio::main]
async fn main() -> Result<()> {
    let port = port_from_args()?;
    let service: StreamableHttpService<Echo, LocalSessionManager> = StreamableHttpService::new(
        || Ok(Echo::new()),
        Default::default(),
        StreamableHttpServerConfig::default(),
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    // TCP_NODELAY as erlmcp and the hyper ceiling set it: without it, an answer written in
    // pieces (an SSE event, then the end of the stream) waits out Nagle and the client's
    // delayed ACK, and rmcp would be measured at ~40 ms a request instead of at its speed.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("bind 127.0.0.1:{port}"))?
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    eprintln!("rmcp-echo listening on http://127.0.0.1:{port}/mcp");
    axum::serve(listener, router).await?;
    Ok(())
}
