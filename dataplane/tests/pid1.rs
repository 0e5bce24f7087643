//! `erlmcp` as PID 1 (the image has no init): an orphan left by a command backend is reaped,
//! not left a zombie, and SIGTERM still reaches the server, which drains and exits 0. The
//! binary runs as PID 1 of its own PID namespace (`unshare --pid --fork`, we are root).

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// (pid, command name, state) of each child of `parent`.
fn children(parent: u32) -> Vec<(u32, String, char)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let mut rest = stat[close + 1..].split_whitespace();
        let state = rest.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid: u32 = rest.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid == parent {
            out.push((pid, comm, state));
        }
    }
    out
}

fn wait_until<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_pid1_orphans_are_reaped_and_sigterm_drains() {
    let dir = std::env::temp_dir().join(format!("erlmcp-pid1-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("erlmcp.yaml");
    // The tool's shell leaves a background child behind; when the shell exits, that child is
    // re-parented to PID 1.
    std::fs::write(
        &config,
        "mcp:\n  tools:\n    - name: orphan\n      inputSchema: {type: object}\n      backend: {command: {command: [/bin/sh, -c, 'sleep 1 >/dev/null 2>&1 </dev/null & echo started'], timeoutSeconds: 10}}\n",
    )
    .unwrap();
    let (mcp, health, metrics, admin) = (free_port(), free_port(), free_port(), free_port());
    let unshare = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child"])
        .arg(env!("CARGO_BIN_EXE_erlmcp"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("ERLMCP_BIND_ADDRESS", "127.0.0.1")
        .env("ERLMCP_PORT", mcp.to_string())
        .env("HEALTH_PORT", health.to_string())
        .env("METRICS_PORT", metrics.to_string())
        .env("ERLMCP_NODE_NAME", "erlmcp@pid1")
        .env("ERLMCP_ADMIN_PORT", admin.to_string())
        .env_remove("ERLMCP_NO_INIT")
        .stdout(Stdio::from(
            std::fs::File::create(dir.join("stdout.log")).unwrap(),
        ))
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("stderr.log")).unwrap(),
        ))
        .spawn()
        .expect("unshare (util-linux) runs");
    let mut unshare = KillOnDrop(Some(unshare));
    let unshare_pid = unshare.0.as_ref().unwrap().id();
    // unshare's child is PID 1 of the new namespace.
    let init = wait_until("PID 1 started", Duration::from_secs(10), || {
        children(unshare_pid).first().map(|c| c.0)
    });
    let addr = format!("127.0.0.1:{mcp}").parse().unwrap();
    let ready = format!("http://127.0.0.1:{health}/ready");
    let deadline = Instant::now() + Duration::from_secs(20);
    while try_get(&ready).await.is_none_or(|(s, _)| s != 200) {
        assert!(
            Instant::now() < deadline,
            "not ready; see {}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = modern(
        addr,
        1,
        "tools/call",
        json!({"name": "orphan", "arguments": {}}),
    )
    .await;
    assert_eq!(
        r.json()["result"]["content"][0]["text"]
            .as_str()
            .map(str::trim),
        Some("started"),
        "{}",
        r.body
    );
    // The orphaned `sleep` ends after a second; then nothing of it may remain under PID 1, not
    // even a zombie.
    let ns_procs = || {
        let mut all = children(init);
        let nested: Vec<_> = all.iter().flat_map(|c| children(c.0)).collect();
        all.extend(nested);
        all
    };
    wait_until("the orphan reaped", Duration::from_secs(15), || {
        let left: Vec<_> = ns_procs()
            .into_iter()
            .filter(|(_, comm, state)| comm == "sleep" || *state == 'Z')
            .collect();
        left.is_empty().then_some(())
    });
    // The exec preStop: `erlmcp drain` on the loopback admin port.
    let drain = Command::new(env!("CARGO_BIN_EXE_erlmcp"))
        .args([
            "drain",
            "--port",
            &admin.to_string(),
            "--timeout-seconds",
            "5",
        ])
        .output()
        .unwrap();
    assert!(
        drain.status.success(),
        "erlmcp drain: {}",
        String::from_utf8_lossy(&drain.stderr)
    );
    assert!(String::from_utf8_lossy(&drain.stdout).contains("drained"));
    assert_eq!(try_get(&ready).await.map(|r| r.0), Some(503));
    // SIGTERM to PID 1 reaches the server: it drains and the namespace exits cleanly.
    // SAFETY: kill(2) on a pid we started.
    unsafe { libc::kill(init as i32, libc::SIGTERM) };
    let status = wait_until("exit after SIGTERM", Duration::from_secs(30), || {
        unshare.0.as_mut().unwrap().try_wait().unwrap()
    });
    unshare.0 = None;
    assert!(status.success(), "exit status {status:?}");
    let log = std::fs::read_to_string(dir.join("stdout.log")).unwrap_or_default()
        + &std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
    assert!(log.contains("SIGTERM"), "the server saw SIGTERM: {log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A failed test must not leave the namespace running (`--kill-child` ends PID 1 with it).
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
