//! The suites' HTTP/1.1 client: one request per connection (`Connection: close`), the whole
//! response read, chunked bodies decoded. Tests reach pods by pod IP (there is no kube-proxy),
//! so a plain socket is all it takes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long [`get`] waits for the whole response.
pub const GET_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// The request's bytes: `body` goes as JSON with its Content-Length.
pub fn encode(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&serde_json::Value>,
) -> String {
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if body.is_some() {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            payload.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(&payload);
    req
}

/// Parses a whole response (status line, headers, body; chunked bodies decoded).
pub fn parse(text: &str) -> Result<Response> {
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .filter(|l| l.starts_with("HTTP/"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("bad response {head:?}"))?;
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(len.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// One exchange with `addr`, failing after `timeout`.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&serde_json::Value>,
    timeout: Duration,
) -> Result<Response> {
    let req = encode(addr, method, path, headers, body);
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        anyhow::Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    let text = tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| anyhow!("{method} http://{addr}{path}: timeout"))??;
    parse(&text).map_err(|e| anyhow!("{method} http://{addr}{path}: {e}"))
}

/// A GET: status and body.
pub async fn get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let r = request(addr, "GET", path, &[], None, GET_TIMEOUT).await?;
    Ok((r.status, r.body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_json_bodies_with_their_length() {
        let addr: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let body = serde_json::json!({"a": 1});
        let req = encode(addr, "POST", "/mcp", &[("Accept", "x")], Some(&body));
        assert!(req.starts_with("POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:80\r\n"));
        assert!(req.contains("Accept: x\r\n") && req.contains("Content-Length: 7\r\n"));
        assert!(req.ends_with("\r\n\r\n{\"a\":1}"));
        assert!(!encode(addr, "GET", "/", &[], None).contains("Content-Length"));
    }

    #[test]
    fn parses_plain_and_chunked_responses() {
        let r = parse("HTTP/1.1 200 OK\r\nMcp-Session-Id: s1\r\n\r\nhello").unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "hello"));
        assert_eq!(r.headers["mcp-session-id"], "s1");
        let c = parse(
            "HTTP/1.1 404 NF\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((c.status, c.body.as_str()), (404, "abcde"));
        assert!(parse("garbage").is_err());
    }

    #[tokio::test]
    async fn talks_to_a_server() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut b = [0u8; 1024];
            let n = s.read(&mut b).await.unwrap();
            let got = String::from_utf8_lossy(&b[..n]).into_owned();
            let reply = format!("HTTP/1.1 200 OK\r\n\r\n{}", got.lines().next().unwrap());
            s.write_all(reply.as_bytes()).await.unwrap();
        });
        assert_eq!(
            get(addr, "/status").await.unwrap(),
            (200, "GET /status HTTP/1.1".into())
        );
    }
}
