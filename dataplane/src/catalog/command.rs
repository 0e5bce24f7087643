//! `command` tool backend: run a program (no shell) with the arguments as JSON on stdin, within
//! a time and output bound. The program runs in a process group of its own with a clean
//! environment (the server's cookie, tokens and service-account paths are not passed on), and
//! the whole group is killed when the call ends for any reason, so nothing it forked lingers.

use std::process::Stdio;
use std::time::Duration;

use erlmcp_crds::CommandBackend;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::http::{tool_error, truncate};

/// The only variable a command backend gets: where to find programs.
const CHILD_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Kills the process group it names when dropped: on timeout (the call's future is dropped),
/// on a client cancel, and after a normal exit (stragglers the program forked).
struct KillGroup(u32);

impl Drop for KillGroup {
    fn drop(&mut self) {
        if let Ok(pgid) = i32::try_from(self.0) {
            // SAFETY: kill(2) with a negative pid signals that process group; no memory is touched.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

pub struct CommandTool {
    argv: Vec<String>,
    timeout: Duration,
    max_bytes: usize,
}

impl CommandTool {
    pub fn new(spec: &CommandBackend) -> Self {
        Self {
            argv: spec.command.clone(),
            timeout: Duration::from_secs(spec.timeout_seconds.max(1) as u64),
            max_bytes: spec.max_output_bytes as usize,
        }
    }

    pub async fn call(&self, args: &Value, structured: bool) -> Value {
        match tokio::time::timeout(self.timeout, self.run(args)).await {
            Err(_) => tool_error(format!(
                "command did not finish within {}s",
                self.timeout.as_secs()
            )),
            Ok(Err(e)) => tool_error(e),
            Ok(Ok(mut v)) => {
                if !structured {
                    if let Some(o) = v.as_object_mut() {
                        o.remove("structuredContent");
                    }
                }
                v
            }
        }
    }

    async fn run(&self, args: &Value) -> Result<Value, String> {
        let (prog, rest) = self.argv.split_first().ok_or("empty command")?;
        let mut child = tokio::process::Command::new(prog)
            .args(rest)
            .env_clear()
            .env("PATH", CHILD_PATH)
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {prog}: {e}"))?;
        let _group = child.id().map(KillGroup);
        let input = serde_json::to_vec(args).unwrap_or_default();
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        let writer = tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
            let _ = stdin.shutdown().await;
        });
        let mut stdout = child.stdout.take().ok_or("no stdout")?;
        let mut stderr = child.stderr.take().ok_or("no stderr")?;
        let limit = self.max_bytes;
        let out_task = async move {
            let mut buf = Vec::new();
            let n = (&mut stdout)
                .take(limit as u64 + 1)
                .read_to_end(&mut buf)
                .await
                .map_err(|e| e.to_string())?;
            if n > limit {
                return Err(format!("command output larger than {limit} bytes"));
            }
            Ok::<_, String>(buf)
        };
        // Keep the first 64 KiB of stderr for the error message, and keep draining the rest:
        // a program blocked on a full stderr pipe would only end at the timeout.
        let err_task = async move {
            let mut buf = Vec::new();
            let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut buf).await;
            let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
            buf
        };
        let (out, err) = tokio::join!(out_task, err_task);
        let out = out?;
        let status = child.wait().await.map_err(|e| e.to_string())?;
        let _ = writer.await;
        let text = String::from_utf8_lossy(&out).into_owned();
        if !status.success() {
            let e = String::from_utf8_lossy(&err);
            return Ok(tool_error(format!(
                "command exited with {status}: {}",
                truncate(e.trim(), 2000)
            )));
        }
        match serde_json::from_str::<Value>(&text) {
            Ok(v) if v.is_object() => {
                Ok(json!({"content": [{"type": "text", "text": text}], "structuredContent": v}))
            }
            _ => Ok(json!({"content": [{"type": "text", "text": text}]})),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(argv: &[&str], timeout_seconds: u32) -> CommandTool {
        CommandTool::new(&CommandBackend {
            command: argv.iter().map(|s| s.to_string()).collect(),
            timeout_seconds,
            max_output_bytes: 1 << 20,
        })
    }

    fn text(v: &Value) -> &str {
        v["content"][0]["text"].as_str().unwrap_or_default()
    }

    #[tokio::test]
    async fn the_environment_is_clean() {
        // The server's own environment (ERLANG_COOKIE, tokens, HOME...) must not leak.
        let r = tool(&["/usr/bin/env"], 10).call(&json!({}), false).await;
        assert!(r.get("isError").is_none(), "{r}");
        let vars: Vec<&str> = text(&r).lines().collect();
        assert_eq!(vars, vec![format!("PATH={CHILD_PATH}").as_str()], "{r}");
    }

    #[tokio::test]
    async fn a_timeout_kills_what_the_program_forked() {
        let dir = std::env::temp_dir().join(format!("erlmcp-cmd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pidfile = dir.join("bg.pid");
        let script = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
        let r = tool(&["/bin/sh", "-c", &script], 1)
            .call(&json!({}), false)
            .await;
        assert_eq!(r["isError"], true, "{r}");
        assert!(text(&r).contains("did not finish within 1s"), "{r}");
        let pid = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .to_string();
        // Gone, or a zombie waiting for init to reap it: either way no longer running.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| s.rsplit(')').next().map(|r| r.trim().chars().next()))
                .flatten();
            if matches!(state, None | Some('Z') | Some('X')) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "sleep {pid} still {state:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_chatty_stderr_does_not_stall_the_call() {
        // 1 MiB on stderr is far more than a pipe buffer plus what we keep.
        let script = "head -c 1048576 /dev/zero >&2; echo '{\"ok\":true}'";
        let r = tool(&["/bin/sh", "-c", script], 5)
            .call(&json!({}), true)
            .await;
        assert!(r.get("isError").is_none(), "{r}");
        assert_eq!(r["structuredContent"]["ok"], true, "{r}");
    }
}
