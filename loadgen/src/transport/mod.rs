//! Where the clients connect: Streamable HTTP (`http://host:port/mcp`), WebSocket
//! (`ws://host:port/ws`) and newline-delimited JSON-RPC over TCP (`tcp://host:port`). The
//! scheme of each `--url` picks its transport.

pub mod http;
pub mod stream;

use anyhow::{bail, Context, Result};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Http,
    Websocket,
    Tcp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub kind: Kind,
    /// The URL as given (http and ws), or `host:port` (tcp).
    pub target: String,
}

pub fn parse(url: &str) -> Result<Endpoint> {
    let (scheme, rest) = url
        .split_once("://")
        .with_context(|| format!("{url:?} has no scheme (http://, ws://, tcp://)"))?;
    let kind = match scheme {
        "http" => Kind::Http,
        "ws" => Kind::Websocket,
        "tcp" => Kind::Tcp,
        "https" | "wss" => bail!("{url:?}: TLS endpoints are not supported yet"),
        s => bail!("{url:?}: unknown scheme {s:?} (http, ws or tcp)"),
    };
    if rest.is_empty() || rest.starts_with('/') {
        bail!("{url:?} has no host");
    }
    let target = match kind {
        Kind::Tcp => rest.trim_end_matches('/').to_string(),
        _ => url.to_string(),
    };
    if kind == Kind::Http {
        url.parse::<::http::Uri>()
            .with_context(|| format!("{url:?} is not a valid URL"))?;
    }
    Ok(Endpoint { kind, target })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_picks_the_transport() {
        assert_eq!(parse("http://127.0.0.1:8080/mcp").unwrap().kind, Kind::Http);
        assert_eq!(
            parse("ws://127.0.0.1:8080/ws").unwrap().kind,
            Kind::Websocket
        );
        let t = parse("tcp://127.0.0.1:5555").unwrap();
        assert_eq!((t.kind, t.target.as_str()), (Kind::Tcp, "127.0.0.1:5555"));
        assert!(parse("127.0.0.1:8080").is_err());
        assert!(parse("https://x/mcp").is_err());
        assert!(parse("gopher://x").is_err());
        assert!(parse("tcp://").is_err());
    }
}
