//! OAuth 2.0 Protected Resource Metadata (RFC 9728), served when JWT auth is on so that MCP
//! clients following the authorization spec find the authorization server from a 401: the
//! `WWW-Authenticate` challenge names the metadata URL, the metadata names the issuer.

use axum::http::HeaderMap;
use serde_json::{json, Value};

/// The well-known prefix (RFC 9728 §3). The metadata of the `/mcp` resource lives at the
/// prefix followed by the resource's path; the bare prefix is served too, for clients that
/// look there first.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// The metadata document of `resource`, protected by tokens from `issuer`.
pub fn document(resource: &str, issuer: &str) -> Value {
    json!({
        "resource": resource,
        "authorization_servers": [issuer],
        "bearer_methods_supported": ["header"],
        "resource_name": "erlmcp",
    })
}

/// `scheme://host` as the client addressed us, from the `Host` header. None when the header
/// is missing or holds anything but host characters (it is echoed into a response header).
pub fn origin(headers: &HeaderMap, scheme: &str) -> Option<String> {
    let host = headers.get(http::header::HOST)?.to_str().ok()?;
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    ok.then(|| format!("{scheme}://{host}"))
}

/// The MCP endpoint's resource identifier.
pub fn resource(origin: &str) -> String {
    format!("{origin}/mcp")
}

/// Where the metadata of the MCP endpoint is served.
pub fn metadata_url(origin: &str) -> String {
    format!("{origin}{WELL_KNOWN}/mcp")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::HOST, v.parse().unwrap());
        h
    }

    #[test]
    fn document_names_the_resource_and_its_issuer() {
        let d = document("https://mcp.example.com/mcp", "https://issuer");
        assert_eq!(d["resource"], "https://mcp.example.com/mcp");
        assert_eq!(d["authorization_servers"], json!(["https://issuer"]));
        assert_eq!(d["bearer_methods_supported"], json!(["header"]));
    }

    #[test]
    fn origin_comes_from_a_clean_host_header() {
        let o = origin(&host("mcp.example.com:8443"), "https").unwrap();
        assert_eq!(o, "https://mcp.example.com:8443");
        assert_eq!(
            metadata_url(&o),
            "https://mcp.example.com:8443/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(resource(&o), "https://mcp.example.com:8443/mcp");
        assert_eq!(
            origin(&host("[::1]:80"), "http").as_deref(),
            Some("http://[::1]:80")
        );
        // Quotes or spaces would break out of the challenge's quoted string.
        for bad in ["evil\"x", "a b", "a/b", ""] {
            assert_eq!(origin(&host(bad), "http"), None, "{bad:?}");
        }
        assert_eq!(origin(&HeaderMap::new(), "http"), None);
    }
}
