//! The deploy files' checks' helpers: where the files are, reading them as Docker would
//! (Compose interpolation, YAML as JSON), the vendored Compose schema, the chart rendered by
//! `helm template`, the data plane's loaders run on a service's environment, and what
//! Dockerfile.dataplane says.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use erlmcp_crds::DataplaneConfig;
use erlmcp_dataplane::{cluster, config};
use serde_json::Value;

pub const COMPOSE: &str = "deploy/compose/compose.yaml";
pub const STACK: &str = "deploy/swarm/stack.yaml";
const SCHEMA: &str = "dataplane/tests/fixtures/compose-spec/compose-spec.json";
const SCHEMA_SHA256: &str = "f266dcbb043229405d7cedd5aec918f9102c2b3d5e3850808fdd8edd564a43ff";
pub const RULES: &str = "deploy/monitoring/erlmcp.rules.yml";
pub const DASHBOARD: &str = "charts/erlmcp-operator/files/dashboard.json";
pub const CHART: &str = "charts/erlmcp-operator";
pub const SERVICE: &str = "erlmcp";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace root")
}

pub fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

pub fn yaml(text: &str) -> Value {
    let v: serde_yaml::Value = serde_yaml::from_str(text).expect("valid YAML");
    serde_json::to_value(v).expect("YAML as JSON")
}

/// Compose interpolation with every variable unset: `${X:-d}` and `${X-d}` give `d`, `$$` is
/// a `$`. A variable without a default is an error: the files must work without a `.env`.
pub fn interpolate(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = rest.strip_prefix('{') {
            let end = r.find('}').ok_or("unclosed ${")?;
            let body = &r[..end];
            let default = body
                .split_once(":-")
                .or_else(|| body.split_once('-'))
                .map(|(_, d)| d)
                .ok_or_else(|| format!("${{{body}}} has no default"))?;
            out.push_str(default);
            rest = &r[end + 1..];
        } else {
            return Err(format!("bare $ before {:?}", &rest[..rest.len().min(10)]));
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A deploy file as Docker would read it (variables at their defaults).
pub fn load(rel: &str) -> Value {
    yaml(&interpolate(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}")))
}

pub fn validator() -> jsonschema::Validator {
    use sha2::Digest;
    let text = read(SCHEMA);
    assert_eq!(
        hex::encode(sha2::Sha256::digest(text.as_bytes())),
        SCHEMA_SHA256,
        "{SCHEMA} differs from the vendored release (see SOURCE.md beside it)"
    );
    let schema: Value = serde_json::from_str(&text).expect("schema JSON");
    jsonschema::validator_for(&schema).expect("the Compose schema compiles")
}

pub fn schema_errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// `scripts/tools.sh helm` (installed once, cached): the chart rendered as users get it.
pub fn helm_show(template: &str, set: &str) -> Value {
    let out = Command::new("bash")
        .args(["scripts/tools.sh", "helm"])
        .current_dir(root())
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/tools.sh");
    assert!(
        out.status.success(),
        "scripts/tools.sh helm: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let helm = stdout.lines().last().unwrap_or_default().trim().to_string();
    let out = Command::new(&helm)
        .args(["template", "erlmcp-operator", CHART, "--set", set])
        .args(["--show-only", template])
        .current_dir(root())
        .stdin(Stdio::null())
        .output()
        .expect("run helm");
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    yaml(&String::from_utf8_lossy(&out.stdout))
}

pub fn erlmcp(doc: &Value) -> &Value {
    &doc["services"][SERVICE]
}

/// `environment:` as a map (Compose allows a map or a list of `K=V`).
pub fn environment(svc: &Value) -> BTreeMap<String, String> {
    let scalar = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match &svc["environment"] {
        Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), scalar(v))).collect(),
        Value::Array(a) => a
            .iter()
            .filter_map(|e| e.as_str()?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// Where each secret of the service appears inside the container.
fn secret_paths(svc: &Value) -> Vec<String> {
    svc["secrets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let target = s
                .as_str()
                .or_else(|| s["target"].as_str())
                .or_else(|| s["source"].as_str())
                .expect("secret name");
            if target.starts_with('/') {
                target.to_string()
            } else {
                format!("/run/secrets/{target}")
            }
        })
        .collect()
}

/// An `Env` that remembers every variable the loaders ask for.
struct Recording {
    vars: BTreeMap<String, String>,
    asked: RefCell<BTreeSet<String>>,
}

impl config::Env for Recording {
    fn get(&self, key: &str) -> Option<String> {
        self.asked.borrow_mut().insert(key.to_string());
        self.vars.get(key).cloned()
    }
}

/// The variables the `erlmcp` binary reads: through its subcommands' flags (`[env: X=]` in
/// their help) and `std::env` calls in the source; the loaders' own come from `Recording`.
pub fn binary_env_vars() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for sub in ["serve", "healthcheck"] {
        let o = Command::new(env!("CARGO_BIN_EXE_erlmcp"))
            .args([sub, "--help"])
            .env_clear()
            .output()
            .expect("erlmcp --help");
        let help = String::from_utf8_lossy(&o.stdout).into_owned();
        for part in help.split("[env: ").skip(1) {
            out.insert(part.split('=').next().unwrap().to_string());
        }
    }
    fn walk(p: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(p).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                for pat in ["env::var(\"", "env::var_os(\""] {
                    for part in text.split(pat).skip(1) {
                        out.insert(part.split('"').next().unwrap().to_string());
                    }
                }
            }
        }
    }
    walk(&root().join("dataplane/src"), &mut out);
    out
}

/// What the data plane makes of the service's environment, secrets written where Docker
/// mounts them (here: files in a scratch directory, the variables pointed at them).
pub struct Loaded {
    pub cfg: config::RuntimeConfig,
    pub cluster: cluster::ClusterSettings,
    pub asked: BTreeSet<String>,
    pub cookie: String,
}

pub fn load_dataplane(rel: &str, svc: &Value) -> Loaded {
    let dir = std::env::temp_dir().join(format!(
        "erlmcp-deploy-{}-{}",
        std::process::id(),
        rel.replace('/', "_")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let cookie = format!("cookie-of-{}-0123456789abcdef", rel.replace('/', "-"));
    let mut vars = environment(svc);
    for (i, path) in secret_paths(svc).iter().enumerate() {
        let file = dir.join(format!("secret-{i}"));
        std::fs::write(&file, format!("{cookie}\n")).unwrap();
        for v in vars.values_mut().filter(|v| *v == path) {
            *v = file.display().to_string();
        }
    }
    let env = Recording {
        vars,
        asked: RefCell::new(BTreeSet::new()),
    };
    let cfg = config::from_parts(DataplaneConfig::default(), &env)
        .unwrap_or_else(|e| panic!("{rel}: the data plane rejects its environment: {e}"));
    let cluster = cluster::settings(&cfg, &env)
        .unwrap_or_else(|e| panic!("{rel}: the data plane rejects its cluster settings: {e}"));
    std::fs::remove_dir_all(&dir).ok();
    Loaded {
        cfg,
        cluster,
        asked: env.asked.into_inner(),
        cookie,
    }
}

/// The data plane's defaults: (mcp, health, metrics, peer).
pub fn default_ports() -> (u16, u16, u16, u16) {
    let d = config::from_parts(DataplaneConfig::default(), &BTreeMap::new()).unwrap();
    (
        d.mcp_port(),
        d.health_port(),
        d.metrics_port(),
        DataplaneConfig::default().cluster.port,
    )
}

/// `HOST:CONTAINER[/proto]` (or a long-syntax entry): the container port.
pub fn container_port(p: &Value) -> u16 {
    if let Some(t) = p["target"].as_u64() {
        return t as u16;
    }
    let s = p
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| p.to_string());
    let s = s.split('/').next().unwrap();
    s.rsplit(':')
        .next()
        .unwrap()
        .parse()
        .expect("container port")
}

/// (ENTRYPOINT binary, USER, EXPOSE ports, ENV) of Dockerfile.dataplane.
pub fn dockerfile() -> (String, String, BTreeSet<u16>, BTreeMap<String, String>) {
    let text = read("Dockerfile.dataplane").replace("\\\n", " ");
    let mut entry = String::new();
    let mut user = String::new();
    let mut expose = BTreeSet::new();
    let mut env = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if let Some(r) = line.strip_prefix("ENTRYPOINT ") {
            let v: Vec<String> = serde_json::from_str(r).expect("ENTRYPOINT in exec form");
            entry = v[0].clone();
        } else if let Some(r) = line.strip_prefix("USER ") {
            user = r.trim().to_string();
        } else if let Some(r) = line.strip_prefix("EXPOSE ") {
            expose.extend(r.split_whitespace().map(|p| p.parse::<u16>().unwrap()));
        } else if let Some(r) = line.strip_prefix("ENV ") {
            for kv in r.split_whitespace() {
                if let Some((k, v)) = kv.split_once('=') {
                    env.insert(k.to_string(), v.to_string());
                }
            }
        }
    }
    (entry, user, expose, env)
}
