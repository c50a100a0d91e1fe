//! What the kubelet stand-in prepares before a container starts: its
//! volumes as directories, its environment from Secrets, ConfigMaps and
//! the pod's fields, `$(VAR)` expansion, and the mount paths rewritten to
//! those directories in its arguments, environment and working directory
//! (there is no mount namespace; see the module above).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::Value;

use super::{Shared, str_at};
use crate::{Error, Result};

/// Why a container cannot start yet: the waiting reason and message its
/// status shows (`ContainerCreating` for a volume that cannot be set up,
/// `CreateContainerConfigError` for a missing Secret or key).
pub(super) type NotReady = (&'static str, String);

/// One container, ready to run.
pub(super) struct Plan {
    pub name: String,
    /// The command's first word as the pod spells it.
    pub word: String,
    /// The executable it maps to; `None` when nothing does.
    pub program: Option<PathBuf>,
    /// Arguments after the first word, expanded and rewritten.
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// Each mount path and its directory, longest path first (for exec).
    pub mounts: Vec<(String, PathBuf)>,
}

/// Prepares every container of `pod` on `node`.
pub(super) async fn prepare(
    shared: &Shared,
    pod: &Value,
    node: &str,
) -> Result<std::result::Result<Vec<Plan>, NotReady>> {
    let uid = str_at(pod, "/metadata/uid");
    let pod_dir = shared
        .config
        .host_path(node, &format!("var/lib/kubelet/pods/{uid}"));
    let volumes = match set_up_volumes(shared, pod, node, &pod_dir).await? {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    let mut plans = Vec::new();
    for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
        match plan(shared, pod, node, c, &volumes, &pod_dir).await? {
            Ok(p) => plans.push(p),
            Err(e) => return Ok(Err(e)),
        }
    }
    Ok(Ok(plans))
}

async fn plan(
    shared: &Shared,
    pod: &Value,
    node: &str,
    c: &Value,
    volumes: &BTreeMap<String, PathBuf>,
    pod_dir: &Path,
) -> Result<std::result::Result<Plan, NotReady>> {
    let name = str_at(c, "/name").to_string();
    let mut mounts: Vec<(String, PathBuf)> = Vec::new();
    for m in c["volumeMounts"].as_array().into_iter().flatten() {
        let volume = str_at(m, "/name");
        let Some(dir) = volumes.get(volume) else {
            return Ok(Err((
                "CreateContainerConfigError",
                format!("volume \"{volume}\" of container {name} is not one of the pod's volumes"),
            )));
        };
        let sub = str_at(m, "/subPath");
        let dir = if sub.is_empty() {
            dir.clone()
        } else {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).map_err(|e| Error::io("create", &d, e))?;
            d
        };
        let path = str_at(m, "/mountPath").trim_end_matches('/').to_string();
        mounts.push((path, dir));
    }
    // A raw block device (a Block-mode claim) is its image file attached
    // to a loop device when this runs as root (as the kubelet hands a
    // container a real device), else the image file itself: the device
    // path in arguments and environment names it.
    for d in c["volumeDevices"].as_array().into_iter().flatten() {
        let volume = str_at(d, "/name");
        let Some(image) = volumes.get(volume) else {
            return Ok(Err((
                "CreateContainerConfigError",
                format!(
                    "volume device \"{volume}\" of container {name} is not one of the pod's volumes"
                ),
            )));
        };
        let device = attach(shared, str_at(pod, "/metadata/uid"), image);
        mounts.push((str_at(d, "/devicePath").to_string(), device));
    }
    mounts.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    let env = match environment(shared, pod, node, c).await? {
        Ok(e) => e,
        Err(e) => return Ok(Err(e)),
    };
    let lookup: BTreeMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let words: Vec<String> = ["command", "args"]
        .iter()
        .flat_map(|k| c[*k].as_array().cloned().unwrap_or_default())
        .filter_map(|w| w.as_str().map(|w| expand(w, &lookup)))
        .collect();
    let word = if c["command"].as_array().is_some_and(|a| !a.is_empty()) {
        words.first().cloned().unwrap_or_default()
    } else {
        String::new()
    };
    let args = if word.is_empty() {
        Vec::new()
    } else {
        words[1..].iter().map(|a| rewrite(a, &mounts)).collect()
    };
    let mut env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.clone(), rewrite(v, &mounts)))
        .collect();
    let home = pod_dir.join("home").join(&name);
    std::fs::create_dir_all(&home).map_err(|e| Error::io("create", &home, e))?;
    let mut base = vec![
        (
            "PATH".to_string(),
            format!(
                "{}:{}",
                shared.bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        ),
        ("HOME".to_string(), home.display().to_string()),
        (
            "HOSTNAME".to_string(),
            str_at(pod, "/metadata/name").to_string(),
        ),
    ];
    if pod["spec"]["automountServiceAccountToken"].as_bool() != Some(false) {
        let kubeconfig = write_kubeconfig(shared, pod, pod_dir)?;
        base.push(("KUBECONFIG".into(), kubeconfig.display().to_string()));
    }
    base.retain(|(k, _)| !env.iter().any(|(e, _)| e == k));
    env.extend(base);
    let working = str_at(c, "/workingDir");
    let cwd = if working.is_empty() {
        pod_dir.to_path_buf()
    } else {
        PathBuf::from(rewrite(working, &mounts))
    };
    Ok(Ok(Plan {
        program: shared.config.executable(&word).map(Path::to_path_buf),
        name,
        word,
        args,
        env,
        cwd,
        mounts,
    }))
}

/// `image` on a loop device for pod `uid` (one per image and pod, detached
/// when the pod ends), or `image` when no loop device can be had.
fn attach(shared: &Shared, uid: &str, image: &Path) -> PathBuf {
    let mut loops = super::super::lock(&shared.loops);
    let mine = loops.entry(uid.to_string()).or_default();
    if let Some((_, dev)) = mine.iter().find(|(i, _)| i == image) {
        return dev.clone();
    }
    if !hokan_core::fs::is_root() {
        return image.to_path_buf();
    }
    let out = std::process::Command::new("losetup")
        .args(["--find", "--show"])
        .arg(image)
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let dev = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
            mine.push((image.to_path_buf(), dev.clone()));
            dev
        }
        _ => image.to_path_buf(),
    }
}

/// Detaches the loop devices of pod `uid`.
pub(super) fn detach(shared: &Shared, uid: &str) {
    let gone = super::super::lock(&shared.loops).remove(uid);
    for (_, dev) in gone.into_iter().flatten() {
        let _ = std::process::Command::new("losetup")
            .arg("-d")
            .arg(&dev)
            .status();
    }
}

/// A kubeconfig reaching the server as the pod's service account (the
/// token names it), in place of the token a real pod gets mounted.
fn write_kubeconfig(shared: &Shared, pod: &Value, pod_dir: &Path) -> Result<PathBuf> {
    let ns = str_at(pod, "/metadata/namespace");
    let account = match str_at(pod, "/spec/serviceAccountName") {
        "" => "default",
        a => a,
    };
    let user = format!("system:serviceaccount:{ns}:{account}");
    let text = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: in-cluster\n\
         clusters:\n- name: in-cluster\n  cluster:\n    server: {}\n\
         users:\n- name: sa\n  user:\n    token: \"{user}\"\n\
         contexts:\n- name: in-cluster\n  context:\n    cluster: in-cluster\n    user: sa\n    namespace: {ns}\n",
        shared.url
    );
    std::fs::create_dir_all(pod_dir).map_err(|e| Error::io("create", pod_dir, e))?;
    let path = pod_dir.join("kubeconfig");
    std::fs::write(&path, text).map_err(|e| Error::io("write", &path, e))?;
    Ok(path)
}

/// The pod's volumes by name, each a directory on this machine.
async fn set_up_volumes(
    shared: &Shared,
    pod: &Value,
    node: &str,
    pod_dir: &Path,
) -> Result<std::result::Result<BTreeMap<String, PathBuf>, NotReady>> {
    let ns = str_at(pod, "/metadata/namespace");
    let mut out = BTreeMap::new();
    for v in pod["spec"]["volumes"].as_array().into_iter().flatten() {
        let name = str_at(v, "/name").to_string();
        let failed = |why: String| {
            Ok(Err((
                "ContainerCreating",
                format!("MountVolume.SetUp failed for volume \"{name}\" : {why}"),
            )))
        };
        let dir = if let Some(host) = v.get("hostPath") {
            let path = str_at(host, "/path");
            let dir = shared.config.host_path(node, path);
            match str_at(host, "/type") {
                "Directory" if !dir.is_dir() => {
                    return failed(format!(
                        "hostPath type check failed: {path} is not a directory"
                    ));
                }
                "File" if !dir.is_file() => {
                    return failed(format!("hostPath type check failed: {path} is not a file"));
                }
                "FileOrCreate" => {
                    if let Some(parent) = dir.parent() {
                        std::fs::create_dir_all(parent)
                            .map_err(|e| Error::io("create", parent, e))?;
                    }
                    if !dir.exists() {
                        std::fs::write(&dir, b"").map_err(|e| Error::io("create", &dir, e))?;
                    }
                }
                "" | "DirectoryOrCreate" => {
                    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
                }
                _ => {}
            }
            dir
        } else if v.get("emptyDir").is_some() {
            let dir = pod_dir.join("volumes/kubernetes.io~empty-dir").join(&name);
            std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
            dir
        } else if let Some(s) = v.get("secret") {
            let dir = pod_dir.join("volumes/kubernetes.io~secret").join(&name);
            let secret = str_at(s, "/secretName");
            let path = format!("/api/v1/namespaces/{ns}/secrets/{secret}");
            let files = match shared.cluster.get(&path).await? {
                Some(obj) => decoded(&obj["data"], true),
                None if s["optional"] == true => BTreeMap::new(),
                None => return failed(format!("secret \"{secret}\" not found")),
            };
            if let Err(why) = write_files(&dir, s, files)? {
                return failed(why);
            }
            dir
        } else if let Some(cm) = v.get("configMap") {
            let dir = pod_dir.join("volumes/kubernetes.io~configmap").join(&name);
            let map = str_at(cm, "/name");
            let path = format!("/api/v1/namespaces/{ns}/configmaps/{map}");
            let files = match shared.cluster.get(&path).await? {
                Some(obj) => {
                    let mut f = decoded(&obj["data"], false);
                    f.extend(decoded(&obj["binaryData"], true));
                    f
                }
                None if cm["optional"] == true => BTreeMap::new(),
                None => return failed(format!("configmap \"{map}\" not found")),
            };
            if let Err(why) = write_files(&dir, cm, files)? {
                return failed(why);
            }
            dir
        } else if let Some(claim) = v.get("persistentVolumeClaim") {
            match claim_directory(shared, ns, str_at(claim, "/claimName"), node).await? {
                Ok(d) => d,
                Err(why) => return failed(why),
            }
        } else {
            return Ok(Err((
                "CreateContainerConfigError",
                format!(
                    "the kubelet stand-in cannot set up volume \"{name}\": only hostPath, emptyDir, secret, configMap and persistentVolumeClaim volumes are supported"
                ),
            )));
        };
        out.insert(name, dir);
    }
    Ok(Ok(out))
}

/// The directory of a bound claim's volume on `node`: a `hostPath` or
/// `local` PersistentVolume's path there, or what the CSI driver's hook
/// names.
async fn claim_directory(
    shared: &Shared,
    ns: &str,
    claim: &str,
    node: &str,
) -> Result<std::result::Result<PathBuf, String>> {
    let path = format!("/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim}");
    let Some(pvc) = shared.cluster.get(&path).await? else {
        return Ok(Err(format!("persistentvolumeclaim \"{claim}\" not found")));
    };
    let volume = str_at(&pvc, "/spec/volumeName");
    let pv = match shared
        .cluster
        .get(&format!("/api/v1/persistentvolumes/{volume}"))
        .await?
    {
        Some(pv) if !volume.is_empty() => pv,
        _ => return Ok(Err(format!("claim \"{claim}\" is not bound to a volume"))),
    };
    for key in ["/spec/hostPath/path", "/spec/local/path"] {
        let p = str_at(&pv, key);
        if !p.is_empty() {
            let dir = shared.config.host_path(node, p);
            std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
            return Ok(Ok(dir));
        }
    }
    let driver = str_at(&pv, "/spec/csi/driver");
    if !driver.is_empty() {
        let handle = str_at(&pv, "/spec/csi/volumeHandle");
        return Ok(match shared.config.csi.get(driver) {
            Some(csi) => csi.directory(handle, node).ok_or_else(|| {
                format!("volume {handle} of CSI driver {driver} is not ready on node {node}")
            }),
            None => Err(format!(
                "driver name {driver} not found in the list of registered CSI drivers"
            )),
        });
    }
    Ok(Err(format!(
        "volume {volume} is neither hostPath, local nor CSI: the kubelet stand-in cannot mount it"
    )))
}

/// A Secret's or ConfigMap's data as bytes.
fn decoded(data: &Value, base64: bool) -> BTreeMap<String, Vec<u8>> {
    let engine = base64::engine::general_purpose::STANDARD;
    data.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            let s = v.as_str()?;
            let bytes = if base64 {
                engine.decode(s).ok()?
            } else {
                s.as_bytes().to_vec()
            };
            Some((k.clone(), bytes))
        })
        .collect()
}

/// Writes a secret or configMap volume: every key, or `items` (`key`,
/// `path`, `mode`), with `defaultMode` (0644 unless given). A fresh copy
/// each time, as the kubelet's atomic writer leaves only current keys.
fn write_files(
    dir: &Path,
    source: &Value,
    files: BTreeMap<String, Vec<u8>>,
) -> Result<std::result::Result<(), String>> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| Error::io("remove", dir, e))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    let default_mode = source["defaultMode"].as_u64().unwrap_or(0o644) as u32;
    let mut wanted: Vec<(String, String, u32)> = Vec::new();
    match source["items"].as_array() {
        Some(items) => {
            for item in items {
                let key = str_at(item, "/key").to_string();
                if !files.contains_key(&key) {
                    if source["optional"] == true {
                        continue;
                    }
                    return Ok(Err(format!(
                        "configmap or secret references non-existent key {key}"
                    )));
                }
                let mode = item["mode"].as_u64().map_or(default_mode, |m| m as u32);
                wanted.push((key, str_at(item, "/path").to_string(), mode));
            }
        }
        None => wanted.extend(files.keys().map(|k| (k.clone(), k.clone(), default_mode))),
    }
    for (key, path, mode) in wanted {
        let file = dir.join(&path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
        }
        std::fs::write(&file, &files[&key]).map_err(|e| Error::io("write", &file, e))?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("chmod", &file, e))?;
    }
    Ok(Ok(()))
}

/// The container's environment from `envFrom` then `env`, in order, with
/// `$(VAR)` references to earlier variables expanded (values not yet
/// rewritten).
async fn environment(
    shared: &Shared,
    pod: &Value,
    node: &str,
    c: &Value,
) -> Result<std::result::Result<Vec<(String, String)>, NotReady>> {
    let ns = str_at(pod, "/metadata/namespace");
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        env.retain(|(e, _)| *e != k);
        env.push((k, v));
    };
    let config_error = |m: String| Ok(Err(("CreateContainerConfigError", m)));
    for from in c["envFrom"].as_array().into_iter().flatten() {
        let prefix = str_at(from, "/prefix");
        let (kind, source) = match (from.get("secretRef"), from.get("configMapRef")) {
            (Some(s), _) => ("secret", s),
            (_, Some(m)) => ("configmap", m),
            _ => continue,
        };
        let name = str_at(source, "/name");
        match fetch_data(shared, ns, kind, name).await? {
            Some(data) => {
                for (k, v) in data {
                    set(
                        &mut env,
                        format!("{prefix}{k}"),
                        String::from_utf8_lossy(&v).into_owned(),
                    );
                }
            }
            None if source["optional"] == true => {}
            None => return config_error(format!("{kind} \"{name}\" not found")),
        }
    }
    for e in c["env"].as_array().into_iter().flatten() {
        let key = str_at(e, "/name").to_string();
        let value = if let Some(from) = e.get("valueFrom") {
            let (kind, r) = match (from.get("secretKeyRef"), from.get("configMapKeyRef")) {
                (Some(r), _) => ("secret", Some(r)),
                (_, Some(r)) => ("configmap", Some(r)),
                _ => ("", None),
            };
            if let Some(r) = r {
                let (name, k) = (str_at(r, "/name"), str_at(r, "/key"));
                let data = fetch_data(shared, ns, kind, name).await?;
                match data.as_ref().and_then(|d| d.get(k)) {
                    Some(v) => String::from_utf8_lossy(v).into_owned(),
                    None if r["optional"] == true => continue,
                    None if data.is_none() => {
                        return config_error(format!("{kind} \"{name}\" not found"));
                    }
                    None => {
                        let kind = if kind == "secret" {
                            "Secret"
                        } else {
                            "ConfigMap"
                        };
                        return config_error(format!(
                            "couldn't find key {k} in {kind} {ns}/{name}"
                        ));
                    }
                }
            } else if let Some(f) = from.get("fieldRef") {
                match field(pod, node, str_at(f, "/fieldPath")) {
                    Some(v) => v,
                    None => {
                        return config_error(format!(
                            "unsupported fieldPath {}",
                            str_at(f, "/fieldPath")
                        ));
                    }
                }
            } else {
                return config_error(format!(
                    "the kubelet stand-in cannot resolve the value of {key}"
                ));
            }
        } else {
            let lookup: BTreeMap<&str, &str> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            expand(str_at(e, "/value"), &lookup)
        };
        set(&mut env, key, value);
    }
    Ok(Ok(env))
}

async fn fetch_data(
    shared: &Shared,
    ns: &str,
    kind: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, Vec<u8>>>> {
    let path = format!("/api/v1/namespaces/{ns}/{kind}s/{name}");
    Ok(shared.cluster.get(&path).await?.map(|obj| {
        if kind == "secret" {
            decoded(&obj["data"], true)
        } else {
            let mut d = decoded(&obj["data"], false);
            d.extend(decoded(&obj["binaryData"], true));
            d
        }
    }))
}

/// A `fieldRef` of the downward API.
fn field(pod: &Value, node: &str, path: &str) -> Option<String> {
    let meta = &pod["metadata"];
    let quoted = |prefix: &str| {
        path.strip_prefix(prefix)?
            .strip_suffix("']")
            .map(str::to_string)
    };
    Some(match path {
        "metadata.name" | "metadata.namespace" | "metadata.uid" => {
            meta[&path["metadata.".len()..]].as_str()?.to_string()
        }
        "spec.nodeName" => node.to_string(),
        "spec.serviceAccountName" => str_at(pod, "/spec/serviceAccountName").to_string(),
        "status.hostIP" | "status.podIP" | "status.hostIPs" | "status.podIPs" => {
            "127.0.0.1".to_string()
        }
        _ => {
            if let Some(k) = quoted("metadata.labels['") {
                meta["labels"][&k].as_str().unwrap_or_default().to_string()
            } else if let Some(k) = quoted("metadata.annotations['") {
                meta["annotations"][&k]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            } else {
                return None;
            }
        }
    })
}

/// `$(VAR)` replaced by the variable's value when it is defined (left as
/// is otherwise), `$$` by `$`, as the kubelet expands commands and values.
pub(super) fn expand(s: &str, vars: &BTreeMap<&str, &str>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(')
            && let Some(end) = body.find(')')
            && let Some(v) = vars.get(&body[..end])
        {
            out.push_str(v);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn separator(c: char) -> bool {
    c.is_whitespace() || "=:,;\"'`()<>|&".contains(c)
}

/// Each mount path in `s` (at the start or after a separator, ending at the
/// end, a `/` or a separator) replaced by its directory; `mounts` longest
/// path first.
pub(super) fn rewrite(s: &str, mounts: &[(String, PathBuf)]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut previous: Option<char> = None;
    'scan: while i < s.len() {
        if previous.is_none_or(separator) {
            for (path, dir) in mounts {
                if path.is_empty() || !s[i..].starts_with(path.as_str()) {
                    continue;
                }
                let next = s[i + path.len()..].chars().next();
                if next.is_none_or(|c| c == '/' || separator(c)) {
                    out.push_str(&dir.display().to_string());
                    i += path.len();
                    previous = path.chars().last();
                    continue 'scan;
                }
            }
        }
        let c = s[i..].chars().next().unwrap_or_default();
        out.push(c);
        previous = Some(c);
        i += c.len_utf8();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_rewritten_at_word_boundaries_only() {
        let mounts = vec![
            ("/data/sub".to_string(), PathBuf::from("/n/x")),
            ("/data".to_string(), PathBuf::from("/n/d")),
            ("/repo".to_string(), PathBuf::from("/n/r")),
        ];
        assert_eq!(rewrite("/data", &mounts), "/n/d");
        assert_eq!(rewrite("/data/a b", &mounts), "/n/d/a b");
        assert_eq!(rewrite("/data/sub/f", &mounts), "/n/x/f");
        assert_eq!(rewrite("--repo=/repo", &mounts), "--repo=/n/r");
        assert_eq!(rewrite("latest:/data", &mounts), "latest:/n/d");
        assert_eq!(
            rewrite("cat '/repo/pw' > /data/x", &mounts),
            "cat '/n/r/pw' > /n/d/x"
        );
        assert_eq!(rewrite("/database /x/data", &mounts), "/database /x/data");
    }

    #[test]
    fn variables_expand_as_the_kubelet_expands_them() {
        let vars = BTreeMap::from([("A", "1"), ("B", "two")]);
        assert_eq!(expand("$(A)-$(B)-$(C)-$$(A)-$", &vars), "1-two-$(C)-$(A)-$");
    }
}
