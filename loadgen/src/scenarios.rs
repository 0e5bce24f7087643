//! Scenarios: the original kit's baseline, connection flood and message bombing, plus a soak.
//! A scenario is a profile and a list of phases; each phase moves the number of connected
//! clients linearly from one count to another and scales every client's rate.

use std::time::Duration;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::profiles::{self, Overrides, Profile};
use crate::schedule::Pace;

pub const SCENARIOS: [&str; 4] = ["baseline", "connection-flood", "message-bombing", "soak"];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Phase {
    pub name: String,
    #[serde(rename = "durationS", with = "secs")]
    pub duration: Duration,
    pub clients_from: u32,
    pub clients_to: u32,
    /// Multiplies each client's profile rate during this phase.
    pub rate_scale: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub scenario: String,
    pub profile: Profile,
    pub time_scale: f64,
    pub phases: Vec<Phase>,
}

/// What the command line says about the plan.
#[derive(Clone, Debug)]
pub struct PlanOptions {
    pub scenario: String,
    /// Replaces the scenario's profile.
    pub profile: Option<String>,
    pub overrides: Overrides,
    /// Length of the main phase (steady state, peak hold, bombing, soak).
    pub duration: Option<Duration>,
    /// Multiplies every phase's default length, so CI can run a ten-minute scenario in seconds.
    pub time_scale: f64,
}

fn phase(name: &str, d: Duration, from: u32, to: u32, rate_scale: f64) -> Phase {
    Phase {
        name: name.into(),
        duration: d,
        clients_from: from,
        clients_to: to,
        rate_scale,
    }
}

/// Builds the plan for a scenario. Default lengths follow the original kit (baseline 5 min,
/// flood 10 min, bombing 7 min); the soak runs 30 min by default.
pub fn plan(o: &PlanOptions) -> Result<Plan> {
    if !(o.time_scale > 0.0 && o.time_scale.is_finite()) {
        bail!("--time-scale must be a positive number");
    }
    let s = |secs: f64| Duration::from_secs_f64(secs * o.time_scale);
    let main = |default: f64| o.duration.unwrap_or_else(|| s(default));
    let base_profile = match o.scenario.as_str() {
        "baseline" | "soak" => "normal",
        "connection-flood" => "low-load",
        "message-bombing" => "message-bomber",
        other => bail!(
            "unknown scenario {other:?} (one of {})",
            SCENARIOS.join(", ")
        ),
    };
    let name = o.profile.as_deref().unwrap_or(base_profile);
    let Some(mut profile) = profiles::profile(name) else {
        bail!(
            "unknown profile {name:?} (one of {})",
            profiles::names().join(", ")
        );
    };
    // The original's flood and bombing fix their own client counts and rates unless the command
    // line says otherwise.
    match o.scenario.as_str() {
        "connection-flood" if o.profile.is_none() => {
            profile.name = "connection-flood".into();
            profile.clients = 500;
            profile.rate_per_client = 1.0;
        }
        "message-bombing" if o.profile.is_none() => {
            profile.name = "message-bomber (20 clients)".into();
            profile.clients = 20;
        }
        _ => {}
    }
    let profile = profile.with(&o.overrides);
    let n = profile.clients;
    let phases = match o.scenario.as_str() {
        "baseline" => {
            // Warm-up: a tenth of the run (at most the original's 30 s) where connections are
            // made; its samples are reported apart from the steady state.
            let total = main(300.0);
            let warm = (total / 10).min(Duration::from_secs(30));
            vec![
                phase("warm-up", warm, n, n, 1.0),
                phase("steady", total - warm, n, n, 1.0),
            ]
        }
        "connection-flood" => {
            // 0 -> peak at 5 connections/s (scaled), hold, cool down to 5 % of the peak
            // (25 of 500).
            let floor = (n / 20).max(1);
            vec![
                phase("ramp-up", s(n as f64 / 5.0), 0, n, 1.0),
                phase("peak", main(180.0), n, n, 1.0),
                phase("cool-down", s(120.0), n, floor, 1.0),
            ]
        }
        "message-bombing" => vec![
            phase("initialization", s(30.0), n, n, 0.001),
            phase("bombing", main(300.0), n, n, 1.0),
            phase("cool-down", s(120.0), n, n, 0.001),
        ],
        "soak" => vec![phase("soak", main(1800.0), n, n, 0.5)],
        _ => unreachable!(),
    };
    Ok(Plan {
        scenario: o.scenario.clone(),
        profile,
        time_scale: o.time_scale,
        phases,
    })
}

impl Plan {
    pub fn total(&self) -> Duration {
        self.phases.iter().map(|p| p.duration).sum()
    }

    /// The phase running at `t` since the start (the last one after the end), and its start.
    pub fn phase_at(&self, t: Duration) -> (usize, Duration) {
        let mut start = Duration::ZERO;
        for (i, p) in self.phases.iter().enumerate() {
            if t < start + p.duration {
                return (i, start);
            }
            start += p.duration;
        }
        let last = self.phases.len().saturating_sub(1);
        (last, start.saturating_sub(self.phases[last].duration))
    }

    /// How many clients should be connected at `t`: linear within the phase, rounded down.
    pub fn clients_at(&self, t: Duration) -> u32 {
        let (i, start) = self.phase_at(t);
        let p = &self.phases[i];
        if p.duration.is_zero() {
            return p.clients_to;
        }
        let f = ((t - start).as_secs_f64() / p.duration.as_secs_f64()).min(1.0);
        let v = p.clients_from as f64 + (p.clients_to as f64 - p.clients_from as f64) * f;
        v.floor().max(0.0) as u32
    }

    /// One client's scheduled rate (messages/s) at `t`.
    pub fn rate_at(&self, t: Duration) -> f64 {
        self.pace_at(t).rate
    }

    /// The rate at `t` and the end of the phase it holds for.
    pub fn pace_at(&self, t: Duration) -> Pace {
        let (i, start) = self.phase_at(t);
        let p = &self.phases[i];
        Pace {
            rate: self.profile.rate_per_client * p.rate_scale,
            until: if i + 1 == self.phases.len() {
                Duration::MAX
            } else {
                start + p.duration
            },
        }
    }

    /// The most clients any phase asks for.
    pub fn peak_clients(&self) -> u32 {
        self.phases
            .iter()
            .map(|p| p.clients_from.max(p.clients_to))
            .max()
            .unwrap_or(0)
    }

    /// An upper bound on the messages one client is scheduled to send (its count limit).
    pub fn max_requests_per_client(&self) -> u64 {
        let sum: f64 = self
            .phases
            .iter()
            .map(|p| p.duration.as_secs_f64() * self.profile.rate_per_client * p.rate_scale)
            .sum();
        sum.ceil() as u64 + self.phases.len() as u64
    }

    /// (name, start, end) of each phase, in seconds from the start.
    pub fn bounds(&self) -> Vec<(String, f64, f64)> {
        let mut t = 0.0;
        self.phases
            .iter()
            .map(|p| {
                let s = t;
                t += p.duration.as_secs_f64();
                (p.name.clone(), s, t)
            })
            .collect()
    }
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs_f64(f64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(s: &str) -> PlanOptions {
        PlanOptions {
            scenario: s.into(),
            profile: None,
            overrides: Overrides::default(),
            duration: None,
            time_scale: 1.0,
        }
    }

    #[test]
    fn baseline_is_the_normal_profile_for_the_given_duration() {
        let mut o = opts("baseline");
        o.duration = Some(Duration::from_secs(10));
        let p = plan(&o).unwrap();
        assert_eq!(p.profile, profiles::profile("normal").unwrap());
        assert_eq!(p.total(), Duration::from_secs(10));
        assert_eq!(p.phases[0].name, "warm-up");
        assert_eq!(p.phases[0].duration, Duration::from_secs(1));
        assert_eq!(p.clients_at(Duration::ZERO), 25);
        // The original's 5 minutes, warm-up capped at 30 s.
        let d = plan(&opts("baseline")).unwrap();
        assert_eq!(d.total(), Duration::from_secs(300));
        assert_eq!(d.phases[0].duration, Duration::from_secs(30));
    }

    #[test]
    fn connection_flood_ramps_at_five_per_second_holds_and_cools_to_25() {
        let p = plan(&opts("connection-flood")).unwrap();
        let names: Vec<_> = p.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["ramp-up", "peak", "cool-down"]);
        assert_eq!(p.phases[0].duration, Duration::from_secs(100));
        assert_eq!(p.clients_at(Duration::from_secs(10)), 50);
        assert_eq!(p.clients_at(Duration::from_secs(50)), 250);
        assert_eq!(p.clients_at(Duration::from_secs(150)), 500);
        assert_eq!(p.clients_at(p.total()), 25);
        assert_eq!(p.peak_clients(), 500);
    }

    #[test]
    fn time_scale_shrinks_every_phase_and_keeps_the_shape() {
        let mut o = opts("connection-flood");
        o.time_scale = 0.1;
        let p = plan(&o).unwrap();
        assert_eq!(p.total(), Duration::from_secs(40));
        // The ramp now climbs at 50 connections/s.
        assert_eq!(p.clients_at(Duration::from_secs(1)), 50);
        assert!(plan(&PlanOptions {
            time_scale: 0.0,
            ..opts("soak")
        })
        .is_err());
    }

    #[test]
    fn message_bombing_is_20_bombers_at_ten_thousand() {
        let p = plan(&opts("message-bombing")).unwrap();
        assert_eq!(
            (p.profile.clients, p.profile.rate_per_client),
            (20, 10_000.0)
        );
        let bombing = Duration::from_secs(30 + 60);
        assert_eq!(p.rate_at(bombing), 10_000.0);
        assert!(p.rate_at(Duration::from_secs(1)) < 100.0);
    }

    #[test]
    fn soak_runs_the_normal_profile_at_half_rate() {
        let p = plan(&opts("soak")).unwrap();
        assert_eq!(p.rate_at(Duration::from_secs(60)), 50.0);
        assert_eq!(p.clients_at(Duration::from_secs(60)), 25);
    }

    #[test]
    fn overrides_and_unknown_names() {
        let mut o = opts("baseline");
        o.profile = Some("low-load".into());
        o.overrides.clients = Some(3);
        let p = plan(&o).unwrap();
        assert_eq!(
            (p.profile.name.as_str(), p.profile.clients),
            ("low-load+custom", 3)
        );
        assert!(plan(&opts("stampede")).is_err());
        o.profile = Some("nope".into());
        assert!(plan(&o).is_err());
    }

    #[test]
    fn count_limit_covers_the_schedule() {
        let mut o = opts("baseline");
        o.duration = Some(Duration::from_secs(10));
        let p = plan(&o).unwrap();
        assert!(p.max_requests_per_client() >= 1000);
        assert!(p.max_requests_per_client() <= 1010);
        let b = p.bounds();
        assert_eq!(b.last().unwrap().2, 10.0);
        assert_eq!(p.phase_at(Duration::from_secs(5)).0, 1);
        assert_eq!(p.phase_at(Duration::from_secs(99)).0, 1);
    }
}
