//! Probe and lifecycle-hook handlers as the kubelet runs them: `httpGet` (success is a
//! 2xx/3xx status), `tcpSocket` (a connection), `exec` (exit 0, run inside the container).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, ExecAction, HTTPGetAction, LifecycleHandler, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::process::{exec_in, Identity};

/// What an exec handler needs to run inside the container.
pub struct ExecTarget<'a> {
    pub pid: u32,
    pub env: &'a [(String, String)],
    pub identity: &'a Identity,
    pub working_dir: Option<&'a str>,
}

pub enum Handler<'a> {
    Http(&'a HTTPGetAction),
    Tcp(&'a TCPSocketAction),
    Exec(&'a ExecAction),
    None,
}

impl<'a> Handler<'a> {
    pub fn of_probe(p: &'a Probe) -> Self {
        if let Some(h) = &p.http_get {
            Handler::Http(h)
        } else if let Some(t) = &p.tcp_socket {
            Handler::Tcp(t)
        } else if let Some(e) = &p.exec {
            Handler::Exec(e)
        } else {
            Handler::None
        }
    }

    pub fn of_hook(h: &'a LifecycleHandler) -> Self {
        if let Some(x) = &h.http_get {
            Handler::Http(x)
        } else if let Some(t) = &h.tcp_socket {
            Handler::Tcp(t)
        } else if let Some(e) = &h.exec {
            Handler::Exec(e)
        } else {
            Handler::None
        }
    }
}

/// A named port is looked up in the container's ports.
pub fn resolve_port(ctr: &Container, port: &IntOrString) -> Result<u16, String> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).map_err(|_| format!("bad port {p}")),
        IntOrString::String(name) => ctr
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| p.container_port as u16)
            .or_else(|| name.parse().ok())
            .ok_or_else(|| format!("container has no port named {name:?}")),
    }
}

/// Runs the handler once. `Ok(())` is success; `Err` says why not (the kubelet's message).
pub async fn run(
    h: &Handler<'_>,
    ctr: &Container,
    pod_ip: IpAddr,
    exec: Option<ExecTarget<'_>>,
    timeout: Duration,
) -> Result<(), String> {
    match h {
        Handler::None => Ok(()),
        Handler::Http(a) => {
            if a.scheme
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("HTTPS"))
            {
                return Err("HTTPS probes are not supported by the pod runner".into());
            }
            let port = resolve_port(ctr, &a.port)?;
            let ip = match &a.host {
                Some(h) if !h.is_empty() => h.parse().map_err(|_| format!("bad host {h:?}"))?,
                _ => pod_ip,
            };
            let headers: Vec<(String, String)> = a
                .http_headers
                .iter()
                .flatten()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect();
            let path = a.path.clone().unwrap_or_else(|| "/".into());
            match tokio::time::timeout(
                timeout,
                http_get(SocketAddr::new(ip, port), &path, &headers),
            )
            .await
            {
                Err(_) => Err(format!(
                    "Get \"http://{ip}:{port}{path}\": timeout after {timeout:?}"
                )),
                Ok(Err(e)) => Err(format!("Get \"http://{ip}:{port}{path}\": {e}")),
                Ok(Ok(code)) if (200..400).contains(&code) => Ok(()),
                Ok(Ok(code)) => Err(format!("HTTP probe failed with statuscode: {code}")),
            }
        }
        Handler::Tcp(t) => {
            let port = resolve_port(ctr, &t.port)?;
            let ip = match &t.host {
                Some(h) if !h.is_empty() => h.parse().map_err(|_| format!("bad host {h:?}"))?,
                _ => pod_ip,
            };
            match tokio::time::timeout(timeout, TcpStream::connect((ip, port))).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("dial tcp {ip}:{port}: {e}")),
                Err(_) => Err(format!("dial tcp {ip}:{port}: timeout")),
            }
        }
        Handler::Exec(e) => {
            let Some(x) = exec else {
                return Err("container is not running".into());
            };
            let mut argv = e.command.clone().unwrap_or_default();
            if let Some(found) = argv.first().and_then(|a| on_path(a, x.env)) {
                argv[0] = found;
            }
            match exec_in(x.pid, &argv, x.env, x.identity, x.working_dir, timeout).await {
                Ok((0, _)) => Ok(()),
                Ok((code, out)) => Err(format!(
                    "command {argv:?} exited with {code}: {}",
                    out.trim()
                )),
                Err(err) => Err(format!("command {argv:?}: {err:#}")),
            }
        }
    }
}

/// A bare command name looked up on the container's PATH, here, before entering its mounts:
/// a pod volume (an emptyDir over /tmp) may hide the mapped binary's directory in there.
fn on_path(name: &str, env: &[(String, String)]) -> Option<String> {
    if name.is_empty() || name.contains('/') {
        return None;
    }
    let path = env.iter().rev().find(|(k, _)| k == "PATH")?;
    path.1
        .split(':')
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

/// A minimal HTTP/1.1 GET returning the status code (what the kubelet's prober looks at).
pub async fn http_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(String, String)],
) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(addr).await?;
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.20\r\nAccept: */*\r\nConnection: close\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < 8192 {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf);
    let code = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|_| line.starts_with("HTTP/"))
        .ok_or_else(|| {
            std::io::Error::other(format!(
                "malformed response {:?}",
                line.lines().next().unwrap_or("")
            ))
        })?;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn http_get_reads_the_status() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            for code in [200, 503] {
                let (mut s, _) = l.accept().await.unwrap();
                let mut b = [0u8; 1024];
                let _ = s.read(&mut b).await;
                let _ = s
                    .write_all(format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        assert_eq!(http_get(addr, "/live", &[]).await.unwrap(), 200);
        assert_eq!(http_get(addr, "/ready", &[]).await.unwrap(), 503);
    }

    #[test]
    fn named_ports_resolve() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c", "ports": [{"name": "health", "containerPort": 9090}]
        }))
        .unwrap();
        assert_eq!(
            resolve_port(&c, &IntOrString::String("health".into())).unwrap(),
            9090
        );
        assert_eq!(resolve_port(&c, &IntOrString::Int(80)).unwrap(), 80);
        assert!(resolve_port(&c, &IntOrString::String("nope".into())).is_err());
    }
}
