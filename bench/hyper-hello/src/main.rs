//! The ceiling of `bench/compare.sh`: the least an HTTP/1.1 server on hyper can do per request
//! and still satisfy the load generator. It reads each request's body whole and answers with
//! one fixed JSON-RPC result whose text is `--echo-bytes` long (what erlmcp-load checks of an
//! echo), built once at start: no JSON parsing, no MCP, no routing. Benchmark only; binds
//! loopback.

use std::convert::Infallible;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::json;

struct Args {
    port: u16,
    echo_bytes: usize,
}

fn parse_args() -> Result<Args> {
    let mut out = Args {
        port: 8082,
        echo_bytes: 100,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match a.as_str() {
            "--port" => out.port = value("--port")?.parse().context("--port")?,
            "--echo-bytes" => {
                out.echo_bytes = value("--echo-bytes")?.parse().context("--echo-bytes")?
            }
            other => {
                bail!("unknown argument {other:?} (usage: hyper-hello [--port N] [--echo-bytes N])")
            }
        }
    }
    Ok(out)
}

/// The one answer: a `tools/call` result carrying `n` characters of text.
fn fixed_answer(n: usize) -> Bytes {
    let text = "x".repeat(n);
    let v =
        json!({"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": text}]}});
    Bytes::from(v.to_string())
}

async fn answer(req: Request<Incoming>, body: Bytes) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the request whole, as any server must before answering it.
    let _ = req.into_body().collect().await;
    let mut resp = Response::new(Full::new(body));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let body = fixed_answer(args.echo_bytes);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("bind 127.0.0.1:{}", args.port))?;
    eprintln!(
        "hyper-hello listening on http://127.0.0.1:{}/mcp",
        args.port
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| answer(req, body.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_answer_carries_a_text_of_the_asked_length() {
        for n in [0, 1, 100, 2048] {
            let v: serde_json::Value = serde_json::from_slice(&fixed_answer(n)).unwrap();
            assert_eq!(v["result"]["content"][0]["text"].as_str().unwrap().len(), n);
        }
    }
}
