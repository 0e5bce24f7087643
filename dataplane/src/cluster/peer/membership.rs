//! The membership view: the discovered peer addresses, what the detector says of each, the
//! expected cluster size, and the readiness gate of a starting node.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{ClusterNode, PeerSummary, Slot, SlotState, FIRST_ROUND};
use crate::cluster::detector::{Detector, Verdict};

impl ClusterNode {
    /// Replace the discovered peer addresses (`host:port`).
    pub fn set_targets(self: &Arc<Self>, targets: Vec<String>) {
        if self.is_stopping() {
            return;
        }
        self.targets_seen.store(true, Ordering::Release);
        let own = self.self_addrs.lock().expect("self").clone();
        let want: BTreeSet<String> = targets.into_iter().filter(|a| !own.contains(a)).collect();
        let mut slots = self.slots.write().expect("slots");
        let mut changed = false;
        slots.retain(|addr, s| {
            let keep = want.contains(addr);
            if !keep {
                if let Some(t) = s.task.lock().expect("task").take() {
                    t.abort();
                }
                tracing::info!(peer = %addr, "peer left discovery");
                changed = true;
            }
            keep
        });
        for addr in want {
            if slots.contains_key(&addr) {
                continue;
            }
            let slot = Arc::new(Slot {
                addr: addr.clone(),
                st: Mutex::new(SlotState {
                    hello: None,
                    detector: Detector::new(self.settings.detector),
                    conn: None,
                    last: None,
                    leaving: false,
                    verdict: Verdict::Down,
                    last_error: None,
                    attempted: false,
                }),
                task: Mutex::new(None),
            });
            let task = tokio::spawn(self.clone().probe_loop(slot.clone()));
            *slot.task.lock().expect("task") = Some(task);
            tracing::info!(peer = %addr, "peer discovered");
            slots.insert(addr, slot);
            changed = true;
        }
        drop(slots);
        if changed {
            self.notify();
        }
    }

    pub(super) fn mark_self(&self, addr: &str) {
        self.self_addrs
            .lock()
            .expect("self")
            .insert(addr.to_string());
        if let Some(s) = self.slots.write().expect("slots").remove(addr) {
            if let Some(t) = s.task.lock().expect("task").take() {
                t.abort();
            }
        }
        self.notify();
    }

    /// Every peer, best view per name (an address not yet identified counts once).
    pub fn summaries(&self) -> Vec<PeerSummary> {
        let now = Instant::now();
        let mut by_key: BTreeMap<String, PeerSummary> = BTreeMap::new();
        for s in self.slots.read().expect("slots").values() {
            let st = s.state();
            let verdict = if st.conn.is_some() || st.detector.last_heartbeat().is_some() {
                st.detector.verdict(now)
            } else {
                Verdict::Down
            };
            let sum = PeerSummary {
                addr: s.addr.clone(),
                name: st.hello.as_ref().map(|h| h.name.clone()),
                member: st.hello.as_ref().map(|h| h.member.clone()),
                verdict,
                leaving: st.leaving,
                sees: st.last.as_ref().map(|l| l.sees.clone()).unwrap_or_default(),
            };
            let key = sum.name.clone().unwrap_or_else(|| s.addr.clone());
            match by_key.get(&key) {
                Some(old) if rank(old.verdict) <= rank(sum.verdict) => {}
                _ => {
                    by_key.insert(key, sum);
                }
            }
        }
        by_key.into_values().collect()
    }

    /// Members this node reaches now (not itself).
    pub fn reachable_members(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .summaries()
            .into_iter()
            .filter(|p| p.verdict != Verdict::Down)
            .filter_map(|p| p.member)
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Expected size of the cluster, this node included.
    pub fn expected(&self) -> usize {
        let r = self.replicas.load(Ordering::Relaxed);
        if r >= 0 {
            return (r as usize).max(1);
        }
        1 + self.summaries().len()
    }

    /// Not ready until discovery answered and every peer was tried once (bounded by
    /// [`FIRST_ROUND`]): a fresh pod that cannot yet tell which peer owns a session would
    /// answer 404 for sessions that exist.
    pub(super) async fn readiness_gate(self: Arc<Self>) {
        let t0 = Instant::now();
        loop {
            let done = self.targets_seen.load(Ordering::Acquire)
                && self
                    .slots
                    .read()
                    .expect("slots")
                    .values()
                    .all(|s| s.state().attempted);
            if done || t0.elapsed() > FIRST_ROUND {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !self.is_leaving() && !self.lifecycle.is_draining() {
            self.lifecycle.set_ready(true);
            tracing::info!(after_ms = t0.elapsed().as_millis() as u64, peers = ?self.reachable_members(), "ready (first membership round done)");
        }
    }

    pub(super) async fn evaluate_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.settings.detector.interval / 2);
        let stop = self.stopped();
        tokio::pin!(stop);
        let mut last: Option<(Vec<String>, usize)> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = &mut stop => return,
            }
            let now = Instant::now();
            let mut flips = Vec::new();
            for s in self.slots.read().expect("slots").values() {
                let mut st = s.state();
                let v = if st.detector.last_heartbeat().is_some() {
                    st.detector.verdict(now)
                } else {
                    Verdict::Down
                };
                if v != st.verdict {
                    let name = st
                        .hello
                        .as_ref()
                        .map(|h| h.name.clone())
                        .unwrap_or_else(|| s.addr.clone());
                    flips.push((
                        name,
                        st.verdict,
                        v,
                        st.detector.phi(now),
                        st.last_error.clone(),
                    ));
                    st.verdict = v;
                }
            }
            for (name, from, to, phi, why) in flips {
                match to {
                    Verdict::Up => tracing::info!(peer = %name, ?from, "peer up"),
                    Verdict::Suspect => tracing::warn!(peer = %name, phi, "peer suspect"),
                    Verdict::Down => {
                        tracing::warn!(peer = %name, phi, error = ?why, "peer down")
                    }
                }
            }
            let reach = self.reachable_members();
            let expected = self.expected();
            let nodes = reach.len() + 1;
            self.metrics.partitioned.set(i64::from(nodes < expected));
            if let Some((_, s)) = self.app.get() {
                s.core.metrics.cluster_nodes.set(nodes as i64);
                s.core.metrics.cluster_nodes_expected.set(expected as i64);
            }
            let cur = (reach, expected);
            if last.as_ref() != Some(&cur) {
                if last.is_some() {
                    tracing::info!(reachable = ?cur.0, expected = cur.1, "cluster view changed");
                }
                last = Some(cur);
                self.notify();
            }
        }
    }
}

fn rank(v: Verdict) -> u8 {
    match v {
        Verdict::Up => 0,
        Verdict::Suspect => 1,
        Verdict::Down => 2,
    }
}
