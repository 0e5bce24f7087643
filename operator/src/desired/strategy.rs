//! The StatefulSet's update strategy and claim retention policy: what the user asked for, what
//! a stalled rollout holds, and what the server's version knows.

use erlmcp_crds::ErlmcpCluster;
use k8s_openapi::api::apps::v1::{
    RollingUpdateStatefulSetStrategy, StatefulSetPersistentVolumeClaimRetentionPolicy,
    StatefulSetUpdateStrategy,
};

use super::BuildContext;

/// The user's strategy (default RollingUpdate), with a stalled rollout's hold on top: the pods
/// below `hold` keep the old template until the spec changes again.
pub(super) fn update_strategy(
    cluster: &ErlmcpCluster,
    hold: Option<i32>,
) -> StatefulSetUpdateStrategy {
    let mut s = cluster
        .spec
        .update_strategy
        .clone()
        .unwrap_or(StatefulSetUpdateStrategy {
            type_: Some("RollingUpdate".into()),
            ..Default::default()
        });
    let rolling = s.type_.as_deref().is_none_or(|t| t == "RollingUpdate");
    if let (Some(hold), true) = (hold, rolling) {
        let r = s
            .rolling_update
            .get_or_insert_with(RollingUpdateStatefulSetStrategy::default);
        r.partition = Some(r.partition.unwrap_or(0).max(hold));
    }
    s
}

/// Sent only to servers that know the field (1.23+): older ones would drop it silently.
pub(super) fn retention_policy(
    cluster: &ErlmcpCluster,
    ctx: &BuildContext,
) -> Option<StatefulSetPersistentVolumeClaimRetentionPolicy> {
    let p = cluster
        .spec
        .storage
        .as_ref()?
        .persistent_volume_claim_retention_policy
        .as_ref()?;
    ctx.capabilities
        .pvc_retention_policy
        .then(|| StatefulSetPersistentVolumeClaimRetentionPolicy {
            when_deleted: Some(p.when_deleted.clone()),
            when_scaled: Some(p.when_scaled.clone()),
        })
}

#[cfg(test)]
mod tests {
    use crate::desired::{build, fixtures, BuildContext, ServerCapabilities};
    use erlmcp_crds::ErlmcpCluster;
    use serde_json::json;

    fn sts_of(c: &ErlmcpCluster) -> serde_json::Value {
        let d = build(c, &BuildContext::new(ServerCapabilities::default()));
        d.find("StatefulSet").unwrap().object.clone()
    }

    #[test]
    fn claim_retention_policy_only_for_servers_that_know_it() {
        let mut c = fixtures::minimal();
        c.spec.storage = Some(
            serde_json::from_value(json!({"size": "1Gi",
                "persistentVolumeClaimRetentionPolicy": {"whenScaled": "Delete"}}))
            .unwrap(),
        );
        let s = sts_of(&c);
        assert_eq!(
            s["spec"]["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Delete"})
        );
        let old = ServerCapabilities {
            pvc_retention_policy: false,
            ..Default::default()
        };
        let d = build(&c, &BuildContext::new(old));
        let s = &d.find("StatefulSet").unwrap().object;
        assert!(s["spec"]
            .get("persistentVolumeClaimRetentionPolicy")
            .is_none());
    }

    #[test]
    fn a_stalled_rollout_holds_the_partition_without_lowering_the_users() {
        let mut c = fixtures::minimal();
        let held = |c: &ErlmcpCluster, hold| {
            let mut ctx = BuildContext::new(ServerCapabilities::default());
            ctx.partition_hold = hold;
            build(c, &ctx).find("StatefulSet").unwrap().object["spec"]["updateStrategy"].clone()
        };
        assert_eq!(held(&c, None), json!({"type": "RollingUpdate"}));
        assert_eq!(
            held(&c, Some(2)),
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 2}})
        );
        c.spec.update_strategy = Some(
            serde_json::from_value(
                json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 3}}),
            )
            .unwrap(),
        );
        assert_eq!(held(&c, Some(1))["rollingUpdate"]["partition"], 3);
        c.spec.update_strategy = Some(serde_json::from_value(json!({"type": "OnDelete"})).unwrap());
        assert_eq!(held(&c, Some(1)), json!({"type": "OnDelete"}));
    }
}
