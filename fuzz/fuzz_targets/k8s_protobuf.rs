//! Values as kube-apiserver stores them in etcd (the `k8s\0` protobuf
//! envelope, JSON, `k8s:enc:` encrypted values) and their keys: no input
//! panics or recurses without bound; a decoded object prints as JSON that
//! parses back to the same object, and diffs against itself as unchanged.
#![no_main]

use hokan_k8s_codec::{
    BUILTIN_RESOURCES, EncryptedValue, RegistryKey, decode, decode_protobuf, diff, peek_type,
    to_json, to_yaml,
};
use libfuzzer_sys::fuzz_target;

use hokan_fuzz as _;

fuzz_target!(|value: &[u8]| {
    let _ = peek_type(value);
    let _ = EncryptedValue::parse(value);
    let _ = RegistryKey::parse(&String::from_utf8_lossy(value));
    if let Ok(o) = decode(value) {
        let json = to_json(&o.object);
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back, o.object);
        let _ = to_yaml(&o.object);
        assert!(diff(&o.object, &o.object).is_empty());
    }
    // The bare protobuf of one built-in kind, as a RawExtension holds it
    // (the kind chosen by the length, so seeds of the envelope reach it).
    let r = &BUILTIN_RESOURCES[value.len() % BUILTIN_RESOURCES.len()];
    let api_version = if r.group.is_empty() {
        "v1".to_string()
    } else {
        format!("{}/v1", r.group)
    };
    if let Ok(v) = decode_protobuf(value, &api_version, r.kind) {
        let _ = to_yaml(&v);
    }
});
