//! The JSON-RPC envelope read straight from a body ([`super::jsonrpc::parse`]): the members of a
//! single message are taken as the parser meets them, with no map of them built first.

use serde::Deserialize;
use serde_json::Value;

use super::jsonrpc::{from_members, Id, Message, RpcError};

/// A body as [`super::jsonrpc::parse`] reads it: one message already checked, or a batch still
/// as values.
pub(super) enum Top {
    Single(Result<Message, (Option<Id>, RpcError)>),
    Batch(Vec<Value>),
}

impl<'de> Deserialize<'de> for Top {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TopVisitor)
    }
}

fn not_an_object() -> Top {
    Top::Single(Err((
        None,
        RpcError::invalid_request("Invalid Request: message must be an object"),
    )))
}

struct TopVisitor;

impl<'de> serde::de::Visitor<'de> for TopVisitor {
    type Value = Top;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON-RPC message or batch")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Top, E> {
        Ok(not_an_object())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Top, E> {
        Ok(not_an_object())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Top, E> {
        Ok(not_an_object())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Top, E> {
        Ok(not_an_object())
    }
    fn visit_str<E>(self, _: &str) -> Result<Top, E> {
        Ok(not_an_object())
    }
    fn visit_unit<E>(self) -> Result<Top, E> {
        Ok(not_an_object())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Top, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element::<Value>()? {
            items.push(v);
        }
        Ok(Top::Batch(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
        // As in a parsed object, a member given twice counts with its last value; members that
        // are not the envelope's are still parsed (the same depth limit), then dropped.
        let mut env: [Option<Value>; 6] = Default::default();
        while let Some(k) = map.next_key::<Member>()? {
            let v = map.next_value::<Value>()?;
            if let Some(i) = k.0 {
                env[i] = Some(v);
            }
        }
        let [id, jsonrpc, method, params, result, error] = env;
        let absent_if_null = |v: Option<Value>| v.filter(|v| !v.is_null());
        Ok(Top::Single(from_members(
            id,
            absent_if_null(jsonrpc),
            absent_if_null(method),
            absent_if_null(params),
            absent_if_null(result),
            absent_if_null(error),
        )))
    }
}

/// An object member's name: the index of an envelope member, or None for any other name.
struct Member(Option<usize>);

const MEMBERS: [&str; 6] = ["id", "jsonrpc", "method", "params", "result", "error"];

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Member;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E>(self, k: &str) -> Result<Member, E> {
                Ok(Member(MEMBERS.iter().position(|m| *m == k)))
            }
        }
        d.deserialize_str(V)
    }
}
