//! The ConfigMap holding the data plane's `erlmcp.yaml`, and the pod-template checksum.

use std::collections::{BTreeMap, BTreeSet};

use erlmcp_crds::{
    DataplaneConfig, Discovery, ErlmcpCluster, McpSpec, PeerConfig, SecretKeyRef, TlsFiles,
    ValueSource,
};
use k8s_openapi::api::core::v1::ConfigMap;
use sha2::{Digest, Sha256};

use super::{child_meta, BuildContext, Child, Names};

/// Key of the configuration file inside the ConfigMap.
pub const CONFIG_KEY: &str = "erlmcp.yaml";
/// Where the ConfigMap is mounted (a directory, so updates reach running pods).
pub const CONFIG_DIR: &str = "/etc/erlmcp/config";
/// Where the pods see the configuration file.
pub const CONFIG_FILE: &str = "/etc/erlmcp/config/erlmcp.yaml";
/// Where referenced Secrets are mounted: `<dir>/<secret>/<key>`.
pub const SECRETS_DIR: &str = "/etc/erlmcp/secrets";
/// Where the cookie Secret is mounted.
pub const COOKIE_DIR: &str = "/etc/erlmcp/cookie";
/// Where the TLS Secret is mounted.
pub const TLS_DIR: &str = "/etc/erlmcp/tls";
/// Where the session volume is mounted.
pub const SESSION_DIR: &str = "/var/lib/erlmcp/sessions";

/// Secrets referenced from `spec.mcp` (tokens, JWKS, headers), mounted under [`SECRETS_DIR`].
pub fn referenced_secrets(mcp: &McpSpec) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    visit_value_sources(&mut mcp.clone(), &mut |v| {
        if let Some(r) = &v.secret_key_ref {
            out.insert(r.name.clone());
        }
    });
    out
}

fn visit_value_sources(mcp: &mut McpSpec, f: &mut dyn FnMut(&mut ValueSource)) {
    if let Some(v) = mcp.auth.bearer_token.as_mut() {
        f(v);
    }
    if let Some(j) = mcp.auth.jwt.as_mut() {
        f(&mut j.jwks);
    }
    for tool in &mut mcp.tools {
        if let Some(h) = tool.backend.http.as_mut() {
            for hdr in &mut h.headers {
                f(&mut hdr.value);
            }
        }
    }
}

fn secret_path(r: &SecretKeyRef) -> String {
    format!("{SECRETS_DIR}/{}/{}", r.name, r.key)
}

/// The data plane's configuration for this cluster: the spec's `mcp` section with Secret
/// references turned into the files the pods mount, plus discovery, cookie, TLS and logging.
pub fn dataplane_config(cluster: &ErlmcpCluster, names: &Names) -> DataplaneConfig {
    let spec = &cluster.spec;
    let mut mcp = spec.mcp.clone();
    visit_value_sources(&mut mcp, &mut |v| {
        if let Some(r) = v.secret_key_ref.take() {
            v.file = Some(secret_path(&r));
        }
    });
    let cookie_key = spec
        .cluster
        .cookie_secret
        .as_ref()
        .map(|r| r.key.clone())
        .unwrap_or_else(|| super::COOKIE_KEY.to_string());
    let tls = spec.tls.as_ref().map(|t| TlsFiles {
        cert_file: format!("{TLS_DIR}/tls.crt"),
        key_file: format!("{TLS_DIR}/tls.key"),
        ca_file: Some(format!("{TLS_DIR}/ca.crt")),
        peer_mtls: t.peer_mtls,
        client_tls: t.client_tls,
    });
    DataplaneConfig {
        mcp,
        cluster: PeerConfig {
            discovery: Discovery::Kubernetes {
                service: names.headless.clone(),
                namespace: None,
            },
            port: spec.cluster.port,
            cookie_file: Some(format!("{COOKIE_DIR}/{cookie_key}")),
            // Present only while a rotation is under way (see the README's cookie rotation).
            previous_cookie_file: Some(format!(
                "{COOKIE_DIR}/{}",
                previous_cookie_key(&cookie_key)
            )),
            cluster_name: Some(names.cluster.clone()),
        },
        logging: spec.logging.clone(),
        observe: Default::default(),
        tls,
        session_dir: spec.storage.as_ref().map(|_| SESSION_DIR.to_string()),
    }
}

pub fn config_map(cluster: &ErlmcpCluster, names: &Names) -> Child {
    let config = dataplane_config(cluster, names);
    let yaml = serde_yaml::to_string(&config).expect("config serialises");
    let cm = ConfigMap {
        metadata: child_meta(cluster, &names.config_map),
        data: Some(BTreeMap::from([(CONFIG_KEY.to_string(), yaml)])),
        ..Default::default()
    };
    Child::new("v1", "ConfigMap", &cm)
}

/// The cookie Secret key holding the cookie being rotated out: `<key>-previous`.
pub fn previous_cookie_key(key: &str) -> String {
    format!("{key}-previous")
}

/// SHA-256 over the config file and the contents of every Secret the pods mount, except the TLS
/// Secret. Stored on the pod template, so any change rolls the pods (Secrets mounted as files
/// update in place, but env and in-memory state would not). The data plane re-reads its TLS
/// files when they change, so a renewed certificate (cert-manager's or the operator CA's) must
/// not restart every pod.
pub fn checksum(
    config: &Child,
    cluster: &ErlmcpCluster,
    names: &Names,
    ctx: &BuildContext,
) -> String {
    let mut h = Sha256::new();
    h.update(
        config.object["data"][CONFIG_KEY]
            .as_str()
            .unwrap_or_default()
            .as_bytes(),
    );
    let tls = tls_secret_name(cluster, names);
    for secret in mounted_secrets(cluster, names) {
        if Some(&secret) == tls.as_ref() {
            continue;
        }
        h.update(b"\0secret\0");
        h.update(secret.as_bytes());
        if let Some(data) = ctx.secret_data.get(&secret) {
            for (k, v) in data {
                h.update(b"\0");
                h.update(k.as_bytes());
                h.update(b"=");
                h.update(v);
            }
        }
    }
    hex::encode(h.finalize())
}

/// Every Secret the pods mount: cookie, TLS, and the ones `spec.mcp` references.
pub fn mounted_secrets(cluster: &ErlmcpCluster, names: &Names) -> BTreeSet<String> {
    let spec = &cluster.spec;
    let mut out = referenced_secrets(&spec.mcp);
    out.insert(cookie_secret_name(cluster, names));
    if let Some(tls) = tls_secret_name(cluster, names) {
        out.insert(tls);
    }
    out
}

pub fn cookie_secret_name(cluster: &ErlmcpCluster, names: &Names) -> String {
    cluster
        .spec
        .cluster
        .cookie_secret
        .as_ref()
        .map(|r| r.name.clone())
        .unwrap_or_else(|| names.cookie_secret.clone())
}

pub fn tls_secret_name(cluster: &ErlmcpCluster, names: &Names) -> Option<String> {
    cluster.spec.tls.as_ref().map(|t| {
        t.secret_name
            .clone()
            .unwrap_or_else(|| names.tls_secret.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::fixtures;

    #[test]
    fn secret_refs_become_mounted_files() {
        let c = fixtures::cluster(
            r#"
metadata: {name: t}
spec:
  mcp:
    auth:
      mode: bearer
      bearerToken: {secretKeyRef: {name: api-token, key: token}}
    tools:
      - name: weather
        backend:
          http:
            url: https://weather.example/api
            headers:
              - name: X-Api-Key
                value: {secretKeyRef: {name: weather, key: apikey}}
"#,
        );
        let names = Names::of(&c);
        let cfg = dataplane_config(&c, &names);
        let tok = cfg.mcp.auth.bearer_token.unwrap();
        assert_eq!(
            tok.file.as_deref(),
            Some("/etc/erlmcp/secrets/api-token/token")
        );
        assert!(tok.secret_key_ref.is_none());
        let hdr = &cfg.mcp.tools[0].backend.http.as_ref().unwrap().headers[0];
        assert_eq!(
            hdr.value.file.as_deref(),
            Some("/etc/erlmcp/secrets/weather/apikey")
        );
        assert_eq!(
            referenced_secrets(&c.spec.mcp)
                .into_iter()
                .collect::<Vec<_>>(),
            vec!["api-token", "weather"]
        );
        // The config file round-trips through the data plane's own type.
        let cm = config_map(&c, &names);
        let text = cm.object["data"][CONFIG_KEY].as_str().unwrap();
        let back: DataplaneConfig = serde_yaml::from_str(text).unwrap();
        assert_eq!(
            back.cluster.cookie_file.as_deref(),
            Some("/etc/erlmcp/cookie/cookie")
        );
        assert_eq!(
            back.cluster.discovery,
            Discovery::Kubernetes {
                service: "t-headless".into(),
                namespace: None
            }
        );
    }

    #[test]
    fn checksum_follows_config_and_secret_contents() {
        let c = fixtures::minimal();
        let names = Names::of(&c);
        let cm = config_map(&c, &names);
        let mut ctx = BuildContext::default();
        let a = checksum(&cm, &c, &names, &ctx);
        assert_eq!(a, checksum(&cm, &c, &names, &ctx), "deterministic");
        ctx.secret_data.insert(
            "mcp-cookie".into(),
            BTreeMap::from([("cookie".to_string(), b"s3cret".to_vec())]),
        );
        let b = checksum(&cm, &c, &names, &ctx);
        assert_ne!(a, b, "secret content changes the checksum");
        // previous cookie for rotation is mounted from the same Secret
        let cfg = dataplane_config(&c, &names);
        assert_eq!(
            cfg.cluster.previous_cookie_file.as_deref(),
            Some("/etc/erlmcp/cookie/cookie-previous")
        );
        let mut c2 = c.clone();
        c2.spec.logging.level = "debug".into();
        let cm2 = config_map(&c2, &names);
        assert_ne!(
            b,
            checksum(&cm2, &c2, &names, &ctx),
            "config changes the checksum"
        );
    }

    #[test]
    fn renewed_tls_material_leaves_the_checksum_alone() {
        for tls in [
            "tls: {operatorCa: {}}",
            "tls: {issuerRef: {name: ca}}",
            "tls: {secretName: mine}",
        ] {
            let c = fixtures::cluster(&format!("metadata: {{name: mcp}}\nspec:\n  {tls}\n"));
            let names = Names::of(&c);
            let cm = config_map(&c, &names);
            let secret = tls_secret_name(&c, &names).unwrap();
            assert!(
                mounted_secrets(&c, &names).contains(&secret),
                "{tls}: mounted"
            );
            let mut ctx = BuildContext::default();
            let cert = |pem: &[u8]| BTreeMap::from([("tls.crt".to_string(), pem.to_vec())]);
            ctx.secret_data.insert(secret.clone(), cert(b"first"));
            let before = checksum(&cm, &c, &names, &ctx);
            ctx.secret_data.insert(secret, cert(b"renewed"));
            assert_eq!(before, checksum(&cm, &c, &names, &ctx), "{tls}: no roll");
            // The cookie still rolls the pods.
            ctx.secret_data.insert(
                cookie_secret_name(&c, &names),
                BTreeMap::from([("cookie".to_string(), b"new".to_vec())]),
            );
            assert_ne!(
                before,
                checksum(&cm, &c, &names, &ctx),
                "{tls}: cookie rolls"
            );
        }
    }
}
