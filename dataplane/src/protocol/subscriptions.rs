//! `subscriptions/listen` (modern): an acknowledged, filtered stream of change notifications,
//! each tagged with the subscription id (the listen request's id).

use serde_json::{json, Map, Value};
use tokio::sync::broadcast;

use super::jsonrpc::{self, Id, RpcError};
use super::revision::{META_SERVER_INFO, META_SUBSCRIPTION_ID};
use super::{resources, Core, ServerEvent};

pub struct Listener {
    pub id: Id,
    tools: bool,
    prompts: bool,
    resources: bool,
    uris: Vec<String>,
    rx: broadcast::Receiver<ServerEvent>,
}

impl Listener {
    /// Validate the filter and subscribe. Returns the listener and its acknowledgement.
    pub fn open(core: &Core, id: Id, params: &Value) -> Result<(Self, Value), RpcError> {
        let f = params
            .get("notifications")
            .and_then(Value::as_object)
            .ok_or_else(|| {
                RpcError::invalid_params("subscriptions/listen: notifications filter is required")
            })?;
        let flag = |k: &str| -> Result<bool, RpcError> {
            match f.get(k) {
                None | Some(Value::Null) => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(_) => Err(RpcError::invalid_params(format!(
                    "notifications.{k} must be a boolean"
                ))),
            }
        };
        let (tools, prompts, res) = (
            flag("toolsListChanged")?,
            flag("promptsListChanged")?,
            flag("resourcesListChanged")?,
        );
        let uris: Vec<String> = match f.get("resourceSubscriptions") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .filter(|u| resources::exists(core, u))
                .map(str::to_string)
                .collect(),
            Some(_) => {
                return Err(RpcError::invalid_params(
                    "notifications.resourceSubscriptions must be an array of URIs",
                ))
            }
        };
        let mut honored = Map::new();
        for (k, on) in [
            ("toolsListChanged", tools),
            ("promptsListChanged", prompts),
            ("resourcesListChanged", res),
        ] {
            if on {
                honored.insert(k.into(), json!(true));
            }
        }
        if !uris.is_empty() {
            honored.insert("resourceSubscriptions".into(), json!(uris));
        }
        let ack = jsonrpc::notification(
            "notifications/subscriptions/acknowledged",
            json!({"notifications": honored, "_meta": {META_SUBSCRIPTION_ID: id}}),
        );
        Ok((
            Self {
                id,
                tools,
                prompts,
                resources: res,
                uris,
                rx: core.events.subscribe(),
            },
            ack,
        ))
    }

    /// The next notification this subscription wants; None when the server shuts the channel.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            let ev = match self.rx.recv().await {
                Ok(ev) => ev,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            let meta = json!({META_SUBSCRIPTION_ID: self.id});
            match ev {
                ServerEvent::ListChanged(what) => {
                    let want = match what {
                        "tools" => self.tools,
                        "prompts" => self.prompts,
                        _ => self.resources,
                    };
                    if want {
                        return Some(jsonrpc::notification(
                            &format!("notifications/{what}/list_changed"),
                            json!({"_meta": meta}),
                        ));
                    }
                }
                ServerEvent::ResourceUpdated(uri) => {
                    if self.uris.iter().any(|u| **u == *uri) {
                        return Some(jsonrpc::notification(
                            "notifications/resources/updated",
                            json!({"uri": &*uri, "_meta": meta}),
                        ));
                    }
                }
            }
        }
    }

    /// The final response when the server ends the stream.
    pub fn closing_result(&self, core: &Core) -> Value {
        json!({"resultType": "complete", "_meta": {META_SUBSCRIPTION_ID: self.id, META_SERVER_INFO: core.server_info}})
    }
}
