//! The Dockerfiles: lint, what they build against the crates, static binaries.

use super::*;

struct Dockerfile {
    text: String,
    /// Instructions of the final stage, joined continuation lines, without comments.
    final_stage: Vec<String>,
    all: Vec<String>,
}

fn dockerfile(rel: &str) -> Dockerfile {
    let text = read(rel);
    let mut all = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || t.is_empty() {
            continue;
        }
        if let Some(body) = t.strip_suffix('\\') {
            cur.push_str(body.trim_end());
            cur.push(' ');
        } else {
            cur.push_str(t);
            all.push(std::mem::take(&mut cur));
        }
    }
    let last_from = all.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    Dockerfile {
        text,
        final_stage: all[last_from..].to_vec(),
        all,
    }
}

fn cargo_bins() -> BTreeMap<String, BTreeSet<String>> {
    let meta: Value = serde_json::from_str(&run(Command::new(env!("CARGO")).args([
        "metadata",
        "--no-deps",
        "--format-version",
        "1",
        "--offline",
    ])))
    .unwrap();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let bins = p["targets"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["kind"].as_array().unwrap().iter().any(|k| k == "bin"))
                .map(|t| t["name"].as_str().unwrap().to_string())
                .collect();
            (p["name"].as_str().unwrap().to_string(), bins)
        })
        .collect()
}

#[test]
fn dockerfiles_lint_clean_and_match_the_crates() {
    let hadolint = lint_tool("hadolint");
    let bins = cargo_bins();
    for (file, package, bin, ports) in [
        (
            "Dockerfile.dataplane",
            "erlmcp-dataplane",
            "erlmcp",
            &[8080, 9090, 9100][..],
        ),
        (
            "Dockerfile.operator",
            "erlmcp-operator",
            "erlmcp-operator",
            &[8080][..],
        ),
    ] {
        let (ok, out, err) = try_run(Command::new(&hadolint).arg(file));
        assert!(ok && out.trim().is_empty(), "hadolint {file}:\n{out}{err}");
        let d = dockerfile(file);
        // Multi-stage: a Rust builder, an empty final stage.
        assert!(d.all[0].starts_with("ARG "), "{file}");
        assert!(
            d.all
                .iter()
                .any(|l| l.starts_with("FROM rust:") && l.ends_with(" AS builder")),
            "{file}: a rust builder stage"
        );
        assert_eq!(d.final_stage[0], "FROM scratch", "{file}: final stage");
        // The build line names a real package and binary, and copies what it built.
        let build = d
            .all
            .iter()
            .find(|l| l.contains("cargo build"))
            .expect("cargo build");
        // The shipped profile (Cargo.toml `[profile.dist]`: fat LTO, one codegen unit, stripped).
        assert!(build.contains("--profile dist --locked"), "{file}: {build}");
        assert!(
            build.contains(&format!("-p {package} --bin {bin} ")),
            "{file}: {build}"
        );
        assert!(
            bins.get(package).is_some_and(|b| b.contains(bin)),
            "{file}: {package} has no binary {bin}: {bins:?}"
        );
        assert!(
            build.contains(&format!("cp target/dist/{bin} /out/{bin}")),
            "{file}"
        );
        let dest = format!("/usr/local/bin/{bin}");
        assert!(
            d.final_stage
                .contains(&format!("COPY --from=builder /out/{bin} {dest}")),
            "{file}: copies the binary to {dest}"
        );
        assert!(
            d.final_stage.contains(&format!("ENTRYPOINT [\"{dest}\"]")),
            "{file}: entrypoint"
        );
        // Non-root, numeric, the StatefulSet's and the chart's user.
        assert!(
            d.final_stage.contains(&format!("USER {UID}:{UID}")),
            "{file}: USER"
        );
        // OCI labels.
        let labels = d
            .final_stage
            .iter()
            .find(|l| l.starts_with("LABEL "))
            .expect("LABEL");
        for key in [
            "version", "revision", "source", "created", "title", "licenses",
        ] {
            assert!(
                labels.contains(&format!("org.opencontainers.image.{key}=")),
                "{file}: label {key}"
            );
        }
        let expose = d
            .final_stage
            .iter()
            .find(|l| l.starts_with("EXPOSE "))
            .unwrap();
        let exposed: Vec<i64> = expose[7..]
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        assert_eq!(exposed, ports, "{file}: EXPOSE");
        assert!(
            !d.text.contains("/bin/sh") || d.text.contains("/sbin/nologin"),
            "{file}"
        );
    }
    // The data plane's HEALTHCHECK is its own client (no shell, no curl in the image).
    let dp = dockerfile("Dockerfile.dataplane");
    let hc = dp
        .final_stage
        .iter()
        .find(|l| l.starts_with("HEALTHCHECK"))
        .unwrap();
    assert!(
        hc.ends_with("CMD [\"/usr/local/bin/erlmcp\", \"healthcheck\"]"),
        "{hc}"
    );
    assert!(dp.final_stage.contains(&"CMD [\"serve\"]".to_string()));
    // The StatefulSet runs the image's entrypoint with its own args (no command).
    let out = erlmcp_operator::render::render(
        &read("config/samples/basic.yaml"),
        ServerCapabilities::default(),
    )
    .expect("render basic sample");
    let sts = yaml_docs(&out)
        .into_iter()
        .find(|d| d["kind"] == "StatefulSet")
        .unwrap();
    let ctr = &sts["spec"]["template"]["spec"]["containers"][0];
    assert!(ctr.get("command").is_none_or(Value::is_null), "{ctr}");
    assert_eq!(ctr["args"][0], "serve");
    assert_eq!(
        sts["spec"]["template"]["spec"]["securityContext"]["runAsUser"],
        UID
    );
    // The build context keeps what cargo needs.
    let ignore = read(".dockerignore");
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "crds",
        "operator",
        "dataplane",
        "e2e",
    ] {
        assert!(
            !ignore
                .lines()
                .any(|l| l.trim() == needed || l.trim() == format!("{needed}/")),
            ".dockerignore drops {needed}"
        );
    }
    assert!(
        ignore.lines().any(|l| l.trim() == "**/target"),
        ".dockerignore keeps target/"
    );
}

/// The images build with `x86_64-unknown-linux-musl` (statically linked). That target is not
/// installable here (rustup cannot download), so this builds the next best thing that proves
/// the same property: both binaries statically linked against glibc (`+crt-static`), i.e. no
/// native library the image would lack. When the musl target is installed, it builds that.
#[test]
fn image_binaries_link_statically() {
    let installed = run(Command::new("rustup").args(["target", "list", "--installed"]));
    let musl = installed
        .lines()
        .any(|l| l.trim() == "x86_64-unknown-linux-musl");
    let target = if musl {
        "x86_64-unknown-linux-musl"
    } else {
        "x86_64-unknown-linux-gnu"
    };
    let dir = root().join("target/packaging-static");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args([
        "build",
        "--locked",
        "--target",
        target,
        "-p",
        "erlmcp-operator",
        "--bin",
        "erlmcp-operator",
        "-p",
        "erlmcp-dataplane",
        "--bin",
        "erlmcp",
    ])
    .env("CARGO_TARGET_DIR", &dir)
    .env("CARGO_PROFILE_DEV_DEBUG", "0");
    if !musl {
        cmd.env("RUSTFLAGS", "-C target-feature=+crt-static");
    }
    run(&mut cmd);
    for (bin, arg) in [("erlmcp-operator", "--version"), ("erlmcp", "version")] {
        let path = dir.join(target).join("debug").join(bin);
        let elf = std::fs::read(&path).unwrap();
        assert!(!has_interpreter(&elf), "{bin} is dynamically linked");
        let out = run(Command::new(&path).arg(arg));
        assert!(
            out.contains(env!("CARGO_PKG_VERSION")),
            "{bin} {arg}: {out}"
        );
    }
}

/// Whether a 64-bit little-endian ELF file has a PT_INTERP program header (dynamic linking).
fn has_interpreter(elf: &[u8]) -> bool {
    assert_eq!(&elf[..4], b"\x7fELF");
    assert_eq!(elf[4], 2, "64-bit");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap());
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| u32_at(phoff + i * phentsize) == 3)
}
