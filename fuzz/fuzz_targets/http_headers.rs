//! `cargo +nightly fuzz run http_headers`; on stable the same harness runs in `tests/harness.rs`.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| erlmcp_fuzz::http_headers(data));

#[cfg(not(fuzzing))]
fn main() {
    eprintln!("built without cargo fuzz: run `cargo +nightly fuzz run http_headers`");
}
