//! `tasks/get`, `tasks/update` and `tasks/cancel` for a task another node owns (its id names
//! the owner, as a session id does) go to that node over the peer channel, as they came. An
//! owner that is gone answers as the specification says for an unknown or expired task.

use axum::body::Body;
use axum::http::{HeaderMap, Response};
use bytes::Bytes;
use serde_json::json;

use crate::node::{session_owner, ForwardError};
use crate::protocol::jsonrpc::{Message, RpcError};
use crate::transport::{HttpError, Shared};

fn routed(method: &str) -> bool {
    matches!(method, "tasks/get" | "tasks/update" | "tasks/cancel")
}

/// The owner's answer when the task lives elsewhere; `None` when this node is to answer.
pub(super) async fn forward(
    st: &Shared,
    headers: &HeaderMap,
    msg: &Message,
) -> Option<Result<Response<Body>, HttpError>> {
    if !routed(msg.method()) {
        return None;
    }
    let task = msg.param_str("taskId")?;
    if st.core.sessions.owned_here(task) {
        return None;
    }
    let owner = session_owner(task)?.to_string();
    let id = msg.id.clone();
    let unknown = || {
        HttpError::from_rpc(RpcError::invalid_params(format!(
            "Unknown or expired task: {task}"
        )))
        .for_id(id.as_ref())
    };
    let Some(fwd) = st.core.cluster.forwarder() else {
        return Some(Err(unknown()));
    };
    let body = json!({
        "jsonrpc": "2.0",
        "id": msg.id,
        "method": msg.method(),
        "params": msg.params,
    });
    let mut req = http::Request::builder()
        .method(http::Method::POST)
        .uri("/mcp");
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let req = req
        .body(Bytes::from(serde_json::to_vec(&body).unwrap_or_default()))
        .ok()?;
    Some(match fwd.forward(&owner, req).await {
        Ok(resp) => Ok(resp),
        Err(ForwardError::OwnerGone) => Err(unknown()),
        Err(ForwardError::Failed(e)) => {
            tracing::warn!(owner, error = %e, "forwarding to the task owner failed");
            Err(HttpError::new(
                502,
                RpcError::internal("The node owning this task did not answer"),
            )
            .for_id(id.as_ref()))
        }
    })
}
