//! The StatefulSet fields the API server never lets change (selector, serviceName,
//! podManagementPolicy, volumeClaimTemplates), compared before applying, pure: a 422 retried
//! forever helps nobody. A claim that only grows can be done the way RabbitMQ's operator does it
//! (expand each claim, delete the StatefulSet leaving its pods, re-create it); anything else is
//! refused with a reason the user reads in the status.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;

/// Condition and event reason of a storage change the operator will not make.
pub const STORAGE_REFUSED: &str = "StorageChangeRefused";
/// Condition and event reason of another immutable field changed (through `override`).
pub const IMMUTABLE_REFUSED: &str = "ImmutableFieldChanged";

/// What to do with the StatefulSet before applying it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing immutable differs: apply as usual.
    Apply,
    /// Only claim sizes grow: expand these claim templates' PVCs to these sizes, then delete the
    /// StatefulSet with orphan propagation and re-create it.
    Expand(Vec<Growth>),
    /// A change the API server would refuse and the operator will not work around.
    Refuse {
        reason: &'static str,
        message: String,
    },
}

/// One claim template that grows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Growth {
    /// The claim template's name (`sessions`); the PVCs are `<template>-<statefulset>-<ordinal>`.
    pub template: String,
    pub from: String,
    pub to: String,
}

/// Compare the StatefulSet the server has with the one about to be applied.
pub fn plan(current: &StatefulSet, desired: &StatefulSet) -> Plan {
    let (Some(cur), Some(want)) = (current.spec.as_ref(), desired.spec.as_ref()) else {
        return Plan::Apply;
    };
    let refuse = |reason, message: String| Plan::Refuse { reason, message };
    if cur.selector != want.selector {
        return refuse(
            IMMUTABLE_REFUSED,
            "spec.selector of the StatefulSet cannot change (check override.statefulSet)".into(),
        );
    }
    if cur.service_name != want.service_name {
        return refuse(
            IMMUTABLE_REFUSED,
            "spec.serviceName of the StatefulSet cannot change (check override.statefulSet)".into(),
        );
    }
    // The server defaults podManagementPolicy; compare only what we ask for.
    if want.pod_management_policy.is_some()
        && cur
            .pod_management_policy
            .as_deref()
            .unwrap_or("OrderedReady")
            != want.pod_management_policy.as_deref().unwrap_or_default()
    {
        return refuse(
            IMMUTABLE_REFUSED,
            "spec.podManagementPolicy of the StatefulSet cannot change".into(),
        );
    }
    claims(
        cur.volume_claim_templates.as_deref().unwrap_or_default(),
        want.volume_claim_templates.as_deref().unwrap_or_default(),
    )
}

fn claims(cur: &[PersistentVolumeClaim], want: &[PersistentVolumeClaim]) -> Plan {
    let names = |v: &[PersistentVolumeClaim]| {
        let mut n: Vec<String> = v.iter().map(template_name).collect();
        n.sort();
        n
    };
    if names(cur) != names(want) {
        let message = match (cur.is_empty(), want.is_empty()) {
            (true, false) => "spec.storage cannot be added to a running cluster: its pods have no volume to keep; create a new cluster".into(),
            (false, true) => "spec.storage cannot be removed from a running cluster: the sessions volume would be lost; create a new cluster".into(),
            _ => format!("the claim templates cannot change from {:?} to {:?}", names(cur), names(want)),
        };
        return Plan::Refuse {
            reason: STORAGE_REFUSED,
            message,
        };
    }
    let mut grow = Vec::new();
    for w in want {
        let name = template_name(w);
        let Some(c) = cur.iter().find(|c| template_name(c) == name) else {
            continue;
        };
        let (cs, ws) = (
            c.spec.clone().unwrap_or_default(),
            w.spec.clone().unwrap_or_default(),
        );
        // Unset class or modes in what we apply mean "as the server defaulted them".
        if ws.storage_class_name.is_some() && cs.storage_class_name != ws.storage_class_name {
            return Plan::Refuse {
                reason: STORAGE_REFUSED,
                message: format!(
                    "spec.storage.storageClassName cannot change ({} to {}): create a new cluster",
                    cs.storage_class_name.as_deref().unwrap_or("default"),
                    ws.storage_class_name.as_deref().unwrap_or("default")
                ),
            };
        }
        if ws.access_modes.is_some() && cs.access_modes != ws.access_modes {
            return Plan::Refuse {
                reason: STORAGE_REFUSED,
                message: "spec.storage.accessModes cannot change: create a new cluster".into(),
            };
        }
        let (from, to) = (requested(&cs), requested(&ws));
        let (Some(from_q), Some(to_q)) = (from.as_deref(), to.as_deref()) else {
            continue;
        };
        match (quantity_millis(from_q), quantity_millis(to_q)) {
            (Some(f), Some(t)) if t > f => grow.push(Growth {
                template: name,
                from: from_q.into(),
                to: to_q.into(),
            }),
            (Some(f), Some(t)) if t < f => {
                return Plan::Refuse {
                    reason: STORAGE_REFUSED,
                    message: format!(
                        "spec.storage.size cannot shrink ({from_q} to {to_q}): volumes only grow"
                    ),
                }
            }
            (Some(_), Some(_)) => {}
            _ => {
                return Plan::Refuse {
                    reason: STORAGE_REFUSED,
                    message: format!("spec.storage.size: cannot compare {from_q} with {to_q}"),
                }
            }
        }
    }
    if grow.is_empty() {
        Plan::Apply
    } else {
        Plan::Expand(grow)
    }
}

fn template_name(c: &PersistentVolumeClaim) -> String {
    c.metadata.name.clone().unwrap_or_default()
}

fn requested(s: &k8s_openapi::api::core::v1::PersistentVolumeClaimSpec) -> Option<String> {
    s.resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
        .map(|q| q.0.clone())
}

/// A Kubernetes quantity in thousandths of its unit (`1Gi`, `500M`, `1.5Ti`, `1e9`, `100m`), or
/// None when it is not one. Exact for every size a volume has.
pub fn quantity_millis(q: &str) -> Option<u128> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let digits: u128 = format!("{int}{frac}").parse().ok()?;
    let scale = 10u128.checked_pow(frac.len() as u32)?;
    let (mul, div): (u128, u128) = match suffix {
        "" => (1000, 1),
        "m" => (1, 1),
        "k" => (1000 * 1000, 1),
        "M" => (1000 * 10u128.pow(6), 1),
        "G" => (1000 * 10u128.pow(9), 1),
        "T" => (1000 * 10u128.pow(12), 1),
        "P" => (1000 * 10u128.pow(15), 1),
        "E" => (1000 * 10u128.pow(18), 1),
        "Ki" => (1000 << 10, 1),
        "Mi" => (1000 << 20, 1),
        "Gi" => (1000 << 30, 1),
        "Ti" => (1000 << 40, 1),
        "Pi" => (1000 << 50, 1),
        "Ei" => (1000 << 60, 1),
        s if s.starts_with(['e', 'E']) => {
            let exp: i32 = s[1..].parse().ok()?;
            if exp >= 0 {
                (1000 * 10u128.checked_pow(exp as u32)?, 1)
            } else {
                (1000, 10u128.checked_pow(exp.unsigned_abs())?)
            }
        }
        _ => return None,
    };
    Some(digits.checked_mul(mul)? / scale / div)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sts(claims: serde_json::Value) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "mcp"},
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/instance": "mcp"}},
                "serviceName": "mcp-headless",
                "podManagementPolicy": "Parallel",
                "template": {},
                "volumeClaimTemplates": claims,
            }
        }))
        .unwrap()
    }

    fn claim(size: &str, class: Option<&str>) -> serde_json::Value {
        json!({"metadata": {"name": "sessions"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "storageClassName": class,
            "resources": {"requests": {"storage": size}}}})
    }

    #[test]
    fn quantities_compare_across_units() {
        assert_eq!(quantity_millis("1Gi"), quantity_millis("1073741824"));
        assert_eq!(quantity_millis("1.5Gi"), quantity_millis("1536Mi"));
        assert_eq!(quantity_millis("1e3"), quantity_millis("1k"));
        assert_eq!(quantity_millis("500m"), Some(500));
        assert!(quantity_millis("2G") < quantity_millis("2Gi"));
        assert_eq!(quantity_millis("lots"), None);
        assert_eq!(quantity_millis(""), None);
    }

    #[test]
    fn same_claims_apply_as_usual_even_in_other_units() {
        let cur = sts(json!([claim("1Gi", Some("fast"))]));
        let want = sts(json!([claim("1024Mi", Some("fast"))]));
        assert_eq!(plan(&cur, &want), Plan::Apply);
        assert_eq!(plan(&sts(json!(null)), &sts(json!(null))), Plan::Apply);
    }

    #[test]
    fn growth_expands_and_a_shrink_is_refused() {
        let cur = sts(json!([claim("1Gi", None)]));
        assert_eq!(
            plan(&cur, &sts(json!([claim("2Gi", None)]))),
            Plan::Expand(vec![Growth {
                template: "sessions".into(),
                from: "1Gi".into(),
                to: "2Gi".into()
            }])
        );
        let Plan::Refuse { reason, message } = plan(&cur, &sts(json!([claim("512Mi", None)])))
        else {
            panic!("a shrink must be refused");
        };
        assert_eq!(reason, STORAGE_REFUSED);
        assert!(message.contains("shrink"), "{message}");
    }

    #[test]
    fn adding_removing_or_reclassing_storage_is_refused() {
        let with = sts(json!([claim("1Gi", Some("fast"))]));
        let without = sts(json!(null));
        for (cur, want, says) in [
            (&without, &with, "added"),
            (&with, &without, "removed"),
            (
                &with,
                &sts(json!([claim("1Gi", Some("slow"))])),
                "storageClassName",
            ),
        ] {
            match plan(cur, want) {
                Plan::Refuse { reason, message } => {
                    assert_eq!(reason, STORAGE_REFUSED);
                    assert!(message.contains(says), "{message}");
                }
                other => panic!("{says}: {other:?}"),
            }
        }
        // The server's defaulted class is not a change when we ask for none.
        let defaulted = sts(json!([claim("1Gi", Some("standard"))]));
        assert_eq!(
            plan(&defaulted, &sts(json!([claim("1Gi", None)]))),
            Plan::Apply
        );
    }

    #[test]
    fn selector_and_service_name_overrides_are_refused() {
        let cur = sts(json!(null));
        let mut want = cur.clone();
        want.spec.as_mut().unwrap().service_name = Some("other".into());
        assert!(matches!(
            plan(&cur, &want),
            Plan::Refuse {
                reason: IMMUTABLE_REFUSED,
                ..
            }
        ));
        let mut want = cur.clone();
        want.spec.as_mut().unwrap().selector.match_labels = Some(Default::default());
        assert!(matches!(
            plan(&cur, &want),
            Plan::Refuse {
                reason: IMMUTABLE_REFUSED,
                ..
            }
        ));
    }
}
