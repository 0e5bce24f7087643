//! Schema fragments that schemars cannot derive: free-form objects. (The status lists' list-map
//! markers live with the status types, in `status.rs`.)

use schemars::{json_schema, Schema, SchemaGenerator};

/// A free-form JSON object kept as written (JSON Schema documents, partial objects to merge).
pub fn free_form_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Like [`free_form_object`], for an optional field.
pub fn optional_free_form_object(g: &mut SchemaGenerator) -> Schema {
    let mut s = free_form_object(g);
    s.insert("nullable".into(), true.into());
    s
}
