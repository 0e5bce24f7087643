//! How pods are reached: each in a network namespace of its own on the runner's bridge
//! ([`netns`](super::netns), the default as root), or, without root, on an address of this
//! host's loopback ([`addr`](super::addr), the fallback: pods share the host's network and
//! are told their address in `ERLMCP_BIND_ADDRESS`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use super::addr::{parse_base, AddressPool};
use super::apiproxy;
use super::netns::{self, Bridge};

/// `--network`: `auto` is `netns` as root, else `loopback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    Auto,
    Netns,
    Loopback,
}

impl FromStr for NetworkMode {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "auto" => Self::Auto,
            "netns" => Self::Netns,
            "loopback" => Self::Loopback,
            _ => bail!("network mode {s:?}: expected auto, netns or loopback"),
        })
    }
}

/// What the runner's network is, written to `<state dir>/network.json` for the test tooling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    /// `netns` or `loopback`.
    pub mode: String,
    /// The pods' `/24` as `a.b.c`.
    pub subnet: String,
    /// The host as pods see it (`status.hostIP`): the bridge's address, or 127.0.0.1.
    pub host_ip: Ipv4Addr,
    /// netns mode: the bridge, and the prefix of every pod namespace (`<prefix><last octet>`).
    pub bridge: Option<String>,
    pub netns_prefix: Option<String>,
    pub veth_prefix: Option<String>,
}

pub const INFO_FILE: &str = "network.json";

impl NetworkInfo {
    pub fn read(state_dir: &Path) -> Result<Self> {
        let p = state_dir.join(INFO_FILE);
        let t = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        Ok(serde_json::from_str(&t)?)
    }

    pub fn is_netns(&self) -> bool {
        self.mode == "netns"
    }

    /// The namespace of the pod at `ip` (netns mode), if `ip` is one of this runner's.
    pub fn netns_of(&self, ip: IpAddr) -> Option<String> {
        let (IpAddr::V4(v4), Some(prefix)) = (ip, &self.netns_prefix) else {
            return None;
        };
        let o = v4.octets();
        (format!("{}.{}.{}", o[0], o[1], o[2]) == self.subnet && o[3] > 1)
            .then(|| format!("{prefix}{}", o[3]))
    }
}

/// A pod's place on the network; give it back with [`Network::detach`].
pub struct PodNet {
    pub ip: Ipv4Addr,
    /// netns mode: the pod's namespace (`/run/netns/<name>`).
    pub netns: Option<String>,
    relay: Option<JoinHandle<()>>,
}

impl PodNet {
    pub fn netns_path(&self) -> Option<PathBuf> {
        self.netns.as_deref().map(Bridge::netns_path)
    }
}

pub struct Network {
    pool: AddressPool,
    bridge: Option<Bridge>,
    /// The API server's addresses, relayed into each pod namespace.
    api: Vec<SocketAddr>,
    /// Record of the loopback fallback's AnyIP route (see [`netns::record_anyip`]).
    anyip_record: Option<PathBuf>,
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl Network {
    /// `address_base`: `auto` or three octets (netns mode: the bridge's /24).
    pub fn new(
        mode: NetworkMode,
        address_base: &str,
        api_host: &str,
        api_port: u16,
    ) -> Result<Self> {
        let api: Vec<SocketAddr> = (api_host, api_port)
            .to_socket_addrs()
            .with_context(|| format!("resolving the API server {api_host}"))?
            .collect();
        let want = match address_base {
            "auto" => None,
            b => Some(parse_base(b)?),
        };
        let try_netns = match mode {
            NetworkMode::Netns => true,
            NetworkMode::Loopback => false,
            NetworkMode::Auto => is_root() && want.is_none_or(|b| b[0] != 127),
        };
        if try_netns && want.is_some_and(|b| b[0] == 127) {
            bail!("--address-base {address_base}: pod namespaces need a /24 outside 127.0.0.0/8");
        }
        if try_netns {
            match Bridge::create(want) {
                Ok(bridge) => {
                    let s = bridge.subnet;
                    return Ok(Self {
                        pool: AddressPool::fixed(s),
                        bridge: Some(bridge),
                        api,
                        anyip_record: None,
                    });
                }
                Err(e) if mode == NetworkMode::Auto => tracing::warn!(
                    error = %format!("{e:#}"),
                    "no network namespaces; pods share the host's network on loopback addresses"
                ),
                Err(e) => return Err(e.context("network namespaces for pods")),
            }
        }
        if is_root() {
            if let Ok(_lock) = netns::StateLock::take() {
                netns::sweep_leftovers();
            }
        }
        let pool = AddressPool::new(address_base)?;
        let anyip_record = pool
            .route()
            .and_then(|r| netns::record_anyip(r, pool.octets()).ok());
        Ok(Self {
            pool,
            bridge: None,
            api,
            anyip_record,
        })
    }

    pub fn info(&self) -> NetworkInfo {
        let b = self.bridge.as_ref();
        NetworkInfo {
            mode: if b.is_some() { "netns" } else { "loopback" }.into(),
            subnet: self.pool.base(),
            host_ip: self.host_ip(),
            bridge: b.map(|b| b.names.bridge()),
            netns_prefix: b.map(|b| b.names.netns_prefix()),
            veth_prefix: b.map(|b| b.names.veth_prefix()),
        }
    }

    /// The host as pods see it.
    pub fn host_ip(&self) -> Ipv4Addr {
        match &self.bridge {
            Some(b) => b.host_ip(),
            None => Ipv4Addr::LOCALHOST,
        }
    }

    /// Loopback mode only: pods share the host's network, so each must bind its own address
    /// (`ERLMCP_BIND_ADDRESS`); in a namespace they bind 0.0.0.0 as in production.
    pub fn pods_share_host_network(&self) -> bool {
        self.bridge.is_none()
    }

    /// An address (and in netns mode a namespace with the API relay) for a pod; `Ok(None)`
    /// when every address is taken.
    pub async fn attach(&self) -> Result<Option<PodNet>> {
        let Some(ip) = self.pool.allocate() else {
            return Ok(None);
        };
        let Some(bridge) = &self.bridge else {
            return Ok(Some(PodNet {
                ip,
                netns: None,
                relay: None,
            }));
        };
        let (b, api) = (bridge.links(), self.api.clone());
        let made = tokio::task::spawn_blocking(move || {
            let ns = b.add_pod(ip)?;
            match apiproxy::bind(&ns, &api) {
                Ok(l) => Ok((ns, l)),
                Err(e) => {
                    let _ = b.remove_pod(ip);
                    Err(e)
                }
            }
        })
        .await
        .context("namespace setup task")?;
        let (ns, listeners) = match made {
            Ok(v) => v,
            Err(e) => {
                self.pool.release(ip);
                return Err(e);
            }
        };
        let relay = apiproxy::serve(listeners)?;
        tracing::debug!(%ip, netns = %ns, "pod network ready");
        Ok(Some(PodNet {
            ip,
            netns: Some(ns),
            relay: Some(relay),
        }))
    }

    /// Removes the pod's namespace and frees its address (its processes are gone).
    pub async fn detach(&self, p: PodNet) {
        if let Some(r) = p.relay {
            r.abort();
        }
        if let Some(b) = &self.bridge {
            let links = b.links();
            let ip = p.ip;
            let r = tokio::task::spawn_blocking(move || links.remove_pod(ip)).await;
            if let Ok(Err(e)) = r {
                tracing::warn!(%ip, error = %format!("{e:#}"), "pod namespace not removed");
            }
        }
        self.pool.release(p.ip);
    }

    /// Removes the bridge, every pod namespace and link, or the AnyIP route (idempotent).
    pub fn cleanup(&self) {
        if let Some(b) = &self.bridge {
            b.destroy();
        }
        self.pool.cleanup();
        if let Some(r) = &self.anyip_record {
            let _ = std::fs::remove_file(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        assert_eq!("auto".parse::<NetworkMode>().unwrap(), NetworkMode::Auto);
        assert_eq!("netns".parse::<NetworkMode>().unwrap(), NetworkMode::Netns);
        assert!("bridge".parse::<NetworkMode>().is_err());
    }

    #[test]
    fn maps_pod_addresses_to_their_namespaces() {
        let info = NetworkInfo {
            mode: "netns".into(),
            subnet: "198.18.7".into(),
            host_ip: Ipv4Addr::new(198, 18, 7, 1),
            bridge: Some("emb-abc".into()),
            netns_prefix: Some("erlmcp-abc-".into()),
            veth_prefix: Some("emv-abc-".into()),
        };
        assert!(info.is_netns());
        assert_eq!(
            info.netns_of("198.18.7.9".parse().unwrap()).as_deref(),
            Some("erlmcp-abc-9")
        );
        assert_eq!(info.netns_of("198.18.8.9".parse().unwrap()), None);
        assert_eq!(
            info.netns_of("198.18.7.1".parse().unwrap()),
            None,
            "the host"
        );
        let lo = NetworkInfo {
            mode: "loopback".into(),
            netns_prefix: None,
            ..info
        };
        assert_eq!(lo.netns_of("198.18.7.9".parse().unwrap()), None);
    }

    #[test]
    fn loopback_mode_shares_the_host_network() {
        let n = Network::new(NetworkMode::Loopback, "127.0.9", "127.0.0.1", 6443).unwrap();
        assert!(n.pods_share_host_network());
        assert_eq!(n.host_ip(), Ipv4Addr::LOCALHOST);
        let info = n.info();
        assert_eq!(
            (info.mode.as_str(), info.subnet.as_str()),
            ("loopback", "127.0.9")
        );
    }
}
