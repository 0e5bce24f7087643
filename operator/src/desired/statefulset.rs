//! The StatefulSet: stable pod identities behind the headless Service, probes on the data
//! plane's health port, a restricted security context, zone spread, and the config checksum.

use std::collections::BTreeMap;

use erlmcp_crds::{ErlmcpCluster, HEALTH_PORT, METRICS_PORT};
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, ExecAction, HTTPGetAction, KeyToPath, Lifecycle, LifecycleHandler,
    ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodAffinityTerm,
    PodAntiAffinity, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile,
    SecretVolumeSource, SecurityContext, TopologySpreadConstraint, Volume, VolumeMount,
    VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::configmap::{
    cookie_secret_name, referenced_secrets, tls_secret_name, CONFIG_DIR, CONFIG_FILE, CONFIG_KEY,
    COOKIE_DIR, SECRETS_DIR, SESSION_DIR, TLS_DIR,
};
use super::strategy::{retention_policy, update_strategy};
use super::{
    child_meta, common_labels, image, merge_by_name, selector_labels, strategic_merge,
    BuildContext, Child, Names, CHECKSUM_ANNOTATION,
};

/// Numeric non-root user and group of the images.
pub const RUN_AS_USER: i64 = 10001;
/// Container name of the data plane.
pub const CONTAINER: &str = "erlmcp";
/// Zone label used for the default spread.
pub const ZONE_KEY: &str = "topology.kubernetes.io/zone";

fn port(name: &str, port: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port as i32,
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

fn http_probe(path: &str, period: i32, failure: i32, timeout: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("health".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failure),
        timeout_seconds: Some(timeout),
        ..Default::default()
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(true),
        ..Default::default()
    }
}

fn secret_volume(volume: &str, secret: &str) -> Volume {
    Volume {
        name: volume.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.into()),
            default_mode: Some(0o440),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Default placement: spread over zones, and prefer one pod per node.
fn default_affinity(selector: &BTreeMap<String, String>) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        label_selector: Some(LabelSelector {
                            match_labels: Some(selector.clone()),
                            ..Default::default()
                        }),
                        topology_key: "kubernetes.io/hostname".into(),
                        ..Default::default()
                    },
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn default_spread(selector: &BTreeMap<String, String>) -> Vec<TopologySpreadConstraint> {
    vec![TopologySpreadConstraint {
        max_skew: 1,
        topology_key: ZONE_KEY.into(),
        when_unsatisfiable: "ScheduleAnyway".into(),
        label_selector: Some(LabelSelector {
            match_labels: Some(selector.clone()),
            ..Default::default()
        }),
        ..Default::default()
    }]
}

pub fn statefulset(
    cluster: &ErlmcpCluster,
    names: &Names,
    ctx: &BuildContext,
    checksum: &str,
) -> Child {
    let spec = &cluster.spec;
    let selector = selector_labels(cluster);
    let image = image(cluster, ctx);

    let mut pod_labels = spec.pod_labels.clone();
    pod_labels.extend(common_labels(cluster));
    let mut pod_annotations = spec.pod_annotations.clone();
    pod_annotations.insert(CHECKSUM_ANNOTATION.into(), checksum.into());
    pod_annotations.insert("prometheus.io/scrape".into(), "true".into());
    pod_annotations.insert("prometheus.io/port".into(), METRICS_PORT.to_string());

    let mut ports = vec![
        port("mcp", spec.mcp.transports.port),
        port("health", HEALTH_PORT),
        port("metrics", METRICS_PORT),
        port("peer", spec.cluster.port),
    ];
    if spec.mcp.transports.tcp.enabled {
        ports.push(port("mcp-tcp", spec.mcp.transports.tcp.port));
    }

    // In-flight work gets two thirds of the grace period (SIGTERM's drain and the preStop hook's).
    let drain_seconds = (spec.termination_grace_period_seconds * 2 / 3).max(1);
    let mut env_vars = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        field_env("POD_IP", "status.podIP"),
        env("ERLMCP_NODE_NAME", "$(POD_NAME)"),
        env("ERLMCP_CLUSTER", names.cluster.clone()),
        env("ERLMCP_ENV", "production"),
        env("ERLMCP_PORT", spec.mcp.transports.port.to_string()),
        env("HEALTH_PORT", HEALTH_PORT.to_string()),
        env("METRICS_PORT", METRICS_PORT.to_string()),
        env("ERLMCP_LOG_LEVEL", spec.logging.level.clone()),
        env("ERLMCP_CONFIG", CONFIG_FILE),
        // Drain within the grace period, leaving a third of it for the preStop hook and exit.
        env("ERLMCP_DRAIN_SECONDS", drain_seconds.to_string()),
    ];
    env_vars.extend(super::tracing_env::tracing_env(
        spec.tracing.as_ref(),
        &names.cluster,
        &spec.env,
    ));
    // The user's variables win by name (ERLMCP_LOG_LEVEL set in `env` replaces ours).
    merge_by_name(&mut env_vars, spec.env.iter().cloned(), |e| e.name.as_str());

    // Volumes: config, cookie, TLS, referenced secrets, a writable /tmp, the session volume.
    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: names.config_map.clone(),
                items: Some(vec![KeyToPath {
                    key: CONFIG_KEY.into(),
                    path: CONFIG_KEY.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        },
        secret_volume("cookie", &cookie_secret_name(cluster, names)),
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".into()),
                size_limit: Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                    "64Mi".into(),
                )),
            }),
            ..Default::default()
        },
    ];
    let mut mounts = vec![
        mount("config", CONFIG_DIR),
        mount("cookie", COOKIE_DIR),
        VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..Default::default()
        },
    ];
    if let Some(tls) = tls_secret_name(cluster, names) {
        volumes.push(secret_volume("tls", &tls));
        mounts.push(mount("tls", TLS_DIR));
    }
    for (i, secret) in referenced_secrets(&spec.mcp).iter().enumerate() {
        let vol = format!("secret-{i}");
        volumes.push(secret_volume(&vol, secret));
        mounts.push(mount(&vol, &format!("{SECRETS_DIR}/{secret}")));
    }
    let claims = spec.storage.as_ref().map(|s| {
        mounts.push(VolumeMount {
            name: "sessions".into(),
            mount_path: SESSION_DIR.into(),
            ..Default::default()
        });
        vec![PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("sessions".into()),
                labels: Some(common_labels(cluster)),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(s.access_modes.clone()),
                storage_class_name: s.storage_class_name.clone(),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([("storage".to_string(), s.size.clone())])),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]
    });

    let container = Container {
        name: CONTAINER.into(),
        image: Some(image),
        image_pull_policy: Some(
            spec.image_pull_policy
                .clone()
                .unwrap_or_else(|| "IfNotPresent".into()),
        ),
        args: Some(vec!["serve".into(), "--config".into(), CONFIG_FILE.into()]),
        ports: Some(ports),
        env: Some(env_vars),
        resources: spec.resources.clone(),
        volume_mounts: Some(mounts),
        startup_probe: Some(http_probe("/live", 2, 30, 2)),
        liveness_probe: Some(http_probe("/live", 10, 3, 2)),
        readiness_probe: Some(http_probe("/ready", 5, 2, 2)),
        // Leave the ready set first, so endpoints drop the pod before it stops accepting work.
        // An exec hook: the drain listener is loopback-only, never callable from the network.
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                exec: Some(ExecAction {
                    command: Some(vec![
                        "erlmcp".into(),
                        "drain".into(),
                        "--timeout-seconds".into(),
                        drain_seconds.to_string(),
                    ]),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS_USER),
            run_as_group: Some(RUN_AS_USER),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Default::default()
    };

    let pod_spec = PodSpec {
        service_account_name: Some(names.service_account.clone()),
        automount_service_account_token: Some(true),
        containers: vec![container],
        volumes: Some(volumes),
        termination_grace_period_seconds: Some(spec.termination_grace_period_seconds),
        affinity: Some(
            spec.affinity
                .clone()
                .unwrap_or_else(|| default_affinity(&selector)),
        ),
        topology_spread_constraints: Some(
            spec.topology_spread_constraints
                .clone()
                .unwrap_or_else(|| default_spread(&selector)),
        ),
        node_selector: (!spec.node_selector.is_empty()).then(|| spec.node_selector.clone()),
        tolerations: (!spec.tolerations.is_empty()).then(|| spec.tolerations.clone()),
        priority_class_name: spec.priority_class_name.clone(),
        image_pull_secrets: (!spec.image_pull_secrets.is_empty())
            .then(|| spec.image_pull_secrets.clone()),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS_USER),
            run_as_group: Some(RUN_AS_USER),
            fs_group: Some(RUN_AS_USER),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        enable_service_links: Some(false),
        ..Default::default()
    };

    let sts = StatefulSet {
        metadata: child_meta(cluster, &names.statefulset),
        spec: Some(StatefulSetSpec {
            replicas: Some(spec.replicas),
            service_name: Some(names.headless.clone()),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            },
            // Pods of a cluster are peers, not a chain: start and stop them together.
            pod_management_policy: Some("Parallel".into()),
            update_strategy: Some(update_strategy(cluster, ctx.partition_hold)),
            persistent_volume_claim_retention_policy: retention_policy(cluster, ctx),
            revision_history_limit: Some(10),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(pod_annotations),
                    ..Default::default()
                }),
                spec: Some(pod_spec),
            },
            volume_claim_templates: claims,
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut child = Child::new("apps/v1", "StatefulSet", &sts);
    if let Some(patch) = spec
        .override_
        .as_ref()
        .and_then(|o| o.stateful_set.as_ref())
    {
        strategic_merge(&mut child.object, patch);
    }
    child
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{build, fixtures, BuildContext, ServerCapabilities};
    use serde_json::json;

    fn sts_of(c: &ErlmcpCluster) -> serde_json::Value {
        let d = build(c, &BuildContext::new(ServerCapabilities::default()));
        d.find("StatefulSet").unwrap().object.clone()
    }

    #[test]
    fn minimal_spec_gets_safe_defaults() {
        let c = fixtures::minimal();
        let s = sts_of(&c);
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["spec"]["serviceName"], "mcp-headless");
        assert_eq!(
            s["spec"]["selector"]["matchLabels"],
            json!({"app.kubernetes.io/instance": "mcp", "app.kubernetes.io/name": "erlmcp"})
        );
        let pod = &s["spec"]["template"]["spec"];
        let ctr = &pod["containers"][0];
        assert_eq!(
            ctr["image"],
            format!("ghcr.io/erlmcp/erlmcp:{}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(
            ctr["args"],
            json!(["serve", "--config", "/etc/erlmcp/config/erlmcp.yaml"])
        );
        assert_eq!(ctr["livenessProbe"]["httpGet"]["path"], "/live");
        assert_eq!(ctr["readinessProbe"]["httpGet"]["path"], "/ready");
        assert_eq!(ctr["startupProbe"]["httpGet"]["path"], "/live");
        assert_eq!(
            ctr["lifecycle"]["preStop"],
            json!({"exec": {"command": ["erlmcp", "drain", "--timeout-seconds", "20"]}}),
            "an exec hook: /drain is not on the network"
        );
        let sc = &ctr["securityContext"];
        assert_eq!(sc["runAsNonRoot"], true);
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_eq!(sc["allowPrivilegeEscalation"], false);
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
        assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
        assert_eq!(pod["securityContext"]["runAsUser"], RUN_AS_USER);
        assert_eq!(pod["serviceAccountName"], "mcp-dataplane");
        assert_eq!(pod["topologySpreadConstraints"][0]["topologyKey"], ZONE_KEY);
        assert_eq!(
            pod["topologySpreadConstraints"][0]["whenUnsatisfiable"],
            "ScheduleAnyway"
        );
        let anti = &pod["affinity"]["podAntiAffinity"]
            ["preferredDuringSchedulingIgnoredDuringExecution"][0];
        assert_eq!(
            anti["podAffinityTerm"]["topologyKey"],
            "kubernetes.io/hostname"
        );
        let ports: Vec<_> = ctr["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["containerPort"].clone())
            .collect();
        assert_eq!(
            ports,
            vec![json!(8080), json!(9090), json!(9100), json!(9200)]
        );
        let envs: Vec<&str> = ctr["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        for want in [
            "POD_NAME",
            "POD_NAMESPACE",
            "POD_IP",
            "ERLMCP_NODE_NAME",
            "ERLMCP_PORT",
            "HEALTH_PORT",
            "METRICS_PORT",
        ] {
            assert!(envs.contains(&want), "{want} missing from {envs:?}");
        }
        assert!(
            s["spec"].get("volumeClaimTemplates").is_none(),
            "no storage asked"
        );
        let checksum = &s["spec"]["template"]["metadata"]["annotations"][CHECKSUM_ANNOTATION];
        assert_eq!(checksum.as_str().unwrap().len(), 64);
        assert_eq!(s["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(s["metadata"]["ownerReferences"][0]["kind"], "ErlmcpCluster");
    }

    #[test]
    fn production_spec_carries_its_placement_resources_and_storage() {
        let c = fixtures::production();
        let s = sts_of(&c);
        assert_eq!(s["spec"]["replicas"], 5);
        let pod = &s["spec"]["template"]["spec"];
        assert_eq!(pod["containers"][0]["resources"]["limits"]["memory"], "8Gi");
        assert_eq!(
            pod["nodeSelector"]["node.kubernetes.io/instance-type"],
            "m5.2xlarge"
        );
        assert_eq!(pod["tolerations"][0]["value"], "erlmcp");
        let claim = &s["spec"]["volumeClaimTemplates"][0];
        assert_eq!(claim["metadata"]["name"], "sessions");
        assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "50Gi");
        assert_eq!(claim["spec"]["storageClassName"], "fast-ssd");
        let mounts = pod["containers"][0]["volumeMounts"].as_array().unwrap();
        assert!(mounts.iter().any(|m| m["mountPath"] == SESSION_DIR));
        assert!(
            mounts.iter().any(|m| m["mountPath"] == TLS_DIR),
            "TLS secret mounted"
        );
    }

    #[test]
    fn zero_and_one_replica_are_honoured() {
        for n in [0, 1] {
            let mut c = fixtures::minimal();
            c.spec.replicas = n;
            assert_eq!(sts_of(&c)["spec"]["replicas"], n);
        }
    }

    #[test]
    fn user_env_replaces_the_operators_variable_of_the_same_name() {
        let mut c = fixtures::minimal();
        c.spec.env = serde_json::from_value(json!([
            {"name": "ERLMCP_LOG_LEVEL", "value": "debug"},
            {"name": "EXTRA", "value": "1"},
        ]))
        .unwrap();
        let s = sts_of(&c);
        let env = s["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .clone();
        let named = |n: &str| env.iter().filter(|e| e["name"] == n).collect::<Vec<_>>();
        // One entry per name (server-side apply refuses two), the user's value in it.
        assert_eq!(named("ERLMCP_LOG_LEVEL").len(), 1);
        assert_eq!(named("ERLMCP_LOG_LEVEL")[0]["value"], "debug");
        assert_eq!(named("EXTRA").len(), 1);
        let names: std::collections::BTreeSet<&str> =
            env.iter().filter_map(|e| e["name"].as_str()).collect();
        assert_eq!(names.len(), env.len(), "duplicate names in {env:?}");
    }

    #[test]
    fn override_is_merged_last() {
        let mut c = fixtures::minimal();
        c.spec.override_ = Some(erlmcp_crds::OverrideSpec {
            stateful_set: Some(
                json!({"spec": {"template": {"spec": {"hostNetwork": false, "dnsPolicy": "None"}}, "revisionHistoryLimit": 3}}),
            ),
            service: None,
        });
        let s = sts_of(&c);
        assert_eq!(s["spec"]["revisionHistoryLimit"], 3);
        assert_eq!(s["spec"]["template"]["spec"]["dnsPolicy"], "None");
        assert_eq!(
            s["spec"]["serviceName"], "mcp-headless",
            "untouched fields stay"
        );
    }

    #[test]
    fn override_merges_containers_volumes_and_env_by_name() {
        let mut c = fixtures::minimal();
        c.spec.override_ = Some(erlmcp_crds::OverrideSpec {
            stateful_set: Some(json!({"spec": {"template": {"spec": {
                "containers": [
                    {"name": "erlmcp", "env": [{"name": "RUST_BACKTRACE", "value": "1"}]},
                    {"name": "log-shipper", "image": "fluent-bit:3"}],
                "volumes": [{"name": "extra", "emptyDir": {}}]}}}})),
            service: None,
        });
        let plain = sts_of(&fixtures::minimal());
        let s = sts_of(&c);
        let (pod, before) = (
            &s["spec"]["template"]["spec"],
            &plain["spec"]["template"]["spec"],
        );
        let erlmcp = &pod["containers"][0];
        // The operator's container is kept whole, with one variable more.
        assert_eq!(erlmcp["name"], "erlmcp");
        assert_eq!(erlmcp["image"], before["containers"][0]["image"]);
        assert_eq!(
            erlmcp["readinessProbe"],
            before["containers"][0]["readinessProbe"]
        );
        let env = erlmcp["env"].as_array().unwrap();
        assert_eq!(
            env.len(),
            before["containers"][0]["env"].as_array().unwrap().len() + 1
        );
        assert!(env.iter().any(|e| e["name"] == "RUST_BACKTRACE"));
        assert_eq!(pod["containers"][1]["name"], "log-shipper");
        // Every volume of ours, and the new one.
        let vols = pod["volumes"].as_array().unwrap();
        assert_eq!(vols.len(), before["volumes"].as_array().unwrap().len() + 1);
        assert_eq!(vols.last().unwrap()["name"], "extra");
    }
}
