//! The admin listener, on 127.0.0.1 only: what it offers cannot be called from the network.
//! `POST /drain` is what `erlmcp drain` (an exec preStop hook) calls: leave the ready set and
//! tell the peers, then refuse new sessions and work, and wait for the requests in flight,
//! bounded by `timeoutSeconds`. The health port has no `/drain`: it faces the network.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{AppState, Shared};

/// `ERLMCP_ADMIN_PORT` when unset.
pub const DEFAULT_PORT: u16 = 9091;
/// How long `/drain` waits for in-flight work when the caller names no bound.
pub const DEFAULT_DRAIN_WAIT: Duration = Duration::from_secs(20);
const MAX_DRAIN_WAIT: Duration = Duration::from_secs(3600);

pub fn router(state: Shared) -> Router {
    Router::new().route("/drain", post(drain)).with_state(state)
}

async fn drain(State(st): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    let wait = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_DRAIN_WAIT)
        .min(MAX_DRAIN_WAIT);
    st.core.lifecycle.set_ready(false);
    st.core.cluster.leave().await;
    st.core.lifecycle.begin_drain();
    tracing::info!(
        wait_ms = wait.as_millis() as u64,
        "drain requested: waiting for in-flight work"
    );
    let idle = wait_idle(&st, wait).await;
    let in_flight = in_flight(&st);
    Json(json!({"status": if idle { "drained" } else { "timeout" }, "inFlight": in_flight}))
}

/// Requests still running (each holds a permit of the global cap).
pub fn in_flight(st: &AppState) -> usize {
    let sem = &st.limits.in_flight;
    st.limits
        .max_in_flight
        .saturating_sub(sem.available_permits())
}

/// Wait until no request is in flight, or `bound` passes. True when idle.
pub async fn wait_idle(st: &AppState, bound: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        if in_flight(st) == 0 {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `erlmcp drain`: ask the local server to drain and wait for its answer.
pub async fn request_drain(port: u16, wait: Duration) -> Result<Value, String> {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = http::Request::post(format!(
        "http://127.0.0.1:{port}/drain?timeoutSeconds={}",
        wait.as_secs()
    ))
    .body(Empty::new())
    .map_err(|e| e.to_string())?;
    // The server bounds its own wait; this bound only covers a server that hangs.
    let resp = tokio::time::timeout(wait + Duration::from_secs(30), client.request(req))
        .await
        .map_err(|_| "no answer".to_string())?
        .map_err(|e| format!("127.0.0.1:{port}: {e}"))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if !status.is_success() {
        return Err(format!(
            "HTTP {}: {}",
            status.as_u16(),
            String::from_utf8_lossy(&body)
        ));
    }
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}
