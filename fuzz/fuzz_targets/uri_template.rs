//! `cargo +nightly fuzz run uri_template`; on stable the same harness runs in `tests/harness.rs`.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| erlmcp_fuzz::uri_template(data));

#[cfg(not(fuzzing))]
fn main() {
    eprintln!("built without cargo fuzz: run `cargo +nightly fuzz run uri_template`");
}
