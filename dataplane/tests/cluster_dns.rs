//! DNS discovery, the way Compose and Swarm use it: real `erlmcp` processes on their own
//! loopback addresses, given no peer list, ask a DNS server for the service name
//! (`ERLMCP_DISCOVERY=dns:erlmcp`) and get every replica's address back, as Docker's embedded
//! DNS answers. The server here is a tiny one on loopback (`ERLMCP_DNS_SERVER` points the nodes
//! at it); they must form a cluster from its answers alone, follow a scale-up (a new address in
//! the answer) and a scale-down (an address gone). Discovery and the cookie are set the way
//! `deploy/compose/compose.yaml` sets them: its `ERLMCP_DISCOVERY`, and the cookie from a file.

mod support;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::cluster::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

const SERVICE: &str = "erlmcp";

/// What the server answers: the A records of one name; every other name is NXDOMAIN.
#[derive(Default)]
struct Zone {
    name: String,
    addrs: Vec<Ipv4Addr>,
    /// Questions asked, as (name, type).
    asked: Vec<(String, u16)>,
}

/// A DNS server on loopback, UDP and TCP on one port (the resolver may use either).
struct TinyDns {
    addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    answered: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl TinyDns {
    async fn start(ip: &str, name: &str, addrs: Vec<Ipv4Addr>) -> Self {
        let udp = UdpSocket::bind((ip, 0)).await.expect("dns udp bind");
        let addr = udp.local_addr().unwrap();
        let tcp = TcpListener::bind(addr).await.expect("dns tcp bind");
        let zone = Arc::new(Mutex::new(Zone {
            name: name.into(),
            addrs,
            asked: vec![],
        }));
        let answered = Arc::new(AtomicU64::new(0));
        let (z, n) = (zone.clone(), answered.clone());
        let udp_task = tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                let Ok((len, from)) = udp.recv_from(&mut buf).await else {
                    continue;
                };
                if let Some(reply) = answer(&z, &buf[..len]) {
                    n.fetch_add(1, Ordering::Relaxed);
                    let _ = udp.send_to(&reply, from).await;
                }
            }
        });
        let (z, n) = (zone.clone(), answered.clone());
        let tcp_task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = tcp.accept().await else {
                    continue;
                };
                let (z, n) = (z.clone(), n.clone());
                tokio::spawn(async move {
                    // Each message is preceded by its two-byte length (RFC 1035 4.2.2).
                    let mut len = [0u8; 2];
                    while s.read_exact(&mut len).await.is_ok() {
                        let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                        if s.read_exact(&mut q).await.is_err() {
                            return;
                        }
                        let Some(reply) = answer(&z, &q) else { return };
                        n.fetch_add(1, Ordering::Relaxed);
                        let mut out = (reply.len() as u16).to_be_bytes().to_vec();
                        out.extend_from_slice(&reply);
                        if s.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            zone,
            answered,
            tasks: vec![udp_task, tcp_task],
        }
    }

    fn set(&self, addrs: Vec<Ipv4Addr>) {
        self.zone.lock().unwrap().addrs = addrs;
    }

    fn asked_names(&self) -> BTreeSet<String> {
        let z = self.zone.lock().unwrap();
        z.asked.iter().map(|(n, _)| n.clone()).collect()
    }
}

impl Drop for TinyDns {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;

/// The reply to one query message, or None when it is not one we can read.
fn answer(zone: &Mutex<Zone>, q: &[u8]) -> Option<Vec<u8>> {
    if q.len() < 12 || q[2] & 0x80 != 0 || u16::from_be_bytes([q[4], q[5]]) != 1 {
        return None;
    }
    // The question: labels up to the root, then type and class.
    let mut i = 12;
    let mut labels = vec![];
    loop {
        let l = *q.get(i)? as usize;
        if l == 0 {
            i += 1;
            break;
        }
        if l & 0xC0 != 0 {
            return None;
        }
        labels.push(String::from_utf8_lossy(q.get(i + 1..i + 1 + l)?).to_lowercase());
        i += 1 + l;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    let qclass = u16::from_be_bytes([*q.get(i + 2)?, *q.get(i + 3)?]);
    let question = &q[12..i + 4];
    let name = labels.join(".");
    let mut z = zone.lock().unwrap();
    z.asked.push((name.clone(), qtype));
    let known = name == z.name;
    let addrs: Vec<Ipv4Addr> = if known && qtype == TYPE_A && qclass == CLASS_IN {
        z.addrs.clone()
    } else {
        vec![]
    };
    // Header: same id, response + authoritative, recursion desired copied and available;
    // NOERROR (an AAAA question for the name is answered with no data), else NXDOMAIN.
    let mut r = Vec::with_capacity(512);
    r.extend_from_slice(&q[0..2]);
    r.push(0x84 | (q[2] & 0x01));
    r.push(0x80 | if known { 0 } else { 3 });
    r.extend_from_slice(&1u16.to_be_bytes());
    r.extend_from_slice(&(addrs.len() as u16).to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(question);
    for a in addrs {
        // The name by pointer to the question (offset 12); TTL 0, like a changing membership.
        r.extend_from_slice(&[0xC0, 12]);
        r.extend_from_slice(&TYPE_A.to_be_bytes());
        r.extend_from_slice(&CLASS_IN.to_be_bytes());
        r.extend_from_slice(&0u32.to_be_bytes());
        r.extend_from_slice(&4u16.to_be_bytes());
        r.extend_from_slice(&a.octets());
    }
    Some(r)
}

/// `ERLMCP_DISCOVERY` of the Compose file's `erlmcp` service.
fn compose_discovery() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/compose/compose.yaml"
    );
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).expect("compose.yaml")).unwrap();
    let d = doc["services"][SERVICE]["environment"]["ERLMCP_DISCOVERY"]
        .as_str()
        .expect("ERLMCP_DISCOVERY in compose.yaml")
        .to_string();
    assert!(d.starts_with(&format!("dns:{SERVICE},")), "{d}");
    d
}

fn node(test: &str, name: &str, ip: &str, ports: Ports, dns: SocketAddr) -> Node {
    let mut n = Node::new(test, name, ip, ports);
    // The cookie from a file, as from a Compose secret.
    let cookie = n.spec.log.with_extension("cookie");
    std::fs::write(&cookie, COOKIE).unwrap();
    // Nothing but the service name and where to ask for it.
    n.unset("ERLANG_COOKIE")
        .env("ERLANG_COOKIE_FILE", &cookie.display().to_string())
        .env("ERLMCP_DISCOVERY", &compose_discovery())
        .env("ERLMCP_DNS_SERVER", &dns.to_string());
    n
}

async fn peers_are(n: &Node, want: &[&str]) -> bool {
    let mut want: Vec<String> = want.iter().map(|w| format!("erlmcp@{w}")).collect();
    want.sort();
    n.peers_up().await == want
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_cluster_through_the_service_name_alone_and_follow_scaling() {
    let test = "dns-discovery";
    let net = subnet();
    let ports = Ports::random();
    let ip = |i: u8| format!("{net}.{i}");
    let v4 = |i: u8| ip(i).parse::<Ipv4Addr>().unwrap();
    let dns = TinyDns::start(&ip(53), SERVICE, vec![v4(1), v4(2), v4(3)]).await;

    // The answer lists every replica, each node included: each must skip itself.
    let mut nodes: Vec<Node> = (1..=3)
        .map(|i| node(test, &format!("n{i}"), &ip(i), ports, dns.addr))
        .collect();
    start_all(&mut nodes).await;
    {
        let all: Vec<&Node> = nodes.iter().collect();
        let took = converge(&all, 3, Duration::from_secs(20)).await;
        println!("3 nodes clustered through DNS {took:?} after all were ready");
    }
    for (n, others) in nodes.iter().zip([["n2", "n3"], ["n1", "n3"], ["n1", "n2"]]) {
        assert!(
            peers_are(n, &others).await,
            "{}: {:?}",
            n.spec.name,
            n.peers_up().await
        );
        assert_eq!(n.metric("erlmcp_cluster_nodes_expected").await, Some(3.0));
    }
    assert!(
        dns.answered.load(Ordering::Relaxed) >= 3,
        "the nodes asked the DNS server"
    );
    assert_eq!(
        dns.asked_names(),
        BTreeSet::from([SERVICE.to_string()]),
        "only the service name is asked for"
    );

    // Scale up: a fourth replica appears in the answer and starts; everyone sees four.
    dns.set(vec![v4(1), v4(2), v4(3), v4(4)]);
    nodes.push(node(test, "n4", &ip(4), ports, dns.addr));
    nodes[3].start();
    nodes[3].wait_ready(Duration::from_secs(20)).await;
    {
        let all: Vec<&Node> = nodes.iter().collect();
        converge(&all, 4, Duration::from_secs(20)).await;
    }
    assert!(peers_are(&nodes[3], &["n1", "n2", "n3"]).await);

    // Scale down: the replica leaves the answer and stops; the others expect three again, so
    // no partition is reported for a member that was removed on purpose.
    dns.set(vec![v4(1), v4(2), v4(3)]);
    nodes[3].terminate(Duration::from_secs(15)).await;
    for n in &nodes[..3] {
        eventually(
            &format!("{} forgets n4", n.spec.name),
            Duration::from_secs(20),
            || async {
                n.cluster_nodes().await == Some(3)
                    && n.metric("erlmcp_cluster_nodes_expected").await == Some(3.0)
                    && n.metric("erlmcp_cluster_partitioned").await == Some(0.0)
            },
        )
        .await;
    }
}

#[test]
fn the_tiny_server_answers_like_docker_dns() {
    // The responder itself: a query for the name gets every address; others get NXDOMAIN.
    let zone = Mutex::new(Zone {
        name: "erlmcp".into(),
        addrs: vec![Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3)],
        asked: vec![],
    });
    let query = |name: &str, qtype: u16| {
        let mut q = vec![0xAB, 0xCD, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&CLASS_IN.to_be_bytes());
        q
    };
    let r = answer(&zone, &query("ErlMCP", TYPE_A)).unwrap();
    assert_eq!(&r[0..2], &[0xAB, 0xCD]);
    assert_eq!(r[3] & 0x0F, 0, "NOERROR");
    assert_eq!(u16::from_be_bytes([r[6], r[7]]), 2, "two answers");
    assert_eq!(&r[r.len() - 4..], &[10, 0, 0, 3]);
    let r = answer(&zone, &query("other", TYPE_A)).unwrap();
    assert_eq!(r[3] & 0x0F, 3, "NXDOMAIN");
    assert_eq!(u16::from_be_bytes([r[6], r[7]]), 0);
    let r = answer(&zone, &query("erlmcp", 28)).unwrap();
    assert_eq!((r[3] & 0x0F, u16::from_be_bytes([r[6], r[7]])), (0, 0));
    assert!(answer(&zone, &[0u8; 5]).is_none());
}
