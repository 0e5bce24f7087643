//! [`ClientRequests`]: our requests to one client (a legacy session or a connection) that await
//! its answer, keyed by the request id we gave them.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::oneshot;

use crate::small_map::SmallMap;
use crate::wire::jsonrpc::{Id, RpcError};

/// Our requests to one client (a legacy session or a connection) that await its answer.
#[derive(Default)]
pub struct ClientRequests {
    next_id: AtomicI64,
    pending: SmallMap<Id, oneshot::Sender<Result<Value, RpcError>>>,
}

impl ClientRequests {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
    /// A fresh request id and where its answer will arrive.
    pub fn register(&self) -> (Id, oneshot::Receiver<Result<Value, RpcError>>) {
        let id = Id::Str(format!(
            "srv-{}",
            self.next_id.fetch_add(1, Ordering::Relaxed)
        ));
        let (tx, rx) = oneshot::channel();
        self.pending.insert(id.clone(), tx);
        (id, rx)
    }
    /// Stop waiting for `id` (not sent, or timed out).
    pub fn forget(&self, id: &Id) {
        self.pending.remove(id);
    }
    /// A client's response to one of our requests. False if nobody waits for that id.
    pub fn complete(&self, id: &Id, result: Option<Value>, error: Option<Value>) -> bool {
        match self.pending.remove(id) {
            Some((_, tx)) => {
                let r = match (result, error) {
                    (Some(v), _) => Ok(v),
                    (None, Some(e)) => Err(RpcError::new(
                        e.get("code").and_then(Value::as_i64).unwrap_or(-32603) as i32,
                        e.get("message")
                            .and_then(Value::as_str)
                            .unwrap_or("client error")
                            .to_string(),
                    )),
                    (None, None) => Err(RpcError::internal("empty response")),
                };
                let _ = tx.send(r);
                true
            }
            None => false,
        }
    }
}
