//! Image → local program. The pod runner pulls nothing: each image a pod names is mapped by a
//! regular expression to the program that plays its entrypoint on this machine.

use std::path::Path;

use anyhow::{bail, Context, Result};
use regex::Regex;

/// One `REGEX=PROGRAM [ARG...]` rule.
#[derive(Debug, Clone)]
pub struct ImageRule {
    pub pattern: Regex,
    /// The entrypoint: program path and fixed leading arguments.
    pub entrypoint: Vec<String>,
}

/// Ordered rules; the first match wins.
#[derive(Debug, Clone, Default)]
pub struct ImageMap {
    pub rules: Vec<ImageRule>,
}

impl ImageRule {
    /// Parses `REGEX=PROGRAM [ARG...]` (split at the first `=`; arguments split on whitespace).
    pub fn parse(spec: &str) -> Result<Self> {
        let Some((re, cmd)) = spec.split_once('=') else {
            bail!("image map {spec:?}: expected REGEX=PROGRAM [ARG...]");
        };
        let entrypoint: Vec<String> = cmd.split_whitespace().map(str::to_string).collect();
        if entrypoint.is_empty() {
            bail!("image map {spec:?}: empty program");
        }
        let pattern = Regex::new(re).with_context(|| format!("image map {spec:?}: bad regex"))?;
        Ok(Self {
            pattern,
            entrypoint,
        })
    }
}

/// Regex matching an image whose repository's last path segment is `name` (any registry,
/// any tag or digest).
pub fn repo_regex(name: &str) -> String {
    format!(
        r"^(.*/)?{}(:[\w][\w.-]*)?(@sha256:[0-9a-f]+)?$",
        regex::escape(name)
    )
}

impl ImageMap {
    /// The default rules: our two images map to the binaries next to the runner (e.g.
    /// `target/debug/`), and a few shell images map to the host's `/bin/sh` (such pods give
    /// their own `command`).
    pub fn defaults(bin_dir: &Path) -> Vec<String> {
        vec![
            format!(
                "{}={}",
                repo_regex("erlmcp"),
                bin_dir.join("erlmcp").display()
            ),
            format!(
                "{}={}",
                repo_regex("erlmcp-operator"),
                bin_dir.join("erlmcp-operator").display()
            ),
            format!(
                r"^(.*/)?(busybox|alpine|debian|ubuntu)(:[\w][\w.-]*)?(@sha256:[0-9a-f]+)?$=/bin/sh"
            ),
        ]
    }

    pub fn new(specs: &[String]) -> Result<Self> {
        Ok(Self {
            rules: specs
                .iter()
                .map(|s| ImageRule::parse(s))
                .collect::<Result<_>>()?,
        })
    }

    pub fn resolve(&self, image: &str) -> Option<&[String]> {
        self.rules
            .iter()
            .find(|r| r.pattern.is_match(image))
            .map(|r| r.entrypoint.as_slice())
    }
}

/// The argv Kubernetes semantics give: `command` replaces the image's entrypoint, `args`
/// follow it. (An image's own default CMD is not modelled: without `args` there are none.)
pub fn argv(
    entrypoint: &[String],
    command: Option<&[String]>,
    args: Option<&[String]>,
) -> Vec<String> {
    let mut v: Vec<String> = match command {
        Some(c) if !c.is_empty() => c.to_vec(),
        _ => entrypoint.to_vec(),
    };
    v.extend(args.unwrap_or_default().iter().cloned());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_map_our_images_and_not_others() {
        let m = ImageMap::new(&ImageMap::defaults(Path::new("/t/debug"))).unwrap();
        for img in [
            "erlmcp",
            "erlmcp:0.1.0",
            "ghcr.io/erlmcp/erlmcp:0.1.0",
            "localhost:5000/x/erlmcp@sha256:abcd",
        ] {
            assert_eq!(m.resolve(img).unwrap(), ["/t/debug/erlmcp"], "{img}");
        }
        assert_eq!(
            m.resolve("ghcr.io/erlmcp/erlmcp-operator:1").unwrap(),
            ["/t/debug/erlmcp-operator"]
        );
        assert_eq!(m.resolve("busybox:1.36").unwrap(), ["/bin/sh"]);
        assert!(m.resolve("nginx").is_none());
        assert!(m.resolve("ghcr.io/erlmcp/erlmcpx").is_none());
        assert!(m.resolve("localhost:5000/erlmcp-thing").is_none());
    }

    #[test]
    fn rules_parse_and_first_wins() {
        let m = ImageMap::new(&[
            "^test/sleeper$=/bin/sleep 1000".to_string(),
            "^test/.*=/bin/false".to_string(),
        ])
        .unwrap();
        assert_eq!(m.resolve("test/sleeper").unwrap(), ["/bin/sleep", "1000"]);
        assert_eq!(m.resolve("test/x").unwrap(), ["/bin/false"]);
        assert!(ImageRule::parse("nope").is_err());
        assert!(ImageRule::parse("(=x").is_err());
    }

    #[test]
    fn command_replaces_entrypoint_args_follow() {
        let ep = vec!["/bin/erlmcp".to_string()];
        let args = vec!["serve".to_string()];
        assert_eq!(argv(&ep, None, Some(&args)), ["/bin/erlmcp", "serve"]);
        let cmd = vec!["/bin/sh".to_string(), "-c".to_string()];
        assert_eq!(
            argv(&ep, Some(&cmd), Some(&["echo hi".to_string()])),
            ["/bin/sh", "-c", "echo hi"]
        );
    }
}
