//! Pod network namespaces: each pod is a host of its own on a bridge the runner owns.
//!
//! At start the runner picks a free `/24` from the benchmarking range 198.18.0.0/15, creates a
//! bridge `emb-<run>` with `.1` on it (the host's side: the host reaches pods through it, and
//! the kernel adds the connected route), and for each pod a namespace `erlmcp-<run>-<n>` with
//! a veth pair `emv-<run>-<n>` (host end, on the bridge) / `eth0` (pod end) carrying `.n`.
//! Pods get no default route: their traffic stays on this machine (the bridge's /24 and their
//! own loopback).
//!
//! Every name carries the run id, so parallel runners never touch each other's. A state file
//! per run in [`STATE_DIR`] records the owner (pid and its start time); a runner that starts
//! removes what dead owners left (a crash, SIGKILL) and nothing else.

use std::collections::BTreeSet;
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Where runners record what they created (tmpfs: gone with the namespaces at reboot).
pub const STATE_DIR: &str = "/run/erlmcp-pod-runner";
/// Every pod namespace's name starts with this.
pub const NETNS_PREFIX: &str = "erlmcp-";

/// The names of one run's objects. Link names stay within the kernel's 15 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Names {
    pub run_id: String,
}

impl Names {
    pub fn new(run_id: &str) -> Self {
        Self {
            run_id: run_id.to_string(),
        }
    }
    /// A fresh run id: six hex digits.
    pub fn random() -> Self {
        Self::new(&format!("{:06x}", rand::random::<u32>() & 0xff_ffff))
    }
    pub fn bridge(&self) -> String {
        format!("emb-{}", self.run_id)
    }
    pub fn netns_prefix(&self) -> String {
        format!("{NETNS_PREFIX}{}-", self.run_id)
    }
    /// The namespace of the pod with address `.host`.
    pub fn netns(&self, host: u8) -> String {
        format!("{}{host}", self.netns_prefix())
    }
    pub fn veth_prefix(&self) -> String {
        format!("emv-{}-", self.run_id)
    }
    pub fn veth(&self, host: u8) -> String {
        format!("{}{host}", self.veth_prefix())
    }
}

/// What a run created, as recorded in `STATE_DIR/<run id>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub names: Names,
    /// The owner: pid and its start time (clock ticks since boot), so a reused pid is not
    /// taken for the owner.
    pub pid: u32,
    pub pid_start: u64,
    /// The /24's first three octets, e.g. `198.18.7`.
    pub subnet: String,
    /// An AnyIP route on `lo` (the loopback fallback), removed with the rest.
    #[serde(default)]
    pub anyip_route: Option<String>,
}

impl Record {
    pub fn path(&self) -> PathBuf {
        Path::new(STATE_DIR).join(format!("{}.json", self.names.run_id))
    }
}

/// Start time of `pid` (field 22 of /proc/PID/stat), if it runs.
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start(&stat)
}

/// Field 22 of a /proc/PID/stat line (after the parenthesised command, which may hold spaces).
fn parse_start(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Is the record's owner still running?
pub fn owner_alive(r: &Record) -> bool {
    process_start(r.pid) == Some(r.pid_start)
}

/// Runs `ip ARGS`; the error carries its stderr.
pub fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running `ip` (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Names in `ip netns list` output ("NAME" or "NAME (id: N)" per line).
pub fn parse_netns_list(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Link names in `ip -o link show` output ("N: NAME[@PEER]: <...> ...").
pub fn parse_link_list(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

pub fn netns_names() -> Vec<String> {
    ip(&["netns", "list"])
        .map(|o| parse_netns_list(&o))
        .unwrap_or_default()
}

pub fn link_names() -> Vec<String> {
    ip(&["-o", "link", "show"])
        .map(|o| parse_link_list(&o))
        .unwrap_or_default()
}

/// Removes every namespace and link of `names` (best effort; what is gone stays gone).
pub fn remove_all(names: &Names) {
    let prefix = names.netns_prefix();
    for ns in netns_names().iter().filter(|n| n.starts_with(&prefix)) {
        let _ = ip(&["netns", "del", ns]);
    }
    let (veths, bridge) = (names.veth_prefix(), names.bridge());
    for link in link_names()
        .iter()
        .filter(|l| l.starts_with(&veths) || **l == bridge)
    {
        let _ = ip(&["link", "del", link]);
    }
}

/// Removes what runners that are no longer alive left behind, and their state files.
/// Returns the run ids swept.
pub fn sweep_leftovers() -> Vec<String> {
    let mut swept = Vec::new();
    let Ok(dir) = std::fs::read_dir(STATE_DIR) else {
        return swept;
    };
    for e in dir.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let Ok(rec) = std::fs::read_to_string(&path)
            .map_err(anyhow::Error::from)
            .and_then(|t| Ok(serde_json::from_str::<Record>(&t)?))
        else {
            continue; // not ours to judge
        };
        if owner_alive(&rec) {
            continue;
        }
        tracing::warn!(run = %rec.names.run_id, pid = rec.pid, "removing the network left by a dead pod runner");
        remove_all(&rec.names);
        if let Some(route) = &rec.anyip_route {
            let _ = ip(&["-4", "route", "del", "local", route, "dev", "lo"]);
        }
        let _ = std::fs::remove_file(&path);
        swept.push(rec.names.run_id);
    }
    swept
}

/// An exclusive lock on `STATE_DIR/.lock` while runners pick subnets (held until dropped).
pub struct StateLock {
    _file: File,
}

impl StateLock {
    pub fn take() -> Result<Self> {
        std::fs::create_dir_all(STATE_DIR).with_context(|| format!("creating {STATE_DIR}"))?;
        let f = File::create(Path::new(STATE_DIR).join(".lock"))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error()).context("locking the state dir");
        }
        Ok(Self { _file: f })
    }
}

/// `/24`s (as `a.b.c`) in use on this machine: any address or route, and other runs' records.
pub fn subnets_in_use() -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let mut text = ip(&["-4", "addr", "show"]).unwrap_or_default();
    text.push_str(&ip(&["-4", "route", "show", "table", "all"]).unwrap_or_default());
    for word in text.split_whitespace() {
        let addr = word.split('/').next().unwrap_or(word);
        if let Ok(a) = addr.parse::<Ipv4Addr>() {
            let o = a.octets();
            used.insert(format!("{}.{}.{}", o[0], o[1], o[2]));
        }
    }
    for e in std::fs::read_dir(STATE_DIR).into_iter().flatten().flatten() {
        if let Some(r) = std::fs::read_to_string(e.path())
            .ok()
            .and_then(|t| serde_json::from_str::<Record>(&t).ok())
        {
            used.insert(r.subnet);
        }
    }
    used
}

/// A random `/24` of 198.18.0.0/15 that is not in `used`.
pub fn pick_subnet(used: &BTreeSet<String>) -> Option<[u8; 3]> {
    (0..256).find_map(|_| {
        let s = [198, 18 + rand::random_range(0..2u8), rand::random::<u8>()];
        (!used.contains(&format!("{}.{}.{}", s[0], s[1], s[2]))).then_some(s)
    })
}

/// The run's bridge and its pods' namespaces. Dropping it removes them all.
pub struct Bridge {
    pub names: Names,
    pub subnet: [u8; 3],
    record: PathBuf,
}

impl Bridge {
    /// Sweeps dead runs' leftovers, picks a subnet (`want`, or a free one), creates the bridge
    /// with the host's address `.1` and records it all.
    pub fn create(want: Option<[u8; 3]>) -> Result<Bridge> {
        let lock = StateLock::take()?;
        let swept = sweep_leftovers();
        if !swept.is_empty() {
            tracing::info!(runs = ?swept, "swept leftovers of earlier pod runners");
        }
        let subnet = match want {
            Some(s) => s,
            None => pick_subnet(&subnets_in_use()).context("no free /24 in 198.18.0.0/15")?,
        };
        let names = Names::random();
        let me = std::process::id();
        let rec = Record {
            names: names.clone(),
            pid: me,
            pid_start: process_start(me).unwrap_or(0),
            subnet: format!("{}.{}.{}", subnet[0], subnet[1], subnet[2]),
            anyip_route: None,
        };
        // Recorded before anything exists, so a crash half-way is swept too.
        std::fs::write(rec.path(), serde_json::to_vec(&rec)?)?;
        let bridge = Bridge {
            names,
            subnet,
            record: rec.path(),
        };
        let br = bridge.names.bridge();
        let host = format!("{}/24", bridge.host_ip());
        ip(&["link", "add", &br, "type", "bridge"])?;
        ip(&["addr", "add", &host, "dev", &br])?;
        ip(&["link", "set", &br, "up"])?;
        drop(lock);
        tracing::info!(bridge = %br, %host, "pod network namespaces on a bridge");
        Ok(bridge)
    }

    pub fn host_ip(&self) -> Ipv4Addr {
        let s = self.subnet;
        Ipv4Addr::new(s[0], s[1], s[2], 1)
    }

    /// The namespace's path, for setns.
    pub fn netns_path(name: &str) -> PathBuf {
        Path::new("/run/netns").join(name)
    }

    /// What per-pod setup needs, to move onto a blocking thread.
    pub fn links(&self) -> PodLinks {
        PodLinks {
            names: self.names.clone(),
        }
    }

    /// Removes every namespace, link and the record (idempotent).
    pub fn destroy(&self) {
        remove_all(&self.names);
        let _ = std::fs::remove_file(&self.record);
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.destroy();
    }
}

/// Per-pod namespaces and veths of a run's bridge.
#[derive(Debug, Clone)]
pub struct PodLinks {
    pub names: Names,
}

impl PodLinks {
    /// Creates the pod's namespace with `eth0` = `ip`/24 on the bridge, and `lo` up.
    /// Returns the namespace's name.
    pub fn add_pod(&self, ip_addr: Ipv4Addr) -> Result<String> {
        let host = ip_addr.octets()[3];
        let (ns, veth) = (self.names.netns(host), self.names.veth(host));
        let _ = self.remove_pod(ip_addr); // a leftover of a pod whose teardown failed
        let r = (|| {
            ip(&["netns", "add", &ns])?;
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            ip(&["link", "set", &veth, "master", &self.names.bridge(), "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{ip_addr}/24"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            anyhow::Ok(())
        })();
        if let Err(e) = r {
            let _ = self.remove_pod(ip_addr);
            return Err(e);
        }
        Ok(ns)
    }

    /// Removes the pod's namespace and veth (its processes are gone by then).
    pub fn remove_pod(&self, ip_addr: Ipv4Addr) -> Result<()> {
        let host = ip_addr.octets()[3];
        let ns = self.names.netns(host);
        let veth = self.names.veth(host);
        let had_ns = Bridge::netns_path(&ns).exists();
        if had_ns {
            ip(&["netns", "del", &ns])?;
        }
        // Deleting the namespace takes eth0 and so its peer; a namespace still held open by a
        // stray process keeps it, hence the explicit delete.
        if link_names().contains(&veth) {
            ip(&["link", "del", &veth])?;
        }
        Ok(())
    }
}

/// Records an AnyIP route of the loopback fallback, so a crashed run's route is swept too.
/// Returns the record's path (remove it with the route).
pub fn record_anyip(route: &str, subnet: [u8; 3]) -> Result<PathBuf> {
    let _lock = StateLock::take()?;
    let me = std::process::id();
    let rec = Record {
        names: Names::random(),
        pid: me,
        pid_start: process_start(me).unwrap_or(0),
        subnet: format!("{}.{}.{}", subnet[0], subnet[1], subnet[2]),
        anyip_route: Some(route.to_string()),
    };
    std::fs::write(rec.path(), serde_json::to_vec(&rec)?)?;
    Ok(rec.path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_kernel_and_carry_the_run() {
        let n = Names::new("a1b2c3");
        assert_eq!(n.bridge(), "emb-a1b2c3");
        assert_eq!(n.netns(254), "erlmcp-a1b2c3-254");
        assert!(n.netns(7).starts_with(&n.netns_prefix()));
        assert!(n.veth(254).len() <= 15 && n.bridge().len() <= 15);
        assert!(n.veth(3).starts_with(&n.veth_prefix()));
        // Another run's names never match this run's prefixes.
        let other = Names::new("a1b2c4");
        assert!(!other.netns(3).starts_with(&n.netns_prefix()));
        assert!(!other.veth(3).starts_with(&n.veth_prefix()));
        assert_ne!(Names::random(), Names::random());
    }

    #[test]
    fn parses_ip_listings() {
        assert_eq!(
            parse_netns_list("erlmcp-abc-3 (id: 1)\nother\n"),
            vec!["erlmcp-abc-3", "other"]
        );
        let links = "1: lo: <LOOPBACK,UP> mtu 65536\n7: emv-abc-3@if2: <BROADCAST> mtu 1500\n8: emb-abc: <NO-CARRIER> mtu 1500";
        assert_eq!(parse_link_list(links), vec!["lo", "emv-abc-3", "emb-abc"]);
    }

    #[test]
    fn start_time_survives_odd_command_names() {
        let stat = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(parse_start(stat), Some(98765));
        let me = std::process::id();
        assert!(process_start(me).is_some());
        let rec = Record {
            names: Names::new("x"),
            pid: me,
            pid_start: process_start(me).unwrap(),
            subnet: "198.18.1".into(),
            anyip_route: None,
        };
        assert!(owner_alive(&rec));
        assert!(!owner_alive(&Record {
            pid_start: rec.pid_start + 1,
            ..rec
        }));
    }

    #[test]
    fn picks_a_benchmarking_subnet_not_in_use() {
        let used: BTreeSet<String> = (0..=255).map(|c| format!("198.18.{c}")).collect();
        let s = pick_subnet(&used).unwrap();
        assert_eq!(&s[..2], &[198, 19]);
        let all: BTreeSet<String> = (18..=19)
            .flat_map(|b| (0..=255).map(move |c| format!("198.{b}.{c}")))
            .collect();
        assert!(pick_subnet(&all).is_none());
    }
}
