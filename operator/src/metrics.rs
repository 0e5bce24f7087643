//! The operator's own Prometheus metrics.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Reconciliations by result: success, invalid, paused, deleting, error.
    pub reconciliations: IntCounterVec,
    /// Reconcile errors by reason.
    pub errors: IntCounterVec,
    /// Reconcile duration.
    pub duration: Histogram,
    /// ErlmcpClusters this operator manages: the sum over its controllers (see [`Self::set_managed`]).
    pub managed_clusters: IntGauge,
    /// Clusters per controller scope (a namespace, or "" for all).
    managed_by_scope: Arc<Mutex<BTreeMap<String, i64>>>,
    /// 1 while this replica holds the leader lease.
    pub leader: IntGauge,
    /// Status refreshes run by the status trigger (no child applied).
    pub status_refreshes: IntCounter,
    /// Status writes skipped because they would have changed nothing.
    pub status_writes_skipped: IntCounter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let reconciliations = IntCounterVec::new(
            Opts::new(
                "erlmcp_operator_reconciliations_total",
                "Reconciliations by result",
            ),
            &["result"],
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new(
                "erlmcp_operator_reconcile_errors_total",
                "Reconcile errors by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "erlmcp_operator_reconcile_duration_seconds",
                "Time spent in one reconcile",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )
        .expect("valid metric");
        let managed_clusters =
            IntGauge::new("erlmcp_operator_managed_clusters", "ErlmcpClusters managed")
                .expect("valid metric");
        let leader = IntGauge::new(
            "erlmcp_operator_leader",
            "1 when this replica is the leader",
        )
        .expect("valid metric");
        let status_refreshes = IntCounter::new(
            "erlmcp_operator_status_refreshes_total",
            "Status refreshes after member reports and Pod changes (no child applied)",
        )
        .expect("valid metric");
        let status_writes_skipped = IntCounter::new(
            "erlmcp_operator_status_writes_skipped_total",
            "Status writes skipped because the status would not change",
        )
        .expect("valid metric");
        for c in [
            Box::new(reconciliations.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(errors.clone()),
            Box::new(duration.clone()),
            Box::new(managed_clusters.clone()),
            Box::new(leader.clone()),
            Box::new(status_refreshes.clone()),
            Box::new(status_writes_skipped.clone()),
        ] {
            registry.register(c).expect("unique metric");
        }
        Self {
            registry,
            reconciliations,
            errors,
            duration,
            managed_clusters,
            managed_by_scope: Arc::default(),
            leader,
            status_refreshes,
            status_writes_skipped,
        }
    }

    /// One controller's count: the gauge is the sum over every watched namespace, not the
    /// count of whichever controller wrote last.
    pub fn set_managed(&self, scope: &str, clusters: usize) {
        let mut by = self.managed_by_scope.lock().expect("managed lock");
        by.insert(scope.to_string(), clusters as i64);
        self.managed_clusters.set(by.values().sum());
    }

    /// A controller stopped (leadership lost, shutdown): its clusters are no longer managed here.
    pub fn forget_managed(&self, scope: &str) {
        let mut by = self.managed_by_scope.lock().expect("managed lock");
        by.remove(scope);
        self.managed_clusters.set(by.values().sum());
    }

    /// Text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding never fails");
        String::from_utf8(buf).expect("prometheus text is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_every_metric() {
        let m = Metrics::new();
        m.reconciliations.with_label_values(&["success"]).inc();
        m.errors.with_label_values(&["ApplyFailed"]).inc();
        m.duration.observe(0.02);
        m.leader.set(1);
        let text = m.render();
        for name in [
            "erlmcp_operator_reconciliations_total{result=\"success\"} 1",
            "erlmcp_operator_reconcile_errors_total{reason=\"ApplyFailed\"} 1",
            "erlmcp_operator_reconcile_duration_seconds_count 1",
            "erlmcp_operator_managed_clusters 0",
            "erlmcp_operator_leader 1",
            "erlmcp_operator_status_refreshes_total 0",
            "erlmcp_operator_status_writes_skipped_total 0",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }

    #[test]
    fn managed_clusters_sums_the_watched_namespaces() {
        let m = Metrics::new();
        m.set_managed("a", 2);
        m.set_managed("b", 3);
        m.set_managed("a", 4);
        assert_eq!(m.managed_clusters.get(), 7);
        m.forget_managed("b");
        assert_eq!(m.managed_clusters.get(), 4);
    }
}
