//! deploy/ stays true to the code: the committed CRDs equal what the types
//! generate, every example reads into the types without losing a field,
//! and kustomize renders each directory (when kubectl is installed).

use std::path::{Path, PathBuf};
use std::process::Command;

use hokan_operator::api::{self, Backup, BackupPolicy, Repository, Restore};
use serde_json::Value;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

#[test]
fn committed_crds_equal_the_types() {
    let mut stale = Vec::new();
    for (file, crd) in api::crds() {
        let want = api::crd_yaml(&crd).unwrap();
        let path = deploy().join("crds").join(file);
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have != want {
            stale.push(file);
        }
    }
    assert!(
        stale.is_empty(),
        "deploy/crds/{stale:?} differ from the types; regenerate them: \
         cargo run -p hokan-operator -- crds --dir deploy/crds"
    );
}

#[test]
fn crds_name_the_agreed_group_kinds_and_short_names() {
    let names: Vec<(String, String, Vec<String>)> = api::crds()
        .into_iter()
        .map(|(_, c)| {
            assert_eq!(c.spec.group, "hokan.dev");
            assert_eq!(c.spec.scope, "Namespaced");
            assert_eq!(c.spec.versions[0].name, "v1alpha1");
            let sub = c.spec.versions[0].subresources.as_ref().unwrap();
            assert!(
                sub.status.is_some(),
                "{} has no status subresource",
                c.spec.names.kind
            );
            (
                c.spec.names.kind,
                c.spec.names.plural,
                c.spec.names.short_names.unwrap_or_default(),
            )
        })
        .collect();
    let want = [
        ("Repository", "repositories", "hrepo"),
        ("BackupPolicy", "backuppolicies", "hpolicy"),
        ("Backup", "backups", "hbackup"),
        ("Restore", "restores", "hrestore"),
    ];
    for (kind, plural, short) in want {
        assert!(
            names
                .iter()
                .any(|(k, p, s)| k == kind && p == plural && s == &vec![short.to_string()]),
            "{kind} missing or misnamed: {names:?}"
        );
    }
}

/// Every key of `example` is present in `typed` (the same document after
/// a round trip through the Rust type): a misspelt field would vanish.
fn keys_survive(example: &Value, typed: &Value, at: &str, lost: &mut Vec<String>) {
    match (example, typed) {
        (Value::Object(e), Value::Object(t)) => {
            for (k, v) in e {
                match t.get(k) {
                    Some(tv) => keys_survive(v, tv, &format!("{at}.{k}"), lost),
                    None => lost.push(format!("{at}.{k}")),
                }
            }
        }
        (Value::Array(e), Value::Array(t)) => {
            for (i, (ev, tv)) in e.iter().zip(t).enumerate() {
                keys_survive(ev, tv, &format!("{at}[{i}]"), lost);
            }
        }
        _ => {}
    }
}

fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value) -> Value {
    let typed: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{} does not read: {e}", doc["metadata"]["name"]));
    serde_json::to_value(typed).unwrap()
}

#[test]
fn examples_read_into_the_types_without_losing_a_field() {
    let dir = deploy().join("examples");
    let mut seen = 0;
    let mut lost = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() == "kustomization.yaml" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for doc in docs {
            let typed = match doc["kind"].as_str().unwrap_or_default() {
                "Repository" => round_trip::<Repository>(&doc),
                "BackupPolicy" => round_trip::<BackupPolicy>(&doc),
                "Backup" => round_trip::<Backup>(&doc),
                "Restore" => round_trip::<Restore>(&doc),
                _ => continue,
            };
            seen += 1;
            let name = format!(
                "{}:{}",
                path.file_name().unwrap().to_string_lossy(),
                doc["kind"]
            );
            keys_survive(&doc["spec"], &typed["spec"], &name, &mut lost);
        }
    }
    assert!(seen >= 8, "only {seen} hokan resources among the examples");
    assert!(lost.is_empty(), "fields the types do not know: {lost:?}");
}

#[test]
fn policy_examples_parse_as_schedules_and_retention() {
    let dir = deploy().join("examples");
    for name in [
        "policy-gold.yaml",
        "policy-silver.yaml",
        "policy-bronze.yaml",
        "policy-etcd.yaml",
        "policy-snapshot-daily.yaml",
        "policy-snapshot-test.yaml",
    ] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let p: BackupPolicy = serde_saphyr::from_str(&text).unwrap();
        // Everything the operator checks: schedule, retention, rhythms.
        hokan_operator::reconcile::policy::validate(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// `kubectl kustomize DIR`, or None when kubectl is not installed.
fn kustomize(dir: &Path) -> Option<String> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

#[test]
fn kustomize_renders_deploy_and_the_examples() {
    let Some(all) = kustomize(&deploy()) else {
        eprintln!("kubectl not installed; kustomize not checked");
        return;
    };
    let docs: Vec<Value> = serde_saphyr::from_multiple(&all).unwrap();
    let kinds: Vec<(String, String)> = docs
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap_or_default().to_string(),
                d["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    // Volumes are backed up by Jobs per node and run, not by a DaemonSet.
    assert!(
        !kinds.iter().any(|(k, _)| k == "DaemonSet"),
        "no DaemonSet is deployed: {kinds:?}"
    );
    for want in [
        ("CustomResourceDefinition", "backups.hokan.dev"),
        ("Namespace", "hokan-system"),
        ("Deployment", "hokan-operator"),
        ("ServiceAccount", "hokan-node-agent"),
        ("ClusterRole", "hokan-operator"),
        ("ClusterRole", "hokan-etcd"),
        ("ClusterRole", "hokan-node-agent"),
    ] {
        assert!(
            kinds.iter().any(|(k, n)| k == want.0 && n == want.1),
            "{want:?} not rendered"
        );
    }
    // Everything namespaced lands in hokan-system.
    for d in &docs {
        if let Some(ns) = d["metadata"]["namespace"].as_str() {
            assert_eq!(
                ns, "hokan-system",
                "{} {}",
                d["kind"], d["metadata"]["name"]
            );
        }
    }
    kustomize(&deploy().join("examples")).unwrap();
}
