//! The `erlmcp` binary: the server with the built-ins and the configured catalog.

fn main() {
    std::process::exit(erlmcp_dataplane::cli::run(None));
}
