//! The `erlmcp` binary: the server with the built-ins and the configured catalog.

fn main() {
    // As PID 1 (no init in the image) the process forks: this one reaps and forwards signals.
    if let Some(code) = erlmcp_dataplane::init::run_as_pid1() {
        std::process::exit(code);
    }
    std::process::exit(erlmcp_dataplane::cli::run(None));
}
