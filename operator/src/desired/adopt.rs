//! Adopting a generated Secret that exists without a controller: restored from a backup (YAML
//! stripped of uid, resourceVersion and ownerReferences) or left behind by a deleted namespace's
//! restore. Its data is the point of the backup (the cookie peers share, the CA clients trust),
//! so it is never regenerated: the operator only makes it its own again.

use serde_json::{json, Map, Value};

/// The JSON merge patch that adopts `existing` for the cluster whose generated `placeholder`
/// describes it: the placeholder's controller reference added beside any other references,
/// its labels and annotations merged in, the data untouched. `None` when a controller already
/// owns it (this cluster, or another one: never stolen). The patch carries the resourceVersion
/// read, so a concurrent writer makes it fail instead of being overwritten.
pub fn adoption_patch(existing: &Value, placeholder: &Value) -> Option<Value> {
    let meta = &existing["metadata"];
    let refs = meta["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if refs.iter().any(|r| r["controller"] == true) {
        return None;
    }
    let ours = placeholder["metadata"]["ownerReferences"].as_array()?;
    let mut all = refs;
    all.extend(ours.iter().cloned());
    let mut patch = Map::new();
    patch.insert("ownerReferences".into(), Value::Array(all));
    for key in ["labels", "annotations"] {
        if let Some(v) = placeholder["metadata"][key].as_object() {
            patch.insert(key.into(), Value::Object(v.clone()));
        }
    }
    if let Some(rv) = meta["resourceVersion"].as_str() {
        patch.insert("resourceVersion".into(), rv.into());
    }
    Some(json!({ "metadata": patch }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::fixtures::minimal;
    use crate::desired::{generated, Names, COOKIE_KEY, GENERATED_ANNOTATION};

    fn placeholder() -> Value {
        let c = minimal();
        generated(&c, &Names::of(&c))[0].object.clone()
    }

    /// The cookie Secret as a backup restores it: our labels, no owner, its own data.
    fn restored(refs: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "mcp-cookie", "resourceVersion": "42",
                            "labels": {"team": "a"}, "ownerReferences": refs},
               "data": {COOKIE_KEY: "c2VjcmV0"}})
    }

    #[test]
    fn an_ownerless_secret_gets_our_controller_reference_and_keeps_its_data() {
        let p = adoption_patch(&restored(json!([])), &placeholder()).expect("adopted");
        let refs = p["metadata"]["ownerReferences"].as_array().unwrap();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0]["kind"], "ErlmcpCluster");
        assert_eq!(refs[0]["uid"], minimal().metadata.uid.unwrap());
        assert_eq!(refs[0]["controller"], true);
        assert_eq!(
            p["metadata"]["resourceVersion"], "42",
            "optimistic concurrency"
        );
        assert_eq!(p["metadata"]["annotations"][GENERATED_ANNOTATION], "true");
        assert_eq!(
            p["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "erlmcp-operator"
        );
        assert!(
            p.get("data").is_none() && p.get("stringData").is_none(),
            "{p}"
        );
    }

    #[test]
    fn other_non_controller_references_are_kept() {
        let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "u1"});
        let p = adoption_patch(&restored(json!([other.clone()])), &placeholder()).unwrap();
        let refs = p["metadata"]["ownerReferences"].as_array().unwrap();
        assert_eq!(refs.len(), 2);
        assert_eq!(refs[0], other);
    }

    #[test]
    fn a_secret_with_a_controller_is_left_alone() {
        let mine = placeholder()["metadata"]["ownerReferences"].clone();
        assert_eq!(adoption_patch(&restored(mine), &placeholder()), None);
        let theirs = json!([{"apiVersion": "erlmcp.io/v1alpha1", "kind": "ErlmcpCluster",
                             "name": "other", "uid": "u2", "controller": true}]);
        assert_eq!(adoption_patch(&restored(theirs), &placeholder()), None);
    }
}
