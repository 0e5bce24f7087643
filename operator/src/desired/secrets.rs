//! The cluster cookie Secret: generated once, never rewritten.

use std::collections::BTreeMap;

use base64::Engine;
use erlmcp_crds::ErlmcpCluster;
use k8s_openapi::api::core::v1::Secret;
use rand::RngCore;

use super::{child_meta, Child, Names};

/// Key of the cookie inside the generated Secret.
pub const COOKIE_KEY: &str = "cookie";
/// What `render` shows where the operator will generate a value.
pub const GENERATED_PLACEHOLDER: &str = "<generated once by the operator>";
/// Annotation on Secrets whose content the operator generated.
pub const GENERATED_ANNOTATION: &str = "erlmcp.io/generated";

/// A random cookie: 48 bytes, base64 (as erlmcp v3's deployment guides' `openssl rand -base64 48`).
pub fn generate_cookie() -> String {
    let mut bytes = [0u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The cookie Secret with a placeholder value; the reconciler fills it right before creating it.
pub fn cookie_secret(cluster: &ErlmcpCluster, names: &Names) -> Child {
    let mut meta = child_meta(cluster, &names.cookie_secret);
    meta.annotations = Some(BTreeMap::from([(
        GENERATED_ANNOTATION.to_string(),
        "true".to_string(),
    )]));
    let secret = Secret {
        metadata: meta,
        type_: Some("Opaque".into()),
        string_data: Some(BTreeMap::from([(
            COOKIE_KEY.to_string(),
            GENERATED_PLACEHOLDER.to_string(),
        )])),
        ..Default::default()
    };
    Child::new("v1", "Secret", &secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_random_and_long() {
        let a = generate_cookie();
        let b = generate_cookie();
        assert_ne!(a, b);
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&a)
                .unwrap()
                .len(),
            48
        );
    }
}
