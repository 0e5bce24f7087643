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
