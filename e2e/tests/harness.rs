//! The harness itself: with no API server the suite fails, it never passes by skipping.

use std::process::Command;

use erlmcp_e2e::TestEnv;

/// Not a case of its own: what `no_api_server_means_failure` runs in a child process.
#[tokio::test]
#[ignore = "helper: run by no_api_server_means_failure in a child process"]
async fn probe_environment() {
    let _ = TestEnv::get();
}

#[test]
fn no_api_server_means_failure() {
    let state = std::env::temp_dir().join(format!("erlmcp-e2e-harness-{}", std::process::id()));
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "probe_environment", "--nocapture"])
        .env("KUBECONFIG", state.join("no-such-kubeconfig"))
        .env("ERLMCP_E2E_SKIP_BUILD", "1")
        .env("ERLMCP_E2E_STATE_DIR", &state)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&state);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "passed without an API server:\n{text}"
    );
    assert!(
        text.contains("did not come up") && text.contains("never skips"),
        "{text}"
    );
}
