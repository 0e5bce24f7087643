//! `erlmcp-conformance`: the `erlmcp` server, same command line, with the conformance-suite
//! fixtures registered. A test tool only; never shipped.

fn main() {
    std::process::exit(erlmcp_dataplane::cli::run(Some(
        erlmcp_conformance::register,
    )));
}
