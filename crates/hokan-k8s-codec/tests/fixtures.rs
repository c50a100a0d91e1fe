//! Every protobuf fixture of Kubernetes' API serialization tests
//! (`shared/k8s/api-testdata`, exactly what the API server writes to etcd)
//! must decode to the JSON fixture beside it.

use std::path::PathBuf;

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/k8s/api-testdata")
}

#[test]
fn every_protobuf_fixture_matches_its_json() {
    let dir = testdata();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("shared/k8s/api-testdata")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".pb"))
        .collect();
    names.sort();
    assert!(
        names.len() > 150,
        "expected the full fixture set, found {}",
        names.len()
    );
    let mut failures = Vec::new();
    let (mut stored_kinds, mut not_stored) = (0, 0);
    for name in &names {
        let stem = name.trim_end_matches(".pb");
        let pb = std::fs::read(dir.join(name)).unwrap();
        let want: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(format!("{stem}.json"))).unwrap())
                .unwrap();
        // <group>.<version>.<Kind>: the envelope of a few non-stored types has no type.
        let (gv, kind) = stem.rsplit_once('.').unwrap();
        let (group, version) = gv.rsplit_once('.').unwrap();
        let api_version = if group == "core" {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        let got = match hokan_k8s_codec::decode(&pb) {
            Err(hokan_k8s_codec::Error::UnknownKind { kind: k, .. }) if k.is_empty() => {
                let raw = &pb[4..];
                hokan_k8s_codec::decode_protobuf(envelope_raw(raw), &api_version, kind)
            }
            other => other.map(|o| o.object),
        };
        match got {
            Ok(v) if v == want => {
                // kubectl-style YAML must read back as the same object, and as the YAML fixture.
                let yaml = hokan_k8s_codec::to_yaml(&v);
                let back: serde_json::Value = serde_saphyr::from_str(&yaml)
                    .unwrap_or_else(|e| panic!("{stem}: our YAML does not parse: {e}\n{yaml}"));
                let fixture: serde_json::Value = serde_saphyr::from_str(
                    &std::fs::read_to_string(dir.join(format!("{stem}.yaml"))).unwrap(),
                )
                .unwrap();
                if back != v || fixture != v {
                    failures.push(format!(
                        "{stem}: YAML differs: {}",
                        first_difference(&v, &back, String::new())
                    ));
                }
                // Every kind is either stored under a key or listed with the reason it is not.
                let stored = hokan_k8s_codec::object_key_for_kind(&api_version, kind, "ns", "name");
                match (
                    stored,
                    hokan_k8s_codec::not_stored_reason(&api_version, kind),
                ) {
                    (Some(_), None) => stored_kinds += 1,
                    (None, Some(_)) => not_stored += 1,
                    (k, r) => failures.push(format!(
                        "{stem}: storage key {k:?} and not-stored reason {r:?}"
                    )),
                }
            }
            Ok(v) => failures.push(format!(
                "{stem}: differs: {}",
                first_difference(&want, &v, String::new())
            )),
            Err(e) => failures.push(format!("{stem}: {e}")),
        }
    }
    eprintln!(
        "{} fixtures decoded and equal to their JSON and YAML: {stored_kinds} of kinds stored in etcd, {not_stored} of kinds never stored",
        names.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} fixtures fail:\n{}",
        failures.len(),
        names.len(),
        failures.join("\n")
    );
}

/// The `raw` field (2) of a runtime.Unknown, read by hand for the test.
fn envelope_raw(mut b: &[u8]) -> &[u8] {
    fn varint(b: &mut &[u8]) -> u64 {
        let mut v = 0;
        for s in (0..64).step_by(7) {
            let x = b[0];
            *b = &b[1..];
            v |= u64::from(x & 0x7f) << s;
            if x < 0x80 {
                break;
            }
        }
        v
    }
    while !b.is_empty() {
        let k = varint(&mut b);
        let len = varint(&mut b) as usize;
        let (v, rest) = b.split_at(len);
        if k >> 3 == 2 {
            return v;
        }
        b = rest;
    }
    &[]
}

fn first_difference(want: &serde_json::Value, got: &serde_json::Value, path: String) -> String {
    use serde_json::Value;
    match (want, got) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                match b.get(k) {
                    None => return format!("{path}/{k} missing (want {v})"),
                    Some(g) if g != v => return first_difference(v, g, format!("{path}/{k}")),
                    _ => {}
                }
            }
            for k in b.keys() {
                if !a.contains_key(k) {
                    return format!("{path}/{k} unexpected ({})", b[k]);
                }
            }
            format!("{path}: equal?")
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                if x != y {
                    return first_difference(x, y, format!("{path}/{i}"));
                }
            }
            format!("{path}: equal?")
        }
        _ => format!("{path}: want {want}, got {got}"),
    }
}
