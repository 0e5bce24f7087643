//! The downward API (`fieldRef`, `resourceFieldRef`) and container environment resolution
//! with `$(VAR)` expansion, as the kubelet does it.

use std::collections::HashMap;

use anyhow::{anyhow, bail, Result};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::{Api, Client};

fn quote_map(m: Option<&std::collections::BTreeMap<String, String>>) -> String {
    m.map(|m| {
        m.iter()
            .map(|(k, v)| format!("{k}={v:?}\n"))
            .collect::<String>()
    })
    .unwrap_or_default()
}

/// The addresses the downward API reports: the pod's, and the host's as the pod reaches it.
#[derive(Debug, Clone, Default)]
pub struct PodIps {
    pub pod: String,
    pub host: String,
}

/// Value of a downward-API `fieldPath` for this pod (podIP is the runner's address for it).
pub fn field_value(pod: &Pod, ips: &PodIps, path: &str) -> Option<String> {
    let md = &pod.metadata;
    let spec = pod.spec.as_ref();
    let indexed = |prefix: &str, m: Option<&std::collections::BTreeMap<String, String>>| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix("['").and_then(|r| r.strip_suffix("']")))
            .map(|k| m.and_then(|m| m.get(k)).cloned().unwrap_or_default())
    };
    Some(match path {
        "metadata.name" => md.name.clone()?,
        "metadata.namespace" => md.namespace.clone()?,
        "metadata.uid" => md.uid.clone()?,
        "metadata.labels" => quote_map(md.labels.as_ref()),
        "metadata.annotations" => quote_map(md.annotations.as_ref()),
        "spec.nodeName" => spec?.node_name.clone()?,
        "spec.serviceAccountName" => spec?
            .service_account_name
            .clone()
            .unwrap_or_else(|| "default".into()),
        "status.hostIP" | "status.hostIPs" => ips.host.clone(),
        "status.podIP" | "status.podIPs" => ips.pod.clone(),
        _ => {
            return indexed("metadata.labels", md.labels.as_ref())
                .or_else(|| indexed("metadata.annotations", md.annotations.as_ref()))
        }
    })
}

/// `resourceFieldRef`: the container's limit (or request), else the node's capacity.
pub fn resource_value(pod: &Pod, container: Option<&str>, resource: &str) -> String {
    let ctr = pod.spec.as_ref().and_then(|s| {
        s.containers
            .iter()
            .find(|c| container.is_none_or(|n| c.name == n))
    });
    let res = ctr.and_then(|c| c.resources.as_ref());
    let (kind, name) = resource.split_once('.').unwrap_or(("limits", resource));
    let q = match kind {
        "requests" => res.and_then(|r| r.requests.as_ref()),
        _ => res.and_then(|r| r.limits.as_ref()),
    }
    .and_then(|m| m.get(name))
    .map(|q| q.0.clone());
    q.unwrap_or_else(|| match name {
        "cpu" => super::node::NODE_CPU.into(),
        "memory" => super::node::NODE_MEMORY_BYTES.to_string(),
        _ => "0".into(),
    })
}

/// Kubernetes `$(VAR)` expansion: defined variables are replaced, `$$` is a literal `$`,
/// undefined references stay as written.
pub fn expand(s: &str, vars: &HashMap<String, String>) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            if b[i + 1] == b'$' {
                out.push('$');
                i += 2;
                continue;
            }
            if b[i + 1] == b'(' {
                if let Some(end) = s[i + 2..].find(')') {
                    let name = &s[i + 2..i + 2 + end];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => out.push_str(&s[i..i + 3 + end]),
                    }
                    i += 3 + end;
                    continue;
                }
            }
        }
        let ch = s[i..].chars().next().unwrap();
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// The container's environment in kubelet order: the runtime's base (PATH, HOSTNAME, the
/// `kubernetes` service, our bind address), then `envFrom`, then `env` (each expanding
/// references to what came before).
pub async fn container_env(
    client: &Client,
    pod: &Pod,
    ctr: &Container,
    ips: &PodIps,
    base: Vec<(String, String)>,
) -> Result<Vec<(String, String)>> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let mut order: Vec<String> = Vec::new();
    let mut vars: HashMap<String, String> = HashMap::new();
    let mut set = |k: String, v: String, vars: &mut HashMap<String, String>| {
        if !vars.contains_key(&k) {
            order.push(k.clone());
        }
        vars.insert(k, v);
    };
    for (k, v) in base {
        set(k, v, &mut vars);
    }
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    for from in ctr.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match cms.get_opt(&r.name).await? {
                Some(cm) => {
                    for (k, v) in cm.data.unwrap_or_default() {
                        set(format!("{prefix}{k}"), v, &mut vars);
                    }
                }
                None if r.optional == Some(true) => {}
                None => bail!("configmap {:?} not found", r.name),
            }
        }
        if let Some(r) = &from.secret_ref {
            match secrets.get_opt(&r.name).await? {
                Some(s) => {
                    for (k, v) in s.data.unwrap_or_default() {
                        set(
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(&v.0).into_owned(),
                            &mut vars,
                        );
                    }
                }
                None if r.optional == Some(true) => {}
                None => bail!("secret {:?} not found", r.name),
            }
        }
    }
    for e in ctr.env.iter().flatten() {
        let value = if let Some(v) = &e.value {
            Some(expand(v, &vars))
        } else if let Some(src) = &e.value_from {
            if let Some(f) = &src.field_ref {
                Some(field_value(pod, ips, &f.field_path).ok_or_else(|| {
                    anyhow!("env {}: unsupported fieldRef {:?}", e.name, f.field_path)
                })?)
            } else if let Some(r) = &src.resource_field_ref {
                Some(resource_value(
                    pod,
                    r.container_name.as_deref().or(Some(&ctr.name)),
                    &r.resource,
                ))
            } else if let Some(r) = &src.config_map_key_ref {
                let v = cms
                    .get_opt(&r.name)
                    .await?
                    .and_then(|cm| cm.data.and_then(|d| d.get(&r.key).cloned()));
                match v {
                    Some(v) => Some(v),
                    None if r.optional == Some(true) => None,
                    None => bail!(
                        "env {}: configmap {:?} key {:?} not found",
                        e.name,
                        r.name,
                        r.key
                    ),
                }
            } else if let Some(r) = &src.secret_key_ref {
                let v = secrets
                    .get_opt(&r.name)
                    .await?
                    .and_then(|s| s.data.and_then(|d| d.get(&r.key).cloned()));
                match v {
                    Some(v) => Some(String::from_utf8_lossy(&v.0).into_owned()),
                    None if r.optional == Some(true) => None,
                    None => bail!(
                        "env {}: secret {:?} key {:?} not found",
                        e.name,
                        r.name,
                        r.key
                    ),
                }
            } else {
                None
            }
        } else {
            Some(String::new())
        };
        if let Some(v) = value {
            set(e.name.clone(), v, &mut vars);
        }
    }
    Ok(order
        .into_iter()
        .map(|k| {
            let v = vars[&k].clone();
            (k, v)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let vars: HashMap<String, String> = [("POD_NAME".to_string(), "web-0".to_string())].into();
        assert_eq!(expand("$(POD_NAME)", &vars), "web-0");
        assert_eq!(expand("a-$(POD_NAME)-b", &vars), "a-web-0-b");
        assert_eq!(expand("$(NOPE)", &vars), "$(NOPE)");
        assert_eq!(expand("$$(POD_NAME)", &vars), "$(POD_NAME)");
        assert_eq!(expand("$x $ $(", &vars), "$x $ $(");
        assert_eq!(expand("é$(POD_NAME)", &vars), "éweb-0");
    }

    #[test]
    fn downward_fields() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "n", "uid": "u", "labels": {"a": "b"}},
            "spec": {"nodeName": "node-a", "containers": []}
        }))
        .unwrap();
        let ips = PodIps {
            pod: "1.2.3.4".into(),
            host: "198.18.7.1".into(),
        };
        assert_eq!(field_value(&pod, &ips, "status.podIP").unwrap(), "1.2.3.4");
        assert_eq!(
            field_value(&pod, &ips, "status.hostIP").unwrap(),
            "198.18.7.1"
        );
        assert_eq!(field_value(&pod, &ips, "metadata.namespace").unwrap(), "n");
        assert_eq!(
            field_value(&pod, &ips, "metadata.labels['a']").unwrap(),
            "b"
        );
        assert_eq!(
            field_value(&pod, &ips, "metadata.labels").unwrap(),
            "a=\"b\"\n"
        );
        assert_eq!(field_value(&pod, &ips, "spec.nodeName").unwrap(), "node-a");
        assert!(field_value(&pod, &ips, "spec.bogus").is_none());
    }
}
