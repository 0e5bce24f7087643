//! The OTLP exporter's HTTP client: hyper with rustls (ring), the same stack the rest of the
//! workspace uses, so tracing pulls in neither reqwest nor openssl.
//!
//! The SDK's batch processor exports from its own thread (not a tokio worker), so each request
//! is spawned onto the runtime that was current at start-up and awaited from there.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use opentelemetry_http::{HttpClient, HttpError};

/// Larger answers from a collector are refused: an OTLP response is a few bytes.
const MAX_RESPONSE: usize = 1 << 20;

#[derive(Clone)]
pub struct OtlpHttpClient {
    runtime: tokio::runtime::Handle,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for OtlpHttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpHttpClient")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl OtlpHttpClient {
    /// `http://` and `https://` endpoints; server certificates checked against the system roots.
    pub fn new(runtime: tokio::runtime::Handle, timeout: Duration) -> std::io::Result<Self> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
        Ok(Self {
            runtime,
            client,
            timeout,
        })
    }
}

#[async_trait::async_trait]
impl HttpClient for OtlpHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let timeout = self.timeout;
        let fut = async move {
            let (parts, body) = request.into_parts();
            let req = Request::from_parts(parts, Full::new(body));
            let resp = tokio::time::timeout(timeout, async {
                let resp = client.request(req).await?;
                let (parts, body) = resp.into_parts();
                let body = Limited::new(body, MAX_RESPONSE).collect().await?.to_bytes();
                Ok::<_, HttpError>(Response::from_parts(parts, body))
            })
            .await
            .map_err(|_| -> HttpError {
                format!("OTLP export timed out after {timeout:?}").into()
            })??;
            Ok::<_, HttpError>(resp)
        };
        self.runtime.spawn(fut).await?
    }
}
