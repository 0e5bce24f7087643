//! Pod volumes, materialised per pod under `<pod dir>/volumes/<name>` the way the kubelet lays
//! them out: ConfigMap, Secret, projected (service-account token via TokenRequest, ConfigMap,
//! Secret, downward API) and downward API volumes are written with the kubelet's atomic writer
//! (`..<timestamp>/` + `..data` symlink + one symlink per top-level entry) and re-synced while the
//! pod runs, so a changed ConfigMap reaches a running pod like it would in a cluster; emptyDir is
//! a plain directory; a PersistentVolumeClaim bound to a host-directory volume (the runner's
//! [`super::provisioner`] makes those) is that directory, linked in. hostPath and other kinds
//! are not supported: such a pod stays in ContainerCreating with a message saying so.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, DownwardAPIVolumeFile, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod,
    Secret, ServiceAccount, Volume,
};
use kube::api::PostParams;
use kube::{Api, Client};

use super::fields::{field_value, PodIps};

/// Relative path → (content, mode).
pub type Files = BTreeMap<String, (Vec<u8>, u32)>;

/// The volumes of one pod, and what is needed to keep them in sync.
pub struct PodVolumes {
    client: Client,
    dir: PathBuf,
    fs_group: Option<u32>,
    /// Last payload written per volume, to rewrite only on change.
    written: HashMap<String, Files>,
    /// Service-account tokens per (volume, source index): token and when to refresh it.
    tokens: HashMap<(String, usize), (String, Instant)>,
}

fn is_atomic(v: &Volume) -> bool {
    v.config_map.is_some()
        || v.secret.is_some()
        || v.projected.is_some()
        || v.downward_api.is_some()
}

impl PodVolumes {
    pub fn new(client: Client, pod_dir: &Path, fs_group: Option<u32>) -> Self {
        Self {
            client,
            dir: pod_dir.join("volumes"),
            fs_group,
            written: HashMap::new(),
            tokens: HashMap::new(),
        }
    }

    /// Host directory of a volume.
    pub fn path(&self, volume: &str) -> PathBuf {
        self.dir.join(volume)
    }

    /// Creates every volume, or fails with the first reason one cannot be made (the kubelet's
    /// FailedMount). Later calls refresh the atomic-writer volumes whose content changed.
    pub async fn sync(&mut self, pod: &Pod, ips: &PodIps) -> Result<()> {
        let vols = pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.clone())
            .unwrap_or_default();
        for v in &vols {
            let dir = self.path(&v.name);
            if v.empty_dir.is_some() {
                if !dir.exists() {
                    std::fs::create_dir_all(&dir)?;
                    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))?;
                    chown(&dir, self.fs_group);
                }
            } else if is_atomic(v) {
                let files = self
                    .payload(pod, ips, v)
                    .await
                    .with_context(|| format!("volume {:?}", v.name))?;
                if self.written.get(&v.name) != Some(&files) {
                    write_atomic(&dir, &files, self.fs_group)
                        .with_context(|| format!("writing volume {:?}", v.name))?;
                    self.written.insert(v.name.clone(), files);
                }
            } else if let Some(claim) = &v.persistent_volume_claim {
                if !dir.exists() {
                    let ns = pod.metadata.namespace.clone().unwrap_or_default();
                    let host = self
                        .claim_dir(&ns, &claim.claim_name)
                        .await
                        .with_context(|| format!("volume {:?}", v.name))?;
                    std::fs::create_dir_all(&host)?;
                    std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o777))?;
                    chown(&host, self.fs_group);
                    if let Some(parent) = dir.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    symlink(&host, &dir)?;
                }
            } else {
                let kind = if v.host_path.is_some() {
                    "hostPath"
                } else {
                    "this volume type"
                };
                bail!(
                    "volume {:?}: {kind} is not supported by the pod runner",
                    v.name
                );
            }
        }
        Ok(())
    }

    /// The host directory of a bound claim's volume (the kubelet's WaitForAttach, in short).
    async fn claim_dir(&self, ns: &str, claim: &str) -> Result<PathBuf> {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns);
        let pvc = claims
            .get_opt(claim)
            .await?
            .ok_or_else(|| anyhow!("persistentvolumeclaim {claim:?} not found"))?;
        let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
        let Some(volume) = pvc.spec.and_then(|s| s.volume_name).filter(|_| bound) else {
            bail!("persistentvolumeclaim {claim:?} is not bound yet");
        };
        let pvs: Api<PersistentVolume> = Api::all(self.client.clone());
        let pv = pvs.get(&volume).await?;
        let path = pv
            .spec
            .and_then(|s| s.host_path)
            .map(|h| PathBuf::from(h.path))
            .ok_or_else(|| anyhow!("volume {volume:?} is not a host directory"))?;
        Ok(path)
    }

    async fn payload(&mut self, pod: &Pod, ips: &PodIps, v: &Volume) -> Result<Files> {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let mut files = Files::new();
        if let Some(cm) = &v.config_map {
            let mode = cm.default_mode.unwrap_or(0o644) as u32;
            self.config_map_files(
                &ns,
                &cm.name,
                cm.items.as_deref(),
                cm.optional,
                mode,
                &mut files,
            )
            .await?;
        } else if let Some(s) = &v.secret {
            let mode = s.default_mode.unwrap_or(0o644) as u32;
            let name = s.secret_name.clone().unwrap_or_default();
            self.secret_files(&ns, &name, s.items.as_deref(), s.optional, mode, &mut files)
                .await?;
        } else if let Some(d) = &v.downward_api {
            let mode = d.default_mode.unwrap_or(0o644) as u32;
            downward_files(
                pod,
                ips,
                d.items.as_deref().unwrap_or_default(),
                mode,
                &mut files,
            )?;
        } else if let Some(p) = &v.projected {
            let mode = p.default_mode.unwrap_or(0o644) as u32;
            for (i, src) in p.sources.iter().flatten().enumerate() {
                if let Some(cm) = &src.config_map {
                    self.config_map_files(
                        &ns,
                        &cm.name,
                        cm.items.as_deref(),
                        cm.optional,
                        mode,
                        &mut files,
                    )
                    .await?;
                }
                if let Some(s) = &src.secret {
                    self.secret_files(
                        &ns,
                        &s.name,
                        s.items.as_deref(),
                        s.optional,
                        mode,
                        &mut files,
                    )
                    .await?;
                }
                if let Some(d) = &src.downward_api {
                    downward_files(
                        pod,
                        ips,
                        d.items.as_deref().unwrap_or_default(),
                        mode,
                        &mut files,
                    )?;
                }
                if let Some(t) = &src.service_account_token {
                    let token = self
                        .token(pod, &v.name, i, t.audience.clone(), t.expiration_seconds)
                        .await?;
                    files.insert(t.path.clone(), (token.into_bytes(), mode));
                }
            }
        }
        for p in files.keys() {
            check_rel_path(p)?;
        }
        Ok(files)
    }

    async fn config_map_files(
        &self,
        ns: &str,
        name: &str,
        items: Option<&[KeyToPath]>,
        optional: Option<bool>,
        mode: u32,
        out: &mut Files,
    ) -> Result<()> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns);
        let Some(cm) = api.get_opt(name).await? else {
            if optional == Some(true) {
                return Ok(());
            }
            bail!("configmap {name:?} not found");
        };
        let mut data: BTreeMap<String, Vec<u8>> = cm
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect();
        data.extend(
            cm.binary_data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0)),
        );
        project(
            &format!("configmap {name:?}"),
            data,
            items,
            optional,
            mode,
            out,
        )
    }

    async fn secret_files(
        &self,
        ns: &str,
        name: &str,
        items: Option<&[KeyToPath]>,
        optional: Option<bool>,
        mode: u32,
        out: &mut Files,
    ) -> Result<()> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let Some(s) = api.get_opt(name).await? else {
            if optional == Some(true) {
                return Ok(());
            }
            bail!("secret {name:?} not found");
        };
        let mut data: BTreeMap<String, Vec<u8>> = s
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        data.extend(
            s.string_data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes())),
        );
        project(
            &format!("secret {name:?}"),
            data,
            items,
            optional,
            mode,
            out,
        )
    }

    /// A bound service-account token for this pod (TokenRequest), refreshed at 80% of its life.
    async fn token(
        &mut self,
        pod: &Pod,
        vol: &str,
        idx: usize,
        audience: Option<String>,
        expiration: Option<i64>,
    ) -> Result<String> {
        let key = (vol.to_string(), idx);
        if let Some((tok, refresh_at)) = self.tokens.get(&key) {
            if Instant::now() < *refresh_at {
                return Ok(tok.clone());
            }
        }
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let sa = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into());
        let secs = expiration.unwrap_or(3600).max(600);
        let req = TokenRequest {
            spec: TokenRequestSpec {
                audiences: audience.into_iter().collect(),
                expiration_seconds: Some(secs),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: pod.metadata.name.clone(),
                    uid: pod.metadata.uid.clone(),
                }),
            },
            ..Default::default()
        };
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &ns);
        let got = api
            .create_token_request(&sa, &PostParams::default(), &req)
            .await
            .with_context(|| format!("token request for service account {sa:?}"))?;
        let tok = got
            .status
            .map(|s| s.token)
            .ok_or_else(|| anyhow!("token request for {sa:?} returned no token"))?;
        let refresh = Instant::now() + Duration::from_secs((secs as u64) * 8 / 10);
        self.tokens.insert(key, (tok.clone(), refresh));
        Ok(tok)
    }
}

/// Keys → files, honouring `items` (key, path, mode) like the kubelet.
fn project(
    what: &str,
    data: BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    optional: Option<bool>,
    mode: u32,
    out: &mut Files,
) -> Result<()> {
    match items {
        None => {
            for (k, v) in data {
                out.insert(k, (v, mode));
            }
        }
        Some(items) => {
            for it in items {
                match data.get(&it.key) {
                    Some(v) => {
                        out.insert(
                            it.path.clone(),
                            (v.clone(), it.mode.map(|m| m as u32).unwrap_or(mode)),
                        );
                    }
                    None if optional == Some(true) => {}
                    None => bail!("{what} has no key {:?}", it.key),
                }
            }
        }
    }
    Ok(())
}

fn downward_files(
    pod: &Pod,
    ips: &PodIps,
    items: &[DownwardAPIVolumeFile],
    mode: u32,
    out: &mut Files,
) -> Result<()> {
    for it in items {
        let value = if let Some(f) = &it.field_ref {
            field_value(pod, ips, &f.field_path)
                .ok_or_else(|| anyhow!("unsupported fieldRef {:?}", f.field_path))?
        } else if let Some(r) = &it.resource_field_ref {
            super::fields::resource_value(pod, r.container_name.as_deref(), &r.resource)
        } else {
            bail!("downward API item {:?} has no source", it.path);
        };
        out.insert(
            it.path.clone(),
            (
                value.into_bytes(),
                it.mode.map(|m| m as u32).unwrap_or(mode),
            ),
        );
    }
    Ok(())
}

fn check_rel_path(p: &str) -> Result<()> {
    let path = Path::new(p);
    if p.is_empty()
        || path
            .components()
            .any(|c| !matches!(c, Component::Normal(n) if !n.to_string_lossy().starts_with("..")))
    {
        bail!("invalid volume file path {p:?}");
    }
    Ok(())
}

fn chown(p: &Path, gid: Option<u32>) {
    if let Some(g) = gid {
        let _ = std::os::unix::fs::chown(p, None, Some(g));
    }
}

/// The kubelet's atomic writer: all files into a fresh `..<timestamp>` directory, then the
/// `..data` symlink swapped to it in one rename; top-level entries are symlinks into `..data`.
/// A reader sees the old set or the new set, never a mix.
pub fn write_atomic(dir: &Path, files: &Files, gid: Option<u32>) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let ts = format!("..{}", chrono::Utc::now().format("%Y_%m_%d_%H_%M_%S.%9f"));
    let tsdir = dir.join(&ts);
    std::fs::create_dir(&tsdir)?;
    std::fs::set_permissions(&tsdir, std::fs::Permissions::from_mode(0o755))?;
    for (rel, (data, mode)) in files {
        let p = tsdir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, data)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode))?;
        chown(&p, gid);
    }
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    symlink(&ts, &tmp)?;
    std::fs::rename(&tmp, dir.join("..data"))?;
    let tops: BTreeSet<String> = files
        .keys()
        .filter_map(|k| k.split('/').next().map(str::to_string))
        .collect();
    for t in &tops {
        let link = dir.join(t);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(format!("..data/{t}"), &link)?;
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ft = entry.file_type()?;
        if name.starts_with("..") {
            if ft.is_dir() && name != ts {
                std::fs::remove_dir_all(entry.path())?;
            }
        } else if ft.is_symlink() && !tops.contains(&name) {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(pairs: &[(&str, &str, u32)]) -> Files {
        pairs
            .iter()
            .map(|(k, v, m)| (k.to_string(), (v.as_bytes().to_vec(), *m)))
            .collect()
    }

    #[test]
    fn atomic_writer_swaps_content_and_drops_stale_keys() {
        let dir = std::env::temp_dir().join(format!("erlmcp-aw-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        write_atomic(
            &dir,
            &files(&[("a", "1", 0o644), ("sub/b", "2", 0o400)]),
            None,
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "1");
        assert_eq!(std::fs::read_to_string(dir.join("sub/b")).unwrap(), "2");
        let m = std::fs::metadata(dir.join("sub/b")).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o400);
        write_atomic(&dir, &files(&[("a", "3", 0o644)]), None).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "3");
        assert!(!dir.join("sub").exists(), "stale key removed");
        let stamps = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                let n = e.as_ref().unwrap().file_name();
                let n = n.to_string_lossy();
                n.starts_with("..") && n != "..data"
            })
            .count();
        assert_eq!(stamps, 1, "old generation removed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn items_select_and_rename_keys() {
        let data: BTreeMap<String, Vec<u8>> = [
            ("k1".to_string(), b"v1".to_vec()),
            ("k2".to_string(), b"v2".to_vec()),
        ]
        .into();
        let items = vec![KeyToPath {
            key: "k2".into(),
            path: "dir/two".into(),
            mode: Some(0o600),
        }];
        let mut out = Files::new();
        project("cm", data.clone(), Some(&items), None, 0o644, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out["dir/two"], (b"v2".to_vec(), 0o600));
        let missing = vec![KeyToPath {
            key: "nope".into(),
            path: "x".into(),
            mode: None,
        }];
        assert!(project(
            "cm",
            data.clone(),
            Some(&missing),
            None,
            0o644,
            &mut Files::new()
        )
        .is_err());
        assert!(project(
            "cm",
            data,
            Some(&missing),
            Some(true),
            0o644,
            &mut Files::new()
        )
        .is_ok());
        assert!(check_rel_path("../etc/passwd").is_err());
        assert!(check_rel_path("/abs").is_err());
        assert!(check_rel_path("a/b").is_ok());
    }
}
