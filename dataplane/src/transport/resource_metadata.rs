//! The RFC 9728 metadata endpoint (the document itself is built in `crate::resource_metadata`).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::Shared;

/// `GET /.well-known/oauth-protected-resource[/mcp]`. Public by design (no auth: a client
/// reads it to learn how to get a token), readable cross-origin by browser clients.
pub async fn serve(State(state): State<Shared>, headers: HeaderMap) -> Response {
    match state.auth.resource_metadata(&headers) {
        None => StatusCode::NOT_FOUND.into_response(),
        Some(doc) => {
            let mut r = axum::Json(doc).into_response();
            r.headers_mut().insert(
                http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
            r
        }
    }
}
