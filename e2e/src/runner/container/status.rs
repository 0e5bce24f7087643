//! What the pod status says about one container ([`CtrView`], [`CtrState`]), and its
//! `containerStatuses` JSON.

use k8s_openapi::api::core::v1::Container;
use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq)]
pub enum CtrState {
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        started_at: String,
    },
    Terminated {
        exit_code: i32,
        signal: Option<i32>,
        reason: String,
        message: String,
        started_at: String,
        finished_at: String,
    },
}

impl CtrState {
    fn to_json(&self) -> Value {
        match self {
            CtrState::Waiting { reason, message } => {
                json!({"waiting": {"reason": reason, "message": if message.is_empty() { Value::Null } else { json!(message) }}})
            }
            CtrState::Running { started_at } => json!({"running": {"startedAt": started_at}}),
            CtrState::Terminated {
                exit_code,
                signal,
                reason,
                message,
                started_at,
                finished_at,
            } => json!({"terminated": {
                "exitCode": exit_code, "signal": signal, "reason": reason,
                "message": if message.is_empty() { Value::Null } else { json!(message) },
                "startedAt": started_at, "finishedAt": finished_at,
                "containerID": Value::Null,
            }}),
        }
    }
}

/// What the pod status says about one container.
#[derive(Debug, Clone, PartialEq)]
pub struct CtrView {
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub pid: Option<u32>,
    pub state: CtrState,
    pub last_state: Option<CtrState>,
    pub restart_count: i32,
    pub started: bool,
    pub ready: bool,
}

impl CtrView {
    pub fn new(c: &Container) -> Self {
        Self {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            image_id: String::new(),
            pid: None,
            state: CtrState::Waiting {
                reason: "ContainerCreating".into(),
                message: String::new(),
            },
            last_state: None,
            restart_count: 0,
            started: false,
            ready: false,
        }
    }

    pub fn to_json(&self) -> Value {
        let running = matches!(self.state, CtrState::Running { .. });
        json!({
            "name": self.name,
            "image": self.image,
            "imageID": self.image_id,
            "containerID": self.pid.filter(|_| running).map(|p| format!("erlmcp-pod-runner://{p}")),
            "state": self.state.to_json(),
            "lastState": self.last_state.as_ref().map(|s| s.to_json()).unwrap_or(json!({})),
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
        })
    }

    pub fn terminated_ok(&self) -> Option<bool> {
        match &self.state {
            CtrState::Terminated { exit_code, .. } => Some(*exit_code == 0),
            _ => None,
        }
    }
}
