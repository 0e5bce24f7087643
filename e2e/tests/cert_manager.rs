//! Real cert-manager issues the pods' certificate: its controllers (built from its Go module by
//! `e2e/scripts/cert-manager-build.sh`, cached) run out of cluster against the plane, with their
//! CRDs from the same module. A self-signed ClusterIssuer signs a CA, a CA ClusterIssuer
//! `internal-ca` signs for `config/samples/tls-cert-manager.yaml` (applied as shipped): the
//! Certificate is issued, the pods mount it, peers talk mutual TLS with it, the cluster is
//! Ready; a short duration then makes cert-manager renew it, and the cluster rolls onto the new
//! certificate while staying Available.
//!
//! Current plane only: on a server older than cert-manager supports this fails (it never skips);
//! `scripts/test.sh` leaves it out on 1.20. Needs `openssl` (the TLS client of the checks).

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use base64::Engine;
use erlmcp_e2e::env::Process;
use erlmcp_e2e::TestEnv;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::Api;
use serde_json::Value;

const SAMPLE_NAME: &str = "secure";
const TLS_SECRET: &str = "secure-tls";
/// cert-manager's renewal is forced by these on the Certificate: once reissued (cmctl renew's
/// way: an `Issuing` condition on the status), a certificate valid for an hour and renewed 58
/// minutes before its end is renewed again, by cert-manager alone, two minutes later.
const SHORT_DURATION: &str = "1h";
const SHORT_RENEW_BEFORE: &str = "58m";

/// `KEY=value` lines of `e2e/scripts/versions.env`.
fn versions(env: &TestEnv) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(env.workspace.join("e2e/scripts/versions.env"))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

/// The cache dir `e2e/scripts/cert-manager-build.sh` prints (building once on a cold cache).
fn cert_manager_dir(env: &TestEnv) -> Result<PathBuf> {
    let out = Command::new("bash")
        .arg(env.workspace.join("e2e/scripts/cert-manager-build.sh"))
        .stderr(Stdio::inherit())
        .output()
        .context("running e2e/scripts/cert-manager-build.sh")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = stdout.lines().last().unwrap_or("").trim();
    ensure!(
        out.status.success() && !dir.is_empty(),
        "e2e/scripts/cert-manager-build.sh failed (see its output above): no cert-manager, so the case fails"
    );
    Ok(PathBuf::from(dir))
}

/// The issuer chain the sample's `internal-ca` ClusterIssuer stands for: self-signed root, CA
/// certificate in cert-manager's cluster resource namespace `ns`, CA ClusterIssuer.
fn issuer_chain(ns: &str) -> String {
    format!(
        "apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\n\
         metadata: {{name: erlmcp-e2e-selfsigned}}\nspec: {{selfSigned: {{}}}}\n\
         ---\n\
         apiVersion: cert-manager.io/v1\nkind: Certificate\n\
         metadata: {{name: internal-ca, namespace: {ns}}}\n\
         spec:\n  isCA: true\n  commonName: erlmcp e2e internal CA\n  secretName: internal-ca\n\
         \x20 privateKey: {{algorithm: ECDSA, size: 256}}\n\
         \x20 issuerRef: {{name: erlmcp-e2e-selfsigned, kind: ClusterIssuer, group: cert-manager.io}}\n\
         ---\n\
         apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\n\
         metadata: {{name: internal-ca}}\nspec: {{ca: {{secretName: internal-ca}}}}\n"
    )
}

fn kubectl_json(env: &TestEnv, args: &[&str]) -> Result<Value> {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    Ok(serde_json::from_str(&env.kubectl(&all)?)?)
}

fn condition_true(obj: &Value, t: &str) -> bool {
    obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == t && c["status"] == "True")
}

fn condition_false(obj: &Value, t: &str) -> bool {
    obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == t && c["status"] == "False")
}

/// The decoded keys of a Secret.
fn secret_data(env: &TestEnv, ns: &str, name: &str) -> Result<BTreeMap<String, String>> {
    let s = kubectl_json(env, &["get", "-n", ns, "secret", name])?;
    let mut out = BTreeMap::new();
    for (k, v) in s["data"].as_object().into_iter().flatten() {
        let bytes = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or(""))?;
        out.insert(k.clone(), String::from_utf8(bytes)?);
    }
    Ok(out)
}

/// The first PEM certificate block of `text`, whitespace removed (a comparable identity).
fn first_pem_cert(text: &str) -> Option<String> {
    let start = text.find("-----BEGIN CERTIFICATE-----")?;
    let rest = &text[start..];
    let end = rest.find("-----END CERTIFICATE-----")? + "-----END CERTIFICATE-----".len();
    Some(rest[..end].split_whitespace().collect())
}

#[test]
fn first_pem_cert_takes_the_leaf() {
    let two = "junk\n-----BEGIN CERTIFICATE-----\nAAA\nBBB\n-----END CERTIFICATE-----\n\
               -----BEGIN CERTIFICATE-----\nCCC\n-----END CERTIFICATE-----\n";
    assert_eq!(
        first_pem_cert(two).as_deref(),
        Some("-----BEGINCERTIFICATE-----AAABBB-----ENDCERTIFICATE-----")
    );
    assert_eq!(first_pem_cert("no pem here"), None);
}

/// One TLS handshake with `openssl s_client` against `addr`, verifying the server against
/// `ca`, presenting `client` (cert, key) when given: (handshake verified, server leaf, output).
fn tls_handshake(
    addr: SocketAddr,
    ca: &Path,
    client: Option<(&Path, &Path)>,
) -> Result<(bool, Option<String>, String)> {
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_client",
        "-connect",
        &addr.to_string(),
        "-verify_return_error",
    ])
    .arg("-CAfile")
    .arg(ca);
    match client {
        Some((cert, key)) => {
            cmd.arg("-cert").arg(cert).arg("-key").arg(key);
        }
        // TLS 1.3 refuses a missing client certificate after the client's handshake is done:
        // wait for the server's alert instead of leaving at end of input.
        None => {
            cmd.arg("-ign_eof");
        }
    }
    // A closed stdin ends the session right after the handshake; the timeout bounds a hang.
    let out = Command::new("timeout")
        .arg("10")
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .stdin(Stdio::null())
        .output()
        .context("running openssl s_client (is openssl installed?)")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let verified = text.contains("Verify return code: 0 (ok)");
    Ok((
        verified,
        first_pem_cert(&String::from_utf8_lossy(&out.stdout)),
        text,
    ))
}

/// Pod IP and `peer` container port of every pod of the sample.
async fn peer_addrs(env: &TestEnv, ns: &str) -> Result<Vec<(String, SocketAddr)>> {
    let pods = Api::<Pod>::namespaced(env.client(), ns)
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={SAMPLE_NAME}")))
        .await?
        .items;
    let mut out = Vec::new();
    for p in pods {
        let name = p.metadata.name.clone().unwrap_or_default();
        let ip = p.status.as_ref().and_then(|s| s.pod_ip.clone());
        let port = p
            .spec
            .as_ref()
            .into_iter()
            .flat_map(|s| &s.containers)
            .flat_map(|c| c.ports.iter().flatten())
            .find(|cp| cp.name.as_deref() == Some("peer"))
            .map(|cp| cp.container_port);
        if let (Some(ip), Some(port)) = (ip, port) {
            out.push((name, format!("{ip}:{port}").parse()?));
        }
    }
    out.sort();
    Ok(out)
}

/// Every pod's peer port serves `leaf` and takes only clients with a certificate of the CA.
async fn peers_serve(env: &TestEnv, ns: &str, files: &Path, leaf: &str) -> Result<()> {
    let (ca, cert, key) = (
        files.join("ca.crt"),
        files.join("tls.crt"),
        files.join("tls.key"),
    );
    let peers = peer_addrs(env, ns).await?;
    ensure!(peers.len() == 3, "peer addresses: {peers:?}");
    for (pod, addr) in peers {
        let (ok, served, text) = tls_handshake(addr, &ca, Some((&cert, &key)))?;
        ensure!(
            ok,
            "{pod} {addr}: mutual TLS handshake not verified:\n{text}"
        );
        ensure!(
            served.as_deref() == Some(leaf),
            "{pod} {addr} serves another certificate than the Secret's:\n{text}"
        );
        // Mutual: without a client certificate the peer refuses to talk.
        let (_, _, text) = tls_handshake(addr, &ca, None)?;
        ensure!(
            text.contains("certificate required")
                || text.contains("handshake failure")
                || text.contains("peer did not return a certificate"),
            "{pod} {addr} accepted a client without a certificate:\n{text}"
        );
    }
    Ok(())
}

/// The sample Ready for its generation with three ready pods.
async fn wait_cluster_ready(env: &TestEnv, ns: &str) -> Result<Value> {
    env.wait_for(
        "erlmcpcluster/secure Ready with 3 pods",
        Duration::from_secs(240),
        Some(ns),
        || async {
            let c = kubectl_json(env, &["get", "-n", ns, "erlmcpcluster", SAMPLE_NAME])?;
            let fresh = c["status"]["observedGeneration"] == c["metadata"]["generation"];
            let ok = fresh && condition_true(&c, "Ready") && c["status"]["readyReplicas"] == 3;
            Ok(ok.then_some(c))
        },
    )
    .await
}

fn write_client_files(dir: &Path, data: &BTreeMap<String, String>) -> Result<()> {
    for k in ["ca.crt", "tls.crt", "tls.key"] {
        let v = data
            .get(k)
            .with_context(|| format!("Secret {TLS_SECRET} has no {k}"))?;
        std::fs::write(dir.join(k), v)?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cert_manager_issues_and_renews_the_peer_certificate() -> Result<()> {
    let env = TestEnv::get();
    let v = env.client().apiserver_version().await?;
    let minor: u32 = v.minor.trim_end_matches('+').parse()?;
    let want: u32 = versions(env)?
        .get("CERT_MANAGER_MIN_K8S_MINOR")
        .context("CERT_MANAGER_MIN_K8S_MINOR in versions.env")?
        .parse()?;
    ensure!(
        minor >= want,
        "cert-manager needs Kubernetes 1.{want}+, this server is {}: run this case on E2E_K8S=current",
        v.git_version
    );
    let cm = cert_manager_dir(env)?;
    env.install_crd()?;
    env.kubectl(&[
        "apply",
        "--server-side",
        "--field-manager",
        "erlmcp-e2e",
        "-f",
        &cm.join("crds").display().to_string(),
    ])?;
    env.kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/certificates.cert-manager.io",
        "crd/certificaterequests.cert-manager.io",
        "crd/issuers.cert-manager.io",
        "crd/clusterissuers.cert-manager.io",
    ])?;

    // cert-manager's own namespace: its leader election Lease and the CA Secret live there.
    let cm_ns = env.namespace("cert-manager").await?;
    let ns = env.namespace("tls").await?;
    let dir = env.run_dir.join(format!("cert-manager-{}", ns.name));
    std::fs::create_dir_all(&dir)?;
    let mut cmd = Command::new(cm.join("bin/cert-manager-controller"));
    cmd.arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .args(["--leader-election-namespace", &cm_ns.name])
        .args(["--cluster-resource-namespace", &cm_ns.name])
        .arg("-v=2");
    let controller = Process::spawn(cmd, dir.join("cert-manager.log"))?;

    env.apply(&cm_ns.name, &issuer_chain(&cm_ns.name)).await?;
    env.wait_for(
        "ClusterIssuer internal-ca Ready",
        Duration::from_secs(120),
        Some(&cm_ns.name),
        || async {
            let i = kubectl_json(env, &["get", "clusterissuer", "internal-ca"])?;
            Ok(condition_true(&i, "Ready").then_some(()))
        },
    )
    .await
    .with_context(|| format!("cert-manager log:\n{}", controller.log_tail(30)))?;
    let lease = env.kubectl(&[
        "get",
        "-n",
        &cm_ns.name,
        "lease",
        "cert-manager-controller",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ])?;
    ensure!(
        !lease.trim().is_empty(),
        "no leader holds cert-manager's Lease"
    );

    let op_log = env.run_dir.join(format!("operator-{}.log", ns.name));
    let metrics = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut op = Command::new(env.bin_dir.join("erlmcp-operator"));
    op.arg("run")
        .env("KUBECONFIG", &env.kubeconfig)
        .env("WATCH_NAMESPACES", &ns.name)
        .env("POD_NAMESPACE", &ns.name)
        .env("POD_NAME", "op-tls")
        .env("METRICS_ADDR", metrics.to_string())
        .env("LOG_FORMAT", "text")
        .env("NO_COLOR", "1");
    let operator = Process::spawn(op, op_log)?;
    let sample =
        std::fs::read_to_string(env.workspace.join("config/samples/tls-cert-manager.yaml"))?;
    env.apply(&ns.name, &sample).await?;

    // Issued by the CA chain: the Secret's ca.crt is the CA cert-manager made, not the leaf.
    let issued = env
        .wait_for(
            "Certificate secure-tls issued",
            Duration::from_secs(120),
            Some(&ns.name),
            || async {
                let c = kubectl_json(
                    env,
                    &[
                        "get",
                        "-n",
                        &ns.name,
                        "certificates.cert-manager.io",
                        TLS_SECRET,
                    ],
                )?;
                Ok(condition_true(&c, "Ready").then_some(c))
            },
        )
        .await
        .with_context(|| format!("cert-manager log:\n{}", controller.log_tail(30)))?;
    ensure!(
        issued["metadata"]["ownerReferences"][0]["kind"] == "ErlmcpCluster",
        "the Certificate is not the operator's: {}",
        issued["metadata"]
    );
    let data = secret_data(env, &ns.name, TLS_SECRET)?;
    let ca = secret_data(env, &cm_ns.name, "internal-ca")?;
    ensure!(
        data.get("ca.crt").and_then(|c| first_pem_cert(c))
            == ca.get("tls.crt").and_then(|c| first_pem_cert(c)),
        "{TLS_SECRET}'s ca.crt is not the internal CA"
    );
    let leaf = data
        .get("tls.crt")
        .and_then(|c| first_pem_cert(c))
        .context("no tls.crt")?;
    ensure!(
        Some(&leaf) != ca.get("tls.crt").and_then(|c| first_pem_cert(c)).as_ref(),
        "the leaf is the CA itself"
    );

    // Ready, with pods that mount the Secret and use it on their peer port.
    wait_cluster_ready(env, &ns.name)
        .await
        .with_context(|| format!("operator log:\n{}", operator.log_tail(30)))?;
    let sts = kubectl_json(env, &["get", "-n", &ns.name, "statefulset", SAMPLE_NAME])?;
    let mounts_secret = sts["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|v| v["secret"]["secretName"] == TLS_SECRET);
    ensure!(mounts_secret, "the pods do not mount {TLS_SECRET}");
    write_client_files(&dir, &data)?;
    peers_serve(env, &ns.name, &dir, &leaf).await?;
    let c = kubectl_json(env, &["get", "-n", &ns.name, "erlmcpcluster", SAMPLE_NAME])?;
    for m in c["status"]["members"].as_array().into_iter().flatten() {
        ensure!(
            m["peerCount"] == 2,
            "member {} does not see its two peers over mutual TLS: {m}",
            m["name"]
        );
    }

    // Renewal: a short duration (a field the operator does not own), then a reissue the way
    // `cmctl renew` asks for one (round 1); the short certificate then makes cert-manager renew
    // on its own (round 2).
    let patch = format!(
        "{{\"spec\": {{\"duration\": \"{SHORT_DURATION}\", \"renewBefore\": \"{SHORT_RENEW_BEFORE}\"}}}}"
    );
    env.kubectl(&[
        "patch",
        "-n",
        &ns.name,
        "certificates.cert-manager.io",
        TLS_SECRET,
        "--type=merge",
        "--field-manager=erlmcp-e2e-renewal",
        "-p",
        &patch,
    ])?;
    let issuing = r#"[{"op": "add", "path": "/status/conditions/-", "value": {"type": "Issuing",
        "status": "True", "reason": "ManuallyTriggered", "message": "renewal forced by the e2e case"}}]"#;
    env.kubectl(&[
        "patch",
        "-n",
        &ns.name,
        "certificates.cert-manager.io",
        TLS_SECRET,
        "--subresource=status",
        "--type=json",
        "--field-manager=erlmcp-e2e-renewal",
        "-p",
        issuing,
    ])?;
    let mut seen = vec![leaf];
    for round in 1..=2 {
        let fresh = env
            .wait_for(
                &format!("renewal {round} of {TLS_SECRET}"),
                Duration::from_secs(180),
                Some(&ns.name),
                || async {
                    let c =
                        kubectl_json(env, &["get", "-n", &ns.name, "erlmcpcluster", SAMPLE_NAME])?;
                    if condition_false(&c, "Available") {
                        bail!(
                            "the cluster went unavailable during the renewal: {}",
                            c["status"]
                        );
                    }
                    let d = secret_data(env, &ns.name, TLS_SECRET)?;
                    let leaf = d.get("tls.crt").and_then(|c| first_pem_cert(c));
                    Ok(leaf.filter(|l| !seen.contains(l)).map(|l| (l, d)))
                },
            )
            .await
            .with_context(|| format!("cert-manager log:\n{}", controller.log_tail(30)))?;
        let (leaf, data) = fresh;
        let crt = kubectl_json(
            env,
            &[
                "get",
                "-n",
                &ns.name,
                "certificates.cert-manager.io",
                TLS_SECRET,
            ],
        )?;
        ensure!(
            crt["spec"]["duration"] == SHORT_DURATION
                && crt["status"]["revision"].as_i64() > Some(round),
            "renewal {round}: certificate {}",
            crt["status"]
        );
        seen.push(leaf.clone());
        // The pods roll onto the new certificate; the cluster is Ready again and serves it.
        env.wait_for(
            &format!("pods serving renewal {round}"),
            Duration::from_secs(240),
            Some(&ns.name),
            || async {
                let c = kubectl_json(env, &["get", "-n", &ns.name, "erlmcpcluster", SAMPLE_NAME])?;
                if condition_false(&c, "Available") {
                    bail!(
                        "the cluster went unavailable during the renewal: {}",
                        c["status"]
                    );
                }
                let fresh = c["status"]["observedGeneration"] == c["metadata"]["generation"];
                let ready =
                    fresh && condition_true(&c, "Ready") && c["status"]["readyReplicas"] == 3;
                if !ready {
                    return Ok(None);
                }
                write_client_files(&dir, &data)?;
                Ok(peers_serve(env, &ns.name, &dir, &leaf).await.ok())
            },
        )
        .await
        .with_context(|| format!("operator log:\n{}", operator.log_tail(30)))?;
    }
    Ok(())
}
