//! TEST TOOLING: a real Jaeger v2 collector on loopback for the tracing tests of the operator
//! and the data plane (each includes this file with `#[path]`). The binary comes from
//! `e2e/scripts/jaeger-build.sh` (built from its Go module once, cached): if it cannot be
//! built the test fails, it never skips. In-memory storage, OTLP/HTTP in, query API out,
//! every port on 127.0.0.1 and chosen at random, so parallel runs do not meet.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Jaeger {
    child: Child,
    /// `http://127.0.0.1:<port>`: the value of `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub otlp_endpoint: String,
    query: String,
    pub log: PathBuf,
}

/// The cached collector, built on first use (a cold build takes many minutes).
pub fn binary() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../e2e/scripts/jaeger-build.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed: Jaeger is needed for this test",
        script.display()
    );
    let path = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    PathBuf::from(path)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Jaeger {
    pub fn start(log_dir: &Path) -> Self {
        let bin = binary();
        let (otlp, query, query_grpc, otlp_grpc) =
            (free_port(), free_port(), free_port(), free_port());
        std::fs::create_dir_all(log_dir).unwrap();
        let config = log_dir.join("jaeger.yaml");
        std::fs::write(
            &config,
            format!(
                r#"service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    traces:
      level: none
extensions:
  jaeger_query:
    storage:
      traces: mem
    http:
      endpoint: 127.0.0.1:{query}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp}
      grpc:
        endpoint: 127.0.0.1:{otlp_grpc}
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
"#
            ),
        )
        .unwrap();
        let log = log_dir.join("jaeger.log");
        let child = Command::new(&bin)
            .arg("--config")
            .arg(&config)
            // Jaeger's own traces would go to localhost:4317 (someone else's collector).
            .env("OTEL_TRACES_EXPORTER", "none")
            .env("OTEL_SDK_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let j = Self {
            child,
            otlp_endpoint: format!("http://127.0.0.1:{otlp}"),
            query: format!("127.0.0.1:{query}"),
            log: log.with_extension("err"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while j.get("/api/services").is_none() {
            assert!(
                Instant::now() < deadline,
                "Jaeger's query API did not come up in 30s; log:\n{}",
                std::fs::read_to_string(&j.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        j
    }

    /// GET on the query API; the JSON body of a 200.
    pub fn get(&self, path_and_query: &str) -> Option<Value> {
        let mut s =
            TcpStream::connect_timeout(&self.query.parse().ok()?, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET {path_and_query} HTTP/1.0\r\nHost: {}\r\nAccept: application/json\r\n\r\n",
            self.query
        )
        .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf);
        let (head, body) = text.split_once("\r\n\r\n")?;
        if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
            return None;
        }
        serde_json::from_str(body).ok()
    }

    /// The traces of `service` (Jaeger's JSON: `traceID`, `spans`, `processes`).
    pub fn traces(&self, service: &str) -> Vec<Value> {
        self.get(&format!(
            "/api/traces?service={service}&limit=1000&lookback=1h"
        ))
        .and_then(|v| v["data"].as_array().cloned())
        .unwrap_or_default()
    }

    /// One trace by id (what the collector holds of it so far).
    pub fn trace(&self, trace_id: &str) -> Option<Value> {
        self.get(&format!("/api/traces/{trace_id}"))
            .and_then(|v| v["data"].as_array()?.first().cloned())
    }

    /// Poll until `f` finds what it wants in the collector (bounded).
    pub fn wait_for<T>(
        &self,
        what: &str,
        within: Duration,
        mut f: impl FnMut(&Self) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + within;
        loop {
            if let Some(t) = f(self) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "Jaeger never showed {what} within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Jaeger {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The operation names of a trace's spans.
pub fn operations(trace: &Value) -> Vec<String> {
    trace["spans"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(|s| s["operationName"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// A tag of a span or a process, as a string.
pub fn tag(obj: &Value, key: &str) -> Option<String> {
    obj["tags"]
        .as_array()?
        .iter()
        .find(|t| t["key"] == key)
        .map(|t| match &t["value"] {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        })
}

/// The process (service and resource attributes) a span came from.
pub fn process_of<'a>(trace: &'a Value, span: &Value) -> &'a Value {
    let pid = span["processID"].as_str().unwrap_or_default();
    &trace["processes"][pid]
}

/// The parent span id of a span (its CHILD_OF reference), if any.
pub fn parent_of(span: &Value) -> Option<String> {
    span["references"]
        .as_array()?
        .iter()
        .find(|r| r["refType"] == "CHILD_OF")?["spanID"]
        .as_str()
        .map(String::from)
}
