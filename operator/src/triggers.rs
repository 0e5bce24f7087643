//! What keeps the operator quiet at scale: the controller reconciles (applies children) only on
//! spec changes and child changes; everything that only moves the status (a pod's heartbeat in
//! `status.members`, a Pod turning Ready, a StatefulSet's ready count) goes through the status
//! trigger instead: debounced per cluster, it recomputes the status from the caches and writes
//! it only when it changed, never touching a child.
//!
//! This file holds the state those paths share: the caches of each controller scope, the
//! outcome of each cluster's last reconcile (a status refresh restates it), health changes held
//! back by the debounce, and the error backoff that other triggers must not cut short.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use erlmcp_crds::ErlmcpCluster;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::{mpsc, watch};

use crate::reconcile::{refresh_status, Context};

use crate::status::{Outcome, Pending};
use crate::stores::ChildStores;

/// Default wait between a member report (or Pod change) and the status refresh it causes:
/// one refresh per burst, not one per pod.
pub const STATUS_DEBOUNCE: Duration = Duration::from_secs(5);

/// The caches of one controller scope (a namespace, or "" for all).
#[derive(Clone)]
pub struct Scope {
    pub clusters: Store<ErlmcpCluster>,
    pub children: ChildStores,
}

/// How the last reconcile of a cluster ended, for status refreshes in between.
#[derive(Debug, Clone)]
pub struct LastOutcome {
    pub generation: Option<i64>,
    pub outcome: Outcome,
    pub skipped: Vec<String>,
}

/// A failing cluster's backoff: no reconcile before `until` unless the spec changes.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub failures: u32,
    pub until: Instant,
    pub generation: Option<i64>,
}

type Trigger = mpsc::UnboundedSender<(ObjectRef<ErlmcpCluster>, Duration)>;

/// State shared by the reconciles and the status trigger.
#[derive(Default)]
pub struct Watched {
    scopes: Mutex<BTreeMap<String, Scope>>,
    outcomes: Mutex<HashMap<String, LastOutcome>>,
    pending: Mutex<HashMap<String, Pending>>,
    backoff: Mutex<HashMap<String, Backoff>>,
    trigger: Mutex<Option<Trigger>>,
}

impl Watched {
    pub fn add_scope(&self, scope: &str, caches: Scope) {
        self.scopes
            .lock()
            .expect("scopes")
            .insert(scope.into(), caches);
    }

    pub fn remove_scope(&self, scope: &str) {
        self.scopes.lock().expect("scopes").remove(scope);
    }

    /// The caches that hold namespace `ns`, once a controller runs for it and they are
    /// synced (until then the callers ask the API server).
    pub fn scope(&self, ns: &str) -> Option<Scope> {
        let scopes = self.scopes.lock().expect("scopes");
        let scope = scopes.get(ns).or_else(|| scopes.get("")).cloned()?;
        drop(scopes);
        scope.children.synced().then_some(scope)
    }

    pub fn remember_outcome(&self, key: &str, last: LastOutcome) {
        self.outcomes
            .lock()
            .expect("outcomes")
            .insert(key.into(), last);
    }

    pub fn last_outcome(&self, key: &str) -> Option<LastOutcome> {
        self.outcomes.lock().expect("outcomes").get(key).cloned()
    }

    pub fn pending(&self, key: &str) -> Option<Pending> {
        self.pending.lock().expect("pending").get(key).cloned()
    }

    pub fn set_pending(&self, key: &str, p: Option<Pending>) {
        let mut all = self.pending.lock().expect("pending");
        match p {
            Some(p) => all.insert(key.into(), p),
            None => all.remove(key),
        };
    }

    /// Record a failure; returns how many in a row.
    pub fn failed(
        &self,
        key: &str,
        generation: Option<i64>,
        delay: impl Fn(u32) -> Duration,
    ) -> (u32, Duration) {
        let mut all = self.backoff.lock().expect("backoff");
        let n = all.get(key).map_or(0, |b| b.failures).saturating_add(1);
        let d = delay(n);
        all.insert(
            key.into(),
            Backoff {
                failures: n,
                until: Instant::now() + d,
                generation,
            },
        );
        (n, d)
    }

    pub fn succeeded(&self, key: &str) {
        self.backoff.lock().expect("backoff").remove(key);
    }

    /// Time left of a failing cluster's backoff, unless its spec changed since it failed: a
    /// child event or a resync must not retry it early (and send another Warning event).
    pub fn holding(&self, key: &str, generation: Option<i64>) -> Option<Duration> {
        let all = self.backoff.lock().expect("backoff");
        let b = all.get(key)?;
        let left = b.until.checked_duration_since(Instant::now())?;
        (b.generation == generation && !left.is_zero()).then_some(left)
    }

    pub fn set_trigger(&self, tx: Trigger) {
        *self.trigger.lock().expect("trigger") = Some(tx);
    }

    /// Ask for a status refresh of `cluster` after `delay` (the earliest ask wins).
    pub fn refresh_later(&self, cluster: ObjectRef<ErlmcpCluster>, delay: Duration) {
        if let Some(tx) = self.trigger.lock().expect("trigger").as_ref() {
            let _ = tx.send((cluster, delay));
        }
    }

    /// A cluster is gone: forget it.
    pub fn forget(&self, key: &str) {
        self.outcomes.lock().expect("outcomes").remove(key);
        self.pending.lock().expect("pending").remove(key);
        self.backoff.lock().expect("backoff").remove(key);
    }
}

/// What makes a cluster's own watch event reconcile it: its spec (generation), and the partition
/// a stalled rollout must hold. The status refresh that first sees a stall writes it; the
/// reconcile this wakes applies the hold at once instead of at the next requeue. Member reports
/// and every other status change leave this value alone, so they never reconcile.
pub fn reconcile_key(cluster: &ErlmcpCluster) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    cluster.metadata.generation.hash(&mut h);
    crate::status::rollout::partition_hold(cluster).hash(&mut h);
    Some(h.finish())
}

/// Per-cluster deadlines: the first ask sets it, later asks only bring it closer, so a steady
/// stream of heartbeats cannot postpone a refresh forever.
#[derive(Default)]
pub struct Deadlines {
    due: HashMap<ObjectRef<ErlmcpCluster>, Instant>,
}

impl Deadlines {
    pub fn ask(&mut self, key: ObjectRef<ErlmcpCluster>, at: Instant) {
        let e = self.due.entry(key).or_insert(at);
        *e = (*e).min(at);
    }

    pub fn next(&self) -> Option<Instant> {
        self.due.values().min().copied()
    }

    /// Remove and return the keys due at `now`.
    pub fn take_due(&mut self, now: Instant) -> Vec<ObjectRef<ErlmcpCluster>> {
        let due: Vec<_> = self
            .due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &due {
            self.due.remove(k);
        }
        due
    }

    pub fn len(&self) -> usize {
        self.due.len()
    }

    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }
}

/// The status trigger: refresh each cluster asked for once its deadline passes, one at a time
/// (a refresh is a computation and at most one write), until `stop` resolves.
pub async fn run_status_trigger(
    ctx: Arc<Context>,
    mut asks: mpsc::UnboundedReceiver<(ObjectRef<ErlmcpCluster>, Duration)>,
    mut stop: watch::Receiver<bool>,
) {
    let mut deadlines = Deadlines::default();
    loop {
        let next = deadlines.next();
        tokio::select! {
            ask = asks.recv() => match ask {
                Some((key, delay)) => deadlines.ask(key, Instant::now() + delay),
                None => return,
            },
            _ = sleep_until_some(next) => {
                for key in deadlines.take_due(Instant::now()) {
                    refresh_one(&ctx, &key).await;
                }
            }
            _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
        }
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => futures::future::pending().await,
    }
}

async fn refresh_one(ctx: &Context, key: &ObjectRef<ErlmcpCluster>) {
    let ns = key.namespace.clone().unwrap_or_default();
    let Some(scope) = ctx.watched.scope(&ns) else {
        return;
    };
    let Some(cluster) = scope.clusters.get(key) else {
        return;
    };
    if let Err(e) = refresh_status(&cluster, ctx).await {
        // The next report or the next reconcile tries again; no backoff to keep here.
        tracing::warn!(cluster = %key, error = %e, "status refresh failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_keep_the_earliest_ask() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        let a = ObjectRef::<ErlmcpCluster>::new("a").within("ns");
        d.ask(a.clone(), t0 + Duration::from_secs(5));
        d.ask(a.clone(), t0 + Duration::from_secs(9)); // a heartbeat later: no postponing
        d.ask(
            ObjectRef::new("b").within("ns"),
            t0 + Duration::from_secs(7),
        );
        assert_eq!(d.next(), Some(t0 + Duration::from_secs(5)));
        assert!(d.take_due(t0 + Duration::from_secs(4)).is_empty());
        assert_eq!(d.take_due(t0 + Duration::from_secs(6)), vec![a]);
        assert_eq!(d.len(), 1);
        assert_eq!(d.take_due(t0 + Duration::from_secs(7)).len(), 1);
        assert!(d.is_empty());
    }

    #[test]
    fn only_a_spec_change_or_a_new_hold_reconciles() {
        use erlmcp_crds::status::condition;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
        let mut c = ErlmcpCluster::new("a", Default::default());
        c.spec.replicas = 3;
        c.metadata.generation = Some(2);
        let first = reconcile_key(&c);
        let mut st = erlmcp_crds::ErlmcpClusterStatus {
            observed_generation: Some(2),
            updated_replicas: Some(1),
            ..Default::default()
        };
        st.members.push(Default::default()); // a heartbeat
        c.status = Some(st.clone());
        assert_eq!(
            reconcile_key(&c),
            first,
            "a member report does not reconcile"
        );
        st.conditions.push(Condition {
            type_: condition::PROGRESSING.into(),
            status: "False".into(),
            reason: crate::status::rollout::STALLED.into(),
            message: String::new(),
            observed_generation: Some(2),
            last_transition_time: Time(Default::default()),
        });
        c.status = Some(st);
        let stalled = reconcile_key(&c);
        assert_ne!(stalled, first, "a stall reconciles to hold the partition");
        c.metadata.generation = Some(3);
        assert_ne!(reconcile_key(&c), stalled, "a spec change reconciles");
    }

    #[test]
    fn a_backoff_holds_until_it_ends_or_the_spec_changes() {
        let w = Watched::default();
        let (n, _) = w.failed("ns/a", Some(3), |_| Duration::from_secs(60));
        assert_eq!(n, 1);
        assert!(w.holding("ns/a", Some(3)).is_some());
        assert!(
            w.holding("ns/a", Some(4)).is_none(),
            "a spec change retries at once"
        );
        let (n, _) = w.failed("ns/a", Some(3), |_| Duration::ZERO);
        assert_eq!(n, 2, "consecutive failures count up");
        assert!(w.holding("ns/a", Some(3)).is_none(), "the backoff ended");
        w.succeeded("ns/a");
        assert_eq!(w.failed("ns/a", Some(3), |_| Duration::ZERO).0, 1);
    }
}
