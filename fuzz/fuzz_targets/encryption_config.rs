//! `EncryptionConfiguration` files (YAML or JSON, as the cluster's admin
//! wrote them) and the values their keys open: no input panics; every
//! key a configuration yields is of a provider hokan can open, and a
//! value is either opened, passed through (not encrypted), or refused
//! with an error. The input is the configuration's text, then a NUL, then
//! the value.
#![no_main]

use hokan_k8s_codec::{Decryptor, Provider};
use libfuzzer_sys::fuzz_target;

use hokan_fuzz as _;

fuzz_target!(|input: &[u8]| {
    let (text, value) = match input.iter().position(|&b| b == 0) {
        Some(i) => (&input[..i], &input[i + 1..]),
        None => (input, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(d) = Decryptor::from_config(text) else {
        return;
    };
    for (provider, name) in d.key_names() {
        assert!(matches!(
            provider,
            Provider::AesCbc | Provider::AesGcm | Provider::Secretbox
        ));
        let _ = name.len();
        let mut v = format!("k8s:enc:{provider}:v1:{name}:").into_bytes();
        v.extend_from_slice(value);
        let _ = d.decrypt("/registry/secrets/default/s", &v);
    }
    let _ = d.decrypt("/registry/secrets/default/s", value);
});
