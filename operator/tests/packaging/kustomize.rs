//! The kustomize bases render what the chart renders.

use super::*;

/// Objects keyed by kind/namespace/name, without Helm's own labels.
fn normalized(docs: Vec<Value>) -> BTreeMap<String, Value> {
    docs.into_iter()
        .map(|mut d| {
            if let Some(l) = d["metadata"]["labels"].as_object_mut() {
                l.remove("helm.sh/chart");
                l.remove("app.kubernetes.io/managed-by");
            }
            let key = format!(
                "{}/{}/{}",
                d["kind"].as_str().unwrap_or_default(),
                d["metadata"]["namespace"].as_str().unwrap_or_default(),
                d["metadata"]["name"].as_str().unwrap_or_default()
            );
            (key, d)
        })
        .collect()
}

#[test]
fn kustomize_bases_match_the_chart() {
    let text = run(Command::new(tool("kubectl")).args(["kustomize", "config/default"]));
    let mut kust = normalized(yaml_docs(&text));
    let crd = kust
        .remove("CustomResourceDefinition//erlmcpclusters.erlmcp.io")
        .expect("the CRD in config/default");
    let want_crd = yaml_docs(&erlmcp_crds::crd::crd_yaml()).remove(0);
    assert!(
        drop_nulls(&crd) == drop_nulls(&want_crd),
        "config/crd: kustomize output differs from the CRD"
    );
    let ns = kust
        .remove(&format!("Namespace//{NAMESPACE}"))
        .expect("the Namespace");
    check_typed(&ns).unwrap();
    let helm = normalized(helm_template(&[]));
    assert_eq!(
        kust.keys().collect::<Vec<_>>(),
        helm.keys().collect::<Vec<_>>(),
        "the same objects"
    );
    for (k, v) in &helm {
        assert!(
            drop_nulls(&kust[k]) == drop_nulls(v),
            "{k} differs between config/ and the chart: edit both (config/ = the chart's defaults)\n\
             config/: {:#}\nchart: {:#}",
            drop_nulls(&kust[k]),
            drop_nulls(v)
        );
        assert_eq!(
            kust[k]["metadata"]["labels"]["app.kubernetes.io/name"],
            "erlmcp-operator"
        );
    }
    for rel in ["config/rbac", "config/manager", "config/crd"] {
        run(Command::new(tool("kubectl")).args(["kustomize", rel]));
    }
}
