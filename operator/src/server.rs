//! Health and metrics over HTTP: `/healthz` (no controller stalled), `/readyz` (connected to the
//! API server and every running controller synced; followers are ready too), `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::health::Health;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct ServerState {
    pub metrics: Metrics,
    pub health: Arc<Health>,
}

pub fn router(state: ServerState) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|State(s): State<ServerState>| async move {
                if s.health.live(Instant::now()) {
                    (StatusCode::OK, "ok")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "controller stalled")
                }
            }),
        )
        .route(
            "/readyz",
            get(|State(s): State<ServerState>| async move {
                if s.health.ready() {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "starting")
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(s): State<ServerState>| async move {
                (
                    [("content-type", "text/plain; version=0.0.4")],
                    s.metrics.render(),
                )
            }),
        )
        .layer(RequestBodyLimitLayer::new(4096))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(10),
        ))
        .with_state(state)
}

/// Serve until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    state: ServerState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    tracing::info!(%addr, "health and metrics server listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http::Request;
    use tower::ServiceExt;

    async fn call(state: &ServerState, path: &str) -> (StatusCode, String) {
        let resp = router(state.clone())
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn probes_follow_the_health_and_metrics_render() {
        let state = ServerState {
            metrics: Metrics::new(),
            health: Arc::new(Health::default()),
        };
        assert_eq!(call(&state, "/healthz").await.0, StatusCode::OK);
        assert_eq!(
            call(&state, "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        state.health.discovered();
        state.health.controller_started("", Instant::now());
        assert_eq!(
            call(&state, "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE,
            "not before the first sync of the watch"
        );
        state.health.controller_synced("");
        assert_eq!(call(&state, "/readyz").await.0, StatusCode::OK);
        state.health.controller_stopped("", false);
        assert_eq!(
            call(&state, "/healthz").await.0,
            StatusCode::SERVICE_UNAVAILABLE,
            "a controller that ended on its own is not live"
        );
        let (code, body) = call(&state, "/metrics").await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("erlmcp_operator_leader"));
        assert_eq!(call(&state, "/nope").await.0, StatusCode::NOT_FOUND);
    }
}
