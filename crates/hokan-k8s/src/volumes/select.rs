//! Which volumes of a pod to back up, as Velero's file-system backup picks
//! them: the pod's opt-in annotation, or every volume but the opt-out
//! annotation's with `default_volumes_to_fs_backup`; never the volumes
//! whose content is an API object or the node's own files.

use serde::Serialize;
use serde_json::Value;

/// Opt-in: the volumes to back up, comma-separated (Velero's annotation).
pub const BACKUP_VOLUMES: &str = "backup.velero.io/backup-volumes";
/// Opt-out under `default_volumes_to_fs_backup`, comma-separated.
pub const BACKUP_VOLUMES_EXCLUDES: &str = "backup.velero.io/backup-volumes-excludes";

/// What kind of volume a pod declares, as far as a backup cares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "type", content = "claim")]
pub enum VolumeKind {
    /// A `persistentVolumeClaim` volume; the claim's name.
    Pvc(String),
    /// An `emptyDir` volume: lives as long as the pod.
    EmptyDir,
    /// Any other volume source with data (`nfs`, `csi`, `ephemeral`...); its key.
    Other(String),
}

/// A volume chosen for backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PodVolume {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The pod's UID: the kubelet's directory for it.
    pub pod_uid: String,
    /// The volume's name in the pod spec.
    pub volume: String,
    /// Its kind (and claim).
    pub kind: VolumeKind,
}

impl PodVolume {
    /// The claim's name, for PVC volumes.
    pub fn pvc(&self) -> Option<&str> {
        match &self.kind {
            VolumeKind::Pvc(c) => Some(c),
            _ => None,
        }
    }

    /// What the volume's snapshots are a backup of: `<namespace>/<pvc>` for
    /// a claim (the same data whichever pod mounts it, so the chain of
    /// parents survives rescheduling), `<namespace>/<pod>/<volume>` else.
    pub fn identity(&self) -> String {
        match self.pvc() {
            Some(claim) => format!("{}/{claim}", self.namespace),
            None => format!("{}/{}/{}", self.namespace, self.pod, self.volume),
        }
    }
}

/// A volume left out, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SkippedVolume {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The volume's name.
    pub volume: String,
    /// Why it is not backed up.
    pub reason: String,
    /// It was picked, but its directory is not on the node: data that
    /// should have been backed up and was not (an error to a caller that
    /// chose the pod), unlike the volumes left out by choice.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub missing: bool,
}

/// Volumes of one pod, picked and left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// To back up.
    pub picked: Vec<PodVolume>,
    /// Left out, with reasons.
    pub skipped: Vec<SkippedVolume>,
}

fn names(annotations: Option<&Value>, key: &str) -> Vec<String> {
    annotations
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(String::from)
        .collect()
}

/// Why a volume of this source is never backed up, if it is one of those.
fn never(source: &str, volume: &Value) -> Option<&'static str> {
    Some(match source {
        "secret" => "a secret volume: its content is a Secret, backed up with the resources",
        "configMap" => {
            "a configMap volume: its content is a ConfigMap, backed up with the resources"
        }
        "downwardAPI" => "a downwardAPI volume: its content is the pod's own fields",
        "projected" => {
            let token = volume
                .pointer("/projected/sources")
                .and_then(Value::as_array)
                .is_some_and(|s| s.iter().any(|s| s.get("serviceAccountToken").is_some()));
            if token {
                "a service-account token volume: the kubelet issues a new token to the new pod"
            } else {
                "a projected volume: its content is API objects, backed up with the resources"
            }
        }
        "hostPath" => {
            "a hostPath volume: the node's own files, not the pod's (Velero skips them too)"
        }
        _ => return None,
    })
}

/// The volume source's key (`persistentVolumeClaim`, `emptyDir`...).
fn source_of(volume: &Value) -> String {
    volume
        .as_object()
        .and_then(|o| o.keys().find(|k| *k != "name"))
        .cloned()
        .unwrap_or_default()
}

/// Picks the volumes of `pod` (a Pod as the API serves it) to back up.
pub fn select(pod: &Value, default_volumes_to_fs_backup: bool) -> Selection {
    let text = |p: &str| pod.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let (namespace, name, uid) = (
        text("/metadata/namespace"),
        text("/metadata/name"),
        text("/metadata/uid"),
    );
    let annotations = pod.pointer("/metadata/annotations");
    let opted_in = names(annotations, BACKUP_VOLUMES);
    let opted_out = names(annotations, BACKUP_VOLUMES_EXCLUDES);
    let volumes = pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = Selection::default();
    let skip = |volume: &str, reason: String| SkippedVolume {
        namespace: namespace.into(),
        pod: name.into(),
        volume: volume.into(),
        reason,
        missing: false,
    };
    // A pod that is not running has nothing mounted, or is going away.
    let phase = text("/status/phase");
    let running = phase == "Running";
    for v in &volumes {
        let volume = v.get("name").and_then(Value::as_str).unwrap_or_default();
        let source = source_of(v);
        let wanted = if default_volumes_to_fs_backup {
            !opted_out.iter().any(|n| n == volume)
        } else {
            opted_in.iter().any(|n| n == volume)
        };
        if !wanted {
            let reason = if default_volumes_to_fs_backup {
                format!("listed in {BACKUP_VOLUMES_EXCLUDES}")
            } else {
                format!(
                    "not listed in the pod's {BACKUP_VOLUMES} annotation (or back up every volume with default-volumes-to-fs-backup)"
                )
            };
            out.skipped.push(skip(volume, reason));
            continue;
        }
        if let Some(why) = never(&source, v) {
            out.skipped.push(skip(volume, why.into()));
            continue;
        }
        if !running {
            let phase = if phase.is_empty() { "unknown" } else { phase };
            out.skipped.push(skip(
                volume,
                format!("the pod is {phase}, not Running: its volumes may not be mounted"),
            ));
            continue;
        }
        let kind = match source.as_str() {
            "persistentVolumeClaim" => VolumeKind::Pvc(
                v.pointer("/persistentVolumeClaim/claimName")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .into(),
            ),
            "emptyDir" => VolumeKind::EmptyDir,
            other => VolumeKind::Other(other.into()),
        };
        out.picked.push(PodVolume {
            namespace: namespace.into(),
            pod: name.into(),
            pod_uid: uid.into(),
            volume: volume.into(),
            kind,
        });
    }
    // An opt-in naming a volume the pod does not have is a typo to report.
    for n in &opted_in {
        if !default_volumes_to_fs_backup
            && !volumes
                .iter()
                .any(|v| v.get("name").and_then(Value::as_str) == Some(n))
        {
            out.skipped.push(skip(
                n,
                format!("named in {BACKUP_VOLUMES} but the pod has no such volume"),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(annotations: Value) -> Value {
        json!({
            "metadata": {"name": "web-0", "namespace": "shop", "uid": "u1", "annotations": annotations},
            "spec": {"volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}},
                {"name": "cache", "emptyDir": {}},
                {"name": "conf", "configMap": {"name": "web"}},
                {"name": "kube-api-access-x", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
                {"name": "host", "hostPath": {"path": "/etc"}},
            ]},
            "status": {"phase": "Running"},
        })
    }

    #[test]
    fn opt_in_takes_only_the_named_volumes() {
        let s = select(&pod(json!({BACKUP_VOLUMES: "data, host,missing"})), false);
        assert_eq!(s.picked.len(), 1);
        assert_eq!(s.picked[0].identity(), "shop/data-web-0");
        let reason = |v: &str| {
            s.skipped
                .iter()
                .find(|k| k.volume == v)
                .map(|k| k.reason.clone())
                .unwrap()
        };
        assert!(reason("host").contains("hostPath"));
        assert!(reason("cache").contains("not listed"));
        assert!(reason("missing").contains("no such volume"));
    }

    #[test]
    fn opt_out_takes_every_volume_with_data() {
        let s = select(&pod(json!({BACKUP_VOLUMES_EXCLUDES: "data"})), true);
        let picked: Vec<_> = s.picked.iter().map(|p| p.identity()).collect();
        assert_eq!(picked, ["shop/web-0/cache"]);
        let reasons: Vec<_> = s.skipped.iter().map(|k| k.reason.as_str()).collect();
        assert!(reasons[0].contains("backup-volumes-excludes"));
        assert!(reasons[1].contains("ConfigMap"));
        assert!(reasons[2].contains("service-account token"));
        assert!(reasons[3].contains("hostPath"));
    }

    #[test]
    fn a_pod_not_running_is_skipped() {
        let mut p = pod(json!({}));
        p["status"]["phase"] = json!("Pending");
        let s = select(&p, true);
        assert!(s.picked.is_empty());
        assert!(s.skipped.iter().any(|k| k.reason.contains("Pending")));
    }
}
