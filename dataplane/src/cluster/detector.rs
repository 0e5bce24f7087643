//! Phi-accrual failure detector (Hayashibara et al.; the variant Akka and Cassandra use).
//!
//! Each successful probe of a peer is a heartbeat. The detector keeps a window of the gaps
//! between heartbeats and, at any moment, turns "time since the last heartbeat" into a
//! suspicion level `phi = -log10(P(gap >= elapsed))` under a normal model of the gaps, with the
//! mean shifted by an acceptable pause. A peer is suspect above [`DetectorParams::suspect_phi`]
//! and down above [`DetectorParams::down_phi`]: one lost probe raises phi a little, a run of
//! them raises it fast, and a jittery link widens the distribution instead of flapping.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Tunables. With the defaults (probe every second) a dead peer is suspect after about 2.5 s of
/// silence and down after about 4 s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorParams {
    /// Probe interval (also the first heartbeat gap assumed).
    pub interval: Duration,
    /// Gaps kept.
    pub window: usize,
    /// Floor of the standard deviation (a perfectly regular link would otherwise make any
    /// delay look fatal).
    pub min_std_dev: Duration,
    /// Pause tolerated on top of the mean gap (GC-free Rust, but loaded nodes and networks).
    pub acceptable_pause: Duration,
    /// Above this phi the peer is suspect.
    pub suspect_phi: f64,
    /// Above this phi the peer is down.
    pub down_phi: f64,
}

impl Default for DetectorParams {
    fn default() -> Self {
        Self::with_interval(Duration::from_secs(1))
    }
}

impl DetectorParams {
    pub fn with_interval(interval: Duration) -> Self {
        Self {
            interval,
            window: 100,
            min_std_dev: interval / 5,
            acceptable_pause: interval,
            suspect_phi: 3.0,
            down_phi: 8.0,
        }
    }

    /// Silence after which a peer with perfectly regular heartbeats is judged down (the
    /// detector's bound, for tests and docs).
    pub fn down_after(&self) -> Duration {
        let mut d = Detector::new(*self);
        let t0 = Instant::now();
        for i in 0..10 {
            d.heartbeat(t0 + self.interval * i);
        }
        let last = t0 + self.interval * 9;
        let mut t = Duration::ZERO;
        while d.phi(last + t) < self.down_phi && t < Duration::from_secs(3600) {
            t += Duration::from_millis(10);
        }
        t
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Up,
    Suspect,
    Down,
}

#[derive(Debug, Clone)]
pub struct Detector {
    params: DetectorParams,
    gaps: VecDeque<f64>,
    sum: f64,
    sum_sq: f64,
    last: Option<Instant>,
}

impl Detector {
    pub fn new(params: DetectorParams) -> Self {
        Self {
            params,
            gaps: VecDeque::with_capacity(params.window),
            sum: 0.0,
            sum_sq: 0.0,
            last: None,
        }
    }

    /// Forget history (the peer restarted: a new incarnation).
    pub fn reset(&mut self) {
        *self = Self::new(self.params);
    }

    pub fn heartbeat(&mut self, now: Instant) {
        match self.last {
            None => {
                // Seed the window with the nominal interval so the first gaps are judged sanely.
                let i = self.params.interval.as_secs_f64() * 1000.0;
                self.push(i);
                self.push(i + self.params.min_std_dev.as_secs_f64() * 1000.0);
            }
            Some(prev) => {
                let gap = now.saturating_duration_since(prev).as_secs_f64() * 1000.0;
                self.push(gap);
            }
        }
        self.last = Some(now);
    }

    fn push(&mut self, gap_ms: f64) {
        if self.gaps.len() >= self.params.window {
            if let Some(old) = self.gaps.pop_front() {
                self.sum -= old;
                self.sum_sq -= old * old;
            }
        }
        self.gaps.push_back(gap_ms);
        self.sum += gap_ms;
        self.sum_sq += gap_ms * gap_ms;
    }

    /// Suspicion level now. Infinite before the first heartbeat.
    pub fn phi(&self, now: Instant) -> f64 {
        let Some(last) = self.last else {
            return f64::INFINITY;
        };
        let n = self.gaps.len().max(1) as f64;
        let mean = self.sum / n + self.params.acceptable_pause.as_secs_f64() * 1000.0;
        let var = (self.sum_sq / n - (self.sum / n).powi(2)).max(0.0);
        let std = var
            .sqrt()
            .max(self.params.min_std_dev.as_secs_f64() * 1000.0);
        let elapsed = now.saturating_duration_since(last).as_secs_f64() * 1000.0;
        // Logistic approximation of the normal CDF's tail (as Akka does).
        let y = (elapsed - mean) / std;
        let e = (-y * (1.5976 + 0.070566 * y * y)).exp();
        if elapsed > mean {
            -(e / (1.0 + e)).log10()
        } else {
            -(1.0 - 1.0 / (1.0 + e)).log10()
        }
    }

    pub fn verdict(&self, now: Instant) -> Verdict {
        let phi = self.phi(now);
        if phi >= self.params.down_phi {
            Verdict::Down
        } else if phi >= self.params.suspect_phi {
            Verdict::Suspect
        } else {
            Verdict::Up
        }
    }

    pub fn last_heartbeat(&self) -> Option<Instant> {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_heartbeats_stay_up_and_silence_goes_down() {
        let p = DetectorParams::default();
        let mut d = Detector::new(p);
        let t0 = Instant::now();
        assert_eq!(d.verdict(t0), Verdict::Down, "never heard from");
        for i in 0..20 {
            d.heartbeat(t0 + Duration::from_millis(1000 * i));
        }
        let last = t0 + Duration::from_millis(19_000);
        assert_eq!(d.verdict(last + Duration::from_millis(1100)), Verdict::Up);
        // One lost probe is not enough to call it down.
        assert_ne!(d.verdict(last + Duration::from_millis(2000)), Verdict::Down);
        assert_eq!(d.verdict(last + Duration::from_secs(6)), Verdict::Down);
    }

    #[test]
    fn jitter_widens_tolerance() {
        let p = DetectorParams::default();
        let t0 = Instant::now();
        let mut steady = Detector::new(p);
        let mut jittery = Detector::new(p);
        let mut t = t0;
        let mut tj = t0;
        for i in 0..50u64 {
            steady.heartbeat(t);
            jittery.heartbeat(tj);
            t += Duration::from_millis(1000);
            tj += Duration::from_millis(if i % 2 == 0 { 400 } else { 1900 });
        }
        let probe = Duration::from_millis(3200);
        assert!(jittery.phi(tj + probe) < steady.phi(t + probe));
    }

    #[test]
    fn bound_is_a_few_intervals() {
        let b = DetectorParams::default().down_after();
        assert!(
            b > Duration::from_secs(2) && b < Duration::from_secs(6),
            "{b:?}"
        );
        let mut d = Detector::new(DetectorParams::default());
        d.heartbeat(Instant::now());
        d.reset();
        assert!(d.last_heartbeat().is_none());
    }
}
