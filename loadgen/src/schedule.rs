//! Open-loop timing: when each request is due, independent of when earlier answers came back.
//! Latency is measured from these scheduled times, so a stalled server shows up as latency
//! instead of silently lowering the offered load (no coordinated omission).

use std::time::Duration;

/// A rate and how long it holds (the end of its phase): the schedule never steps over a
/// change of rate, so a slow phase cannot push the first request of a fast one far out.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pace {
    pub rate: f64,
    pub until: Duration,
}

impl Pace {
    pub fn steady(rate: f64) -> Pace {
        Pace {
            rate,
            until: Duration::MAX,
        }
    }
}

/// One client's send schedule, as offsets from the start of the run.
#[derive(Clone, Debug)]
pub struct Ticker {
    next: Duration,
    issued: u64,
    limit: u64,
}

/// Where client `index` of `clients` starts, so clients at the same rate spread over one
/// interval instead of all firing on the same instant.
pub fn stagger(index: u32, clients: u32, rate: f64) -> Duration {
    if rate <= 0.0 || clients == 0 {
        return Duration::ZERO;
    }
    let frac = (index % clients) as f64 / clients as f64;
    Duration::from_secs_f64(frac / rate)
}

/// The gap between two requests at `rate` messages/s (a zero or negative rate pauses for one
/// second, after which the caller asks again).
pub fn interval(rate: f64) -> Duration {
    if rate > 0.0 && rate.is_finite() {
        Duration::from_secs_f64(1.0 / rate)
    } else {
        Duration::from_secs(1)
    }
}

impl Ticker {
    /// The first request is due at `first`; at most `limit` are ever issued.
    pub fn new(first: Duration, limit: u64) -> Self {
        Ticker {
            next: first,
            issued: 0,
            limit,
        }
    }

    /// When the next request is due (None when the count limit is reached).
    pub fn next_due(&self) -> Option<Duration> {
        (self.issued < self.limit).then_some(self.next)
    }

    pub fn issued(&self) -> u64 {
        self.issued
    }

    /// Take the next request if it is due by `now`: returns its scheduled time and moves the
    /// schedule on by one interval at `pace(scheduled time)`, or to the end of that pace if it
    /// comes first. Requests that fell behind (the
    /// process was descheduled, or the timer is coarse) come out one after another, each with
    /// its own earlier scheduled time.
    pub fn take_due(&mut self, now: Duration, pace: impl Fn(Duration) -> Pace) -> Option<Duration> {
        loop {
            let due = self.next_due()?;
            if due > now {
                return None;
            }
            let p = pace(due);
            let step = due + interval(p.rate);
            self.next = if p.until > due {
                step.min(p.until)
            } else {
                step
            };
            if p.rate > 0.0 {
                self.issued += 1;
                return Some(due);
            }
            // Paused: nothing to send at this instant; look again one interval later.
        }
    }

    /// How many requests were due by `until` but not taken (used when a run ends while a
    /// client is held back by its in-flight limit: those requests count as not sent).
    pub fn overdue(&self, until: Duration, pace: impl Fn(Duration) -> Pace) -> u64 {
        let mut t = self.clone();
        let mut n = 0;
        while t.take_due(until, &pace).is_some() {
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn requests_are_due_at_fixed_intervals_from_the_first() {
        let mut t = Ticker::new(ms(5), 100);
        assert_eq!(t.take_due(ms(4), |_| Pace::steady(100.0)), None);
        assert_eq!(t.take_due(ms(5), |_| Pace::steady(100.0)), Some(ms(5)));
        assert_eq!(t.next_due(), Some(ms(15)));
        assert_eq!(t.take_due(ms(14), |_| Pace::steady(100.0)), None);
    }

    #[test]
    fn a_late_wake_releases_every_missed_request_with_its_own_time() {
        // 1,000/s; the client wakes 5 ms late: five requests, each keeping its scheduled
        // time, so their latency counts the delay (no coordinated omission).
        let mut t = Ticker::new(Duration::ZERO, 100);
        let mut got = Vec::new();
        while let Some(d) = t.take_due(ms(4), |_| Pace::steady(1_000.0)) {
            got.push(d);
        }
        assert_eq!(got, [ms(0), ms(1), ms(2), ms(3), ms(4)]);
        assert_eq!(t.next_due(), Some(ms(5)));
    }

    #[test]
    fn schedule_does_not_drift_with_the_callers_timing() {
        // Polled at irregular moments, the n-th request is still due at n / rate.
        let mut t = Ticker::new(Duration::ZERO, 1_000);
        let mut last = Duration::ZERO;
        for now in [3u64, 3, 17, 250, 251, 999] {
            while let Some(d) = t.take_due(ms(now), |_| Pace::steady(200.0)) {
                last = d;
            }
        }
        assert_eq!(t.issued(), 200);
        assert_eq!(last, ms(995));
    }

    #[test]
    fn the_count_limit_stops_the_schedule() {
        let mut t = Ticker::new(Duration::ZERO, 3);
        let n = std::iter::from_fn(|| t.take_due(ms(10_000), |_| Pace::steady(1.0))).count();
        assert_eq!(n, 3);
        assert_eq!(t.next_due(), None);
    }

    #[test]
    fn rate_follows_the_phase_of_each_scheduled_time() {
        // 10/s for the first second, then 100/s.
        let rate = |d: Duration| {
            if d < ms(1000) {
                Pace {
                    rate: 10.0,
                    until: ms(1000),
                }
            } else {
                Pace::steady(100.0)
            }
        };
        let mut t = Ticker::new(Duration::ZERO, 10_000);
        let n = std::iter::from_fn(|| t.take_due(ms(1999), rate)).count();
        assert_eq!(n, 10 + 100);
    }

    #[test]
    fn a_paused_phase_sends_nothing() {
        let rate = |d: Duration| {
            if d < ms(2000) {
                Pace {
                    rate: 0.0,
                    until: ms(2000),
                }
            } else {
                Pace::steady(1.0)
            }
        };
        let mut t = Ticker::new(Duration::ZERO, 10);
        assert_eq!(t.take_due(ms(1500), rate), None);
        assert_eq!(t.take_due(ms(2000), rate), Some(ms(2000)));
    }

    #[test]
    fn a_slow_phase_does_not_push_the_next_phase_out() {
        // 0.05/s (one request per 20 s) for 300 ms, then 50/s: the fast phase starts on time.
        let pace = |d: Duration| {
            if d < ms(300) {
                Pace {
                    rate: 0.05,
                    until: ms(300),
                }
            } else {
                Pace::steady(50.0)
            }
        };
        let mut t = Ticker::new(Duration::ZERO, 1_000);
        assert_eq!(t.take_due(ms(0), pace), Some(ms(0)));
        assert_eq!(t.next_due(), Some(ms(300)));
        let n = std::iter::from_fn(|| t.take_due(ms(1280), pace)).count();
        assert_eq!(n, 50);
    }

    #[test]
    fn overdue_counts_without_consuming() {
        let t = Ticker::new(Duration::ZERO, 100);
        assert_eq!(t.overdue(ms(99), |_| Pace::steady(100.0)), 10);
        assert_eq!(t.issued(), 0);
    }

    #[test]
    fn stagger_spreads_clients_over_one_interval() {
        assert_eq!(stagger(0, 4, 10.0), Duration::ZERO);
        assert_eq!(stagger(2, 4, 10.0), ms(50));
        assert!(stagger(3, 4, 10.0) < interval(10.0));
        assert_eq!(stagger(1, 4, 0.0), Duration::ZERO);
        assert_eq!(interval(0.0), Duration::from_secs(1));
    }
}
