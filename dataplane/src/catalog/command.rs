//! `command` tool backend: run a program (no shell) with the arguments as JSON on stdin, within
//! a time and output bound. The child is killed when the call ends for any reason.

use std::process::Stdio;
use std::time::Duration;

use erlmcp_crds::CommandBackend;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::http::{tool_error, truncate};

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
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {prog}: {e}"))?;
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
        let err_task = async move {
            let mut buf = Vec::new();
            let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut buf).await;
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
