//! `/health`, `/ready`, `/live`, `/status` on the health port and `/metrics` on the metrics
//! port, plus the client behind `erlmcp healthcheck` (images have no curl). Nothing here changes
//! state: the port faces the network, so draining is on the loopback admin listener
//! (`erlmcp drain`, see [`super::admin`]).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::protocol::Core;

pub fn health_router(core: Arc<Core>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/live", get(live))
        .route("/ready", get(ready))
        .route("/status", get(status))
        .with_state(core)
}

pub fn metrics_router(core: Arc<Core>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(core)
}

async fn health(State(core): State<Arc<Core>>) -> impl IntoResponse {
    Json(
        json!({"status": "healthy", "ready": core.lifecycle.is_ready(), "draining": core.lifecycle.is_draining(), "version": env!("CARGO_PKG_VERSION")}),
    )
}

async fn live() -> impl IntoResponse {
    (StatusCode::OK, "OK")
}

async fn ready(State(core): State<Arc<Core>>) -> impl IntoResponse {
    if core.lifecycle.is_ready() {
        (StatusCode::OK, Json(json!({"status": "ready"})))
    } else {
        let why = if core.lifecycle.is_draining() {
            "draining"
        } else {
            "starting"
        };
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": why})),
        )
    }
}

async fn status(State(core): State<Arc<Core>>) -> impl IntoResponse {
    Json(core.node_status())
}

async fn metrics(State(core): State<Arc<Core>>) -> impl IntoResponse {
    core.metrics.ready.set(i64::from(core.lifecycle.is_ready()));
    let peers = core.cluster.peers();
    core.metrics
        .cluster_nodes
        .set(1 + peers.iter().filter(|p| p.state == "up").count() as i64);
    core.metrics
        .cluster_nodes_expected
        .set(core.cluster.expected_nodes() as i64);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        core.metrics.render(),
    )
}

/// `erlmcp healthcheck`: GET the endpoint on localhost; true on 200.
pub async fn check(port: u16, path: &str, timeout: std::time::Duration) -> Result<(), String> {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri: http::Uri = format!("http://127.0.0.1:{port}{path}")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let resp = tokio::time::timeout(timeout, client.get(uri))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| format!("{e}"))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if status == StatusCode::OK {
        Ok(())
    } else {
        Err(format!(
            "HTTP {}: {}",
            status.as_u16(),
            String::from_utf8_lossy(&body)
        ))
    }
}
