//! The API server inside a pod's network namespace. Pods talk to `KUBERNETES_SERVICE_HOST`
//! (the API server's address in the runner's kubeconfig, usually 127.0.0.1, which is also
//! what its certificate names). Inside a namespace that address is the pod's own loopback, so
//! the runner listens there, in the pod's namespace, and relays each connection to the real
//! API server from its own namespace: TLS passes through untouched.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{Context, Result};
use tokio::task::{JoinHandle, JoinSet};

use super::netns::ip;

/// Enters the network namespace at `path` on a short-lived thread and runs `f` there (a
/// socket keeps the namespace it was made in).
pub fn in_netns<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    let ns = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    std::thread::spawn(move || {
        // SAFETY: setns on a descriptor we own; it changes only this thread's namespace.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        f()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("namespace thread panicked"))?
    .with_context(|| format!("in network namespace {}", path.display()))
}

/// Listens on every `api` address inside the namespace `netns` (a non-loopback IPv4 address
/// is first put on the pod's `lo`). Blocking: runs `ip` and a thread per address.
pub fn bind(netns: &str, api: &[SocketAddr]) -> Result<Vec<(TcpListener, SocketAddr)>> {
    let path = Path::new("/run/netns").join(netns);
    let mut listeners = Vec::new();
    let mut last_err = None;
    for &addr in api {
        if let IpAddr::V4(v4) = addr.ip() {
            if !v4.is_loopback() {
                ip(&["-n", netns, "addr", "add", &format!("{v4}/32"), "dev", "lo"])?;
            }
        }
        // One address failing (e.g. ::1 without IPv6) is fine while another serves.
        match in_netns(&path, move || TcpListener::bind(addr)) {
            Ok(l) => listeners.push((l, addr)),
            Err(e) => last_err = Some(e),
        }
    }
    if listeners.is_empty() {
        return Err(last_err
            .unwrap_or_else(|| anyhow::anyhow!("no API server address"))
            .context(format!("API relay in {netns}")));
    }
    Ok(listeners)
}

/// Relays every listener to its API server address until the handle is aborted.
pub fn serve(listeners: Vec<(TcpListener, SocketAddr)>) -> Result<JoinHandle<()>> {
    let mut tokio_listeners = Vec::new();
    for (l, target) in listeners {
        l.set_nonblocking(true)?;
        tokio_listeners.push((tokio::net::TcpListener::from_std(l)?, target));
    }
    Ok(tokio::spawn(async move {
        let mut set = JoinSet::new();
        for (l, target) in tokio_listeners {
            set.spawn(relay(l, target));
        }
        while set.join_next().await.is_some() {}
    }))
}

/// Accepts until aborted; each connection is copied both ways to `target`. Dropping the
/// task's JoinSet (on abort) ends every relayed connection.
async fn relay(l: tokio::net::TcpListener, target: SocketAddr) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            acc = l.accept() => match acc {
                Ok((mut inbound, _)) => {
                    conns.spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                }
                Err(e) => {
                    tracing::debug!(error = %e, "API relay accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}
