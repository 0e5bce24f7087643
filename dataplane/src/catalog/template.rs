//! RFC 6570 level-1 URI templates (`docs://{name}/raw`): matching a URI and filling text.

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Var(String),
}

#[derive(Debug, Clone)]
pub struct UriTemplate {
    parts: Vec<Part>,
}

impl UriTemplate {
    pub fn parse(t: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = t;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Lit(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("unclosed '{{' in {t:?}"))?
                + open;
            let name = &rest[open + 1..close];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "unsupported expression {{{name}}} in {t:?} (only simple {{name}} variables)"
                ));
            }
            if matches!(parts.last(), Some(Part::Var(_))) {
                return Err(format!("two variables without a separator in {t:?}"));
            }
            parts.push(Part::Var(name.to_string()));
            rest = &rest[close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("stray '}}' in {t:?}"));
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_string()));
        }
        Ok(Self { parts })
    }

    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            Part::Lit(_) => None,
        })
    }

    /// Variable values if `uri` matches. A value is non-empty, holds no `/` (nor an encoded
    /// one) and is valid percent-encoded UTF-8; anything else (`%zz`, `%C3` alone) is no match, never a panic.
    pub fn matches(&self, uri: &str) -> Option<Vec<(String, String)>> {
        let mut vars = Vec::new();
        let mut rest = uri;
        for (i, part) in self.parts.iter().enumerate() {
            match part {
                Part::Lit(l) => rest = rest.strip_prefix(l.as_str())?,
                Part::Var(name) => {
                    // `find` returns a char boundary, so the split below cannot panic.
                    let end = match self.parts.get(i + 1) {
                        Some(Part::Lit(next)) => rest.find(next.as_str())?,
                        _ => rest.len(),
                    };
                    let (val, tail) = rest.split_at(end);
                    if val.is_empty() || val.contains('/') {
                        return None;
                    }
                    // A value is one segment also once decoded: `..%2F..%2Fetc` is no match,
                    // or it would reach a backend as `../../etc` (found by the uri_template fuzzer).
                    let decoded = percent_decode(val)?;
                    if decoded.contains('/') {
                        return None;
                    }
                    vars.push((name.clone(), decoded));
                    rest = tail;
                }
            }
        }
        rest.is_empty().then_some(vars)
    }

    /// The URI for these variable values (RFC 6570 simple expansion: every byte outside the
    /// unreserved set is percent-encoded). A variable without a value expands to nothing.
    pub fn expand(&self, vars: &[(String, String)]) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(l) => out.push_str(l),
                Part::Var(name) => {
                    if let Some((_, v)) = vars.iter().find(|(k, _)| k == name) {
                        out.push_str(&percent_encode(v));
                    }
                }
            }
        }
        out
    }
}

/// Replace each `{name}` with its value (other braces, e.g. JSON, are left alone).
pub fn fill(text: &str, vars: &[(String, String)]) -> String {
    let mut out = text.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// RFC 3986 unreserved characters, the only ones simple expansion leaves as they are.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Percent-encode every byte of `s` outside the unreserved set.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if is_unreserved(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Decode `%XX` escapes, working on bytes so no input can split a character. `None` when a
/// `%` is not followed by two hex digits or the decoded bytes are not UTF-8: such a URI
/// names nothing, and guessing (lossy decoding) would let two URIs name one resource.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = hex_value(*b.get(i + 1)?)?;
            let lo = hex_value(*b.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_and_fills() {
        let t = UriTemplate::parse("test://template/{id}/data").unwrap();
        assert_eq!(
            t.matches("test://template/123/data"),
            Some(vec![("id".into(), "123".into())])
        );
        assert_eq!(t.matches("test://template/1/2/data"), None);
        assert_eq!(t.matches("test://template//data"), None);
        // An encoded slash is no way around the one-segment rule (path traversal).
        assert_eq!(t.matches("test://template/..%2F..%2Fetc/data"), None);
        assert_eq!(t.matches("test://template/a%2fb/data"), None);
        assert_eq!(t.matches("test://other/1/data"), None);
        let vars = t.matches("test://template/a%20b/data").unwrap();
        assert_eq!(vars[0].1, "a b");
        assert_eq!(fill(r#"{"id":"{id}"}"#, &vars), r#"{"id":"a b"}"#);
        let tail = UriTemplate::parse("docs://{name}").unwrap();
        assert_eq!(tail.matches("docs://readme").unwrap()[0].1, "readme");
    }

    #[test]
    fn broken_escapes_are_no_match_not_a_panic() {
        let t = UriTemplate::parse("docs://c/{name}").unwrap();
        // `%a` followed by a multi-byte character used to slice inside `é` and panic.
        for uri in [
            "docs://c/%aé",
            "docs://c/%é",
            "docs://c/%",
            "docs://c/a%2",
            "docs://c/%zz",
        ] {
            assert_eq!(t.matches(uri), None, "{uri}");
        }
        // A well-formed escape of bytes that are not UTF-8 names nothing either.
        assert_eq!(t.matches("docs://c/%C3"), None);
        assert_eq!(t.matches("docs://c/%C3%A9").unwrap()[0].1, "é");
    }

    #[test]
    fn rejects_unsupported_templates() {
        assert!(UriTemplate::parse("a://{+x}").is_err());
        assert!(UriTemplate::parse("a://{x").is_err());
        assert!(UriTemplate::parse("a://{x}{y}").is_err());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Any string, including control characters and astral-plane characters.
    fn any_text(max: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(any::<char>(), 0..max).prop_map(String::from_iter)
    }

    /// Strings dense in the characters that trip parsers: escapes, hex digits, multi-byte
    /// characters, braces and separators.
    fn tricky_text() -> impl Strategy<Value = String> {
        let alphabet = vec![
            '%', 'a', 'F', '0', '9', 'é', '€', '😀', '/', '{', '}', ':', 'x',
        ];
        proptest::collection::vec(proptest::sample::select(alphabet), 0..24)
            .prop_map(String::from_iter)
    }

    /// A template whose literals after a variable start with a reserved character, so an
    /// encoded value (unreserved characters and `%XX` only) can never contain the next
    /// literal: the one shape in which matching an expansion is unambiguous.
    fn template_and_values() -> impl Strategy<Value = (String, Vec<(String, String)>)> {
        let sep = "[/:?#@!$&'()*+,;=][a-z/.:]{0,5}";
        (
            "[a-z]{1,6}://[a-z/]{0,6}",
            proptest::collection::vec((sep, any_text(12)), 1..4),
            any::<bool>(),
        )
            .prop_map(|(prefix, segs, trailing_var)| {
                let mut t = prefix;
                let mut vars = Vec::new();
                let n = segs.len();
                for (i, (sep, value)) in segs.into_iter().enumerate() {
                    let name = format!("v{i}");
                    t.push_str(&format!("{{{name}}}"));
                    // Non-empty, one-segment values: an empty value or one with `/` (encoded
                    // or not) never matches.
                    vars.push((name, format!("x{}", value.replace('/', "_"))));
                    if i + 1 < n || !trailing_var {
                        t.push_str(&sep);
                    }
                }
                (t, vars)
            })
    }

    proptest! {
        #[test]
        fn percent_decode_inverts_encode(s in any_text(64)) {
            let enc = percent_encode(&s);
            prop_assert!(enc.bytes().all(|b| is_unreserved(b) || b == b'%' || b.is_ascii_hexdigit()));
            prop_assert_eq!(percent_decode(&enc), Some(s));
        }

        #[test]
        fn expand_then_match_gives_the_values_back((t, vars) in template_and_values()) {
            let template = UriTemplate::parse(&t).unwrap();
            let uri = template.expand(&vars);
            prop_assert_eq!(template.matches(&uri), Some(vars), "template {} uri {}", t, uri);
        }

        #[test]
        fn arbitrary_input_never_panics(t in tricky_text(), uri in tricky_text(), raw in any_text(32)) {
            let _ = percent_decode(&uri);
            let _ = percent_decode(&raw);
            if let Ok(template) = UriTemplate::parse(&t) {
                let _ = template.matches(&uri);
                let _ = template.matches(&raw);
            }
            let fixed = UriTemplate::parse("docs://c/{name}/x").unwrap();
            let _ = fixed.matches(&format!("docs://c/{uri}/x"));
            let _ = fixed.matches(&format!("docs://c/{raw}/x"));
        }

        #[test]
        fn a_match_is_always_valid_utf8_without_slash(uri in tricky_text()) {
            let fixed = UriTemplate::parse("docs://{name}").unwrap();
            if let Some(vars) = fixed.matches(&format!("docs://{uri}")) {
                prop_assert!(!uri.contains('/'));
                prop_assert!(!vars[0].1.contains('/'), "decoded value {:?}", vars[0].1);
                prop_assert_eq!(percent_decode(&uri), Some(vars[0].1.clone()));
            }
        }
    }
}
