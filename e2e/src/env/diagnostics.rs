//! What a failure shows: a container's log as the pod runner kept it, and the dump a timed
//! out wait prints (nodes, the namespace's objects and events, container and runner logs).

use super::TestEnv;
use crate::runner::pod::pod_dir;

impl TestEnv {
    /// A container's log as the pod runner recorded it (every incarnation of the pod name,
    /// with the runner's `----` lines marking starts, hooks, signals and exits).
    pub fn pod_log(&self, ns: &str, pod: &str, container: &str) -> String {
        match &self.runner {
            Some(r) => std::fs::read_to_string(
                pod_dir(&r.state_dir, ns, pod).join(format!("{container}.log")),
            )
            .unwrap_or_default(),
            None => self
                .kubectl(&["logs", "-n", ns, pod, "-c", container])
                .unwrap_or_else(|e| format!("{e:#}")),
        }
    }

    /// Diagnostics for a failure: nodes, the namespace's workloads, events, pod logs, runner log.
    pub fn dump(&self, ns: Option<&str>) -> String {
        let mut s = String::from("==== e2e diagnostics ====\n");
        let mut section = |title: &str, args: &[&str]| {
            s.push_str(&format!("---- {title}\n"));
            match self.kubectl(args) {
                Ok(o) => s.push_str(&o),
                Err(e) => s.push_str(&format!("{e:#}\n")),
            }
        };
        section(
            "nodes",
            &[
                "get",
                "nodes",
                "-o",
                "wide",
                "-L",
                "topology.kubernetes.io/zone",
            ],
        );
        if let Some(ns) = ns {
            section(
                &format!("objects in {ns}"),
                &[
                    "get",
                    "statefulsets,pods,services,endpointslices",
                    "-n",
                    ns,
                    "-o",
                    "wide",
                ],
            );
            section(
                &format!("events in {ns}"),
                &["get", "events", "-n", ns, "--sort-by=.lastTimestamp"],
            );
            if let Some(r) = &self.runner {
                let prefix = format!("{ns}_");
                if let Ok(dirs) = std::fs::read_dir(r.state_dir.join("pods")) {
                    for d in dirs.flatten() {
                        let name = d.file_name().to_string_lossy().into_owned();
                        if !name.starts_with(&prefix) {
                            continue;
                        }
                        for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
                            if f.path().extension().is_some_and(|e| e == "log") {
                                s.push_str(&format!(
                                    "---- log {}/{}\n",
                                    name,
                                    f.file_name().to_string_lossy()
                                ));
                                s.push_str(&tail(
                                    &std::fs::read_to_string(f.path()).unwrap_or_default(),
                                    40,
                                ));
                            }
                        }
                    }
                }
            }
        }
        if let Some(r) = &self.runner {
            s.push_str(&format!("---- pod runner log {}\n", r.log.display()));
            s.push_str(&tail(
                &std::fs::read_to_string(&r.log).unwrap_or_default(),
                30,
            ));
        }
        s
    }
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].iter().map(|l| format!("{l}\n")).collect()
}
