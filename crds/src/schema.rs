//! Schema fragments that schemars cannot derive: Kubernetes list-map markers and free-form objects.

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

fn list_map<T: schemars::JsonSchema>(g: &mut SchemaGenerator, key: &str) -> Schema {
    let mut s = g.subschema_for::<Vec<T>>();
    s.insert("x-kubernetes-list-type".into(), "map".into());
    s.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!([key]),
    );
    s
}

/// `status.members`: a list-map keyed by `name`, so each pod owns its own entry under server-side apply.
pub fn members_list_map(g: &mut SchemaGenerator) -> Schema {
    list_map::<crate::status::MemberStatus>(g, "name")
}

/// `status.conditions`: a list-map keyed by `type`, the shape of metav1.Condition lists.
pub fn conditions_list_map(g: &mut SchemaGenerator) -> Schema {
    list_map::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>(g, "type")
}
