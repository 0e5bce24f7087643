//! The checked-in CRD YAML must be exactly what the code generates.
//! Regenerate with `cargo run -p erlmcp-operator -- crd --write` (or `UPDATE_CRDS=1 cargo test -p erlmcp-crds`).

use std::path::PathBuf;

use erlmcp_crds::crd::{crd_yaml, CRD_PATH};

fn workspace_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

#[test]
fn checked_in_crd_matches_code() {
    let path = workspace_file(CRD_PATH);
    let want = crd_yaml();
    if std::env::var_os("UPDATE_CRDS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{} unreadable ({e}); run `cargo run -p erlmcp-operator -- crd --write`",
            path.display()
        )
    });
    assert!(
        have == want,
        "{CRD_PATH} is stale: run `cargo run -p erlmcp-operator -- crd --write` and commit the result"
    );
}

/// Every `enum` lists values of its own type: Kubernetes 1.20 refuses the whole CRD over a
/// `null` in an `enum` (what schemars writes for an `Option` of an enum).
#[test]
fn no_enum_lists_null() {
    fn walk(v: &serde_yaml::Value, path: &str, bad: &mut Vec<String>) {
        match v {
            serde_yaml::Value::Mapping(m) => {
                for (k, child) in m {
                    let key = k.as_str().unwrap_or("?");
                    let here = format!("{path}.{key}");
                    if key == "enum" {
                        let has_null = child
                            .as_sequence()
                            .is_some_and(|s| s.iter().any(serde_yaml::Value::is_null));
                        if has_null {
                            bad.push(here.clone());
                        }
                    }
                    walk(child, &here, bad);
                }
            }
            serde_yaml::Value::Sequence(s) => {
                for (i, child) in s.iter().enumerate() {
                    walk(child, &format!("{path}[{i}]"), bad);
                }
            }
            _ => {}
        }
    }
    let crd: serde_yaml::Value = serde_yaml::from_str(&crd_yaml()).unwrap();
    let mut bad = Vec::new();
    walk(&crd, "", &mut bad);
    assert!(bad.is_empty(), "enums listing null: {bad:?}");
}
