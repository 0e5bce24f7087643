//! Which child changes are news: the watch brings back every write the operator makes, and a
//! reconcile that re-applies what is already there costs ~20 API requests. Here: the filter of
//! child watch events that reconcile an owner, and the record of the operator's own writes that
//! lets a reconcile skip a child the server already holds as the operator last applied it.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::Value;

use crate::desired::FIELD_MANAGER;

/// What part of a child a reconcile cares about: its generation (spec) where it has one,
/// else every change (ConfigMaps, Secrets, RBAC objects have no status to churn). A digest:
/// the record holds one per child, and 9,000 children's strings would be megabytes.
fn signature<K: Resource>(o: &K) -> u64 {
    match o.meta().generation {
        Some(g) => digest(&("g", g)),
        None => digest(&(
            "rv",
            o.meta().resource_version.as_deref().unwrap_or_default(),
        )),
    }
}

fn digest<T: Hash + ?Sized>(v: &T) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

/// The record's key of a child: its uid (a re-created child is another), else its name.
fn key<K: Resource>(o: &K) -> u64 {
    match &o.meta().uid {
        Some(uid) => digest(uid.as_str()),
        None => digest(&("name", o.name_any())),
    }
}

/// A stable digest of a desired object, to tell whether a child's desired state moved.
pub fn content_hash(object: &Value) -> u64 {
    digest(&object.to_string())
}

fn rv_digest<K: Resource>(o: &K) -> u64 {
    digest(o.meta().resource_version.as_deref().unwrap_or_default())
}

/// What a status write leaves as it was: the generation (the spec) and the metadata others may
/// edit (labels, annotations, owners, finalizers). None for kinds without a generation, where
/// any write may be to the part the operator applies.
fn spec_and_metadata<K: Resource>(o: &K) -> Option<u64> {
    let m = o.meta();
    let generation = m.generation?;
    let kept = serde_json::to_value((
        generation,
        &m.labels,
        &m.annotations,
        &m.owner_references,
        &m.finalizers,
        &m.deletion_timestamp,
    ))
    .ok()?;
    Some(content_hash(&kept))
}

/// What the operator last applied of one child.
struct Applied {
    /// The digest of the stored object's resourceVersion: any change at all moves it.
    resource_version: u64,
    /// The digest of the desired object sent.
    desired: u64,
    /// [`spec_and_metadata`] of the stored object: a StatefulSet's or an HPA's status moves
    /// its resourceVersion every few seconds, and re-applying for that changes nothing.
    spec_and_metadata: Option<u64>,
}

#[derive(Default)]
struct Record {
    /// The last signature seen of each child ([`key`]), from the watch and from own writes.
    seen: HashMap<u64, u64>,
    /// What the operator last applied of each child ([`key`]).
    applied: HashMap<u64, Applied>,
}

/// The operator's record of its children, shared by the child watches and the reconciles.
/// Bounded by the children that exist: a deletion forgets its entries.
#[derive(Clone, Default)]
pub struct OwnWrites(Arc<Mutex<Record>>);

impl OwnWrites {
    /// The operator applied the desired object digested as `desired` and the server stored `o`.
    pub fn applied<K: Resource>(&self, o: &K, desired: u64) {
        if o.meta().uid.is_some() {
            let applied = Applied {
                resource_version: rv_digest(o),
                desired,
                spec_and_metadata: spec_and_metadata(o),
            };
            let (key, sig) = (key(o), signature(o));
            let mut r = self.lock();
            r.seen.insert(key, sig);
            r.applied.insert(key, applied);
        }
    }

    /// Whether `current` (the child as cached) is still what the server returned when the
    /// operator last applied the same desired object, to the resourceVersion or, for kinds
    /// with a generation, but for its status: applying again would change nothing.
    pub fn unchanged<K: Resource>(&self, current: &K, desired: u64) -> bool {
        if current.meta().uid.is_none() || current.meta().resource_version.is_none() {
            return false;
        }
        let (key, rv) = (key(current), rv_digest(current));
        let Some((same_rv, same_desired, at_apply)) = self.lock().applied.get(&key).map(|a| {
            (
                a.resource_version == rv,
                a.desired == desired,
                a.spec_and_metadata,
            )
        }) else {
            return false;
        };
        // The digest of the cached object is taken outside the lock the watches share.
        same_desired && (same_rv || at_apply.is_some_and(|h| Some(h) == spec_and_metadata(current)))
    }

    /// Whether `o` differs from the last signature seen of it; remembers it.
    fn changed<K: Resource>(&self, o: &K) -> bool {
        let (key, sig) = (key(o), signature(o));
        let mut r = self.lock();
        r.seen.insert(key, sig) != Some(sig)
    }

    fn forget<K: Resource>(&self, o: &K) {
        let key = key(o);
        let mut r = self.lock();
        r.seen.remove(&key);
        r.applied.remove(&key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().seen.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Record> {
        // A panic while holding it cannot leave the maps inconsistent: plain inserts/removes.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether anyone but the operator writes part of `o` other than its status. A change to a
/// child only the operator writes is the operator's own (its creation, its spec), which the
/// reconcile that wrote it has seen: unlike [`OwnWrites`], this holds however the watch event
/// and the write's response race. Unknown writers count as others.
fn written_by_others<K: Resource>(o: &K) -> bool {
    match &o.meta().managed_fields {
        None => true,
        Some(entries) => entries.iter().any(|e| {
            e.subresource.as_deref() != Some("status")
                && e.manager.as_deref() != Some(FIELD_MANAGER)
        }),
    }
}

/// Child watch events that should reconcile the owner: creations, spec changes and deletions
/// made by someone else. Status-only updates (a StatefulSet's ready count, an HPA's metrics)
/// are dropped here: they reach the status trigger instead, which re-applies nothing. So are
/// the echoes of the operator's own writes.
pub fn child_changes<K, S>(
    events: S,
    seen: OwnWrites,
) -> impl Stream<Item = Result<K, watcher::Error>>
where
    K: Resource + Clone,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    events.filter_map(move |ev| {
        let out = match ev {
            Err(e) => Some(Err(e)),
            Ok(watcher::Event::Apply(o)) | Ok(watcher::Event::InitApply(o)) => {
                (seen.changed(&o) && written_by_others(&o)).then_some(Ok(o))
            }
            Ok(watcher::Event::Delete(o)) => {
                seen.forget(&o);
                Some(Ok(o))
            }
            Ok(watcher::Event::Init) | Ok(watcher::Event::InitDone) => None,
        };
        futures::future::ready(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use k8s_openapi::api::apps::v1::StatefulSet;
    use k8s_openapi::api::core::v1::ConfigMap;
    use serde_json::json;

    fn sts(uid: &str, generation: i64, rv: &str) -> StatefulSet {
        serde_json::from_value(json!({"metadata": {"name": "mcp", "namespace": "prod",
            "uid": uid, "generation": generation, "resourceVersion": rv}}))
        .unwrap()
    }

    fn passed<K: Resource + Clone>(events: Vec<watcher::Event<K>>) -> Vec<K> {
        let s = futures::stream::iter(events.into_iter().map(Ok));
        block_on(
            child_changes(s, OwnWrites::default())
                .map(|r| r.unwrap())
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn status_only_child_updates_do_not_reconcile() {
        use watcher::Event::*;
        let got = passed(vec![
            Init,
            InitApply(sts("a", 1, "10")),
            InitDone,
            Apply(sts("a", 1, "11")), // ready count moved
            Apply(sts("a", 2, "12")), // someone edited the spec
            Delete(sts("a", 2, "13")),
            Apply(sts("a", 1, "14")), // re-created
        ]);
        let rvs: Vec<_> = got
            .iter()
            .map(|s| s.metadata.resource_version.clone().unwrap())
            .collect();
        assert_eq!(rvs, vec!["10", "12", "13", "14"]);
    }

    #[test]
    fn the_echo_of_an_own_write_does_not_reconcile() {
        use watcher::Event::*;
        let seen = OwnWrites::default();
        seen.applied(&sts("a", 1, "10"), 7); // the operator created it
        let s = futures::stream::iter(
            vec![
                Apply(sts("a", 1, "10")), // its creation, back through the watch
                Apply(sts("a", 1, "11")), // its status moved
                Apply(sts("a", 2, "12")), // someone else edited the spec
            ]
            .into_iter()
            .map(Ok),
        );
        let got: Vec<_> = block_on(child_changes(s, seen.clone()).map(|r| r.unwrap()).collect());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].metadata.generation, Some(2));
        seen.applied(&sts("a", 3, "13"), 7); // the operator put its spec back
        assert_eq!(seen.len(), 1);
        let s = futures::stream::iter(vec![
            Ok(Apply(sts("a", 3, "13"))),
            Ok(Delete(sts("a", 3, "14"))),
        ]);
        let got: Vec<_> = block_on(child_changes(s, seen.clone()).map(|r| r.unwrap()).collect());
        assert_eq!(got.len(), 1, "only the deletion");
        assert_eq!(seen.len(), 0, "a deleted child is forgotten");
    }

    #[test]
    fn a_change_only_the_operator_wrote_does_not_reconcile() {
        let written_by = |managers: &[(&str, Option<&str>)], generation: i64| -> StatefulSet {
            let entries: Vec<_> = managers
                .iter()
                .map(|(m, sub)| json!({"manager": m, "subresource": sub}))
                .collect();
            serde_json::from_value(json!({"metadata": {"name": "mcp", "namespace": "prod",
                "uid": "a", "generation": generation, "managedFields": entries}}))
            .unwrap()
        };
        let ours = (FIELD_MANAGER, None);
        let status = ("kube-controller-manager", Some("status"));
        let got = passed(vec![
            watcher::Event::Apply(written_by(&[ours], 1)), // created by the operator
            watcher::Event::Apply(written_by(&[ours, status], 2)), // its spec, re-applied
            watcher::Event::Apply(written_by(&[ours, ("kubectl-edit", None)], 3)), // a human
        ]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].metadata.generation, Some(3));
    }

    #[test]
    fn kinds_without_a_generation_reconcile_on_every_change() {
        let cm = |rv: &str| -> ConfigMap {
            serde_json::from_value(
                json!({"metadata": {"name": "c", "uid": "u", "resourceVersion": rv}}),
            )
            .unwrap()
        };
        let got = passed(vec![
            watcher::Event::Apply(cm("1")),
            watcher::Event::Apply(cm("1")),
            watcher::Event::Apply(cm("2")),
        ]);
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn an_apply_is_skipped_only_while_nothing_moved() {
        let w = OwnWrites::default();
        let desired = content_hash(&json!({"spec": {"replicas": 3}}));
        assert!(!w.unchanged(&sts("a", 1, "10"), desired), "never applied");
        w.applied(&sts("a", 1, "10"), desired);
        assert!(w.unchanged(&sts("a", 1, "10"), desired), "as applied");
        assert!(
            w.unchanged(&sts("a", 1, "11"), desired),
            "only its status moved"
        );
        let mut relabelled = sts("a", 1, "11");
        relabelled.metadata.labels = Some([("app".to_string(), "x".to_string())].into());
        assert!(
            !w.unchanged(&relabelled, desired),
            "someone edited its labels"
        );
        let cm = |rv: &str| -> ConfigMap {
            serde_json::from_value(
                json!({"metadata": {"name": "c", "uid": "u", "resourceVersion": rv}}),
            )
            .unwrap()
        };
        w.applied(&cm("5"), desired);
        assert!(w.unchanged(&cm("5"), desired), "as applied");
        assert!(
            !w.unchanged(&cm("6"), desired),
            "no generation: any write may be to what the operator applies"
        );
        assert!(
            !w.unchanged(&sts("a", 2, "12"), desired),
            "someone edited its spec"
        );
        let other = content_hash(&json!({"spec": {"replicas": 4}}));
        assert!(
            !w.unchanged(&sts("a", 1, "10"), other),
            "the desired object moved"
        );
        assert!(
            !w.unchanged(&sts("b", 1, "10"), desired),
            "another object (re-created)"
        );
        block_on(
            child_changes(
                futures::stream::iter(vec![Ok(watcher::Event::Delete(sts("a", 1, "13")))]),
                w.clone(),
            )
            .collect::<Vec<_>>(),
        );
        assert!(
            !w.unchanged(&sts("a", 1, "10"), desired),
            "deleted: forgotten"
        );
    }
}
