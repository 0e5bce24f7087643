//! Protocol revisions and how a request picks its era.
//!
//! Modern (2026-07-28): every request carries its version, client info and capabilities in
//! `params._meta`; no handshake, no session. Legacy (2025-11-25 back to 2024-11-05): an
//! `initialize` handshake negotiates the version and HTTP keeps an `Mcp-Session-Id` session.

/// The one modern revision this server implements.
pub const MODERN: &str = "2026-07-28";
/// Legacy revisions, newest first.
pub const LEGACY: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// Every revision, newest first (what `server/discover` and -32022 errors list).
pub const ALL: &[&str] = &[
    MODERN,
    "2025-11-25",
    "2025-06-18",
    "2025-03-26",
    "2024-11-05",
];
/// What a legacy HTTP request without `MCP-Protocol-Version` is taken to speak.
pub const LEGACY_DEFAULT_HTTP: &str = "2025-03-26";

pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
pub const META_CLIENT_CAPS: &str = "io.modelcontextprotocol/clientCapabilities";
pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
pub const META_SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// A legacy revision, ordered so features can be gated with comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Legacy {
    V20241105,
    V20250326,
    V20250618,
    V20251125,
}

impl Legacy {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "2024-11-05" => Self::V20241105,
            "2025-03-26" => Self::V20250326,
            "2025-06-18" => Self::V20250618,
            "2025-11-25" => Self::V20251125,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V20241105 => "2024-11-05",
            Self::V20250326 => "2025-03-26",
            Self::V20250618 => "2025-06-18",
            Self::V20251125 => "2025-11-25",
        }
    }
    pub const LATEST: Legacy = Legacy::V20251125;

    /// `initialize` negotiation: the client's version when we speak it, else our latest.
    pub fn negotiate(requested: Option<&str>) -> Legacy {
        requested.and_then(Legacy::parse).unwrap_or(Legacy::LATEST)
    }
    /// Audio content and tool annotations arrived in 2025-03-26.
    pub fn has_audio(self) -> bool {
        self >= Self::V20250326
    }
    /// Structured tool output, titles, elicitation arrived in 2025-06-18.
    pub fn has_structured_output(self) -> bool {
        self >= Self::V20250618
    }
    pub fn has_elicitation(self) -> bool {
        self >= Self::V20250618
    }
    /// JSON-RPC batches existed only in 2025-03-26.
    pub fn allows_batch(self) -> bool {
        self == Self::V20250326
    }
}

/// Which era an HTTP request belongs to, decided before any session lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    Modern,
    Legacy,
}

/// Classify a request without a session id. A body that carries modern `_meta` (its own
/// protocol version) is modern whatever the header says: the modern path answers a header
/// that disagrees with 400 `HeaderMismatch`, rather than the legacy path treating it as a
/// session request. Otherwise the `MCP-Protocol-Version` header decides (a legacy value means
/// legacy; any other value, known or not, is the modern per-request world and is validated
/// there); with neither, legacy.
pub fn classify(header_version: Option<&str>, body_has_modern_meta: bool) -> Era {
    match header_version {
        _ if body_has_modern_meta => Era::Modern,
        Some(v) if Legacy::parse(v.trim()).is_some() => Era::Legacy,
        Some(_) => Era::Modern,
        None => Era::Legacy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_known_or_latest() {
        assert_eq!(Legacy::negotiate(Some("2025-06-18")), Legacy::V20250618);
        assert_eq!(Legacy::negotiate(Some("2024-11-05")), Legacy::V20241105);
        assert_eq!(Legacy::negotiate(Some("1999-01-01")), Legacy::V20251125);
        assert_eq!(Legacy::negotiate(None), Legacy::V20251125);
    }

    #[test]
    fn classifies_eras() {
        assert_eq!(classify(Some("2025-11-25"), false), Era::Legacy);
        assert_eq!(classify(Some("2026-07-28"), false), Era::Modern);
        assert_eq!(classify(Some("v999.0.0"), false), Era::Modern);
        assert_eq!(classify(None, true), Era::Modern);
        assert_eq!(classify(None, false), Era::Legacy);
        // A modern body under a legacy header is modern (and a header mismatch there).
        assert_eq!(classify(Some("2025-06-18"), true), Era::Modern);
    }

    #[test]
    fn feature_gates() {
        assert!(!Legacy::V20241105.has_audio());
        assert!(Legacy::V20250326.allows_batch());
        assert!(!Legacy::V20251125.allows_batch());
        assert!(Legacy::V20250618.has_structured_output());
    }
}
