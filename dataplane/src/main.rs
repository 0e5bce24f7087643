//! The `erlmcp` binary: the server with the built-ins and the configured catalog.

/// mimalloc rather than the C library's allocator: a request makes dozens of small, short-lived
/// allocations, and glibc's malloc and free spent 17,000 of a `tools/call`'s 72,000 instructions
/// on them, mimalloc 7,000 (bench/instructions.sh; musl's, in the images, is slower than glibc's).
/// Only this binary: the library leaves the choice to whoever embeds it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // As PID 1 (no init in the image) the process forks: this one reaps and forwards signals.
    if let Some(code) = erlmcp_dataplane::init::run_as_pid1() {
        std::process::exit(code);
    }
    std::process::exit(erlmcp_dataplane::cli::run(None));
}
