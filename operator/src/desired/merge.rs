//! Merges for `spec.override`: JSON merge patch (RFC 7386), and Kubernetes' strategic merge, which
//! merges keyed lists (containers, volumes, env) item by item.

use serde_json::Value;

/// Merge `extra` into `base` by name, as Kubernetes' strategic merge does for env, containers and
/// volumes: an item whose name is already there replaces it in place, the others are appended.
/// (A plain append would send two entries of one name, which server-side apply refuses.)
pub fn merge_by_name<T>(
    base: &mut Vec<T>,
    extra: impl IntoIterator<Item = T>,
    name: fn(&T) -> &str,
) {
    for item in extra {
        match base.iter_mut().find(|b| name(b) == name(&item)) {
            Some(slot) => *slot = item,
            None => base.push(item),
        }
    }
}

/// Merge `patch` into `target`: objects merge key by key, `null` deletes, anything else replaces.
pub fn json_merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Default::default());
            }
            let t = target.as_object_mut().expect("just made an object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    json_merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// The key that identifies an item of a list field, where Kubernetes' strategic merge has one
/// (containers, volumes and env by name, mounts by path, ports by number). Other lists are
/// replaced whole, as in a JSON merge patch.
fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets" => Some("name"),
        "volumeMounts" | "volumeDevices" => Some("mountPath"),
        "ports" if items.iter().any(|p| p.get("containerPort").is_some()) => Some("containerPort"),
        "ports" => Some("port"),
        _ => None,
    }
}

/// A strategic merge, as `kubectl patch --type strategic` (and RabbitMQ's operator's override)
/// does it: JSON merge patch, except that the keyed lists above merge item by item, so an
/// override can add a sidecar or a variable, or change one field of the `erlmcp` container,
/// without restating the rest. `{"name": x, "$patch": "delete"}` removes an item.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let t = target.as_object_mut().expect("just made an object");
    for (k, v) in p {
        match (v, t.get_mut(k)) {
            (Value::Null, _) => {
                t.remove(k);
            }
            (Value::Array(items), Some(Value::Array(have))) => {
                match merge_key(k, items).or_else(|| merge_key(k, have)) {
                    Some(key) => merge_list(have, items, key),
                    None => *have = items.clone(),
                }
            }
            (_, Some(slot)) => strategic_merge(slot, v),
            (_, None) => {
                let mut fresh = Value::Null;
                strategic_merge(&mut fresh, v);
                t.insert(k.clone(), fresh);
            }
        }
    }
}

fn merge_list(have: &mut Vec<Value>, items: &[Value], key: &str) {
    for item in items {
        let id = item.get(key);
        let at = id.and_then(|id| have.iter().position(|h| h.get(key) == Some(id)));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (at, delete) {
            (Some(i), true) => {
                have.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge(&mut have[i], item),
            (None, false) => have.push(item.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_by_name_replaces_in_place_and_appends_the_rest() {
        let mut base = vec![("A", 1), ("B", 2)];
        merge_by_name(&mut base, [("B", 20), ("C", 3), ("C", 30)], |x| x.0);
        assert_eq!(base, [("A", 1), ("B", 20), ("C", 30)]);
    }

    #[test]
    fn strategic_merge_merges_containers_env_and_volumes_by_name() {
        let mut sts = json!({"spec": {"template": {"spec": {
            "containers": [{"name": "erlmcp", "image": "erlmcp:1",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "volumeMounts": [{"name": "config", "mountPath": "/etc/erlmcp"}],
                "ports": [{"name": "mcp", "containerPort": 8080}]}],
            "volumes": [{"name": "config", "configMap": {"name": "c"}}, {"name": "tmp", "emptyDir": {}}],
            "tolerations": [{"key": "a"}]}}}});
        strategic_merge(
            &mut sts,
            &json!({"spec": {"template": {"spec": {
                "containers": [
                    {"name": "erlmcp", "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}],
                     "ports": [{"containerPort": 8080, "hostPort": 18080}]},
                    {"name": "sidecar", "image": "envoy"}],
                "volumes": [{"name": "tmp", "$patch": "delete"}, {"name": "certs", "secret": {"secretName": "s"}}],
                "tolerations": [{"key": "b"}]}}}}),
        );
        let pod = &sts["spec"]["template"]["spec"];
        let erlmcp = &pod["containers"][0];
        // The erlmcp container keeps what the override does not restate.
        assert_eq!(erlmcp["image"], "erlmcp:1");
        assert_eq!(
            erlmcp["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "20"}, {"name": "C", "value": "3"}])
        );
        assert_eq!(erlmcp["volumeMounts"][0]["mountPath"], "/etc/erlmcp");
        assert_eq!(
            erlmcp["ports"],
            json!([{"name": "mcp", "containerPort": 8080, "hostPort": 18080}])
        );
        // A sidecar is added beside it.
        assert_eq!(
            pod["containers"][1],
            json!({"name": "sidecar", "image": "envoy"})
        );
        // Volumes by name: one removed, one added, the rest kept.
        assert_eq!(
            pod["volumes"],
            json!([{"name": "config", "configMap": {"name": "c"}}, {"name": "certs", "secret": {"secretName": "s"}}])
        );
        // Lists without a merge key are replaced whole.
        assert_eq!(pod["tolerations"], json!([{"key": "b"}]));
    }

    #[test]
    fn strategic_merge_is_a_json_merge_elsewhere() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        strategic_merge(
            &mut t,
            &json!({"a": "z", "c": {"f": null}, "l": [3], "n": {"x": 1, "y": null}}),
        );
        assert_eq!(
            t,
            json!({"a": "z", "c": {"d": "e"}, "l": [3], "n": {"x": 1}})
        );
    }

    #[test]
    fn rfc7386_examples() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        json_merge(
            &mut t,
            &json!({"a": "z", "c": {"f": null}, "l": [3], "n": {"x": 1}}),
        );
        assert_eq!(
            t,
            json!({"a": "z", "c": {"d": "e"}, "l": [3], "n": {"x": 1}})
        );
    }
}
