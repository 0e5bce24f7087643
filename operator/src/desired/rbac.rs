//! The data plane's identity: read EndpointSlices to find peers, patch its own cluster's status.

use erlmcp_crds::ErlmcpCluster;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};

use super::{child_meta, Child, Names};

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: Option<&str>) -> PolicyRule {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    PolicyRule {
        api_groups: Some(s(groups)),
        resources: Some(s(resources)),
        verbs: s(verbs),
        resource_names: names.map(|n| vec![n.to_string()]),
        ..Default::default()
    }
}

pub fn service_account(cluster: &ErlmcpCluster, names: &Names) -> Child {
    let sa = ServiceAccount {
        metadata: child_meta(cluster, &names.service_account),
        ..Default::default()
    };
    Child::new("v1", "ServiceAccount", &sa)
}

/// Least privilege: list/watch EndpointSlices (list/watch cannot be narrowed by name), and
/// get/patch only this cluster's object and status.
pub fn role(cluster: &ErlmcpCluster, names: &Names) -> Child {
    let role = Role {
        metadata: child_meta(cluster, &names.service_account),
        rules: Some(vec![
            rule(
                &["discovery.k8s.io"],
                &["endpointslices"],
                &["get", "list", "watch"],
                None,
            ),
            rule(
                &["erlmcp.io"],
                &["erlmcpclusters"],
                &["get"],
                Some(&names.cluster),
            ),
            rule(
                &["erlmcp.io"],
                &["erlmcpclusters/status"],
                &["get", "patch"],
                Some(&names.cluster),
            ),
        ]),
    };
    Child::new("rbac.authorization.k8s.io/v1", "Role", &role)
}

pub fn role_binding(cluster: &ErlmcpCluster, names: &Names) -> Child {
    let rb = RoleBinding {
        metadata: child_meta(cluster, &names.service_account),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: names.service_account.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: names.service_account.clone(),
            namespace: Some(names.namespace.clone()),
            ..Default::default()
        }]),
    };
    Child::new("rbac.authorization.k8s.io/v1", "RoleBinding", &rb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::fixtures;

    #[test]
    fn role_is_least_privilege_without_wildcards() {
        let c = fixtures::minimal();
        let r = role(&c, &Names::of(&c)).object;
        let rules = r["rules"].as_array().unwrap();
        for rule in rules {
            for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
                if let Some(list) = rule[field].as_array() {
                    assert!(list.iter().all(|v| v != "*"), "wildcard in {field}: {rule}");
                }
            }
            assert!(!rule["verbs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v == "delete" || v == "create"));
        }
        assert_eq!(rules[2]["resources"][0], "erlmcpclusters/status");
        assert_eq!(rules[2]["resourceNames"][0], "mcp");
        let b = role_binding(&c, &Names::of(&c)).object;
        assert_eq!(b["subjects"][0]["name"], "mcp-dataplane");
        assert_eq!(b["subjects"][0]["namespace"], "prod");
    }
}
