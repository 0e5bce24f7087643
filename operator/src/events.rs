//! Kubernetes Events about a cluster and its children, through kube-runtime's `Recorder`.

use erlmcp_crds::ErlmcpCluster;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use tracing::warn;

/// The API server rejects longer notes.
const MAX_NOTE: usize = 1000;

/// Why an event names a child: every child event's reason and note come from here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildReason {
    /// A generated Secret, created once and never rewritten.
    Generated,
    /// A generated Secret that existed without a controller (restored from a backup): now
    /// owned by the cluster, its data kept.
    Adopted,
    Created,
    Updated,
    /// Deleted: the spec no longer asks for it.
    Pruned,
}

impl ChildReason {
    pub fn reason(self) -> &'static str {
        match self {
            ChildReason::Generated | ChildReason::Created => "Created",
            ChildReason::Adopted => "Adopted",
            ChildReason::Updated => "Updated",
            ChildReason::Pruned => "Pruned",
        }
    }

    pub fn note(self, kind: &str, name: &str) -> String {
        match self {
            ChildReason::Generated => format!("created {kind} {name} (generated once)"),
            ChildReason::Adopted => format!("adopted {kind} {name}: its data is kept"),
            ChildReason::Created => format!("created {kind} {name}"),
            ChildReason::Updated => format!("updated {kind} {name}"),
            ChildReason::Pruned => format!("deleted {kind} {name}: no longer in the spec"),
        }
    }
}

/// A child an event is about: `(api_version, kind, name)`.
pub struct ChildRef<'a> {
    pub api_version: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
}

/// Publishes the operator's events; a failure to publish is logged, never fails the reconcile.
pub struct Events {
    recorder: Recorder,
}

impl Events {
    pub fn new(recorder: Recorder) -> Self {
        Self { recorder }
    }

    /// An event about the cluster itself.
    pub async fn cluster(&self, cluster: &ErlmcpCluster, warning: bool, reason: &str, note: &str) {
        self.publish(cluster, None, warning, reason, note).await
    }

    /// An event about a child: the child is the event's related object, which also keeps the
    /// recorder from folding events about different children into one series.
    pub async fn child(&self, cluster: &ErlmcpCluster, child: ChildRef<'_>, why: ChildReason) {
        let related = ObjectReference {
            api_version: Some(child.api_version.into()),
            kind: Some(child.kind.into()),
            name: Some(child.name.into()),
            namespace: cluster.namespace(),
            ..Default::default()
        };
        let note = why.note(child.kind, child.name);
        self.publish(cluster, Some(related), false, why.reason(), &note)
            .await
    }

    async fn publish(
        &self,
        cluster: &ErlmcpCluster,
        secondary: Option<ObjectReference>,
        warning: bool,
        reason: &str,
        note: &str,
    ) {
        let ev = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note.chars().take(MAX_NOTE).collect()),
            action: "Reconcile".into(),
            secondary,
        };
        if let Err(e) = self.recorder.publish(&ev, &cluster.object_ref(&())).await {
            warn!(error = %e, reason, "could not publish event");
        }
    }
}
