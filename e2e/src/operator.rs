//! An `erlmcp-operator run` process beside the plane, as on a laptop: it watches one
//! namespace, holds its lease in another (or the same), logs to the run directory, and dies
//! with the value. TEST TOOLING, not product.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};

use crate::cluster::free_port;
use crate::http::{self, Response};
use crate::TestEnv;

const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Operator {
    child: Option<Child>,
    /// Its health and metrics address (127.0.0.1).
    pub metrics: SocketAddr,
    log: PathBuf,
}

impl Operator {
    /// Start one watching `watch`, with its lease and identity (`name`) in `home`.
    pub fn start(env: &TestEnv, watch: &str, home: &str, name: &str) -> Result<Operator> {
        let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let log = env.run_dir.join(format!("operator-{watch}-{name}.log"));
        let child = Command::new(env.bin_dir.join("erlmcp-operator"))
            .arg("run")
            .env("KUBECONFIG", &env.kubeconfig)
            .env("WATCH_NAMESPACES", watch)
            .env("POD_NAMESPACE", home)
            .env("POD_NAME", name)
            .env("METRICS_ADDR", metrics.to_string())
            .env("LOG_FORMAT", "text")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting erlmcp-operator")?;
        Ok(Operator {
            child: Some(child),
            metrics,
            log,
        })
    }

    /// SIGTERM and wait up to 15 s (graceful: it releases its lease).
    pub fn stop(&mut self) -> Result<std::process::ExitStatus> {
        let mut c = self.child.take().context("already stopped")?;
        // SAFETY: kill(2) on our own child's pid; no memory is touched.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = c.try_wait()? {
                return Ok(st);
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                bail!(
                    "operator did not stop within 15 s of SIGTERM:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL: a crash, mid-whatever.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The last 40 lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// The first series of metric `name` on its `/metrics`.
    pub async fn metric(&self, name: &str) -> Result<f64> {
        let Response { status, body, .. } =
            http::request(self.metrics, "GET", "/metrics", &[], None, HTTP_TIMEOUT).await?;
        ensure!(status == 200, "/metrics answered {status}");
        body.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("{name} not in /metrics"))
    }

    /// Successful reconciles so far (0 before the first).
    pub async fn reconciles(&self) -> Result<f64> {
        let series = "erlmcp_operator_reconciliations_total{result=\"success\"}";
        Ok(self.metric(series).await.unwrap_or(0.0))
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}
