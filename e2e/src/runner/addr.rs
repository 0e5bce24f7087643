//! Pod addresses. [`AddressPool`] hands out a `/24`'s host addresses; in netns mode (see
//! [`network`](super::network)) that `/24` is the bridge's. This file also holds the loopback
//! fallback, where pods share the host's network and each binds its own address.
//!
//! Loopback fallback, default: a `/24` from the benchmarking range 198.18.0.0/15, made local with an "AnyIP"
//! route (`ip route add local 198.18.N.0/24 dev lo`, removed at exit): any address in it can be
//! bound without configuring it, and, unlike 127.0.0.0/8, the API server accepts it in
//! Endpoints (it refuses loopback there: "may not be in the loopback range"). Without
//! CAP_NET_ADMIN or `ip`, or with `--address-base 127.0.1`, loopback addresses are used:
//! EndpointSlices still list them, the legacy Endpoints controller cannot.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

/// Allocates `base.2` .. `base.254`, round robin, never an address in use (ours, or one some
/// process on this machine listens on).
pub struct AddressPool {
    base: [u8; 3],
    state: Mutex<PoolState>,
    /// The AnyIP route we added (removed by [`AddressPool::cleanup`]).
    route: Option<String>,
}

struct PoolState {
    in_use: BTreeSet<u8>,
    next: u8,
}

pub fn parse_base(s: &str) -> Result<[u8; 3]> {
    let parts: Vec<u8> = s
        .split('.')
        .map(|p| p.parse::<u8>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("address base {s:?}: expected three octets like 127.0.1"))?;
    match parts[..] {
        [a, b, c] => Ok([a, b, c]),
        _ => bail!("address base {s:?}: expected three octets like 127.0.1"),
    }
}

fn local_routes() -> String {
    Command::new("ip")
        .args(["-4", "route", "show", "table", "local"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

impl AddressPool {
    /// `base` is three octets (`127.0.1`) or `auto` (an AnyIP /24 in 198.18.0.0/15, else 127.0.1).
    pub fn new(base: &str) -> Result<Self> {
        if base != "auto" {
            return Ok(Self::with_base(parse_base(base)?, None));
        }
        let routes = local_routes();
        for _ in 0..64 {
            let (b, c) = (
                18 + rand::random_range(0..2u8),
                rand::random_range(0..=255u8),
            );
            let net = format!("198.{b}.{c}.0/24");
            if routes.contains(&format!("198.{b}.{c}.")) {
                continue;
            }
            let out = Command::new("ip")
                .args(["-4", "route", "add", "local", &net, "dev", "lo"])
                .output();
            match out {
                Ok(o) if o.status.success() => {
                    tracing::info!(%net, "pod addresses from an AnyIP route on lo");
                    return Ok(Self::with_base([198, b, c], Some(net)));
                }
                Ok(o) if String::from_utf8_lossy(&o.stderr).contains("File exists") => continue,
                Ok(o) => {
                    tracing::warn!(stderr = %String::from_utf8_lossy(&o.stderr).trim(),
                        "cannot add an AnyIP route; pod addresses fall back to 127.0.1.x \
                         (Endpoints will refuse them; EndpointSlices list them)");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "no `ip` command; pod addresses fall back to 127.0.1.x");
                    break;
                }
            }
        }
        Ok(Self::with_base([127, 0, 1], None))
    }

    /// A pool over `base.2` .. `base.254` that adds no route (netns mode: the bridge's /24).
    pub fn fixed(base: [u8; 3]) -> Self {
        Self::with_base(base, None)
    }

    /// The AnyIP route this pool added, if any.
    pub fn route(&self) -> Option<&str> {
        self.route.as_deref()
    }

    pub fn octets(&self) -> [u8; 3] {
        self.base
    }

    fn with_base(base: [u8; 3], route: Option<String>) -> Self {
        Self {
            base,
            state: Mutex::new(PoolState {
                in_use: BTreeSet::new(),
                next: 2,
            }),
            route,
        }
    }

    pub fn base(&self) -> String {
        format!("{}.{}.{}", self.base[0], self.base[1], self.base[2])
    }

    pub fn allocate(&self) -> Option<Ipv4Addr> {
        let listening = listening_addresses();
        let mut st = self.state.lock().unwrap();
        for _ in 2..=254u16 {
            let host = st.next;
            st.next = if st.next >= 254 { 2 } else { st.next + 1 };
            let ip = Ipv4Addr::new(self.base[0], self.base[1], self.base[2], host);
            if !st.in_use.contains(&host) && !listening.contains(&ip) {
                st.in_use.insert(host);
                return Some(ip);
            }
        }
        None
    }

    pub fn release(&self, ip: Ipv4Addr) {
        self.state.lock().unwrap().in_use.remove(&ip.octets()[3]);
    }

    /// Removes the AnyIP route this pool added, if any.
    pub fn cleanup(&self) {
        if let Some(net) = &self.route {
            let _ = Command::new("ip")
                .args(["-4", "route", "del", "local", net, "dev", "lo"])
                .status();
        }
    }
}

/// IPv4 addresses with a listening TCP socket on this machine (from /proc/net/tcp).
pub fn listening_addresses() -> BTreeSet<Ipv4Addr> {
    let mut out = BTreeSet::new();
    let Ok(text) = std::fs::read_to_string("/proc/net/tcp") else {
        return out;
    };
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 3 && f[3] == "0A" {
            if let Some((hex, _)) = f[1].split_once(':') {
                if let Ok(n) = u32::from_str_radix(hex, 16) {
                    // /proc shows the address in host (little-endian) byte order.
                    out.insert(Ipv4Addr::from(n.swap_bytes()));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_round_robin_and_never_twice() {
        let p = AddressPool::new("127.0.9").unwrap();
        let a = p.allocate().unwrap();
        let b = p.allocate().unwrap();
        assert_eq!(a, Ipv4Addr::new(127, 0, 9, 2));
        assert_eq!(b, Ipv4Addr::new(127, 0, 9, 3));
        p.release(a);
        // Round robin: a just-released address is not handed out again at once.
        assert_eq!(p.allocate().unwrap(), Ipv4Addr::new(127, 0, 9, 4));
        let mut all = BTreeSet::new();
        while let Some(ip) = p.allocate() {
            assert!(all.insert(ip), "{ip} handed out twice");
        }
        assert!(!all.contains(&b), "in-use address reused");
        assert!(AddressPool::new("1.2").is_err());
    }

    #[test]
    fn sees_listeners() {
        let l = std::net::TcpListener::bind("127.0.9.77:0").unwrap();
        assert!(listening_addresses().contains(&Ipv4Addr::new(127, 0, 9, 77)));
        drop(l);
    }
}
