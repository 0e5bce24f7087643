//! Pagination of the list methods: the `cursor` parameter and pages of a catalog list. The
//! cursor is opaque to clients; it is the base64 of an offset.

use base64::Engine;
use serde_json::Value;

use super::jsonrpc::RpcError;

/// The request's `cursor`, if any.
pub fn cursor(params: &Value) -> Result<Option<&str>, RpcError> {
    match params.get("cursor") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(RpcError::invalid_params("cursor must be a string")),
    }
}

/// A page of `items` starting at the opaque `cursor`, and the cursor of the next page.
pub fn page<'a, T>(
    items: &'a [T],
    cursor: Option<&str>,
    size: usize,
) -> Result<(&'a [T], Option<String>), String> {
    let start = match cursor {
        None => 0,
        Some(c) => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(c)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix("o:").and_then(|n| n.parse::<usize>().ok()))
            .filter(|n| *n <= items.len())
            .ok_or_else(|| format!("invalid cursor {c:?}"))?,
    };
    let end = (start + size).min(items.len());
    let next = (end < items.len())
        .then(|| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("o:{end}")));
    Ok((&items[start..end], next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pages_with_opaque_cursors() {
        let items: Vec<u32> = (0..5).collect();
        let (a, next) = page(&items, None, 2).unwrap();
        assert_eq!(a, &[0, 1]);
        let (b, next2) = page(&items, next.as_deref(), 2).unwrap();
        assert_eq!(b, &[2, 3]);
        let (c, last) = page(&items, next2.as_deref(), 2).unwrap();
        assert_eq!((c, last), (&[4][..], None));
        assert!(page(&items, Some("garbage"), 2).is_err());
    }

    #[test]
    fn cursor_is_a_string_or_absent() {
        assert_eq!(cursor(&json!({})).unwrap(), None);
        assert_eq!(cursor(&json!({"cursor": null})).unwrap(), None);
        assert_eq!(cursor(&json!({"cursor": "x"})).unwrap(), Some("x"));
        assert!(cursor(&json!({"cursor": 1})).is_err());
    }
}
