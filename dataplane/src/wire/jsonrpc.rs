//! JSON-RPC 2.0 envelope: parsing once into a small owned struct, error codes, and response
//! serialisation straight to bytes.

use std::borrow::Cow;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::envelope;

pub const PARSE_ERROR: i32 = -32700;
pub const INVALID_REQUEST: i32 = -32600;
pub const METHOD_NOT_FOUND: i32 = -32601;
pub const INVALID_PARAMS: i32 = -32602;
pub const INTERNAL_ERROR: i32 = -32603;
/// Legacy (2025-11-25 and earlier) "resource not found".
pub const RESOURCE_NOT_FOUND_LEGACY: i32 = -32002;
pub const HEADER_MISMATCH: i32 = -32020;
pub const MISSING_CLIENT_CAPABILITY: i32 = -32021;
pub const UNSUPPORTED_PROTOCOL_VERSION: i32 = -32022;

/// A request id: string or integer (MCP forbids null).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Id {
    Num(i64),
    Str(String),
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Id::Num(n) => write!(f, "{n}"),
            Id::Str(s) => write!(f, "{s}"),
        }
    }
}

/// One parsed inbound message. Requests, notifications and responses share the shape.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: Option<Id>,
    pub method: Option<String>,
    pub params: Option<Value>,
    pub result: Option<Value>,
    pub error: Option<Value>,
}

impl Message {
    pub fn is_request(&self) -> bool {
        self.method.is_some() && self.id.is_some()
    }
    pub fn is_notification(&self) -> bool {
        self.method.is_some() && self.id.is_none()
    }
    pub fn is_response(&self) -> bool {
        self.method.is_none() && (self.result.is_some() || self.error.is_some())
    }
    pub fn method(&self) -> &str {
        self.method.as_deref().unwrap_or("")
    }
    /// `params._meta`, when present.
    pub fn meta(&self) -> Option<&serde_json::Map<String, Value>> {
        self.params.as_ref()?.get("_meta")?.as_object()
    }
    pub fn param_str(&self, key: &str) -> Option<&str> {
        self.params.as_ref()?.get(key)?.as_str()
    }
}

/// A JSON-RPC error plus the HTTP status it maps to on Streamable HTTP.
#[derive(Debug, Clone)]
pub struct RpcError {
    pub code: i32,
    pub message: Cow<'static, str>,
    pub data: Option<Value>,
    pub http_status: u16,
}

impl RpcError {
    pub fn new(code: i32, message: impl Into<Cow<'static, str>>) -> Self {
        let http_status = match code {
            PARSE_ERROR | INVALID_REQUEST => 400,
            HEADER_MISMATCH | MISSING_CLIENT_CAPABILITY | UNSUPPORTED_PROTOCOL_VERSION => 400,
            _ => 200,
        };
        Self {
            code,
            message: message.into(),
            data: None,
            http_status,
        }
    }
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
    pub fn with_status(mut self, status: u16) -> Self {
        self.http_status = status;
        self
    }
    pub fn parse(msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(PARSE_ERROR, msg)
    }
    pub fn invalid_request(msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(INVALID_REQUEST, msg)
    }
    pub fn method_not_found(method: &str) -> Self {
        Self::new(METHOD_NOT_FOUND, format!("Method not found: {method}"))
    }
    pub fn invalid_params(msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(INVALID_PARAMS, msg)
    }
    pub fn internal(msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(INTERNAL_ERROR, msg)
    }
    pub fn to_value(&self) -> Value {
        let mut e = serde_json::Map::new();
        e.insert("code".into(), self.code.into());
        e.insert("message".into(), Value::String(self.message.to_string()));
        if let Some(d) = &self.data {
            e.insert("data".into(), d.clone());
        }
        Value::Object(e)
    }
}

/// Most messages one batch may hold: a batch is one body, and what it asks for is bounded by
/// the body size limit only loosely (a 1 MiB body holds thousands of tiny calls).
pub const MAX_BATCH: usize = 64;

/// What a body held: one message or a batch (batches exist only in 2025-03-26).
pub enum Parsed {
    Single(Result<Message, (Option<Id>, RpcError)>),
    Batch(Vec<Result<Message, (Option<Id>, RpcError)>>),
}

/// Parse a body. Invalid JSON is a parse error; a JSON value of the wrong shape is an invalid
/// request carrying whatever id could be read.
///
/// A single message (every request but a 2025-03-26 batch) is read straight into a [`Message`]:
/// the envelope's members are taken as they are met, with no map of them built first. What is
/// accepted or refused, and how, is what [`from_value`] does with the whole parsed value.
pub fn parse(body: &[u8]) -> Result<Parsed, RpcError> {
    let top: envelope::Top =
        serde_json::from_slice(body).map_err(|e| RpcError::parse(format!("Parse error: {e}")))?;
    match top {
        envelope::Top::Single(m) => Ok(Parsed::Single(m)),
        envelope::Top::Batch(items) => {
            if items.is_empty() {
                return Err(RpcError::invalid_request("Invalid Request: empty batch"));
            }
            if items.len() > MAX_BATCH {
                return Err(RpcError::invalid_request(format!(
                    "Invalid Request: a batch holds at most {MAX_BATCH} messages"
                )));
            }
            Ok(Parsed::Batch(items.into_iter().map(from_value).collect()))
        }
    }
}

pub fn from_value(v: Value) -> Result<Message, (Option<Id>, RpcError)> {
    let Value::Object(mut obj) = v else {
        return Err((
            None,
            RpcError::invalid_request("Invalid Request: message must be an object"),
        ));
    };
    // Move the envelope's fields out of the parsed object (no second pass over `params`).
    // `"id": null` is present (and rejected below); any other member that is null counts as
    // absent.
    let env_id = obj.remove("id");
    let mut take = |k: &str| obj.remove(k).filter(|v| !v.is_null());
    let (jsonrpc, method, params, result, error) = (
        take("jsonrpc"),
        take("method"),
        take("params"),
        take("result"),
        take("error"),
    );
    from_members(env_id, jsonrpc, method, params, result, error)
}

/// The checks of a message given its envelope members (`id` as given, the others absent when
/// null), in the order [`from_value`] and [`parse`] both apply them.
pub(super) fn from_members(
    env_id: Option<Value>,
    jsonrpc: Option<Value>,
    method: Option<Value>,
    params: Option<Value>,
    result: Option<Value>,
    error: Option<Value>,
) -> Result<Message, (Option<Id>, RpcError)> {
    let id = match env_id {
        None => None,
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => Some(Id::Num(i)),
            None => {
                return Err((
                    None,
                    RpcError::invalid_request("Invalid Request: id must be a string or integer"),
                ))
            }
        },
        Some(Value::String(s)) => Some(Id::Str(s)),
        Some(_) => {
            return Err((
                None,
                RpcError::invalid_request("Invalid Request: id must be a string or integer"),
            ))
        }
    };
    if jsonrpc.as_ref().and_then(Value::as_str) != Some("2.0") {
        return Err((
            id,
            RpcError::invalid_request("Invalid Request: jsonrpc must be \"2.0\""),
        ));
    }
    let method = match method {
        None => None,
        Some(Value::String(m)) => Some(m),
        Some(_) => {
            return Err((
                id,
                RpcError::invalid_request("Invalid Request: method must be a string"),
            ))
        }
    };
    if let Some(p) = &params {
        if !p.is_object() && !p.is_array() {
            return Err((
                id,
                RpcError::invalid_request("Invalid Request: params must be an object"),
            ));
        }
    }
    if method.is_none() {
        if result.is_none() && error.is_none() {
            return Err((
                id,
                RpcError::invalid_request("Invalid Request: missing method"),
            ));
        }
        if id.is_none() && error.is_none() {
            return Err((
                None,
                RpcError::invalid_request("Invalid Request: response without id"),
            ));
        }
    }
    Ok(Message {
        id,
        method,
        params,
        result,
        error,
    })
}

#[derive(Serialize)]
struct ResultOut<'a> {
    jsonrpc: &'static str,
    id: &'a Id,
    result: &'a Value,
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    jsonrpc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a Id>,
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: i32,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Value>,
}

pub fn result_bytes(id: &Id, result: &Value) -> Bytes {
    Bytes::from(
        serde_json::to_vec(&ResultOut {
            jsonrpc: "2.0",
            id,
            result,
        })
        .unwrap_or_default(),
    )
}

/// `result_bytes` with pre-serialised object members (`"k":v,...`) appended to the result,
/// which must be a JSON object.
pub fn result_bytes_with(id: &Id, result: &Value, members: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(256 + members.len());
    let ok = serde_json::to_writer(
        &mut out,
        &ResultOut {
            jsonrpc: "2.0",
            id,
            result,
        },
    );
    // `result` is the last member: the output ends with its `}` and then the envelope's.
    if ok.is_err() || !result.is_object() || !out.ends_with(b"}}") {
        return Bytes::from(out);
    }
    let at = out.len() - 2;
    let empty = out[at - 1] == b'{';
    out.truncate(at);
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(members);
    out.extend_from_slice(b"}}");
    Bytes::from(out)
}

pub fn error_bytes(id: Option<&Id>, err: &RpcError) -> Bytes {
    let out = ErrorOut {
        jsonrpc: "2.0",
        id,
        error: ErrorBody {
            code: err.code,
            message: &err.message,
            data: err.data.as_ref(),
        },
    };
    Bytes::from(serde_json::to_vec(&out).unwrap_or_default())
}

pub fn response_bytes(id: &Id, r: &Result<Value, RpcError>) -> Bytes {
    match r {
        Ok(v) => result_bytes(id, v),
        Err(e) => error_bytes(Some(id), e),
    }
}

pub fn notification(method: &str, params: Value) -> Value {
    serde_json::json!({"jsonrpc": "2.0", "method": method, "params": params})
}

pub fn request(id: &Id, method: &str, params: Value) -> Value {
    serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(b: &str) -> Result<Message, (Option<Id>, RpcError)> {
        match parse(b.as_bytes()).unwrap() {
            Parsed::Single(m) => m,
            Parsed::Batch(_) => panic!("batch"),
        }
    }

    #[test]
    fn parses_request_and_notification() {
        let m = single(r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#).unwrap();
        assert!(m.is_request());
        assert_eq!(m.id, Some(Id::Num(7)));
        let n = single(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert!(n.is_notification());
    }

    #[test]
    fn rejects_bad_shapes() {
        assert_eq!(parse(b"{nope").err().unwrap().code, PARSE_ERROR);
        assert_eq!(single("42").unwrap_err().1.code, INVALID_REQUEST);
        assert_eq!(
            single(r#"{"jsonrpc":"1.0","id":1,"method":"x"}"#)
                .unwrap_err()
                .1
                .code,
            INVALID_REQUEST
        );
        let (id, e) = single(r#"{"jsonrpc":"2.0","id":"a","method":5}"#).unwrap_err();
        assert_eq!((id, e.code), (Some(Id::Str("a".into())), INVALID_REQUEST));
        assert_eq!(
            single(r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#)
                .unwrap_err()
                .1
                .code,
            INVALID_REQUEST
        );
        assert_eq!(
            single(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#)
                .unwrap_err()
                .1
                .code,
            INVALID_REQUEST
        );
        assert!(matches!(parse(b"[]"), Err(e) if e.code == INVALID_REQUEST));
    }

    #[test]
    fn appends_members_to_results() {
        let id = Id::Num(1);
        let m = br#""resultType":"complete","_meta":{"k":{}}"#;
        for (result, want) in [
            (
                serde_json::json!({}),
                serde_json::json!({"resultType": "complete", "_meta": {"k": {}}}),
            ),
            (
                serde_json::json!({"a": {}, "b": "x{"}),
                serde_json::json!({"a": {}, "b": "x{", "resultType": "complete", "_meta": {"k": {}}}),
            ),
        ] {
            let v: Value = serde_json::from_slice(&result_bytes_with(&id, &result, m)).unwrap();
            assert_eq!(
                v,
                serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": want})
            );
        }
    }

    /// The direct read of a single message decides exactly as [`from_value`] on the parsed value.
    #[test]
    fn direct_read_agrees_with_the_value_path() {
        for b in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"x"},"_meta":{"k":1}}}"#,
            r#"{"jsonrpc":"2.0","id":"a","method":"ping"}"#,
            r#"{"method":"ping","jsonrpc":"2.0"}"#,
            r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"x","method":"y"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x","jsonrpc":"1.0"}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#,
            r#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#,
            r#"{"jsonrpc":"2.0","id":[1],"method":"x"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":null,"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"a":1}}"#,
            r#"{"jsonrpc":"2.0","error":{"code":1,"message":"m"}}"#,
            r#"{"jsonrpc":"2.0","result":{}}"#,
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x","params":"p"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x","extra":{"deep":[[[]]]}}"#,
            r#"{"jsonr\u0070c":"2.0","id":1,"method":"x"}"#,
            r#"{}"#,
            r#"42"#,
            r#""s""#,
            r#"null"#,
            r#"true"#,
        ] {
            let direct = match parse(b.as_bytes()).unwrap() {
                Parsed::Single(m) => m,
                Parsed::Batch(_) => panic!("batch"),
            };
            let via_value = from_value(serde_json::from_str(b).unwrap());
            assert_eq!(format!("{direct:?}"), format!("{via_value:?}"), "{b}");
        }
        // Depth and syntax limits are the parser's, as before.
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"x","junk":{}1{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(parse(deep.as_bytes()).err().unwrap().code, PARSE_ERROR);
        assert_eq!(
            parse(br#"{"jsonrpc":"2.0"} x"#).err().unwrap().code,
            PARSE_ERROR
        );
    }

    #[test]
    fn null_members_count_as_absent() {
        let m = single(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":null}"#).unwrap();
        assert!(m.params.is_none());
        let (id, e) = single(r#"{"jsonrpc":"2.0","id":2,"method":null}"#).unwrap_err();
        assert_eq!((id, e.code), (Some(Id::Num(2)), INVALID_REQUEST));
    }

    #[test]
    fn serialises_errors_without_id() {
        let b = error_bytes(None, &RpcError::parse("bad"));
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["error"]["code"], PARSE_ERROR);
        assert!(v.get("id").is_none());
    }

    #[test]
    fn batches_are_capped() {
        let batch = |n: usize| {
            let items: Vec<String> = (0..n)
                .map(|i| format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"ping"}}"#))
                .collect();
            format!("[{}]", items.join(","))
        };
        assert!(
            matches!(parse(batch(MAX_BATCH).as_bytes()), Ok(Parsed::Batch(v)) if v.len() == MAX_BATCH)
        );
        let e = parse(batch(MAX_BATCH + 1).as_bytes())
            .err()
            .expect("refused");
        assert_eq!(e.code, INVALID_REQUEST);
        assert!(e.message.contains("at most 64"), "{}", e.message);
    }
}
