//! What only a current API server proves about the CRD: its CEL rules refuse bad objects at
//! `kubectl apply`, and misspelt fields are reported (warned, or refused with
//! `--validate=strict`).
//!
//! On a server older than a feature (`E2E_K8S=1.20`) the same cases assert the old behaviour
//! instead: the CEL rules are dropped from the stored CRD and bad objects are accepted, and
//! unknown fields are pruned without a word. Nothing here passes by skipping.

#[path = "current_server/cel_cases.rs"]
mod cel_cases;
#[path = "current_server/support.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{ensure, Result};
use cel_cases::cel_cases;
use erlmcp_e2e::operator::Operator;
use erlmcp_e2e::TestEnv;
use serde_json::{json, Value};
use support::{
    basic_sample, cel_rules, crd_openapi, kubectl_stdin, merge, retain_like, server_minor,
    strip_nulls,
};

/// CRD validation rules (CRDValidationRules) are beta and on by default from 1.25.
const CEL_SINCE_MINOR: u32 = 25;
/// Server-side field validation (ServerSideFieldValidation) is beta and on by default from 1.25.
const FIELD_VALIDATION_SINCE_MINOR: u32 = 25;

// ---------------------------------------------------------------------------------------------
// CEL rules
// ---------------------------------------------------------------------------------------------

/// The cases cover every rule the CRD carries, no more and no fewer: a new rule without a
/// case fails here.
#[test]
fn cel_cases_cover_every_rule_of_the_crd() -> Result<()> {
    let schema: Value = {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let text = std::fs::read_to_string(root.join("crds/erlmcp.io_erlmcpclusters.yaml"))?;
        let crd: Value = serde_yaml::from_str(&text)?;
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
    };
    let mut in_crd = BTreeSet::new();
    cel_rules(&schema, "", &mut in_crd);
    ensure!(!in_crd.is_empty(), "no CEL rules found in the CRD");
    let in_cases: BTreeSet<(String, String)> = cel_cases()
        .iter()
        .map(|c| (c.schema_path.to_string(), c.message.to_string()))
        .collect();
    ensure!(
        in_crd == in_cases,
        "CEL rules without a case: {:?}; cases without a rule: {:?}",
        in_crd.difference(&in_cases).collect::<Vec<_>>(),
        in_cases.difference(&in_crd).collect::<Vec<_>>()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_cel_rule_refuses_its_bad_object_at_kubectl_apply() -> Result<()> {
    let env = TestEnv::get();
    env.install_crd()?;
    let ns = env.namespace("cel").await?;
    let minor = server_minor(env).await?;
    let enforced = minor >= CEL_SINCE_MINOR;

    // The stored CRD keeps its rules only where the server knows them.
    let stored = env.kubectl(&["get", "crd/erlmcpclusters.erlmcp.io", "-o", "json"])?;
    let stored: Value = serde_json::from_str(&stored)?;
    let mut stored_rules = BTreeSet::new();
    cel_rules(
        &stored["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
        "",
        &mut stored_rules,
    );
    let mut repo_rules = BTreeSet::new();
    cel_rules(&crd_openapi(env)?, "", &mut repo_rules);
    if enforced {
        ensure!(
            stored_rules == repo_rules,
            "server 1.{minor} should store every CEL rule; stored {stored_rules:?}"
        );
    } else {
        ensure!(
            stored_rules.is_empty(),
            "server 1.{minor} predates CEL and should drop the rules, yet stored {stored_rules:?}"
        );
    }

    // The unchanged sample is accepted: a refusal below is the change's doing.
    let valid = basic_sample(env, "valid")?;
    let run = kubectl_stdin(
        env,
        &["apply", "-n", &ns.name, "-f", "-"],
        &valid.to_string(),
    )?;
    ensure!(run.success, "valid sample refused: {}", run.stderr);

    let mut failures = Vec::new();
    for (i, case) in cel_cases().into_iter().enumerate() {
        let name = format!("cel-{i}");
        let mut obj = basic_sample(env, &name)?;
        if !case.before.is_null() {
            merge(&mut obj["spec"], &case.before);
            let run = kubectl_stdin(env, &["apply", "-n", &ns.name, "-f", "-"], &obj.to_string())?;
            ensure!(
                run.success,
                "{}: the object before the change was refused: {}",
                case.message,
                run.stderr
            );
        }
        merge(&mut obj["spec"], &case.spec_change);
        let run = kubectl_stdin(env, &["apply", "-n", &ns.name, "-f", "-"], &obj.to_string())?;
        let what = format!("{} ({})", case.message, case.error_path);
        if enforced {
            if run.success {
                failures.push(format!("{what}: accepted: {}", run.stdout.trim()));
            } else if !run.stderr.contains(case.message)
                || !run.stderr.contains(&format!("{}:", case.error_path))
            {
                failures.push(format!("{what}: refused, but said: {}", run.stderr.trim()));
            }
        } else if !run.success {
            failures.push(format!(
                "{what}: server 1.{minor} has no CEL, yet refused: {}",
                run.stderr.trim()
            ));
        } else {
            // Accepted as written: the rule's subject reached the store unchecked.
            let got =
                env.kubectl(&["get", "-n", &ns.name, "erlmcpcluster", &name, "-o", "json"])?;
            let got: Value = serde_json::from_str(&got)?;
            let mut want = case.spec_change.clone();
            let mut seen = got["spec"].clone();
            // Compare only what the case changed (the server adds defaults beside it).
            retain_like(&mut seen, &want);
            strip_nulls(&mut want);
            if seen != want {
                failures.push(format!("{what}: stored {seen} instead of {want}"));
            }
        }
    }
    ensure!(
        failures.is_empty(),
        "server 1.{minor}:\n{}",
        failures.join("\n")
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Unknown fields
// ---------------------------------------------------------------------------------------------

/// The right name, and the misspelling users make of it.
const RIGHT_FIELD: &str = "targetCPUUtilizationPercentage";
const MISSPELT_FIELD: &str = "targetCpuUtilizationPercentage";

fn misspelt_sample(env: &TestEnv, name: &str) -> Result<Value> {
    let mut obj = basic_sample(env, name)?;
    // A memory target keeps the object valid without the misspelt CPU target.
    obj["spec"]["autoscaling"] = json!({
        "maxReplicas": 5,
        "targetMemoryUtilizationPercentage": 80,
        MISSPELT_FIELD: 70,
    });
    Ok(obj)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misspelt_field_warns_and_strict_validation_refuses_it() -> Result<()> {
    let env = TestEnv::get();
    env.install_crd()?;
    let ns = env.namespace("unknown").await?;
    let minor = server_minor(env).await?;
    let current = minor >= FIELD_VALIDATION_SINCE_MINOR;

    // The misspelling is one: the CRD knows the right name, not this one.
    let autoscaling = &crd_openapi(env)?["properties"]["spec"]["properties"]["autoscaling"];
    ensure!(autoscaling["properties"][RIGHT_FIELD].is_object());
    ensure!(autoscaling["properties"][MISSPELT_FIELD].is_null());
    let path = format!("spec.autoscaling.{MISSPELT_FIELD}");

    let warned = misspelt_sample(env, "warned")?;
    let run = kubectl_stdin(
        env,
        &["apply", "--validate=warn", "-n", &ns.name, "-f", "-"],
        &warned.to_string(),
    )?;
    ensure!(run.success, "--validate=warn refused: {}", run.stderr);
    let warning = run.stderr.contains("unknown field") && run.stderr.contains(&path);
    if current {
        ensure!(
            warning,
            "server 1.{minor}: no unknown-field warning for {path}: {:?}",
            run.stderr
        );
    } else {
        ensure!(
            !warning,
            "server 1.{minor} has no field validation, yet warned: {:?}",
            run.stderr
        );
    }
    // Either way the server prunes the field it does not know.
    let got = env.kubectl(&[
        "get",
        "-n",
        &ns.name,
        "erlmcpcluster",
        "warned",
        "-o",
        "json",
    ])?;
    let got: Value = serde_json::from_str(&got)?;
    let stored = &got["spec"]["autoscaling"];
    ensure!(
        stored["targetMemoryUtilizationPercentage"] == json!(80)
            && stored[MISSPELT_FIELD].is_null(),
        "server 1.{minor} stored autoscaling {stored}"
    );

    let strict = misspelt_sample(env, "strict")?;
    let run = kubectl_stdin(
        env,
        &["apply", "--validate=strict", "-n", &ns.name, "-f", "-"],
        &strict.to_string(),
    )?;
    if current {
        ensure!(
            !run.success && run.stderr.contains("unknown field") && run.stderr.contains(&path),
            "server 1.{minor}: --validate=strict should refuse {path}: ok={} {:?}",
            run.success,
            run.stderr
        );
        let absent = env.kubectl(&["get", "-n", &ns.name, "erlmcpcluster", "strict"]);
        ensure!(absent.is_err(), "refused object exists: {absent:?}");
    } else {
        ensure!(
            run.success,
            "server 1.{minor}: --validate=strict: {:?}",
            run.stderr
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// HPA and PDB API versions
// ---------------------------------------------------------------------------------------------

/// `autoscaling/v2` and `policy/v1` are served from 1.23 and 1.21.
const HPA_V2_SINCE_MINOR: u32 = 23;
const PDB_V1_SINCE_MINOR: u32 = 21;

/// The API version the operator wrote `resource/name` with, from its `managedFields` entry
/// (any served version reads the object; only this says which one the operator used).
fn operator_write_version(env: &TestEnv, ns: &str, resource: &str, name: &str) -> Option<String> {
    let out = env
        .kubectl(&[
            "get",
            "-n",
            ns,
            resource,
            name,
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .ok()?;
    let obj: Value = serde_json::from_str(&out).ok()?;
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|m| m["manager"] == "erlmcp-operator")?["apiVersion"]
        .as_str()
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_writes_hpa_and_pdb_in_the_newest_served_version() -> Result<()> {
    let env = TestEnv::get();
    env.install_crd()?;
    let ns = env.namespace("versions").await?;
    let minor = server_minor(env).await?;
    let (hpa_version, hpa_resource) = if minor >= HPA_V2_SINCE_MINOR {
        ("autoscaling/v2", "hpa.v2.autoscaling")
    } else {
        ("autoscaling/v2beta2", "hpa.v2beta2.autoscaling")
    };
    let (pdb_version, pdb_resource) = if minor >= PDB_V1_SINCE_MINOR {
        ("policy/v1", "pdb.v1.policy")
    } else {
        ("policy/v1beta1", "pdb.v1beta1.policy")
    };
    let _op = Operator::start(env, &ns.name, &ns.name, "op-versions")?;
    let sample = std::fs::read_to_string(env.workspace.join("config/samples/autoscaling.yaml"))?;
    env.apply(&ns.name, &sample).await?;

    let written = env
        .wait_for(
            "HPA and PDB written by the operator",
            Duration::from_secs(60),
            Some(&ns.name),
            || async {
                let hpa = operator_write_version(env, &ns.name, hpa_resource, "autoscaled");
                let pdb = operator_write_version(env, &ns.name, pdb_resource, "autoscaled");
                Ok(hpa.zip(pdb))
            },
        )
        .await?;
    ensure!(
        written == (hpa_version.to_string(), pdb_version.to_string()),
        "server 1.{minor}: operator wrote HPA, PDB as {written:?}, want {hpa_version}, {pdb_version}"
    );
    // The newer versions are served exactly where expected. Asked by raw path: kubectl's
    // `hpa.v2.autoscaling` falls back to another version where v2 is not served.
    for (since, api, plural) in [
        (
            HPA_V2_SINCE_MINOR,
            "autoscaling/v2",
            "horizontalpodautoscalers",
        ),
        (PDB_V1_SINCE_MINOR, "policy/v1", "poddisruptionbudgets"),
    ] {
        let path = format!("/apis/{api}/namespaces/{}/{plural}/autoscaled", ns.name);
        let got = env.kubectl(&["get", "--raw", &path]);
        ensure!(
            got.is_ok() == (minor >= since),
            "server 1.{minor}: GET {path}: {got:?}"
        );
    }
    if minor >= HPA_V2_SINCE_MINOR {
        env.kubectl(&["get", "-n", &ns.name, "hpa.v2.autoscaling", "autoscaled"])?;
    }
    if minor >= PDB_V1_SINCE_MINOR {
        env.kubectl(&["get", "-n", &ns.name, "pdb.v1.policy", "autoscaled"])?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// status.members: one field manager per pod
// ---------------------------------------------------------------------------------------------

/// Servers from 1.21 keep list-map semantics for our CRD under server-side apply; the pods
/// read-modify-write the list before (dataplane/src/cluster/status.rs, `write_mode`).
const MEMBERS_APPLY_SINCE_MINOR: u32 = 21;

/// The `managedFields` entries that own status fields, by manager (servers before 1.22 do not
/// name the subresource).
fn status_managers(obj: &Value) -> Vec<(String, Value)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["subresource"] == "status" || m["fieldsV1"]["f:status"].is_object())
        .map(|m| (m["manager"].as_str().unwrap_or("").to_string(), m.clone()))
        .collect()
}

/// The list-map keys (`k:{"name":"..."}`) of `status.members` a managedFields entry owns.
fn owned_member_keys(entry: &Value) -> BTreeSet<String> {
    entry["fieldsV1"]["f:status"]["f:members"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| k.strip_prefix("k:"))
        .filter_map(|k| serde_json::from_str::<Value>(k).ok())
        .filter_map(|k| k["name"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn owned_member_keys_reads_list_map_keys() {
    let entry = json!({"fieldsV1": {"f:status": {"f:members": {
        "k:{\"name\":\"a-0\"}": {".": {}, "f:ready": {}},
        "k:{\"name\":\"a-1\"}": {".": {}},
        ".": {}
    }}}});
    let want: BTreeSet<String> = ["a-0", "a-1"].into_iter().map(String::from).collect();
    assert_eq!(owned_member_keys(&entry), want);
    assert!(owned_member_keys(&json!({"fieldsV1": {"f:status": {"f:phase": {}}}})).is_empty());
}

/// Three pods write `status.members`: on a current server each pod's field manager
/// (`erlmcp-member-<pod>`) applies and owns exactly its own entry, and the operator's status
/// manager owns none; on 1.20 the pods update the whole list (read-modify-write).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_pod_field_manager_owns_only_its_members_entry() -> Result<()> {
    let env = TestEnv::get();
    env.install_crd()?;
    let ns = env.namespace("members").await?;
    let minor = server_minor(env).await?;
    let applies = minor >= MEMBERS_APPLY_SINCE_MINOR;
    let _op = Operator::start(env, &ns.name, &ns.name, "op-versions")?;
    let sample = basic_sample(env, "owned")?;
    env.apply(&ns.name, &serde_json::to_string(&sample)?)
        .await?;
    let pods: BTreeSet<String> = (0..3).map(|i| format!("owned-{i}")).collect();

    let obj = env
        .wait_for(
            "three members, each written by its own pod",
            Duration::from_secs(180),
            Some(&ns.name),
            || async {
                let out = env.kubectl(&[
                    "get",
                    "-n",
                    &ns.name,
                    "erlmcpcluster",
                    "owned",
                    "-o",
                    "json",
                    "--show-managed-fields",
                ])?;
                let obj: Value = serde_json::from_str(&out)?;
                let members: BTreeSet<String> = obj["status"]["members"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m["name"].as_str().map(str::to_string))
                    .collect();
                let managers: BTreeSet<String> =
                    status_managers(&obj).into_iter().map(|(m, _)| m).collect();
                // On 1.20 the members list is atomic: each read-modify-write takes all of it,
                // and a manager left owning nothing loses its entry, so only a writer is seen.
                let all_wrote = if applies {
                    pods.iter()
                        .all(|p| managers.contains(&format!("erlmcp-member-{p}")))
                } else {
                    managers.iter().any(|m| m.starts_with("erlmcp-member-"))
                };
                Ok((members == pods && all_wrote).then_some(obj))
            },
        )
        .await?;

    for (manager, entry) in status_managers(&obj) {
        let owned = owned_member_keys(&entry);
        match manager.strip_prefix("erlmcp-member-") {
            Some(pod) if applies => {
                ensure!(
                    entry["operation"] == "Apply",
                    "server 1.{minor}: {manager} wrote with {}, not Apply",
                    entry["operation"]
                );
                ensure!(
                    owned == BTreeSet::from([pod.to_string()]),
                    "server 1.{minor}: {manager} owns members {owned:?}, want only {pod}"
                );
            }
            Some(_) => ensure!(
                entry["operation"] == "Update",
                "server 1.{minor}: {manager} wrote with {}, want Update (read-modify-write)",
                entry["operation"]
            ),
            // The operator writes the rest of the status, never a member entry.
            None if applies => ensure!(
                owned.is_empty(),
                "server 1.{minor}: {manager} owns members {owned:?}"
            ),
            None => {}
        }
    }
    Ok(())
}
