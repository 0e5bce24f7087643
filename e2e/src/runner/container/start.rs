//! Starting a container: resolving its image, environment (the kubelet's base variables and
//! the spec's), argv and mounts, and launching the process.

use kube::runtime::events::EventType;

use super::{now, CtrState, Runner};
use crate::runner::fields::{container_env, expand, PodIps};
use crate::runner::images::argv as image_argv;
use crate::runner::process::{self, Launch};

impl Runner {
    /// Resolves image, env, argv, mounts and starts the process.
    pub(super) async fn start(&mut self) -> Result<tokio::process::Child, (String, String)> {
        let c = &self.p.spec;
        let image = c.image.clone().unwrap_or_default();
        let Some(entry) = self.sh.settings.images.resolve(&image) else {
            return Err((
                "ErrImagePull".into(),
                format!("image {image:?} is not in the pod runner's image map (--image-map)"),
            ));
        };
        let entry = entry.to_vec();
        let ip = self.p.ip.to_string();
        let pod = &self.p.pod;
        let s = &self.sh.settings;
        // The image's own binaries are on its PATH (erlmcp is /usr/local/bin/erlmcp there), so
        // an exec hook or probe naming `erlmcp` finds it: here that is the mapped binary's dir.
        let mut path = String::new();
        if let Some(dir) = std::path::Path::new(&entry[0])
            .parent()
            .filter(|d| d.is_absolute())
        {
            path = format!("{}:", dir.display());
        }
        path.push_str("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        let mut base = vec![
            ("PATH".to_string(), path),
            (
                "HOSTNAME".to_string(),
                pod.spec
                    .as_ref()
                    .and_then(|s| s.hostname.clone())
                    .or_else(|| pod.metadata.name.clone())
                    .unwrap_or_default(),
            ),
            ("KUBERNETES_SERVICE_HOST".to_string(), s.api_host.clone()),
            (
                "KUBERNETES_SERVICE_PORT".to_string(),
                s.api_port.to_string(),
            ),
            (
                "KUBERNETES_SERVICE_PORT_HTTPS".to_string(),
                s.api_port.to_string(),
            ),
            (
                "KUBERNETES_PORT".to_string(),
                format!("tcp://{}:{}", s.api_host, s.api_port),
            ),
        ];
        if self.sh.net.pods_share_host_network() {
            // Loopback fallback only: pods share the host's network, so each binds its own
            // address. In a namespace of its own a pod binds 0.0.0.0, as in production.
            base.push(("ERLMCP_BIND_ADDRESS".to_string(), ip.clone()));
        }
        let ips = PodIps {
            pod: ip.clone(),
            host: self.sh.net.host_ip().to_string(),
        };
        let env = container_env(&self.sh.client, pod, c, &ips, base)
            .await
            .map_err(|e| ("CreateContainerConfigError".to_string(), format!("{e:#}")))?;
        let vars: std::collections::HashMap<String, String> = env.iter().cloned().collect();
        let argv: Vec<String> = image_argv(&entry, c.command.as_deref(), c.args.as_deref())
            .iter()
            .enumerate()
            .map(|(i, a)| {
                if i < entry.len() && c.command.is_none() {
                    a.clone()
                } else {
                    expand(a, &vars)
                }
            })
            .collect();
        let mut mounts = self.p.mounts.clone();
        process::prepare_mount_points(&mut mounts)
            .map_err(|e| ("CreateContainerError".to_string(), format!("{e:#}")))?;
        let launch = Launch {
            argv: argv.clone(),
            env: env.clone(),
            working_dir: c.working_dir.clone(),
            mounts,
            identity: self.p.identity.clone(),
            hostname: pod.metadata.name.clone().unwrap_or_default(),
            netns: self.p.netns.clone(),
            read_only_root: self.p.read_only_root,
            no_new_privs: self.p.no_new_privs,
            log: self.p.log.clone(),
        };
        self.log_line(&format!(
            "starting container {} (restart {}) on {ip}: {argv:?}",
            c.name, self.view.restart_count
        ));
        let child = process::spawn(&launch)
            .map_err(|e| ("RunContainerError".to_string(), format!("{e:#}")))?;
        self.env = env;
        self.view.pid = child.id();
        self.view.image_id = format!("erlmcp-pod-runner://{}", argv[0]);
        self.view.state = CtrState::Running { started_at: now() };
        self.view.started = c.startup_probe.is_none();
        self.view.ready = self.view.started && c.readiness_probe.is_none();
        self.report();
        self.event(
            EventType::Normal,
            "Started",
            format!("Started container {}", c.name),
        )
        .await;
        Ok(child)
    }
}
