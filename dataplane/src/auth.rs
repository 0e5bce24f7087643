//! Client authentication on the MCP endpoints: none, a static bearer token, or a JWT checked
//! against issuer, audience and a JWKS document.

use erlmcp_crds::{AuthMode, AuthSpec};
use jsonwebtoken::{decode, decode_header, jwk::JwkSet, DecodingKey, Validation};
use serde_json::Value;

use crate::catalog::read_value_source;

pub enum Auth {
    None,
    Bearer(Vec<u8>),
    Jwt {
        issuer: String,
        audience: String,
        keys: JwkSet,
    },
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
                if keys.keys.is_empty() {
                    return Err(("mcp.auth.jwt.jwks".into(), "has no keys".into()));
                }
                Ok(Auth::Jwt {
                    issuer: j.issuer.clone(),
                    audience: j.audience.clone(),
                    keys,
                })
            }
        }
    }

    pub fn enabled(&self) -> bool {
        !matches!(self, Auth::None)
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
            Auth::Jwt {
                issuer,
                audience,
                keys,
            } => {
                let header = decode_header(token)
                    .map_err(|e| AuthError::Invalid(format!("malformed token: {e}")))?;
                let jwk = match &header.kid {
                    Some(kid) => keys.find(kid),
                    None => keys.keys.first(),
                }
                .ok_or_else(|| AuthError::Invalid("unknown signing key".into()))?;
                let key = DecodingKey::from_jwk(jwk)
                    .map_err(|e| AuthError::Invalid(format!("bad key: {e}")))?;
                let mut v = Validation::new(header.alg);
                v.set_issuer(&[issuer]);
                v.set_audience(&[audience]);
                let data = decode::<Value>(token, &key, &v)
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
        let spec = AuthSpec {
            mode: AuthMode::Jwt,
            bearer_token: None,
            jwt: Some(JwtSpec {
                issuer: "https://issuer".into(),
                audience: "erlmcp".into(),
                jwks: ValueSource {
                    value: Some(jwks),
                    ..Default::default()
                },
            }),
        };
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
}
