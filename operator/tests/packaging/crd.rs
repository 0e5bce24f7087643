//! The CRD copies and the versions the chart and images carry.

use super::*;

#[test]
fn crd_copies_match_the_generator() {
    let yaml = erlmcp_crds::crd::crd_yaml();
    for want in [
        "charts/erlmcp-operator/crds/erlmcp.io_erlmcpclusters.yaml",
        "config/crd/erlmcp.io_erlmcpclusters.yaml",
    ] {
        assert!(
            erlmcp_operator::CRD_COPIES.contains(&want),
            "CRD_COPIES lacks {want}"
        );
    }
    for rel in erlmcp_operator::CRD_COPIES {
        assert!(
            read(rel) == yaml,
            "{rel} is stale: run `cargo run -p erlmcp-operator -- crd --write`"
        );
    }
}

#[test]
fn chart_and_images_track_the_operator_version() {
    let version = env!("CARGO_PKG_VERSION");
    let chart: serde_yaml::Value =
        serde_yaml::from_str(&read(&format!("{CHART}/Chart.yaml"))).unwrap();
    assert_eq!(
        chart["appVersion"].as_str(),
        Some(version),
        "Chart.yaml appVersion"
    );
    assert_eq!(
        chart["version"].as_str(),
        Some(version),
        "Chart.yaml version"
    );
    let docs = helm_template(&[]);
    let deploy = find(&docs, "Deployment", RELEASE).expect("Deployment");
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("ghcr.io/erlmcp/erlmcp-operator:{version}")
    );
    // The data-plane image the operator gives clusters that name none.
    assert_eq!(
        desired::default_image(),
        format!("ghcr.io/erlmcp/erlmcp:{version}")
    );
    // The kustomize base pins the same tag; the Dockerfiles default to the same version label.
    assert!(
        read("config/manager/kustomization.yaml").contains(&format!("newTag: \"{version}\"")),
        "config/manager/kustomization.yaml newTag"
    );
    for f in ["Dockerfile.operator", "Dockerfile.dataplane"] {
        assert!(
            read(f).contains(&format!("ARG VERSION={version}\n")),
            "{f}: ARG VERSION={version}"
        );
    }
}
