//! stdio (`erlmcp serve --stdio`): newline-delimited JSON-RPC on stdin/stdout so desktop
//! clients can launch the server. Logs go to stderr.

use super::tcp::serve_stream;
use super::Shared;

pub async fn serve(st: Shared) {
    serve_stream(st, tokio::io::stdin(), tokio::io::stdout(), "stdio", None).await;
}
