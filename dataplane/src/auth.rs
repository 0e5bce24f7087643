//! Client authentication on the MCP endpoints: none, a static bearer token, or a JWT checked
//! against issuer, audience and a JWKS document.

use erlmcp_crds::{AuthMode, AuthSpec};
use http::HeaderMap;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::catalog::read_value_source;
use crate::resource_metadata;

pub enum Auth {
    None,
    Bearer(Vec<u8>),
    Jwt {
        keys: Vec<JwtKey>,
        /// The authorization server named in the protected-resource metadata.
        issuer: String,
        /// `https` when the client port has TLS: the scheme of the metadata's URLs.
        scheme: &'static str,
    },
}

/// A signing key from the JWKS, with the one algorithm it may verify and the claim checks
/// (built once here, not per request).
pub struct JwtKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
    validation: Validation,
}

#[derive(Debug, PartialEq, Eq)]
pub enum AuthError {
    Missing,
    Invalid(String),
}

impl Auth {
    pub fn from_spec(spec: &AuthSpec) -> Result<Self, (String, String)> {
        match spec.mode {
            AuthMode::None => Ok(Auth::None),
            AuthMode::Bearer => {
                let src = spec.bearer_token.as_ref().ok_or_else(|| {
                    (
                        "mcp.auth.bearerToken".to_string(),
                        "is required for mode bearer".to_string(),
                    )
                })?;
                let t =
                    read_value_source(src).map_err(|e| ("mcp.auth.bearerToken".to_string(), e))?;
                if t.trim().is_empty() {
                    return Err(("mcp.auth.bearerToken".into(), "is empty".into()));
                }
                Ok(Auth::Bearer(t.trim().as_bytes().to_vec()))
            }
            AuthMode::Jwt => {
                let j = spec.jwt.as_ref().ok_or_else(|| {
                    (
                        "mcp.auth.jwt".to_string(),
                        "is required for mode jwt".to_string(),
                    )
                })?;
                let doc =
                    read_value_source(&j.jwks).map_err(|e| ("mcp.auth.jwt.jwks".to_string(), e))?;
                let keys: JwkSet = serde_json::from_str(&doc).map_err(|e| {
                    (
                        "mcp.auth.jwt.jwks".to_string(),
                        format!("not a JWKS document: {e}"),
                    )
                })?;
                let mut usable = Vec::new();
                for jwk in &keys.keys {
                    // Keys we cannot verify with (encryption keys, P-521) are left out.
                    if let Some(k) = signing_key(jwk, &j.issuer, &j.audience) {
                        usable.push(k);
                    }
                }
                if usable.is_empty() {
                    return Err((
                        "mcp.auth.jwt.jwks".into(),
                        "has no usable signing key".into(),
                    ));
                }
                Ok(Auth::Jwt {
                    keys: usable,
                    issuer: j.issuer.clone(),
                    scheme: "http",
                })
            }
        }
    }

    pub fn enabled(&self) -> bool {
        !matches!(self, Auth::None)
    }

    /// Record that clients reach us over TLS (the metadata then says `https`).
    pub fn served_over_tls(mut self, tls: bool) -> Self {
        if let Auth::Jwt { scheme, .. } = &mut self {
            *scheme = if tls { "https" } else { "http" };
        }
        self
    }

    /// RFC 9728 metadata for the MCP endpoint as this request addressed it, with JWT auth on.
    pub fn resource_metadata(&self, headers: &HeaderMap) -> Option<Value> {
        let Auth::Jwt { issuer, scheme, .. } = self else {
            return None;
        };
        let origin = resource_metadata::origin(headers, scheme)?;
        Some(resource_metadata::document(
            &resource_metadata::resource(&origin),
            issuer,
        ))
    }

    /// The `resource_metadata` URL a 401 challenge carries, with JWT auth on.
    pub fn resource_metadata_url(&self, headers: &HeaderMap) -> Option<String> {
        let Auth::Jwt { scheme, .. } = self else {
            return None;
        };
        resource_metadata::origin(headers, scheme).map(|o| resource_metadata::metadata_url(&o))
    }

    /// Check an `Authorization` header value; Ok carries the principal (JWT `sub`, or
    /// `bearer` for the static token).
    pub fn check(&self, authorization: Option<&str>) -> Result<Option<String>, AuthError> {
        if let Auth::None = self {
            return Ok(None);
        }
        let token = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        match self {
            Auth::None => Ok(None),
            Auth::Bearer(expected) => {
                if constant_time_eq(token.as_bytes(), expected) {
                    Ok(Some("bearer".into()))
                } else {
                    Err(AuthError::Invalid("invalid token".into()))
                }
            }
            Auth::Jwt { keys, .. } => {
                let header = decode_header(token)
                    .map_err(|e| AuthError::Invalid(format!("malformed token: {e}")))?;
                let key = match &header.kid {
                    Some(kid) => keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
                    None => keys.first(),
                }
                .ok_or_else(|| AuthError::Invalid("unknown signing key".into()))?;
                // The key decides the algorithm, never the token: no HS/RS confusion, no
                // downgrade to another hash than the key was published for.
                if header.alg != key.alg {
                    return Err(AuthError::Invalid(format!(
                        "algorithm {:?} does not match the key's {:?}",
                        header.alg, key.alg
                    )));
                }
                let data = decode::<Value>(token, &key.key, &key.validation)
                    .map_err(|e| AuthError::Invalid(format!("invalid token: {e}")))?;
                Ok(Some(
                    data.claims
                        .get("sub")
                        .and_then(Value::as_str)
                        .unwrap_or("jwt")
                        .to_string(),
                ))
            }
        }
    }
}

/// `exp` always, `iss` and `aud` whenever configured (jsonwebtoken otherwise checks them only
/// when the token carries them), and `nbf` when present; the default minute of clock skew.
fn validation(alg: Algorithm, issuer: &str, audience: &str) -> Validation {
    let mut v = Validation::new(alg);
    let mut required = vec!["exp"];
    if !issuer.is_empty() {
        v.set_issuer(&[issuer]);
        required.push("iss");
    }
    if !audience.is_empty() {
        v.set_audience(&[audience]);
        required.push("aud");
    } else {
        v.validate_aud = false;
    }
    v.set_required_spec_claims(&required);
    v.validate_exp = true;
    v.validate_nbf = true;
    v
}

/// The key and its algorithm: the JWK's `alg` when given, else the one its type implies
/// (RS256 for RSA as OIDC defaults, the curve's ECDSA, EdDSA, HS256 for a shared secret).
fn signing_key(jwk: &Jwk, issuer: &str, audience: &str) -> Option<JwtKey> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let implied = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
        AlgorithmParameters::OctetKey(_) => Algorithm::HS256,
    };
    let alg = match jwk.common.key_algorithm {
        None => implied,
        Some(a) => signing_algorithm(a)?,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    // A JWK whose `alg` contradicts its type (an RSA key labelled HS256) is unusable.
    (family(implied) == family(alg)).then(|| JwtKey {
        kid: jwk.common.key_id.clone(),
        alg,
        key,
        validation: validation(alg, issuer, audience),
    })
}

/// Which kind of key an algorithm needs (jsonwebtoken keeps its own notion private).
fn family(a: Algorithm) -> &'static str {
    match a {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => "hmac",
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => "rsa",
        Algorithm::ES256 | Algorithm::ES384 => "ec",
        Algorithm::EdDSA => "ed",
    }
}

fn signing_algorithm(a: KeyAlgorithm) -> Option<Algorithm> {
    Some(match a {
        KeyAlgorithm::HS256 => Algorithm::HS256,
        KeyAlgorithm::HS384 => Algorithm::HS384,
        KeyAlgorithm::HS512 => Algorithm::HS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        // Encryption algorithms never sign.
        KeyAlgorithm::RSA1_5 | KeyAlgorithm::RSA_OAEP | KeyAlgorithm::RSA_OAEP_256 => return None,
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use erlmcp_crds::{JwtSpec, ValueSource};

    #[test]
    fn bearer_token() {
        let spec = AuthSpec {
            mode: AuthMode::Bearer,
            bearer_token: Some(ValueSource {
                value: Some("s3cret".into()),
                ..Default::default()
            }),
            jwt: None,
        };
        let a = Auth::from_spec(&spec).unwrap();
        assert_eq!(a.check(Some("Bearer s3cret")), Ok(Some("bearer".into())));
        assert_eq!(a.check(None), Err(AuthError::Missing));
        assert!(matches!(
            a.check(Some("Bearer nope")),
            Err(AuthError::Invalid(_))
        ));
        assert_eq!(Auth::None.check(None), Ok(None));
    }

    #[test]
    fn jwt_with_hmac_jwks() {
        use base64::Engine;
        let secret = b"0123456789abcdef0123456789abcdef";
        let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
        let jwks = format!(r#"{{"keys":[{{"kty":"oct","kid":"k1","alg":"HS256","k":"{k}"}}]}}"#);
        let spec = jwt_spec(jwks);
        let a = Auth::from_spec(&spec).unwrap();
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        h.kid = Some("k1".into());
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 600;
        let enc = jsonwebtoken::EncodingKey::from_secret(secret);
        let good = jsonwebtoken::encode(&h, &serde_json::json!({"iss": "https://issuer", "aud": "erlmcp", "sub": "alice", "exp": exp}), &enc).unwrap();
        assert_eq!(
            a.check(Some(&format!("Bearer {good}"))),
            Ok(Some("alice".into()))
        );
        let wrong_aud = jsonwebtoken::encode(&h, &serde_json::json!({"iss": "https://issuer", "aud": "other", "sub": "alice", "exp": exp}), &enc).unwrap();
        assert!(a.check(Some(&format!("Bearer {wrong_aud}"))).is_err());
        assert!(a.check(Some("Bearer not.a.jwt")).is_err());
    }

    const RSA_JWKS: &str = include_str!("../tests/fixtures/jwt/rsa_jwks.json");
    const RSA_PRIVATE: &str = include_str!("../tests/fixtures/jwt/rsa_private.pem");
    const RSA_PUBLIC: &str = include_str!("../tests/fixtures/jwt/rsa_public.pem");

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    /// A JWT auth spec for issuer `https://issuer`, audience `erlmcp`, keys `jwks`.
    fn jwt_spec(jwks: impl Into<String>) -> AuthSpec {
        AuthSpec {
            mode: AuthMode::Jwt,
            bearer_token: None,
            jwt: Some(JwtSpec {
                issuer: "https://issuer".into(),
                audience: "erlmcp".into(),
                jwks: ValueSource {
                    value: Some(jwks.into()),
                    ..Default::default()
                },
            }),
        }
    }

    fn rsa_auth() -> Auth {
        let spec = jwt_spec(RSA_JWKS);
        Auth::from_spec(&spec).unwrap()
    }

    fn sign(
        alg: jsonwebtoken::Algorithm,
        key: &jsonwebtoken::EncodingKey,
        claims: Value,
    ) -> String {
        let mut h = jsonwebtoken::Header::new(alg);
        h.kid = Some("rsa1".into());
        let t = jsonwebtoken::encode(&h, &claims, key).unwrap();
        format!("Bearer {t}")
    }

    fn rs256(claims: Value) -> String {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
        sign(jsonwebtoken::Algorithm::RS256, &key, claims)
    }

    fn good_claims() -> Value {
        serde_json::json!({"iss": "https://issuer", "aud": "erlmcp", "sub": "alice", "exp": now() + 600})
    }

    fn without(claim: &str) -> Value {
        let mut c = good_claims();
        c.as_object_mut().unwrap().remove(claim);
        c
    }

    fn refused(a: &Auth, authorization: &str) -> bool {
        matches!(a.check(Some(authorization)), Err(AuthError::Invalid(_)))
    }

    #[test]
    fn jwt_good_rs256_token_is_accepted() {
        assert_eq!(
            rsa_auth().check(Some(&rs256(good_claims()))),
            Ok(Some("alice".into()))
        );
    }

    #[test]
    fn jwt_without_aud_is_refused() {
        assert!(refused(&rsa_auth(), &rs256(without("aud"))));
    }

    #[test]
    fn jwt_without_iss_is_refused() {
        assert!(refused(&rsa_auth(), &rs256(without("iss"))));
    }

    #[test]
    fn jwt_without_exp_is_refused() {
        assert!(refused(&rsa_auth(), &rs256(without("exp"))));
    }

    #[test]
    fn jwt_expired_is_refused() {
        let mut c = good_claims();
        c["exp"] = (now() - 3600).into();
        assert!(refused(&rsa_auth(), &rs256(c)));
    }

    #[test]
    fn jwt_not_yet_valid_is_refused() {
        let mut c = good_claims();
        c["nbf"] = (now() + 3600).into();
        assert!(refused(&rsa_auth(), &rs256(c)));
        // An `nbf` in the past is fine.
        let mut c = good_claims();
        c["nbf"] = (now() - 10).into();
        assert_eq!(rsa_auth().check(Some(&rs256(c))), Ok(Some("alice".into())));
    }

    #[test]
    fn jwt_alg_none_is_refused() {
        use base64::Engine;
        let b64 = |v: Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
        };
        let header = b64(serde_json::json!({"alg": "none", "typ": "JWT", "kid": "rsa1"}));
        let payload = b64(good_claims());
        for sig in ["", "AAAA"] {
            assert!(refused(
                &rsa_auth(),
                &format!("Bearer {header}.{payload}.{sig}")
            ));
        }
    }

    #[test]
    fn jwt_hs256_signed_with_the_rsa_public_key_is_refused() {
        // The classic confusion: the public key, which anyone can read, used as an HMAC secret.
        let a = rsa_auth();
        for secret in [RSA_PUBLIC.as_bytes(), RSA_PUBLIC.trim().as_bytes()] {
            let key = jsonwebtoken::EncodingKey::from_secret(secret);
            for alg in [
                jsonwebtoken::Algorithm::HS256,
                jsonwebtoken::Algorithm::HS384,
                jsonwebtoken::Algorithm::HS512,
            ] {
                assert!(refused(&a, &sign(alg, &key, good_claims())), "{alg:?}");
            }
        }
    }

    #[test]
    fn jwt_algorithm_is_pinned_to_the_keys_alg() {
        // The JWKS publishes the key for RS256; a token may not pick another hash or padding.
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
        for alg in [
            jsonwebtoken::Algorithm::RS512,
            jsonwebtoken::Algorithm::PS256,
        ] {
            assert!(
                refused(&rsa_auth(), &sign(alg, &key, good_claims())),
                "{alg:?}"
            );
        }
    }

    #[test]
    fn jwks_without_signing_keys_is_refused_at_load() {
        let jwks = RSA_JWKS.replace(r#""use": "sig""#, r#""use": "enc""#);
        let spec = jwt_spec(jwks);
        let err = Auth::from_spec(&spec).err().expect("refused");
        assert_eq!(err.0, "mcp.auth.jwt.jwks");
    }
}
