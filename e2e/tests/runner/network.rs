//! Pods as hosts of their own (the runner's netns mode, the default as root): each pod in its
//! own network namespace on the runner's bridge, the same ports in every pod, the host
//! reaching each through the bridge, links between pods cut and healed with nftables, and
//! every namespace and link gone when a runner exits, or after it crashed.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use erlmcp_e2e::env::http_get;
use erlmcp_e2e::runner::netns::{link_names, netns_names};
use erlmcp_e2e::runner::network::NetworkInfo;
use erlmcp_e2e::TestEnv;
use kube::ResourceExt;
use serde_json::json;

use super::{ip_of, pid_of, web_yaml};

const CUT_TIMEOUT: Duration = Duration::from_secs(1);

/// The network namespace of a process (`net:[inode]`).
fn netns_id(pid: &str) -> Result<String> {
    Ok(std::fs::read_link(format!("/proc/{pid}/ns/net"))
        .with_context(|| format!("netns of {pid}"))?
        .to_string_lossy()
        .into_owned())
}

/// Ports listening on 0.0.0.0 in the network namespace of `pid` (its /proc/PID/net/tcp).
fn wildcard_listeners(pid: u32) -> Result<BTreeSet<u16>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/tcp"))?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (addr, port) = f.get(1)?.split_once(':')?;
            (f.get(3) == Some(&"0A") && addr == "00000000")
                .then(|| u16::from_str_radix(port, 16).ok())
                .flatten()
        })
        .collect())
}

#[tokio::test]
async fn pods_are_hosts_of_their_own_and_links_between_them_can_be_cut() -> Result<()> {
    let env = TestEnv::get();
    let net = env.pod_network()?; // fails (never skips) without netns mode
    let ns = env.namespace("netns").await?;
    env.apply(&ns, &web_yaml(env, 2)).await?;
    let pods = env
        .wait_pods_ready(&ns, "app=web", 2, Duration::from_secs(90))
        .await?;
    let (a, b) = (ip_of(&pods[0]), ip_of(&pods[1]));
    let (pa, pb) = (
        pid_of(&pods[0]).context("pid")?,
        pid_of(&pods[1]).context("pid")?,
    );

    // Separate hosts: three distinct network namespaces, both pods on the same ports.
    let ids: BTreeSet<String> = [
        netns_id(&pa.to_string())?,
        netns_id(&pb.to_string())?,
        netns_id("self")?,
    ]
    .into_iter()
    .collect();
    ensure!(
        ids.len() == 3,
        "pods do not have namespaces of their own: {ids:?}"
    );
    for pid in [pa, pb] {
        let ports = wildcard_listeners(pid)?;
        ensure!(
            ports.contains(&8080) && ports.contains(&9090),
            "pid {pid} does not listen on 0.0.0.0:8080 and :9090 in its namespace: {ports:?}"
        );
    }
    let listed = netns_names();
    for ip in [a, b] {
        let ns_name = net.netns_of(ip)?;
        ensure!(
            listed.contains(&ns_name),
            "{ns_name} not in `ip netns list`: {listed:?}"
        );
    }
    ensure!(
        link_names().contains(net.info.bridge.as_ref().context("bridge")?),
        "the bridge is not in `ip link`"
    );

    // The host reaches each pod through the bridge; the pods reach each other.
    for (p, ip) in pods.iter().zip([a, b]) {
        let (code, body) = http_get(SocketAddr::new(ip, 9090), "/status").await?;
        ensure!(code == 200, "/status on {ip}: {code} {body}");
        let status: serde_json::Value = serde_json::from_str(&body)?;
        ensure!(status["node"] == p.name_any(), "{ip} answered for {status}");
    }
    net.connect_from(a, (b, 9090).into(), CUT_TIMEOUT)?;
    net.connect_from(b, (a, 9090).into(), CUT_TIMEOUT)?;

    // A partition cuts A <-> B, and neither host <-> A nor host <-> B.
    net.partition(a, b)?;
    ensure!(net.cut_peers(a)? == vec![b], "{:?}", net.cut_peers(a));
    ensure!(
        net.connect_from(a, (b, 9090).into(), CUT_TIMEOUT).is_err(),
        "A still reaches B through the partition"
    );
    ensure!(
        net.connect_from(b, (a, 9090).into(), CUT_TIMEOUT).is_err(),
        "B still reaches A through the partition"
    );
    for ip in [a, b] {
        let (code, _) = http_get(SocketAddr::new(ip, 9090), "/live").await?;
        ensure!(
            code == 200,
            "the host lost {ip} in a partition between the pods"
        );
    }

    // Healing restores A <-> B.
    net.heal(a, b)?;
    ensure!(net.cut_peers(a)?.is_empty());
    net.connect_from(a, (b, 9090).into(), CUT_TIMEOUT)?;
    net.connect_from(b, (a, 9090).into(), CUT_TIMEOUT)?;
    net.isolate(b, &[a])?;
    ensure!(net.connect_from(a, (b, 9090).into(), CUT_TIMEOUT).is_err());
    net.heal_all(b)?;
    net.connect_from(a, (b, 9090).into(), CUT_TIMEOUT)?;
    Ok(())
}

/// A runner of its own (one node, tainted so the shared runner's pods never land there).
struct SideRunner {
    child: Option<Child>,
    state_dir: PathBuf,
    node: String,
}

impl SideRunner {
    fn start(env: &TestEnv, tag: &str) -> Result<Self> {
        let state_dir = env.run_dir.join(format!("side-runner-{tag}"));
        std::fs::create_dir_all(&state_dir)?;
        let prefix = format!("netns-{tag}");
        let child = Command::new(env.bin_dir.join("erlmcp-pod-runner"))
            .arg("--kubeconfig")
            .arg(&env.kubeconfig)
            .arg("--state-dir")
            .arg(&state_dir)
            .args([
                "--nodes",
                "1",
                "--node-prefix",
                &prefix,
                "--network",
                "netns",
            ])
            .args(["--node-taint", "erlmcp.io/netns-test=true:NoSchedule"])
            .args(["--remove-nodes-on-exit", "--shutdown-grace-seconds", "2"])
            .env("RUST_LOG", "info,kube=warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(state_dir.join("runner.log"))?)
            .spawn()
            .context("starting a side pod runner")?;
        Ok(Self {
            child: Some(child),
            node: format!("{prefix}-a"),
            state_dir,
        })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.state_dir.join("runner.log")).unwrap_or_default()
    }

    /// Its network, once it has written it.
    async fn network(&self) -> Result<NetworkInfo> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(n) = NetworkInfo::read(&self.state_dir) {
                return Ok(n);
            }
            if Instant::now() > deadline {
                bail!("side runner wrote no network.json:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn signal(&mut self, sig: i32) -> Result<()> {
        let c = self.child.as_mut().context("already stopped")?;
        unsafe { libc::kill(c.id() as i32, sig) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while c.try_wait()?.is_none() {
            if Instant::now() > deadline {
                bail!("side runner did not exit on signal {sig}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.child = None;
        Ok(())
    }
}

impl Drop for SideRunner {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Namespaces and links of a run (by its prefixes) still on this machine.
fn leftovers(n: &NetworkInfo) -> Vec<String> {
    let (nsp, vp, br) = (
        n.netns_prefix.clone().unwrap_or_default(),
        n.veth_prefix.clone().unwrap_or_default(),
        n.bridge.clone().unwrap_or_default(),
    );
    let mut out: Vec<String> = netns_names()
        .into_iter()
        .filter(|x| x.starts_with(&nsp))
        .collect();
    out.extend(
        link_names()
            .into_iter()
            .filter(|l| l.starts_with(&vp) || *l == br),
    );
    out
}

fn run_record(n: &NetworkInfo) -> Option<PathBuf> {
    let prefix = n.netns_prefix.as_deref()?;
    let run = prefix.strip_prefix("erlmcp-")?.trim_end_matches('-');
    Some(Path::new(erlmcp_e2e::runner::netns::STATE_DIR).join(format!("{run}.json")))
}

/// A pod on the side runner's node; returns its namespace once it runs.
async fn run_a_pod(env: &TestEnv, ns: &str, side: &SideRunner, name: &str) -> Result<String> {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
        "nodeName": side.node, "terminationGracePeriodSeconds": 1,
        "tolerations": [{"key": "erlmcp.io/netns-test", "operator": "Exists"}],
        "containers": [{"name": "sleep", "image": "busybox:1.36",
                        "command": ["/bin/sh", "-c", "exec sleep 600"]}]}});
    env.apply(ns, &serde_json::to_string(&pod)?).await?;
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(env.client(), ns);
    let net = side.network().await?;
    env.wait_for(
        &format!("{name} running in a namespace of the side runner"),
        Duration::from_secs(60),
        Some(ns),
        || {
            let (pods, net) = (pods.clone(), net.clone());
            async move {
                let p = pods.get(name).await?;
                let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                let ip = p
                    .status
                    .as_ref()
                    .and_then(|s| s.pod_ip.as_deref())
                    .and_then(|i| i.parse().ok());
                Ok(ip
                    .filter(|_| running)
                    .and_then(|ip| net.netns_of(ip))
                    .filter(|n| netns_names().contains(n)))
            }
        },
    )
    .await
}

#[tokio::test]
async fn a_runner_removes_its_network_on_exit_and_a_crashed_ones_at_the_next_start() -> Result<()> {
    let env = TestEnv::get();
    env.pod_network()?; // netns mode is what this is about
    let ns = env.namespace("netns-cleanup").await?;
    let tag = format!("{:04x}", rand::random::<u16>());

    // A runner that crashes (SIGKILL) leaves its namespace, veth and bridge behind...
    let mut crashed = SideRunner::start(env, &format!("{tag}a"))?;
    let crashed_net = crashed.network().await?;
    let pod_ns = run_a_pod(env, &ns, &crashed, "crash-victim").await?;
    crashed.signal(libc::SIGKILL)?;
    let left = leftovers(&crashed_net);
    ensure!(
        left.contains(&pod_ns) && left.iter().any(|l| Some(l) == crashed_net.bridge.as_ref()),
        "a SIGKILLed runner leaves its network (the next start sweeps it): {left:?}"
    );
    let record = run_record(&crashed_net).context("run record")?;
    ensure!(record.exists(), "no state file {}", record.display());

    // ...which the next runner to start removes, by the dead run's prefix and state file.
    let mut next = SideRunner::start(env, &format!("{tag}b"))?;
    let next_net = next.network().await?;
    ensure!(
        leftovers(&crashed_net).is_empty(),
        "the crashed run's network survived the next start: {:?}\n{}",
        leftovers(&crashed_net),
        next.log()
    );
    ensure!(!record.exists(), "the crashed run's state file survived");
    // The shared runner of this test binary is alive: its network is untouched.
    let shared = &env.runner.as_ref().context("runner")?.network;
    ensure!(
        !leftovers(shared).is_empty(),
        "a live runner's network was swept"
    );

    // A clean exit (SIGTERM) removes every namespace and link it made.
    let next_pod_ns = run_a_pod(env, &ns, &next, "clean-exit").await?;
    ensure!(leftovers(&next_net).contains(&next_pod_ns));
    next.signal(libc::SIGTERM)?;
    let left = leftovers(&next_net);
    ensure!(
        left.is_empty(),
        "left after SIGTERM: {left:?} (`ip netns list`: {:?})\n{}",
        netns_names(),
        next.log()
    );
    ensure!(!run_record(&next_net).context("record")?.exists());
    // Their pods have no runner any more: remove them and the crashed runner's node.
    let _ = env.kubectl(&["delete", "node", &crashed.node, "--wait=false"]);
    let _ = env.kubectl(&[
        "delete",
        "pods",
        "--all",
        "-n",
        &ns,
        "--grace-period=0",
        "--force",
        "--wait=false",
    ]);
    Ok(())
}

/// The runner's network alone (no cluster): two pod namespaces bind the same port, the host
/// reaches both through the bridge, each reaches the API server at its kubeconfig address
/// through the relay, and cleanup leaves no namespace, link or state file.
// Multi-threaded: the relay task runs while a test thread blocks inside a namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_bridge_and_api_relay_without_a_cluster() -> Result<()> {
    use erlmcp_e2e::runner::apiproxy::in_netns;
    use erlmcp_e2e::runner::network::{Network, NetworkMode};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // A stand-in API server on the host's loopback, where pods cannot reach by themselves.
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api_port = api.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = api.accept().await {
            let _ = s.write_all(b"api-server\n").await;
        }
    });
    let net = Network::new(NetworkMode::Netns, "auto", "127.0.0.1", api_port)?;
    let info = net.info();
    ensure!(
        info.is_netns() && !net.pods_share_host_network(),
        "{info:?}"
    );
    let a = net.attach().await?.context("an address")?;
    let b = net.attach().await?.context("an address")?;
    ensure!(a.ip != b.ip);
    let mut listeners = Vec::new();
    for p in [&a, &b] {
        let path = p.netns_path().context("netns")?;
        // The same port in both namespaces: no clash.
        listeners.push(in_netns(&path, || {
            std::net::TcpListener::bind("0.0.0.0:18080")
        })?);
        let greeting = in_netns(&path, move || {
            use std::io::Read;
            let mut s = std::net::TcpStream::connect(("127.0.0.1", api_port))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut buf = String::new();
            s.read_to_string(&mut buf)?;
            Ok(buf)
        });
        ensure!(
            greeting.as_deref().ok() == Some("api-server\n"),
            "API relay in {:?}: {greeting:?}",
            p.netns
        );
    }
    for p in [&a, &b] {
        let mut s = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect((p.ip, 18080)),
        )
        .await
        .context("host -> pod timed out")??;
        let _ = s.write_all(b"x").await;
        let mut none = [0u8; 1];
        let _ = tokio::time::timeout(Duration::from_millis(100), s.read(&mut none)).await;
    }
    ensure!(!leftovers(&info).is_empty());
    drop(listeners);
    net.detach(a).await;
    ensure!(
        leftovers(&info).len() == 3,
        "one pod's namespace and veth gone, the other's and the bridge stay: {:?}",
        leftovers(&info)
    );
    net.detach(b).await;
    net.cleanup();
    ensure!(leftovers(&info).is_empty(), "{:?}", leftovers(&info));
    ensure!(!run_record(&info).context("record")?.exists());
    Ok(())
}
