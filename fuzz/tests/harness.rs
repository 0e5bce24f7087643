//! The fuzz harnesses on stable: every seed, every input saved under `corpus/<target>/` and
//! `regressions/<target>/` (crashes once found by cargo fuzz, kept so they stay fixed), and
//! proptest-generated inputs, random and shaped like each target's input.

use std::path::Path;

use proptest::prelude::*;

type Harness = fn(&[u8]);

const TARGETS: [(&str, Harness); 5] = [
    ("jsonrpc_frame", erlmcp_fuzz::jsonrpc_frame),
    ("http_headers", erlmcp_fuzz::http_headers),
    ("uri_template", erlmcp_fuzz::uri_template),
    ("config_file", erlmcp_fuzz::config_file),
    ("peer_handshake", erlmcp_fuzz::peer_handshake),
];

fn saved_inputs(target: &str) -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in entries.flatten() {
            if let Ok(b) = std::fs::read(e.path()) {
                out.push(b);
            }
        }
    }
    out
}

#[test]
fn seeds_and_saved_inputs() {
    let seeds = erlmcp_fuzz::seeds();
    for (name, run) in TARGETS {
        let mine = seeds.get(name).expect("every target has seeds");
        assert!(!mine.is_empty());
        for input in mine.iter().cloned().chain(saved_inputs(name)) {
            run(&input);
        }
    }
}

/// Bytes drawn from an alphabet, so random inputs reach past the first parse error.
fn shaped(alphabet: &'static [u8], max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(alphabet), 0..max)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes(data in prop::collection::vec(any::<u8>(), 0..512)) {
        for (_, run) in TARGETS {
            run(&data);
        }
    }

    #[test]
    fn json_shaped_frames(data in shaped(b"[]{}\":,0123456789 .-eEtrufalsnidmethodjsonrpc2", 256)) {
        erlmcp_fuzz::jsonrpc_frame(&data);
    }

    #[test]
    fn header_shaped_values(data in shaped(b"applicationtextjsonevent-stream/*;q=0.,=?base64?SGVs0123456789- ", 96)) {
        erlmcp_fuzz::http_headers(&data);
    }

    #[test]
    fn template_shaped_inputs(data in shaped(b"docs:/{}abc_%0123456789ABCDEFzZ\0\xc3\xa9", 96)) {
        erlmcp_fuzz::uri_template(&data);
    }

    #[test]
    fn yaml_shaped_config(data in shaped(b"mcp:limits{}[],: \n-maxConnections0123tools name backend command", 200)) {
        erlmcp_fuzz::config_file(&data);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn handshake_frames(body in shaped(b"{}\":,namememberincarnationnonceproof0123456789abcdef", 200), len in prop::option::of(0u32..100_000)) {
        // A length prefix (true or not) then the body, as the peer channel frames them.
        let n = len.unwrap_or(body.len() as u32);
        let data = [&n.to_be_bytes()[..], &body].concat();
        erlmcp_fuzz::peer_handshake(&data);
    }
}
