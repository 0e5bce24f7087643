//! Multi round-trip requests (2026-07-28): `requestState` is HMAC-signed so any node holding
//! the same key (derived from the cluster cookie) can verify a retry, and tampering, expiry,
//! another principal or another request are all rejected.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::jsonrpc::RpcError;

type HmacSha256 = Hmac<Sha256>;

/// How long a requestState stays valid.
pub const STATE_TTL_SECS: u64 = 600;

/// Signs with the primary key; during a cookie rotation also verifies with the previous one.
pub struct StateKey(Vec<u8>, Option<Vec<u8>>);

fn derive(cookie: &str) -> Vec<u8> {
    use sha2::Digest;
    let mut h = Sha256::new();
    h.update(b"erlmcp-request-state:");
    h.update(cookie.as_bytes());
    h.finalize().to_vec()
}

impl StateKey {
    /// From the cluster cookie when there is one (every node agrees), else random per process.
    pub fn new(cookie: Option<&str>) -> Self {
        match cookie {
            Some(c) => Self(derive(c), None),
            None => Self(rand::random::<[u8; 32]>().to_vec(), None),
        }
    }

    /// Also accept state signed with the cookie being rotated out.
    pub fn with_previous(mut self, previous: Option<&str>) -> Self {
        self.1 = previous.map(derive);
        self
    }

    fn mac(&self, data: &[u8]) -> Vec<u8> {
        let mut m = HmacSha256::new_from_slice(&self.0).expect("hmac key");
        m.update(data);
        m.finalize().into_bytes().to_vec()
    }

    /// Sign `data` for the request `bind` (method + name) and `principal`.
    pub fn sign(&self, bind: &str, principal: Option<&str>, data: Value) -> String {
        let exp = now() + STATE_TTL_SECS;
        let payload = json!({"b": bind, "p": principal, "e": exp, "d": data});
        let body = B64.encode(serde_json::to_vec(&payload).unwrap_or_default());
        let sig = B64.encode(self.mac(body.as_bytes()));
        format!("{body}.{sig}")
    }

    /// Verify and return the data, or an invalid-params error.
    pub fn verify(
        &self,
        state: &str,
        bind: &str,
        principal: Option<&str>,
    ) -> Result<Value, RpcError> {
        let bad = |why: &str| RpcError::invalid_params(format!("Invalid requestState: {why}"));
        let (body, sig) = state.split_once('.').ok_or_else(|| bad("malformed"))?;
        let sig = B64.decode(sig).map_err(|_| bad("malformed signature"))?;
        let signed_by = |key: &[u8]| {
            let mut m = HmacSha256::new_from_slice(key).expect("hmac key");
            m.update(body.as_bytes());
            m.verify_slice(&sig).is_ok()
        };
        if !(signed_by(&self.0) || self.1.as_deref().is_some_and(signed_by)) {
            return Err(bad("integrity check failed"));
        }
        let payload: Value =
            serde_json::from_slice(&B64.decode(body).map_err(|_| bad("malformed body"))?)
                .map_err(|_| bad("malformed body"))?;
        if payload["b"].as_str() != Some(bind) {
            return Err(bad("issued for another request"));
        }
        if payload["p"].as_str() != principal {
            return Err(bad("issued to another principal"));
        }
        if payload["e"].as_u64().unwrap_or(0) < now() {
            return Err(bad("expired"));
        }
        Ok(payload["d"].clone())
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `params.inputResponses`: absent is fine; present must be an object of objects.
pub fn input_responses(
    params: &Value,
) -> Result<Option<&serde_json::Map<String, Value>>, RpcError> {
    match params.get("inputResponses") {
        None => Ok(None),
        Some(Value::Object(m)) => {
            if let Some((k, _)) = m.iter().find(|(_, v)| !v.is_object()) {
                return Err(RpcError::invalid_params(format!(
                    "inputResponses.{k} must be an object"
                )));
            }
            Ok(Some(m))
        }
        Some(_) => Err(RpcError::invalid_params("inputResponses must be an object")),
    }
}

/// `params.requestState`: absent, or a string.
pub fn request_state(params: &Value) -> Result<Option<&str>, RpcError> {
    match params.get("requestState") {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(RpcError::invalid_params("requestState must be a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_tampering() {
        let k = StateKey::new(Some("cookie"));
        let s = k.sign("tools/call:x", Some("alice"), json!({"step": 2}));
        assert_eq!(
            k.verify(&s, "tools/call:x", Some("alice")).unwrap()["step"],
            2
        );
        assert!(k
            .verify(&format!("{s}-TAMPERED"), "tools/call:x", Some("alice"))
            .is_err());
        assert!(k.verify(&s, "tools/call:y", Some("alice")).is_err());
        assert!(k.verify(&s, "tools/call:x", Some("bob")).is_err());
        assert!(k.verify("nodot", "tools/call:x", None).is_err());
        // Same cookie on another node verifies; another cookie does not.
        assert!(StateKey::new(Some("cookie"))
            .verify(&s, "tools/call:x", Some("alice"))
            .is_ok());
        assert!(StateKey::new(Some("other"))
            .verify(&s, "tools/call:x", Some("alice"))
            .is_err());
        // Mid-rotation, a node with the new cookie still verifies state from an old node.
        let rotated = StateKey::new(Some("other")).with_previous(Some("cookie"));
        assert!(rotated.verify(&s, "tools/call:x", Some("alice")).is_ok());
        let fresh = rotated.sign("tools/call:x", None, json!(1));
        assert!(StateKey::new(Some("other"))
            .verify(&fresh, "tools/call:x", None)
            .is_ok());
    }

    #[test]
    fn validates_input_responses_shape() {
        assert!(input_responses(&json!({})).unwrap().is_none());
        assert!(
            input_responses(&json!({"inputResponses": {"a": {"action": "accept"}}}))
                .unwrap()
                .is_some()
        );
        assert!(input_responses(&json!({"inputResponses": null})).is_err());
        assert!(input_responses(&json!({"inputResponses": {"a": 12345}})).is_err());
        assert!(request_state(&json!({"requestState": 5})).is_err());
    }
}
