//! Streamable HTTP on `/mcp`, both eras on one endpoint.
//!
//! - Modern (2026-07-28): every POST is self-describing (`MCP-Protocol-Version`, `Mcp-Method`,
//!   `Mcp-Name`, `_meta`); headers must agree with the body. A response is JSON unless the
//!   handler emits something first, then SSE; closing that stream cancels the request.
//!   `subscriptions/listen` answers with a long-lived SSE stream.
//! - Legacy (2025-11-25 .. 2024-11-05): `initialize` mints an `Mcp-Session-Id`; SSE events carry
//!   ids and are buffered per session so `GET` with `Last-Event-ID` resumes; `DELETE` ends the
//!   session; an unknown or expired session is 404. Disconnecting does not cancel a request.
//!
//! `modern` and `legacy` hold each era's handling, `stream` the JSON/SSE request runner they
//! share, `headers` the header rules.

mod headers;
mod legacy;
mod modern;
mod stream;
mod task_route;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::http::{HeaderMap, Response};
use axum::response::IntoResponse;
use bytes::Bytes;

use super::deadline_body::BodyTimedOut;
use super::{guard_forwardable, ForwardedPrincipal, HttpError, Shared};
use crate::protocol::jsonrpc::{self, Parsed, RpcError};
use crate::protocol::revision::{self, Legacy, META_PROTOCOL_VERSION};
use headers::header;

pub use headers::{
    accepts_json_and_sse, check_headers, decode_header_value, is_json_content_type, SESSION_HEADER,
    VERSION_HEADER,
};
pub use legacy::{delete, get};

pub async fn post(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response<Body> {
    // The headers are moved out rather than cloned (as the `HeaderMap` extractor would).
    let (mut parts, body) = req.into_parts();
    let headers = std::mem::take(&mut parts.headers);
    let fwd = parts.extensions.get::<ForwardedPrincipal>();
    // Origin, authentication, rate limit and media types pass before any of the body is read.
    let principal = match guard_forwardable(&st, &headers, peer, fwd)
        .and_then(|p| media_types(&headers).map(|()| p))
    {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    // Read as the `Bytes` extractor reads it (same limit, same rejections).
    let body = match Bytes::from_request(Request::from_parts(parts, body), &st).await {
        Ok(b) => b,
        Err(rejection) if timed_out(&rejection) => {
            return HttpError::new(
                408,
                RpcError::invalid_request("Request Timeout: the body was not sent in time"),
            )
            .into_response()
        }
        Err(rejection) => return rejection.into_response(),
    };
    dispatch(&st, &headers, body, principal, peer)
        .await
        .into_response()
}

/// Whether reading the body failed on `limits.bodyReadTimeoutSeconds`.
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<BodyTimedOut>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// 415 for a body that is not JSON, 406 for a client that cannot take both answers.
fn media_types(headers: &HeaderMap) -> Result<(), HttpError> {
    if !is_json_content_type(headers) {
        return Err(HttpError::new(
            415,
            RpcError::invalid_request(
                "Unsupported Media Type: Content-Type must be application/json",
            ),
        ));
    }
    if !accepts_json_and_sse(headers) {
        return Err(HttpError::new(
            406,
            RpcError::invalid_request(
                "Not Acceptable: Accept must include application/json and text/event-stream",
            ),
        ));
    }
    Ok(())
}

/// Hand a checked POST to its era.
async fn dispatch(
    st: &Shared,
    headers: &HeaderMap,
    body: Bytes,
    principal: Option<String>,
    peer: SocketAddr,
) -> Result<Response<Body>, HttpError> {
    st.core.metrics.received("http", 1);
    let parsed = jsonrpc::parse(&body).map_err(|e| HttpError::new(400, e))?;
    let hv = header(headers, &headers::VERSION);
    let has_meta = matches!(&parsed, Parsed::Single(Ok(m)) if m.meta().is_some_and(|m| m.contains_key(META_PROTOCOL_VERSION)));
    let session_id = header(headers, &headers::SESSION);
    let era = if session_id.is_some() && hv.is_none_or(|v| Legacy::parse(v.trim()).is_some()) {
        revision::Era::Legacy
    } else {
        revision::classify(hv, has_meta)
    };
    match era {
        revision::Era::Modern => modern::post(st, headers, parsed, principal).await,
        revision::Era::Legacy => {
            legacy::post(st, headers, body.clone(), parsed, principal, peer).await
        }
    }
}
