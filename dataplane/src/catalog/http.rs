//! `http` tool backend: send the arguments as JSON to a URL and map the response. Header values
//! are read when the call happens, so rotated Secrets take effect without a restart.

use std::time::Duration;

use bytes::Bytes;
use erlmcp_crds::{HttpBackend, ValueSource};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tracing::Instrument;

use super::read_value_source;
use crate::observe::trace;

pub struct HttpTool {
    url: http::Uri,
    method: http::Method,
    headers: Vec<(http::HeaderName, ValueSource)>,
    timeout: Duration,
    max_bytes: usize,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl HttpTool {
    pub fn new(spec: &HttpBackend) -> Result<Self, String> {
        let url: http::Uri = spec
            .url
            .parse()
            .map_err(|e| format!("url {:?}: {e}", spec.url))?;
        if !matches!(url.scheme_str(), Some("http") | Some("https")) {
            return Err(format!("url {:?} must be http:// or https://", spec.url));
        }
        let method =
            http::Method::from_bytes(spec.method.as_bytes()).map_err(|e| format!("method: {e}"))?;
        let mut headers = Vec::new();
        for (i, h) in spec.headers.iter().enumerate() {
            let name = http::HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|e| format!("headers[{i}].name: {e}"))?;
            if let Some(f) = &h.value.file {
                if std::fs::metadata(f).is_err() {
                    return Err(format!("headers[{i}].value.file: {f} is not readable"));
                }
            }
            headers.push((name, h.value.clone()));
        }
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| format!("TLS roots: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            url,
            method,
            headers,
            timeout: Duration::from_secs(spec.timeout_seconds.max(1) as u64),
            max_bytes: spec.max_response_bytes as usize,
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// Call the backend. Failures are tool errors (`isError`), not protocol errors, so the model
    /// sees them.
    pub async fn call(&self, args: &Value, structured: bool) -> Value {
        match tokio::time::timeout(self.timeout, self.call_inner(args)).await {
            Err(_) => tool_error(format!(
                "backend did not answer within {}s",
                self.timeout.as_secs()
            )),
            Ok(Err(e)) => tool_error(e),
            Ok(Ok((status, ctype, body))) => {
                let text = String::from_utf8_lossy(&body).into_owned();
                if status.is_server_error() {
                    // A 5xx body is the backend's own trouble (stack traces, internal hosts):
                    // it stays in our log, the client learns only the status.
                    tracing::warn!(url = %self.url, status = status.as_u16(), body = truncate(&text, 2000), "tool backend failed");
                    return tool_error(format!(
                        "backend answered HTTP {}; details are in the server log",
                        status.as_u16()
                    ));
                }
                if !status.is_success() {
                    // A 4xx body says what was wrong with the call: the model can act on it.
                    return tool_error(format!(
                        "backend answered HTTP {}: {}",
                        status.as_u16(),
                        truncate(&text, 2000)
                    ));
                }
                let is_json = ctype.as_deref().is_some_and(|c| c.contains("json"));
                match (is_json, serde_json::from_slice::<Value>(&body)) {
                    (true, Ok(v)) if structured && v.is_object() => {
                        json!({"content": [{"type": "text", "text": text}], "structuredContent": v})
                    }
                    _ => json!({"content": [{"type": "text", "text": text}]}),
                }
            }
        }
    }

    async fn call_inner(
        &self,
        args: &Value,
    ) -> Result<(http::StatusCode, Option<String>, Bytes), String> {
        let mut req = http::Request::builder()
            .method(self.method.clone())
            .uri(self.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(
                http::header::ACCEPT,
                "application/json, text/plain;q=0.9, */*;q=0.5",
            );
        for (name, src) in &self.headers {
            let v = read_value_source(src).map_err(|e| format!("header {name}: {e}"))?;
            req = req.header(name, v);
        }
        let body = Full::new(Bytes::from(serde_json::to_vec(args).unwrap_or_default()));
        let mut req = req.body(body).map_err(|e| e.to_string())?;
        // The backend joins the request's trace: a child span, passed on as `traceparent`.
        let span = trace::backend_span(&self.method, &self.url);
        trace::inject(&span, req.headers_mut());
        let resp = self
            .client
            .request(req)
            .instrument(span.clone())
            .await
            .map_err(|e| format!("backend unreachable: {e}"))?;
        let status = resp.status();
        span.record("http.response.status_code", status.as_u16());
        let ctype = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = Limited::new(resp.into_body(), self.max_bytes)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    format!("backend response larger than {} bytes", self.max_bytes)
                } else {
                    format!("reading backend response: {e}")
                }
            })?;
        Ok((status, ctype, body.to_bytes()))
    }
}

pub fn tool_error(msg: impl Into<String>) -> Value {
    json!({"content": [{"type": "text", "text": msg.into()}], "isError": true})
}

pub fn truncate(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot HTTP/1.1 server on loopback that answers every request with `status` and `body`.
    async fn backend(status: &'static str, body: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for _ in 0..4 {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            }
        });
        format!("url: http://{addr}/call\n")
    }

    fn tool(spec: &str) -> HttpTool {
        HttpTool::new(&serde_yaml::from_str(spec).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn server_errors_do_not_echo_the_backend_body() {
        let t = tool(&backend("500 Internal Server Error", "trace at db-7.internal:5432").await);
        let r = t.call(&json!({}), false).await;
        assert_eq!(r["isError"], true, "{r}");
        let text = r["content"][0]["text"].as_str().unwrap();
        assert!(text.contains("HTTP 500"), "{text}");
        assert!(!text.contains("db-7.internal"), "{text}");
    }

    #[tokio::test]
    async fn client_errors_keep_the_reason() {
        let t = tool(&backend("422 Unprocessable Entity", "field city is required").await);
        let r = t.call(&json!({}), false).await;
        assert_eq!(r["isError"], true, "{r}");
        let text = r["content"][0]["text"].as_str().unwrap();
        assert!(
            text.contains("HTTP 422") && text.contains("field city is required"),
            "{text}"
        );
    }
}
