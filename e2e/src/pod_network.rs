//! Cutting links between pods, for tests: with the pod runner in netns mode every pod is a
//! host of its own, so a partition is an nftables drop inside one pod's namespace.
//!
//! Each pod namespace gets (on first use) a table `inet erlmcp_e2e` with a set `cut` of peer
//! addresses: packets from them are dropped on input, to them on output. A partition of A from
//! B puts B in A's set (both directions fail, established connections too); the host and
//! other pods still reach A. Healing takes B out again. The table goes with the namespace
//! when the pod does.
//!
//! ```no_run
//! # async fn f(env: &erlmcp_e2e::TestEnv, a: std::net::IpAddr, b: std::net::IpAddr) -> anyhow::Result<()> {
//! let net = env.pod_network()?;
//! net.partition(a, b)?;       // a <-/-> b
//! net.heal(a, b)?;            // a <---> b
//! net.connect_from(a, (b, 9090).into(), std::time::Duration::from_secs(1))?;
//! # Ok(()) }
//! ```

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use crate::runner::apiproxy::in_netns;
use crate::runner::netns::Bridge;
use crate::runner::network::NetworkInfo;

const TABLE: &str = "erlmcp_e2e";

/// The runner's pod network, as the test tooling sees it.
pub struct PodNetwork {
    pub info: NetworkInfo,
    nft: PathBuf,
}

/// The nft ruleset of a pod namespace: drop every packet from/to an address in `cut`.
pub fn cut_table() -> String {
    format!(
        "table inet {TABLE} {{
  set cut {{ type ipv4_addr; }}
  chain input {{ type filter hook input priority filter; policy accept; ip saddr @cut drop; }}
  chain output {{ type filter hook output priority filter; policy accept; ip daddr @cut drop; }}
}}
"
    )
}

fn find_nft(workspace: &Path) -> Result<PathBuf> {
    for p in ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"] {
        if Path::new(p).is_file() {
            return Ok(PathBuf::from(p));
        }
    }
    let out = Command::new(workspace.join("scripts/tools.sh"))
        .arg("nft")
        .output()
        .context("scripts/tools.sh nft")?;
    let path = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .to_string();
    if !out.status.success() || path.is_empty() {
        bail!(
            "no nft (nftables): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(PathBuf::from(path))
}

impl PodNetwork {
    /// The network of the runner whose state dir is `state_dir`; fails unless it runs pods in
    /// network namespaces.
    pub fn load(state_dir: &Path, workspace: &Path) -> Result<Self> {
        let info = NetworkInfo::read(state_dir)?;
        if !info.is_netns() {
            bail!(
                "the pod runner shares the host's network ({} mode): no per-pod links to cut \
                 (it needs root for network namespaces)",
                info.mode
            );
        }
        Ok(Self {
            info,
            nft: find_nft(workspace)?,
        })
    }

    /// The namespace of the pod at `pod`; fails if there is none (not ours, or gone).
    pub fn netns_of(&self, pod: IpAddr) -> Result<String> {
        let ns = self
            .info
            .netns_of(pod)
            .ok_or_else(|| anyhow!("{pod} is not a pod address of this runner"))?;
        if !Bridge::netns_path(&ns).exists() {
            bail!("pod {pod} has no network namespace {ns} (is the pod gone?)");
        }
        Ok(ns)
    }

    /// Runs `nft ARGS` (stdin `script` if given) inside the pod's namespace.
    fn nft(&self, pod: IpAddr, args: &[&str], script: Option<&str>) -> Result<String> {
        let ns = self.netns_of(pod)?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns]).arg(&self.nft).args(args);
        let out = match script {
            Some(s) => {
                use std::io::Write;
                let mut child = cmd
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .context("running nft")?;
                child
                    .stdin
                    .take()
                    .context("nft stdin")?
                    .write_all(s.as_bytes())?;
                child.wait_with_output()?
            }
            None => cmd.output().context("running nft")?,
        };
        if !out.status.success() {
            bail!(
                "nft {} in {ns}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn ensure_table(&self, pod: IpAddr) -> Result<()> {
        if self
            .nft(pod, &["list", "table", "inet", TABLE], None)
            .is_err()
        {
            self.nft(pod, &["-f", "-"], Some(&cut_table()))?;
        }
        Ok(())
    }

    /// Cuts `a` off from `b`, both ways (a drop in `a`'s namespace). Others still reach both.
    pub fn partition(&self, a: IpAddr, b: IpAddr) -> Result<()> {
        let IpAddr::V4(b4) = b else {
            bail!("IPv4 only: {b}");
        };
        self.ensure_table(a)?;
        self.nft(
            a,
            &[
                "add",
                "element",
                "inet",
                TABLE,
                "cut",
                &format!("{{ {b4} }}"),
            ],
            None,
        )?;
        Ok(())
    }

    /// Cuts `pod` off from every address in `peers`.
    pub fn isolate(&self, pod: IpAddr, peers: &[IpAddr]) -> Result<()> {
        peers.iter().try_for_each(|p| self.partition(pod, *p))
    }

    /// Undoes [`PodNetwork::partition`]`(a, b)`.
    pub fn heal(&self, a: IpAddr, b: IpAddr) -> Result<()> {
        if self.cut_peers(a)?.contains(&b) {
            self.nft(
                a,
                &[
                    "delete",
                    "element",
                    "inet",
                    TABLE,
                    "cut",
                    &format!("{{ {b} }}"),
                ],
                None,
            )?;
        }
        Ok(())
    }

    /// Undoes every cut in `pod`'s namespace.
    pub fn heal_all(&self, pod: IpAddr) -> Result<()> {
        if self
            .nft(pod, &["list", "table", "inet", TABLE], None)
            .is_ok()
        {
            self.nft(pod, &["delete", "table", "inet", TABLE], None)?;
        }
        Ok(())
    }

    /// The addresses `pod` is cut off from.
    pub fn cut_peers(&self, pod: IpAddr) -> Result<Vec<IpAddr>> {
        let Ok(out) = self.nft(pod, &["list", "set", "inet", TABLE, "cut"], None) else {
            return Ok(Vec::new());
        };
        Ok(parse_set_elements(&out))
    }

    /// Opens a TCP connection from inside `pod`'s namespace (as the pod would) to `to`.
    pub fn connect_from(&self, pod: IpAddr, to: SocketAddr, timeout: Duration) -> Result<()> {
        let ns = self.netns_of(pod)?;
        in_netns(&Bridge::netns_path(&ns), move || {
            TcpStream::connect_timeout(&to, timeout).map(drop)
        })
        .with_context(|| format!("connecting from pod {pod} to {to}"))
    }
}

/// The addresses in `nft list set` output (`elements = { 198.18.7.3, 198.18.7.4 }`).
pub fn parse_set_elements(out: &str) -> Vec<IpAddr> {
    let Some(start) = out.find("elements = {") else {
        return Vec::new();
    };
    let rest = &out[start + "elements = {".len()..];
    let body = rest.split('}').next().unwrap_or("");
    body.split([',', ' ', '\n', '\t'])
        .filter_map(|w| w.trim().parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_set_elements() {
        let out = "table inet erlmcp_e2e {\n\tset cut {\n\t\ttype ipv4_addr\n\t\telements = { 198.18.7.3, 198.18.7.4 }\n\t}\n}\n";
        assert_eq!(
            parse_set_elements(out),
            vec![
                "198.18.7.3".parse::<IpAddr>().unwrap(),
                "198.18.7.4".parse().unwrap()
            ]
        );
        assert!(parse_set_elements("set cut { type ipv4_addr }").is_empty());
    }

    #[test]
    fn the_table_drops_both_ways() {
        let t = cut_table();
        assert!(t.contains("hook input") && t.contains("ip saddr @cut drop"));
        assert!(t.contains("hook output") && t.contains("ip daddr @cut drop"));
    }
}
