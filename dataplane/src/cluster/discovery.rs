//! Who the peers are: a static list, a DNS name (a headless Service, or Swarm's
//! `tasks.<service>`), or the EndpointSlices of the headless Service read through the
//! Kubernetes API (not-ready addresses included: a starting peer is still a member, it is the
//! detector's job to say whether it answers). The result is a set of `host:port` addresses of
//! peer channels; this node's own address, when listed, is recognised and dropped (by IP, pod
//! name, or by the handshake when a peer turns out to be itself).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use erlmcp_crds::Discovery;
use futures::StreamExt;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use serde_json::Value;

use super::ClusterNode;

pub async fn run(node: Arc<ClusterNode>) {
    let port = node.settings.port;
    let stop = node.stopped();
    let work = async {
        match node.settings.discovery.clone() {
            Discovery::None => {}
            Discovery::Static { peers } => {
                let own: Vec<String> = node
                    .settings
                    .own_ips
                    .iter()
                    .map(|ip| SocketAddr::new(*ip, port).to_string())
                    .collect();
                let targets = peers
                    .iter()
                    .map(|p| with_port(p, port))
                    .filter(|a| !own.contains(a))
                    .collect();
                node.set_targets(targets);
            }
            Discovery::Dns {
                name,
                interval_seconds,
            } => {
                dns(
                    &node,
                    &name,
                    Duration::from_secs(interval_seconds.max(1) as u64),
                )
                .await
            }
            Discovery::Kubernetes { service, namespace } => {
                kubernetes(&node, &service, namespace).await
            }
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = work => {}
        _ = stop => {}
    }
}

/// `host` → `host:port`; `host:p`, `[v6]:p` and `v4:p` kept.
pub fn with_port(addr: &str, port: u16) -> String {
    let a = addr.trim();
    if a.parse::<SocketAddr>().is_ok() {
        return a.to_string();
    }
    if let Ok(ip) = a.trim_matches(['[', ']']).parse::<IpAddr>() {
        return SocketAddr::new(ip, port).to_string();
    }
    match a.rsplit_once(':') {
        Some((_, p)) if p.parse::<u16>().is_ok() => a.to_string(),
        _ => format!("{a}:{port}"),
    }
}

/// Where DNS discovery asks: the system resolver (getaddrinfo: `/etc/hosts`, `resolv.conf`,
/// Docker's embedded DNS at 127.0.0.11) or, with `ERLMCP_DNS_SERVER`, that server alone.
pub enum PeerResolver {
    System,
    Server(Box<hickory_resolver::TokioResolver>),
}

impl PeerResolver {
    pub fn new(server: Option<SocketAddr>) -> Result<Self, String> {
        use hickory_resolver::config::{
            LookupIpStrategy, NameServerConfig, ResolverConfig, ResolverOpts,
        };
        use hickory_resolver::net::runtime::TokioRuntimeProvider;
        let Some(server) = server else {
            return Ok(Self::System);
        };
        let mut ns = NameServerConfig::udp_and_tcp(server.ip());
        for c in &mut ns.connections {
            c.port = server.port();
        }
        let mut opts = ResolverOpts::default();
        // Membership changes between lookups: nothing is cached, and every address counts.
        opts.cache_size = 0;
        opts.positive_max_ttl = Some(Duration::ZERO);
        opts.negative_max_ttl = Some(Duration::ZERO);
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        opts.timeout = Duration::from_secs(2);
        let resolver = hickory_resolver::Resolver::builder_with_config(
            ResolverConfig::from_name_servers(vec![ns]),
            TokioRuntimeProvider::default(),
        )
        .with_options(opts)
        .build()
        .map_err(|e| format!("DNS resolver for {server}: {e}"))?;
        Ok(Self::Server(Box::new(resolver)))
    }

    /// Every address of `host`, with `port`.
    pub async fn lookup(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        match self {
            Self::System => tokio::net::lookup_host((host, port))
                .await
                .map(|a| a.collect())
                .map_err(|e| e.to_string()),
            Self::Server(r) => {
                if let Ok(ip) = host.parse::<IpAddr>() {
                    return Ok(vec![SocketAddr::new(ip, port)]);
                }
                // Absolute: a given server has no search list to try first.
                let fqdn = if host.ends_with('.') {
                    host.to_string()
                } else {
                    format!("{host}.")
                };
                r.lookup_ip(fqdn.as_str())
                    .await
                    .map(|l| l.iter().map(|ip| SocketAddr::new(ip, port)).collect())
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// `name` or `name:port` (the peer port when left out) as host and port.
fn host_and_port(name: &str, port: u16) -> (String, u16) {
    let target = with_port(name, port);
    match target.rsplit_once(':') {
        Some((h, p)) => (
            h.trim_matches(['[', ']']).to_string(),
            p.parse().unwrap_or(port),
        ),
        None => (target, port),
    }
}

async fn dns(node: &Arc<ClusterNode>, name: &str, every: Duration) {
    let (host, port) = host_and_port(name, node.settings.port);
    let resolver = match PeerResolver::new(node.settings.dns_server) {
        Ok(r) => r,
        Err(e) => {
            // Settings validated the address; a resolver that cannot be built is a bug to see.
            tracing::error!(error = %e, "DNS discovery disabled");
            return;
        }
    };
    let mut failures = 0u32;
    loop {
        match resolver.lookup(&host, port).await {
            Ok(addrs) => {
                failures = 0;
                let set: BTreeSet<String> = addrs
                    .into_iter()
                    .filter(|a| !node.settings.own_ips.contains(&a.ip()))
                    .map(|a| a.to_string())
                    .collect();
                node.set_targets(set.into_iter().collect());
            }
            Err(e) => {
                // Keep the last answer: a DNS hiccup is not a membership change.
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(name = %host, port, error = %e, "peer DNS lookup failed");
                }
            }
        }
        tokio::time::sleep(every).await;
    }
}

fn slice_resource(version: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("discovery.k8s.io", version, "EndpointSlice"),
        "endpointslices",
    )
}

/// One discovered endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceEndpoint {
    pub ip: IpAddr,
    pub pod: Option<String>,
    pub ready: Option<bool>,
}

/// Addresses of an EndpointSlice (same shape in v1 and v1beta1), with its `peer` port if named.
pub fn slice_endpoints(obj: &Value) -> (Vec<SliceEndpoint>, Option<u16>) {
    let port = obj["ports"].as_array().and_then(|ps| {
        ps.iter()
            .find(|p| p["name"] == "peer")
            .and_then(|p| p["port"].as_u64())
            .map(|p| p as u16)
    });
    let mut out = Vec::new();
    for ep in obj["endpoints"].as_array().into_iter().flatten() {
        let pod = ep["targetRef"]["name"]
            .as_str()
            .or_else(|| ep["hostname"].as_str())
            .map(String::from);
        let ready = ep["conditions"]["ready"].as_bool();
        for a in ep["addresses"].as_array().into_iter().flatten() {
            if let Some(ip) = a.as_str().and_then(|s| s.parse().ok()) {
                out.push(SliceEndpoint {
                    ip,
                    pod: pod.clone(),
                    ready,
                });
            }
        }
    }
    (out, port)
}

async fn kube_client() -> kube::Client {
    let mut wait = Duration::from_secs(1);
    loop {
        match kube::Client::try_default().await {
            Ok(c) => return c,
            Err(e) => {
                tracing::warn!(error = %e, "no Kubernetes API client yet (service account or KUBECONFIG)");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(60));
            }
        }
    }
}

/// EndpointSlices are `discovery.k8s.io/v1` from Kubernetes 1.21 and only `v1beta1` before.
async fn pick_version(client: &kube::Client, ns: &str, selector: &str) -> ApiResource {
    let mut wait = Duration::from_secs(1);
    loop {
        for v in ["v1", "v1beta1"] {
            let ar = slice_resource(v);
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
            match api
                .list(&ListParams::default().labels(selector).limit(1))
                .await
            {
                Ok(_) => return ar,
                Err(kube::Error::Api(s)) if s.is_not_found() => continue,
                Err(e) => {
                    tracing::warn!(version = v, error = %e, "cannot list EndpointSlices");
                    break;
                }
            }
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(60));
    }
}

/// EndpointSlice name → its endpoints and `peer` port.
type Slices = BTreeMap<String, (Vec<SliceEndpoint>, Option<u16>)>;

async fn kubernetes(node: &Arc<ClusterNode>, service: &str, namespace: Option<String>) {
    let client = kube_client().await;
    let ns = namespace
        .or_else(|| node.settings.namespace.clone())
        .unwrap_or_else(|| client.default_namespace().to_string());
    let selector = format!("kubernetes.io/service-name={service}");
    let ar = pick_version(&client, &ns, &selector).await;
    tracing::info!(%service, namespace = %ns, version = %ar.version, "watching EndpointSlices");
    let api: Api<DynamicObject> = Api::namespaced_with(client, &ns, &ar);
    let stream =
        watcher::watcher(api, watcher::Config::default().labels(&selector)).default_backoff();
    futures::pin_mut!(stream);
    let mut slices: Slices = BTreeMap::new();
    let mut init: Option<Slices> = None;
    while let Some(ev) = stream.next().await {
        let key = |o: &DynamicObject| o.metadata.name.clone().unwrap_or_default();
        match ev {
            Ok(Event::Apply(o)) => {
                slices.insert(key(&o), slice_endpoints(&o.data));
            }
            Ok(Event::Delete(o)) => {
                slices.remove(&key(&o));
            }
            Ok(Event::Init) => init = Some(BTreeMap::new()),
            Ok(Event::InitApply(o)) => {
                init.get_or_insert_with(BTreeMap::new)
                    .insert(key(&o), slice_endpoints(&o.data));
                continue;
            }
            Ok(Event::InitDone) => slices = init.take().unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "EndpointSlice watch error");
                continue;
            }
        }
        let mut targets = BTreeSet::new();
        for (eps, port) in slices.values() {
            for ep in eps {
                if node.settings.own_ips.contains(&ep.ip)
                    || ep.pod.as_deref() == Some(node.settings.member.as_str())
                {
                    continue;
                }
                targets
                    .insert(SocketAddr::new(ep.ip, port.unwrap_or(node.settings.port)).to_string());
            }
        }
        node.set_targets(targets.into_iter().collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ports_are_added_when_missing() {
        assert_eq!(with_port("node2", 9200), "node2:9200");
        assert_eq!(with_port("node2:9300", 9200), "node2:9300");
        assert_eq!(with_port("10.0.0.1", 9200), "10.0.0.1:9200");
        assert_eq!(with_port("::1", 9200), "[::1]:9200");
        assert_eq!(with_port("[::1]:9201", 9200), "[::1]:9201");
    }

    #[test]
    fn dns_names_split_into_host_and_port() {
        assert_eq!(host_and_port("erlmcp", 9200), ("erlmcp".into(), 9200));
        assert_eq!(
            host_and_port("tasks.erlmcp:9300", 9200),
            ("tasks.erlmcp".into(), 9300)
        );
        assert_eq!(host_and_port("::1", 9200), ("::1".into(), 9200));
    }

    #[tokio::test]
    async fn a_given_server_answers_literals_without_asking() {
        // Port 9 on loopback answers nothing: a literal must not need it.
        let r = PeerResolver::new(Some("127.0.0.1:9".parse().unwrap())).unwrap();
        assert!(matches!(r, PeerResolver::Server(_)));
        assert_eq!(
            r.lookup("127.0.0.7", 9200).await.unwrap(),
            vec!["127.0.0.7:9200".parse::<SocketAddr>().unwrap()]
        );
        assert!(matches!(
            PeerResolver::new(None).unwrap(),
            PeerResolver::System
        ));
    }

    #[test]
    fn reads_slices_of_both_versions() {
        // v1beta1 (Kubernetes 1.20) and v1 share what we read.
        let s = json!({
            "addressType": "IPv4",
            "ports": [{"name": "mcp", "port": 8080}, {"name": "peer", "port": 9200}],
            "endpoints": [
                {"addresses": ["10.1.0.5"], "conditions": {"ready": true}, "targetRef": {"kind": "Pod", "name": "mcp-0"}, "hostname": "mcp-0"},
                {"addresses": ["10.1.0.6"], "conditions": {"ready": false}, "hostname": "mcp-1"},
                {"addresses": ["bogus"]}
            ]
        });
        let (eps, port) = slice_endpoints(&s);
        assert_eq!(port, Some(9200));
        assert_eq!(eps.len(), 2);
        assert_eq!(eps[0].pod.as_deref(), Some("mcp-0"));
        assert_eq!(eps[1].pod.as_deref(), Some("mcp-1"));
        assert_eq!(eps[1].ready, Some(false));
        assert_eq!(
            slice_resource("v1beta1").api_version,
            "discovery.k8s.io/v1beta1"
        );
    }
}
