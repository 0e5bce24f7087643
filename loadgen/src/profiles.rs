//! Client profiles: the five the original erlmcp Swarm kit defined (clients, messages per second
//! per client, message size), and command-line overrides on top.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How many clients, how fast each one sends, how big each message is, and how slowly each one
/// reads its answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub name: String,
    pub clients: u32,
    /// Messages per second, per client.
    pub rate_per_client: f64,
    /// Size of the `message` argument of each `tools/call` of `echo`, in bytes.
    pub message_bytes: usize,
    /// Pause before reading each answer (the slow client's back-pressure on the server).
    #[serde(with = "millis")]
    pub read_delay: Duration,
}

/// The slow client waits this long before it reads each answer.
pub const SLOW_READ_DELAY: Duration = Duration::from_millis(250);

/// (name, clients, msg/s per client, bytes, read delay): the original's table.
const TABLE: [(&str, u32, f64, usize, Duration); 5] = [
    ("high-load", 50, 1_000.0, 2048, Duration::ZERO),
    ("normal", 25, 100.0, 512, Duration::ZERO),
    ("low-load", 10, 10.0, 256, Duration::ZERO),
    ("slow-client", 5, 1.0, 1024, SLOW_READ_DELAY),
    ("message-bomber", 10, 10_000.0, 128, Duration::ZERO),
];

pub fn names() -> Vec<&'static str> {
    TABLE.iter().map(|t| t.0).collect()
}

pub fn profile(name: &str) -> Option<Profile> {
    TABLE
        .iter()
        .find(|t| t.0 == name)
        .map(|&(n, clients, rate, bytes, delay)| Profile {
            name: n.to_string(),
            clients,
            rate_per_client: rate,
            message_bytes: bytes,
            read_delay: delay,
        })
}

/// Values given on the command line; each one replaces the profile's.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub clients: Option<u32>,
    pub rate: Option<f64>,
    pub size: Option<usize>,
    pub read_delay: Option<Duration>,
}

impl Overrides {
    pub fn is_empty(&self) -> bool {
        self.clients.is_none()
            && self.rate.is_none()
            && self.size.is_none()
            && self.read_delay.is_none()
    }
}

impl Profile {
    /// The profile with the overrides applied; renamed `<name>+custom` when anything changed,
    /// so a report never claims a stock profile it did not run.
    pub fn with(mut self, o: &Overrides) -> Profile {
        if o.is_empty() {
            return self;
        }
        if let Some(c) = o.clients {
            self.clients = c;
        }
        if let Some(r) = o.rate {
            self.rate_per_client = r;
        }
        if let Some(s) = o.size {
            self.message_bytes = s;
        }
        if let Some(d) = o.read_delay {
            self.read_delay = d;
        }
        self.name = format!("{}+custom", self.name);
        self
    }

    /// Messages per second all clients together are scheduled to send.
    pub fn offered_rate(&self) -> f64 {
        self.clients as f64 * self.rate_per_client
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_originals_five_profiles() {
        let row = |n: &str| {
            let p = profile(n).unwrap();
            (p.clients, p.rate_per_client, p.message_bytes)
        };
        assert_eq!(row("high-load"), (50, 1_000.0, 2048));
        assert_eq!(row("normal"), (25, 100.0, 512));
        assert_eq!(row("low-load"), (10, 10.0, 256));
        assert_eq!(row("slow-client"), (5, 1.0, 1024));
        assert_eq!(row("message-bomber"), (10, 10_000.0, 128));
        assert_eq!(names().len(), 5);
        assert!(profile("nope").is_none());
    }

    #[test]
    fn only_the_slow_client_reads_slowly() {
        for n in names() {
            let slow = profile(n).unwrap().read_delay > Duration::ZERO;
            assert_eq!(slow, n == "slow-client", "{n}");
        }
    }

    #[test]
    fn offered_rate_is_clients_times_rate() {
        assert_eq!(profile("normal").unwrap().offered_rate(), 2_500.0);
        assert_eq!(profile("message-bomber").unwrap().offered_rate(), 100_000.0);
    }

    #[test]
    fn overrides_replace_fields_and_mark_the_name() {
        let p = profile("normal").unwrap();
        assert_eq!(p.clone().with(&Overrides::default()), p);
        let c = p.with(&Overrides {
            rate: Some(5.0),
            size: Some(64),
            ..Default::default()
        });
        assert_eq!(
            (
                c.name.as_str(),
                c.clients,
                c.rate_per_client,
                c.message_bytes
            ),
            ("normal+custom", 25, 5.0, 64)
        );
    }
}
