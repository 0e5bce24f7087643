//! A small HTTP/1.1 client over hyper for the tests: [`request`] for a server that is meant to
//! answer (it panics otherwise), [`try_request`] for one that may be down or cut off.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn header(&self, k: &str) -> Option<String> {
        self.headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    }
    /// The JSON body, or for SSE the last JSON-RPC response in the stream.
    pub fn json(&self) -> Value {
        if self
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream"))
        {
            return sse_data(&self.body)
                .into_iter()
                .rev()
                .find(|v| v.get("result").is_some() || v.get("error").is_some())
                .unwrap_or(Value::Null);
        }
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

pub fn sse_data(body: &str) -> Vec<Value> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

/// A request that must be answered; the body is read within 10 s (a body the server cuts
/// short reads as empty).
pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Resp {
    let mut b = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = client()
        .request(b.body(Full::new(body.into())).unwrap())
        .await
        .expect("http");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
        .await
        .expect("body in time")
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(8)
        .build_http()
}

pub async fn try_get(url: &str) -> Option<(u16, String)> {
    let r = try_request("GET", url, &[], Bytes::new(), Duration::from_secs(3)).await;
    r.ok().map(|r| (r.status, r.body))
}

/// A request that may fail (refused, reset, or not answered within `timeout`).
pub async fn try_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
    timeout: Duration,
) -> Result<Resp, String> {
    let mut b = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(body.into())).map_err(|e| e.to_string())?;
    let fut = async {
        let resp = client().request(req).await.map_err(|e| format!("{e:?}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Resp {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| format!("{method} {url}: timed out after {timeout:?}"))?
}
