//! Encryption at rest: values built in the documented formats decrypt, a
//! wrong key is refused with a clear error, and the formats agree with
//! independent implementations (OpenSSL for AES-CBC, Python's `cryptography`
//! for AES-GCM, NaCl's published secretbox vector).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::Engine;
use cbc::cipher::{BlockModeEncrypt, KeyIvInit, block_padding::Pkcs7};
use hokan_k8s_codec::{Decryptor, EncryptedValue, Error, Provider};
use std::process::Command;

const KEY_A: [u8; 32] = [7; 32];
const KEY_B: [u8; 32] = [9; 32];
const ETCD_KEY: &str = "/registry/secrets/default/db-password";

fn b64(k: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(k)
}

fn config(key: &[u8]) -> String {
    format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n      - aesgcm:\n          keys:\n            - name: key1\n              secret: {k}\n      - aescbc:\n          keys:\n            - name: key1\n              secret: {k}\n      - secretbox:\n          keys:\n            - name: key1\n              secret: {k}\n      - identity: {{}}\n",
        k = b64(key)
    )
}

fn secret_value() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/k8s/api-testdata/core.v1.Secret.pb"
    ))
    .unwrap()
}

fn aescbc(key: &[u8; 32], iv: [u8; 16], plain: &[u8]) -> Vec<u8> {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + 16 - plain.len() % 16, 0);
    let ct = cbc::Encryptor::<aes::Aes256>::new(key.into(), &iv.into())
        .encrypt_padded::<Pkcs7>(&mut buf, plain.len())
        .unwrap()
        .to_vec();
    [b"k8s:enc:aescbc:v1:key1:".as_slice(), &iv, &ct].concat()
}

fn aesgcm(key: &[u8; 32], nonce: [u8; 12], plain: &[u8], aad: &str) -> Vec<u8> {
    let ct = aes_gcm::Aes256Gcm::new(key.into())
        .encrypt(
            &nonce.into(),
            Payload {
                msg: plain,
                aad: aad.as_bytes(),
            },
        )
        .unwrap();
    [b"k8s:enc:aesgcm:v1:key1:".as_slice(), &nonce, &ct].concat()
}

fn secretbox(key: &[u8; 32], nonce: [u8; 24], plain: &[u8]) -> Vec<u8> {
    use poly1305::universal_hash::KeyInit as _;
    use salsa20::cipher::StreamCipher;
    let mut c = salsa20::XSalsa20::new(key.into(), &nonce.into());
    let mut mac_key = [0u8; 32];
    c.apply_keystream(&mut mac_key);
    let mut ct = plain.to_vec();
    c.apply_keystream(&mut ct);
    let tag = poly1305::Poly1305::new(&mac_key.into()).compute_unpadded(&ct);
    [b"k8s:enc:secretbox:v1:key1:".as_slice(), &nonce, &tag, &ct].concat()
}

#[test]
fn every_provider_decrypts_to_the_stored_object() {
    let plain = secret_value();
    let d = Decryptor::from_config(&config(&KEY_A)).unwrap();
    for value in [
        aescbc(&KEY_A, [1; 16], &plain),
        aesgcm(&KEY_A, [2; 12], &plain, ETCD_KEY),
        secretbox(&KEY_A, [3; 24], &plain),
    ] {
        let enc = EncryptedValue::parse(&value).unwrap();
        assert_eq!(enc.key_name, "key1");
        // Without keys the value is reported as encrypted, never decoded.
        assert!(matches!(
            hokan_k8s_codec::decode(&value),
            Err(Error::Encrypted { .. })
        ));
        let out = d.decrypt(ETCD_KEY, &value).unwrap();
        assert_eq!(&*out, plain.as_slice(), "{}", enc.provider);
        assert_eq!(hokan_k8s_codec::decode(&out).unwrap().kind, "Secret");
    }
    // An unencrypted value passes through untouched.
    assert_eq!(&*d.decrypt(ETCD_KEY, &plain).unwrap(), plain.as_slice());
}

#[test]
fn a_wrong_key_is_refused_by_name() {
    let plain = secret_value();
    let d = Decryptor::from_config(&config(&KEY_B)).unwrap();
    for value in [
        aescbc(&KEY_A, [1; 16], &plain),
        aesgcm(&KEY_A, [2; 12], &plain, ETCD_KEY),
        secretbox(&KEY_A, [3; 24], &plain),
    ] {
        match d.decrypt(ETCD_KEY, &value) {
            Err(e @ Error::WrongKey { .. }) => assert!(e.to_string().contains("\"key1\""), "{e}"),
            other => panic!("expected WrongKey, got {other:?}"),
        }
    }
}

#[test]
fn aesgcm_authenticates_the_etcd_key() {
    let value = aesgcm(&KEY_A, [2; 12], &secret_value(), ETCD_KEY);
    let d = Decryptor::from_config(&config(&KEY_A)).unwrap();
    let err = d
        .decrypt("/registry/secrets/default/other", &value)
        .unwrap_err();
    assert!(
        err.to_string().contains("moved from another etcd key"),
        "{err}"
    );
}

#[test]
fn unknown_key_names_and_kms_are_reported_not_decoded() {
    let d = Decryptor::from_config(&config(&KEY_A)).unwrap();
    let renamed = [
        b"k8s:enc:aesgcm:v1:key2:".as_slice(),
        &aesgcm(&KEY_A, [2; 12], b"{}", ETCD_KEY)[23..],
    ]
    .concat();
    assert!(matches!(
        d.decrypt(ETCD_KEY, &renamed),
        Err(Error::KeyNotFound { .. })
    ));
    for (value, provider) in [
        (
            &b"k8s:enc:kms:v1:vault:\x00\x04abcdrest"[..],
            Provider::KmsV1,
        ),
        (b"k8s:enc:kms:v2:kleidi:\x0a\x03abc", Provider::KmsV2),
    ] {
        let e = EncryptedValue::parse(value).unwrap();
        assert_eq!(e.provider, provider);
        let err = d.decrypt(ETCD_KEY, value).unwrap_err();
        assert!(err.to_string().contains("KMS"), "{err}");
        assert!(matches!(
            hokan_k8s_codec::peek_type(value),
            Ok(hokan_k8s_codec::StoredType::Encrypted { .. })
        ));
    }
}

#[test]
fn bad_configurations_say_what_is_wrong() {
    let cases = [
        ("kind: Foo\nresources: []\n", "kind"),
        (
            "kind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - identity: {}\n",
            "no aescbc",
        ),
        (
            "kind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - aescbc: {keys: [{name: k, secret: 'not base64!'}]}\n",
            "base64",
        ),
        (
            "kind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - secretbox: {keys: [{name: k, secret: AAAA}]}\n",
            "32",
        ),
        (
            "{\"kind\": \"EncryptionConfiguration\", \"resources\": [",
            "JSON",
        ),
    ];
    for (text, want) in cases {
        let err = Decryptor::from_config(text).unwrap_err();
        assert!(err.to_string().contains(want), "{text:?}: {err}");
    }
    let json = format!(
        "{{\"kind\":\"EncryptionConfiguration\",\"resources\":[{{\"resources\":[\"secrets\"],\"providers\":[{{\"aescbc\":{{\"keys\":[{{\"name\":\"key1\",\"secret\":\"{}\"}}]}}}}]}}]}}",
        b64(&KEY_A)
    );
    let d = Decryptor::from_config(&json).unwrap();
    assert_eq!(
        d.key_names().collect::<Vec<_>>(),
        vec![(Provider::AesCbc, "key1")]
    );
}

/// OpenSSL's `enc -aes-256-cbc` writes exactly Kubernetes' layout after the IV.
#[test]
fn aescbc_matches_openssl() {
    let Ok(out) = Command::new("openssl").args(["version"]).output() else {
        eprintln!("openssl not installed: cross-check skipped");
        return;
    };
    assert!(out.status.success());
    let plain = secret_value();
    let iv = [0x5a; 16];
    let dir = std::env::temp_dir().join(format!("hokan-kcodec-openssl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("plain");
    std::fs::write(&input, &plain).unwrap();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let out = Command::new("openssl")
        .args([
            "enc",
            "-aes-256-cbc",
            "-K",
            &hex(&KEY_A),
            "-iv",
            &hex(&iv),
            "-in",
        ])
        .arg(&input)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value = [b"k8s:enc:aescbc:v1:key1:".as_slice(), &iv, &out.stdout].concat();
    assert_eq!(value, aescbc(&KEY_A, iv, &plain));
    let d = Decryptor::from_config(&config(&KEY_A)).unwrap();
    assert_eq!(&*d.decrypt(ETCD_KEY, &value).unwrap(), plain.as_slice());
}

/// Python's `cryptography` AESGCM, with the etcd key as associated data.
#[test]
fn aesgcm_matches_python_cryptography() {
    let script = "import sys\nfrom cryptography.hazmat.primitives.ciphers.aead import AESGCM\nk, n, aad, p = (bytes.fromhex(a) for a in sys.argv[1:])\nsys.stdout.write(AESGCM(k).encrypt(n, p, aad).hex())\n";
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let plain = secret_value();
    let nonce = [0x33; 12];
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            &hex(&KEY_A),
            &hex(&nonce),
            &hex(ETCD_KEY.as_bytes()),
            &hex(&plain),
        ])
        .output();
    let Ok(out) = out.map_err(|e| eprintln!("python3 not runnable ({e}): cross-check skipped"))
    else {
        return;
    };
    if !out.status.success() {
        eprintln!(
            "python3 cryptography not available: cross-check skipped: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let text = String::from_utf8(out.stdout).unwrap();
    let ct: Vec<u8> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect();
    let value = [b"k8s:enc:aesgcm:v1:key1:".as_slice(), &nonce, &ct].concat();
    assert_eq!(value, aesgcm(&KEY_A, nonce, &plain, ETCD_KEY));
    let d = Decryptor::from_config(&config(&KEY_A)).unwrap();
    assert_eq!(&*d.decrypt(ETCD_KEY, &value).unwrap(), plain.as_slice());
}

/// The test vector of NaCl's `tests/secretbox.c`: the same bytes Go's
/// `golang.org/x/crypto/nacl/secretbox` (used by Kubernetes) produces.
#[test]
fn secretbox_matches_the_nacl_vector() {
    let unhex = |s: &str| {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect::<Vec<u8>>()
    };
    let key = unhex("1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389");
    let nonce = unhex("69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37");
    let plain = unhex(
        "be075fc53c81f2d5cf141316ebeb0c7b5228c52a4c62cbd44b66849b64244ffce5ecbaaf33bd751a1ac728d45e6c61296cdc3c01233561f41db66cce314adb310e3be8250c46f06dceea3a7fa1348057e2f6556ad6b1318a024a838f21af1fde048977eb48f59ffd4924ca1c60902e52f0a089bc76897040e082f937763848645e0705",
    );
    let boxed = unhex(
        "f3ffc7703f9400e52a7dfb4b3d3305d98e993b9f48681273c29650ba32fc76ce48332ea7164d96a4476fb8c531a1186ac0dfc17c98dce87b4da7f011ec48c97271d2c20f9b928fe2270d6fb863d51738b48eeee314a7cc8ab932164548e526ae90224368517acfeabd6bb3732bc0e9da99832b61ca01b6de56244a9e88d5f9b37973f622a43d14a6599b1f654cb45a74e355a5",
    );
    let k: [u8; 32] = key.clone().try_into().unwrap();
    let n: [u8; 24] = nonce.clone().try_into().unwrap();
    let ours = secretbox(&k, n, &plain);
    assert_eq!(
        &ours[b"k8s:enc:secretbox:v1:key1:".len() + 24..],
        boxed.as_slice()
    );
    // The plaintext is not a Kubernetes object, so the decryptor rightly refuses it…
    let d = Decryptor::from_config(&config(&k)).unwrap();
    assert!(matches!(
        d.decrypt(ETCD_KEY, &ours),
        Err(Error::WrongKey { .. })
    ));
    // …while a Kubernetes value sealed the same way opens.
    let value = secretbox(&k, n, &secret_value());
    assert_eq!(
        &*d.decrypt(ETCD_KEY, &value).unwrap(),
        secret_value().as_slice()
    );
}
