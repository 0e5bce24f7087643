//! Streamable HTTP: POSTs on a keep-alive connection pool of the client's own (so each
//! simulated client has its own connections), the session id header once initialised, an
//! optional GET stream, and DELETE at the end of a session.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Bytes,
    pub session_id: Option<String>,
}

#[derive(Clone)]
pub struct HttpConn {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    headers: HeaderMap,
    read_delay: Duration,
}

/// The error kind of a failed exchange (the request may or may not have reached the server).
/// A response's whole body; failing to read it is the `transport` error kind.
pub async fn read_body<B: hyper::body::Body>(resp: hyper::Response<B>) -> Result<Bytes, String> {
    resp.into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|_| "transport".to_string())
}

fn kind(e: &hyper_util::client::legacy::Error) -> String {
    if e.is_connect() {
        "connect".into()
    } else {
        "transport".into()
    }
}

impl HttpConn {
    pub fn new(
        url: &str,
        headers: &[(&'static str, String)],
        pool: usize,
        read_delay: Duration,
    ) -> anyhow::Result<Self> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(pool)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_timer(TokioTimer::new())
            .build(connector);
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(HeaderName::from_static(k), HeaderValue::from_str(v)?);
        }
        Ok(HttpConn {
            client,
            uri: url.parse()?,
            headers: h,
            read_delay,
        })
    }

    /// Every later request carries this session id.
    pub fn set_session(&mut self, id: &str) -> anyhow::Result<()> {
        self.headers
            .insert("mcp-session-id", HeaderValue::from_str(id)?);
        Ok(())
    }

    pub fn set_header(&mut self, k: &'static str, v: &str) -> anyhow::Result<()> {
        self.headers
            .insert(HeaderName::from_static(k), HeaderValue::from_str(v)?);
        Ok(())
    }

    fn request(&self, method: Method, body: Bytes) -> Request<Full<Bytes>> {
        let mut r = Request::new(Full::new(body));
        *r.method_mut() = method;
        *r.uri_mut() = self.uri.clone();
        *r.headers_mut() = self.headers.clone();
        r
    }

    /// POST one JSON-RPC message and read the whole answer (after the slow reader's pause).
    pub async fn post(&self, body: String) -> Result<Answer, String> {
        self.post_with(body, &[]).await
    }

    /// POST with some headers replaced (`None` removes one): handshakes use other methods.
    pub async fn post_with(
        &self,
        body: String,
        replace: &[(&'static str, Option<&str>)],
    ) -> Result<Answer, String> {
        let mut req = self.request(Method::POST, Bytes::from(body));
        for (k, v) in replace {
            match v.and_then(|v| HeaderValue::from_str(v).ok()) {
                Some(v) => req.headers_mut().insert(*k, v),
                None => req.headers_mut().remove(*k),
            };
        }
        let resp = self.client.request(req).await.map_err(|e| kind(&e))?;
        let status = resp.status().as_u16();
        let header = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header("content-type").unwrap_or_default();
        let session_id = header("mcp-session-id");
        if !self.read_delay.is_zero() {
            tokio::time::sleep(self.read_delay).await;
        }
        let body = read_body(resp).await?;
        Ok(Answer {
            status,
            content_type,
            body,
            session_id,
        })
    }

    /// Open the session's GET stream; `on_event` runs for each SSE event until the stream ends
    /// or `until` passes. Returns the error kind when the stream could not be opened.
    pub async fn listen(
        &self,
        until: tokio::time::Instant,
        mut on_event: impl FnMut(),
    ) -> Result<(), String> {
        let mut req = self.request(Method::GET, Bytes::new());
        req.headers_mut()
            .insert("accept", HeaderValue::from_static("text/event-stream"));
        req.headers_mut().remove("content-type");
        let resp = tokio::time::timeout_at(until, self.client.request(req))
            .await
            .map_err(|_| "sse_timeout".to_string())?
            .map_err(|e| kind(&e))?;
        if resp.status() != 200 {
            return Err(format!("sse_http_{}", resp.status().as_u16()));
        }
        let mut body = resp.into_body();
        let mut pending = String::new();
        loop {
            let frame = match tokio::time::timeout_at(until, body.frame()).await {
                Err(_) | Ok(None) => return Ok(()),
                Ok(Some(Err(_))) => return Err("sse_transport".into()),
                Ok(Some(Ok(f))) => f,
            };
            if let Some(d) = frame.data_ref() {
                pending.push_str(&String::from_utf8_lossy(d));
                while let Some(i) = pending.find("\n\n") {
                    on_event();
                    pending.drain(..i + 2);
                }
            }
        }
    }

    /// End the session (best effort: the run is over either way).
    pub async fn delete(&self) {
        let req = self.request(Method::DELETE, Bytes::new());
        let _ = tokio::time::timeout(Duration::from_secs(2), self.client.request(req)).await;
    }
}
