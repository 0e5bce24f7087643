//! What the clients measured: latency in HDR histograms (per second, per phase, overall),
//! answers and errors by kind per second, and connected clients over time.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latencies are recorded in microseconds, 1 µs to 10 min, 3 significant digits; slower
/// answers saturate at the top.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// A latency distribution, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    pub count: u64,
    pub min_ms: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub stdev_ms: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            count: h.len(),
            min_ms: ms(h.min()),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            stdev_ms: h.stdev() / 1000.0,
        }
    }
}

/// One second of the run (`t` seconds after the start).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Second {
    pub t: u64,
    /// Requests written to the wire in this second.
    pub sent: u64,
    /// Correct answers received in this second.
    pub ok: u64,
    pub errors: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Latency of the answers (and errors) completed in this second, from their scheduled time.
    pub latency: Latency,
    /// Clients connected at the end of the second, and the most during it.
    pub connections: i64,
    pub connections_max: i64,
    /// Clients the scenario asked for at the end of the second.
    pub target_clients: u32,
    /// Events received on GET (SSE) streams.
    pub sse_events: u64,
}

/// Counters of one second while it is open.
struct Open {
    second: Second,
    hist: Histogram<u64>,
}

struct Inner {
    done: Vec<Second>,
    open: Open,
    /// Phase end times (seconds); a closed second belongs to the phase its start falls in.
    phase_ends: Vec<f64>,
    phases: Vec<Histogram<u64>>,
    overall: Histogram<u64>,
    connections: i64,
    connects_ok: u64,
    connect_errors: u64,
}

pub struct Recorder {
    start: Instant,
    inner: Mutex<Inner>,
}

/// Everything recorded, once the run is over.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub seconds: Vec<Second>,
    pub phases: Vec<Histogram<u64>>,
    pub overall: Histogram<u64>,
    pub connects_ok: u64,
    pub connect_errors: u64,
}

fn open(t: u64, connections: i64) -> Open {
    Open {
        second: Second {
            t,
            connections,
            connections_max: connections,
            ..Default::default()
        },
        hist: new_histogram(),
    }
}

impl Inner {
    /// Close every second before `t` (empty ones included, so the timeline has no holes).
    fn roll(&mut self, t: u64) {
        while self.open.second.t < t {
            let next = open(self.open.second.t + 1, self.connections);
            let Open { mut second, hist } = std::mem::replace(&mut self.open, next);
            second.connections = self.connections;
            second.latency = Latency::of(&hist);
            let start = second.t as f64;
            let idx = self
                .phase_ends
                .iter()
                .position(|&end| start < end)
                .unwrap_or(self.phases.len().saturating_sub(1));
            if let Some(p) = self.phases.get_mut(idx) {
                let _ = p.add(&hist);
            }
            let _ = self.overall.add(&hist);
            self.done.push(second);
        }
    }
}

impl Recorder {
    pub fn new(start: Instant, phase_ends: Vec<f64>) -> Self {
        let phases = phase_ends.iter().map(|_| new_histogram()).collect();
        Recorder {
            start,
            inner: Mutex::new(Inner {
                done: Vec::new(),
                open: open(0, 0),
                phase_ends,
                phases,
                overall: new_histogram(),
                connections: 0,
                connects_ok: 0,
                connect_errors: 0,
            }),
        }
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let t = self.start.elapsed().as_secs();
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.roll(t);
        f(&mut g)
    }

    pub fn sent(&self, n: u64) {
        self.with(|g| g.open.second.sent += n);
    }

    /// A correct answer to a request scheduled at `scheduled`.
    pub fn ok(&self, scheduled: Instant) {
        let us = scheduled.elapsed().as_micros() as u64;
        self.with(|g| {
            g.open.second.ok += 1;
            g.open.hist.saturating_record(us.max(1));
        });
    }

    /// A failed request; `scheduled` when it was sent and failed (its latency is recorded too),
    /// None when it never left (not sent, connection gone).
    pub fn error(&self, kind: &str, scheduled: Option<Instant>) {
        self.errors(kind, 1, scheduled);
    }

    pub fn errors(&self, kind: &str, n: u64, scheduled: Option<Instant>) {
        if n == 0 {
            return;
        }
        let us = scheduled.map(|s| s.elapsed().as_micros() as u64);
        self.with(|g| {
            g.open.second.errors += n;
            *g.open
                .second
                .errors_by_kind
                .entry(kind.to_string())
                .or_default() += n;
            if let Some(us) = us {
                g.open.hist.saturating_record(us.max(1));
            }
        });
    }

    pub fn connected(&self) {
        self.with(|g| {
            g.connections += 1;
            g.connects_ok += 1;
            g.open.second.connections_max = g.open.second.connections_max.max(g.connections);
        });
    }

    pub fn connect_failed(&self, kind: &str) {
        self.with(|g| g.connect_errors += 1);
        self.error(kind, None);
    }

    pub fn disconnected(&self) {
        self.with(|g| g.connections -= 1);
    }

    pub fn sse_event(&self) {
        self.with(|g| g.open.second.sse_events += 1);
    }

    pub fn target(&self, clients: u32) {
        self.with(|g| g.open.second.target_clients = clients);
    }

    pub fn connections(&self) -> i64 {
        self.with(|g| g.connections)
    }

    /// Totals so far for the progress line: (ok, errors, p99 ms of the last closed second).
    pub fn progress(&self) -> (u64, u64, f64) {
        self.with(|g| {
            let ok: u64 = g.done.iter().map(|s| s.ok).sum::<u64>() + g.open.second.ok;
            let err: u64 = g.done.iter().map(|s| s.errors).sum::<u64>() + g.open.second.errors;
            let p99 = g.done.last().map(|s| s.latency.p99_ms).unwrap_or(0.0);
            (ok, err, p99)
        })
    }

    /// Close the open second and hand back everything.
    pub fn finish(&self) -> Snapshot {
        let t = self.start.elapsed().as_secs() + 1;
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.roll(t);
        Snapshot {
            seconds: g.done.clone(),
            phases: g.phases.clone(),
            overall: g.overall.clone(),
            connects_ok: g.connects_ok,
            connect_errors: g.connect_errors,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn latency_summary_reads_the_histogram() {
        let mut h = new_histogram();
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        let l = Latency::of(&h);
        assert_eq!(l.count, 1000);
        assert!((l.p50_ms - 500.0).abs() < 1.0, "{l:?}");
        assert!((l.p99_ms - 990.0).abs() < 2.0, "{l:?}");
        assert!((l.max_ms - 1000.0).abs() < 1.0, "{l:?}");
        assert_eq!(Latency::of(&new_histogram()), Latency::default());
    }

    #[test]
    fn samples_land_in_seconds_phases_and_overall() {
        // Started 2.5 s ago: the first samples land in second 2, the second phase.
        let start = Instant::now() - Duration::from_millis(2500);
        let r = Recorder::new(start, vec![1.0, 10.0]);
        r.connected();
        r.sent(3);
        r.ok(Instant::now() - Duration::from_millis(4));
        r.ok(Instant::now() - Duration::from_millis(6));
        r.error("timeout", Some(Instant::now()));
        r.error("not_sent", None);
        r.disconnected();
        let s = r.finish();
        let ts: Vec<u64> = s.seconds.iter().map(|s| s.t).collect();
        assert_eq!(ts, [0, 1, 2]);
        let last = &s.seconds[2];
        assert_eq!((last.sent, last.ok, last.errors), (3, 2, 2));
        assert_eq!(last.errors_by_kind["timeout"], 1);
        assert_eq!((last.connections, last.connections_max), (0, 1));
        assert_eq!(last.latency.count, 3);
        assert_eq!((s.phases[0].len(), s.phases[1].len()), (0, 3));
        assert_eq!(s.overall.len(), 3);
        assert_eq!(s.connects_ok, 1);
    }
}
