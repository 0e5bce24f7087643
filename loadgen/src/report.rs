//! The JSON result of a run (fields documented in loadgen/README.md), built from the plan, what
//! the clients recorded and what the scrapes saw. Pure: no I/O here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::recorder::{Latency, Second, Snapshot};
use crate::scenarios::Plan;
use crate::scrape::Sample;

pub const SCHEMA: &str = "erlmcp-load/1";

/// How the run was set up, beyond the plan.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Setup {
    pub family: String,
    pub protocol_version: String,
    pub transports: Vec<String>,
    pub urls: Vec<String>,
    pub metrics_urls: Vec<String>,
    pub tool: String,
    pub sse: bool,
    pub max_in_flight_per_client: usize,
    pub timeout_ms: u64,
    pub started_at_unix_ms: u64,
    /// Where the session clients initialised, when not at their `urls` (`--handshake-url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake_url: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseReport {
    pub name: String,
    pub start_s: f64,
    pub end_s: f64,
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub throughput_per_s: f64,
    pub latency: Latency,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    pub error_rate: f64,
    /// Correct answers per second over the run.
    pub throughput_per_s: f64,
    /// What the plan scheduled per second at the peak (clients × rate).
    pub offered_peak_per_s: f64,
    pub connects_ok: u64,
    pub connect_errors: u64,
    pub peak_connections: i64,
    pub sse_events: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Server {
    pub url: String,
    pub scrapes: u64,
    pub scrape_errors: u64,
    pub first_rss_bytes: Option<f64>,
    pub last_rss_bytes: Option<f64>,
    pub peak_rss_bytes: Option<f64>,
    pub peak_sessions: Option<f64>,
    /// Requests and errors the server counted during the run (last scrape minus first).
    pub requests_counted: Option<f64>,
    pub request_errors_counted: Option<f64>,
}

/// First tenth of the run against the last tenth: does memory or latency creep?
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Drift {
    pub window_s: f64,
    pub rss_first_bytes: Option<f64>,
    pub rss_last_bytes: Option<f64>,
    pub rss_change_percent: Option<f64>,
    pub p99_first_ms: Option<f64>,
    pub p99_last_ms: Option<f64>,
    pub p99_change_percent: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub schema: String,
    pub tool_version: String,
    pub scenario: String,
    pub plan: Plan,
    pub setup: Setup,
    pub elapsed_s: f64,
    pub totals: Totals,
    pub latency: Latency,
    pub phases: Vec<PhaseReport>,
    pub timeline: Vec<Second>,
    pub servers: Vec<Server>,
    pub scrapes: Vec<Sample>,
    pub drift: Drift,
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

fn percent(from: Option<f64>, to: Option<f64>) -> Option<f64> {
    match (from, to) {
        (Some(a), Some(b)) if a > 0.0 => Some(round((b - a) / a * 100.0, 2)),
        _ => None,
    }
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (s, n) = v.fold((0.0, 0u32), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| s / n as f64)
}

fn server(url: &str, samples: &[&Sample]) -> Server {
    let ok: Vec<&&Sample> = samples.iter().filter(|s| s.error.is_none()).collect();
    let rss: Vec<f64> = ok.iter().filter_map(|s| s.rss_bytes).collect();
    let delta = |f: fn(&Sample) -> Option<f64>| {
        let first = ok.iter().find_map(|s| f(s))?;
        let last = ok.iter().rev().find_map(|s| f(s))?;
        Some(last - first)
    };
    Server {
        url: url.to_string(),
        scrapes: samples.len() as u64,
        scrape_errors: (samples.len() - ok.len()) as u64,
        first_rss_bytes: rss.first().copied(),
        last_rss_bytes: rss.last().copied(),
        peak_rss_bytes: rss.iter().copied().reduce(f64::max),
        peak_sessions: ok.iter().filter_map(|s| s.sessions_active).reduce(f64::max),
        requests_counted: delta(|s| s.requests_total),
        request_errors_counted: delta(|s| s.request_errors_total),
    }
}

/// Memory summed over servers (each server's mean in the window) and the median per-second
/// p99 in the first and the last tenth of the run (at least one second each).
fn drift(elapsed: f64, timeline: &[Second], scrapes: &[Sample], urls: &[String]) -> Drift {
    let w = (elapsed / 10.0).max(1.0);
    let in_first = |t: f64| t < w;
    let in_last = |t: f64| t >= elapsed - w;
    let rss = |pick: &dyn Fn(f64) -> bool| -> Option<f64> {
        let per: Vec<f64> = urls
            .iter()
            .filter_map(|u| {
                mean(
                    scrapes
                        .iter()
                        .filter(|s| &s.url == u && pick(s.t))
                        .filter_map(|s| s.rss_bytes),
                )
            })
            .collect();
        (!per.is_empty()).then(|| per.iter().sum())
    };
    let p99 = |pick: &dyn Fn(f64) -> bool| -> Option<f64> {
        let mut v: Vec<f64> = timeline
            .iter()
            // A second counts where its middle falls.
            .filter(|s| s.latency.count > 0 && pick(s.t as f64 + 0.5))
            .map(|s| s.latency.p99_ms)
            .collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    let (rf, rl) = (rss(&in_first), rss(&in_last));
    let (pf, pl) = (p99(&in_first), p99(&in_last));
    Drift {
        window_s: round(w, 3),
        rss_first_bytes: rf,
        rss_last_bytes: rl,
        rss_change_percent: percent(rf, rl),
        p99_first_ms: pf,
        p99_last_ms: pl,
        p99_change_percent: percent(pf, pl),
    }
}

pub fn build(
    plan: &Plan,
    setup: Setup,
    snap: &Snapshot,
    scrapes: Vec<Sample>,
    elapsed_s: f64,
) -> Report {
    let tl = &snap.seconds;
    let mut errors_by_kind = BTreeMap::new();
    for s in tl {
        for (k, v) in &s.errors_by_kind {
            *errors_by_kind.entry(k.clone()).or_default() += v;
        }
    }
    let sum = |f: fn(&Second) -> u64, from: f64, to: f64| -> u64 {
        tl.iter()
            .filter(|s| (s.t as f64) >= from && (s.t as f64) < to)
            .map(f)
            .sum()
    };
    let bounds = plan.bounds();
    let n = bounds.len();
    let phases = bounds
        .into_iter()
        .enumerate()
        .map(|(i, (name, start, end))| {
            // The last phase also owns the drain seconds after the plan's end.
            let to = if i + 1 == n { f64::INFINITY } else { end };
            let ok = sum(|s| s.ok, start, to);
            // A closed second belongs to the phase it starts in, so the rate is over those
            // whole seconds (not the phase's own span: a 0.2 s warm-up owns all of second 0).
            let own = tl
                .iter()
                .filter(|s| (s.t as f64) >= start && (s.t as f64) < end)
                .count();
            PhaseReport {
                throughput_per_s: if own > 0 {
                    round(sum(|s| s.ok, start, end) as f64 / own as f64, 1)
                } else {
                    0.0
                },
                sent: sum(|s| s.sent, start, to),
                ok,
                errors: sum(|s| s.errors, start, to),
                latency: snap.phases.get(i).map(Latency::of).unwrap_or_default(),
                name,
                start_s: start,
                end_s: end,
            }
        })
        .collect();
    let (sent, ok, errors) = (
        sum(|s| s.sent, 0.0, f64::INFINITY),
        sum(|s| s.ok, 0.0, f64::INFINITY),
        sum(|s| s.errors, 0.0, f64::INFINITY),
    );
    let totals = Totals {
        sent,
        ok,
        errors,
        error_rate: if ok + errors > 0 {
            round(errors as f64 / (ok + errors) as f64, 6)
        } else {
            0.0
        },
        errors_by_kind,
        throughput_per_s: if elapsed_s > 0.0 {
            round(ok as f64 / elapsed_s, 1)
        } else {
            0.0
        },
        offered_peak_per_s: plan.peak_clients() as f64
            * plan.profile.rate_per_client
            * plan.phases.iter().map(|p| p.rate_scale).fold(0.0, f64::max),
        connects_ok: snap.connects_ok,
        connect_errors: snap.connect_errors,
        peak_connections: tl.iter().map(|s| s.connections_max).max().unwrap_or(0),
        sse_events: tl.iter().map(|s| s.sse_events).sum(),
    };
    let servers = setup
        .metrics_urls
        .iter()
        .map(|u| {
            server(
                u,
                &scrapes.iter().filter(|s| &s.url == u).collect::<Vec<_>>(),
            )
        })
        .collect();
    let drift = drift(elapsed_s, tl, &scrapes, &setup.metrics_urls);
    Report {
        schema: SCHEMA.into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        scenario: plan.scenario.clone(),
        plan: plan.clone(),
        setup,
        elapsed_s: round(elapsed_s, 3),
        totals,
        latency: Latency::of(&snap.overall),
        phases,
        timeline: tl.clone(),
        servers,
        scrapes,
        drift,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::profiles::Overrides;
    use crate::recorder::Recorder;
    use crate::scenarios::{plan, PlanOptions};

    /// The plan of a three-second baseline run (a 0.3 s warm-up, then the steady phase).
    fn baseline_3s() -> Plan {
        plan(&PlanOptions {
            scenario: "baseline".into(),
            profile: None,
            overrides: Overrides::default(),
            duration: Some(Duration::from_secs(3)),
            time_scale: 1.0,
        })
        .unwrap()
    }

    /// A three-second baseline run with a few answers, errors and scrapes.
    pub fn fixture() -> Report {
        let p = baseline_3s();
        let start = Instant::now() - Duration::from_millis(2500);
        let r = Recorder::new(start, p.bounds().iter().map(|b| b.2).collect());
        r.connected();
        r.sent(3);
        r.ok(Instant::now() - Duration::from_millis(2));
        r.ok(Instant::now() - Duration::from_millis(3));
        r.error("http_503", Some(Instant::now()));
        let url = "http://127.0.0.1:9100/metrics".to_string();
        let scrape = |t: f64, rss: f64| Sample {
            t,
            url: url.clone(),
            rss_bytes: Some(rss),
            sessions_active: Some(2.0),
            requests_total: Some(t * 10.0),
            ..Default::default()
        };
        let scrapes = vec![scrape(0.1, 100.0), scrape(1.5, 105.0), scrape(2.9, 110.0)];
        let setup = Setup {
            family: "stateless".into(),
            metrics_urls: vec![url.clone()],
            ..Default::default()
        };
        build(&p, setup, &r.finish(), scrapes, 3.0)
    }

    #[test]
    fn totals_add_up_over_the_timeline() {
        let r = fixture();
        assert_eq!(r.schema, SCHEMA);
        assert_eq!((r.totals.sent, r.totals.ok, r.totals.errors), (3, 2, 1));
        assert_eq!(r.totals.errors_by_kind["http_503"], 1);
        assert_eq!(r.totals.peak_connections, 1);
        assert_eq!(r.latency.count, 3);
        assert_eq!(r.totals.offered_peak_per_s, 2500.0);
        let ts: Vec<u64> = r.timeline.iter().map(|s| s.t).collect();
        assert_eq!(ts, [0, 1, 2]);
    }

    #[test]
    fn phases_split_the_run() {
        let r = fixture();
        let names: Vec<&str> = r.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["warm-up", "steady"]);
        let ok: u64 = r.phases.iter().map(|p| p.ok).sum();
        assert_eq!(ok, r.totals.ok);
        assert_eq!(r.phases[1].latency.count, 3);
    }

    /// A phase's rate is over the whole seconds it owns: second 0 (1,000 answers) belongs to the
    /// 0.3 s warm-up, which must not read as 3,333/s; the steady phase owns seconds 1 and 2.
    #[test]
    fn phase_rates_are_over_the_seconds_each_phase_owns() {
        let p = baseline_3s();
        let second = |t: u64, ok: u64| Second {
            t,
            ok,
            ..Default::default()
        };
        let mut snap = Recorder::new(Instant::now(), vec![0.3, 3.0]).finish();
        snap.seconds = vec![
            second(0, 1000),
            second(1, 1000),
            second(2, 1000),
            second(3, 10),
        ];
        let r = build(&p, Setup::default(), &snap, vec![], 3.0);
        assert_eq!((r.phases[0].start_s, r.phases[0].end_s), (0.0, 0.3));
        assert_eq!(r.phases[0].throughput_per_s, 1000.0);
        // The drain second (t = 3) counts in the last phase's answers, not in its rate.
        assert_eq!(r.phases[1].ok, 2010);
        assert_eq!(r.phases[1].throughput_per_s, 1000.0);
    }

    #[test]
    fn servers_and_drift_come_from_the_scrapes() {
        let r = fixture();
        let s = &r.servers[0];
        assert_eq!(
            (s.scrapes, s.first_rss_bytes, s.peak_rss_bytes),
            (3, Some(100.0), Some(110.0))
        );
        assert_eq!(s.requests_counted, Some(28.0));
        assert_eq!(r.drift.rss_first_bytes, Some(100.0));
        assert_eq!(r.drift.rss_last_bytes, Some(110.0));
        assert_eq!(r.drift.rss_change_percent, Some(10.0));
    }

    #[test]
    fn the_json_round_trips_with_the_documented_field_names() {
        let r = fixture();
        let v = serde_json::to_value(&r).unwrap();
        for key in [
            "schema", "scenario", "plan", "setup", "elapsedS", "totals", "latency", "phases",
            "timeline", "servers", "scrapes", "drift",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert!(v["timeline"][0].get("errorsByKind").is_some());
        assert!(v["latency"].get("p99Ms").is_some());
        assert!(v["plan"]["profile"].get("ratePerClient").is_some());
        let back: Report = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }
}
