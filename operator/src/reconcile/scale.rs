//! Scale-down one pod at a time, pure. The StatefulSet runs its pods `Parallel` (they are peers
//! and start together), which would also stop every condemned pod at once and drop all their
//! sessions together. So the operator lowers `replicas` by one, and lowers it again only once the
//! StatefulSet controller has seen that and the pod is gone: the highest pod drains (preStop
//! `erlmcp drain`: readiness off, in-flight work finished within the grace period) while the others
//! keep serving. Scale-ups go straight through.

use k8s_openapi::api::apps::v1::StatefulSet;

/// The replicas to apply now, given the spec's and what the server has.
pub fn next_replicas(desired: i32, current: Option<&StatefulSet>) -> i32 {
    let Some(sts) = current else {
        return desired;
    };
    let asked = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    if desired >= asked {
        return desired;
    }
    let status = sts.status.clone().unwrap_or_default();
    let seen = status.observed_generation.unwrap_or(0) >= sts.metadata.generation.unwrap_or(0);
    if seen && status.replicas <= asked {
        asked - 1
    } else {
        // The previous step's pod is still draining: hold.
        asked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sts(asked: i32, generation: i64, observed: i64, pods: i32) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "mcp", "generation": generation},
            "spec": {"replicas": asked, "selector": {}, "template": {}, "serviceName": "h"},
            "status": {"replicas": pods, "observedGeneration": observed},
        }))
        .unwrap()
    }

    #[test]
    fn scale_up_and_first_creation_go_straight_through() {
        assert_eq!(next_replicas(5, None), 5);
        assert_eq!(next_replicas(5, Some(&sts(3, 1, 1, 3))), 5);
        assert_eq!(next_replicas(3, Some(&sts(3, 1, 1, 3))), 3);
    }

    #[test]
    fn scale_down_steps_one_pod_at_a_time() {
        // 5 -> 2: first one step.
        assert_eq!(next_replicas(2, Some(&sts(5, 1, 1, 5))), 4);
        // Asked 4, the fifth pod still terminating: hold.
        assert_eq!(next_replicas(2, Some(&sts(4, 2, 2, 5))), 4);
        // Asked 4, but the controller has not seen it yet: hold.
        assert_eq!(next_replicas(2, Some(&sts(4, 2, 1, 4))), 4);
        // The pod is gone: the next step.
        assert_eq!(next_replicas(2, Some(&sts(4, 2, 2, 4))), 3);
        assert_eq!(next_replicas(2, Some(&sts(3, 3, 3, 3))), 2);
        // To zero as well.
        assert_eq!(next_replicas(0, Some(&sts(1, 4, 4, 1))), 0);
    }
}
