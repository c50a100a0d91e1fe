//! Values encrypted at rest by the API server, and their decryption with the
//! cluster's `EncryptionConfiguration`.
//!
//! Formats, from `k8s.io/apiserver/pkg/storage/value/encrypt`:
//! - every value: `k8s:enc:<provider>:v1:<key name>:` then the payload;
//! - `aescbc`: 16-byte IV, then AES-CBC ciphertext with PKCS#7 padding; no
//!   authentication, so a wrong key is caught by the padding and by checking
//!   that the plaintext is a Kubernetes value;
//! - `aesgcm`: 12-byte nonce, then AES-GCM ciphertext and tag, with the full
//!   etcd key (`/registry/secrets/ns/name`) as additional authenticated data;
//! - `secretbox`: 24-byte nonce, then NaCl secretbox (XSalsa20-Poly1305, tag first);
//! - `kms:v1`/`kms:v2`: data keys wrapped by an external KMS — listed, not decrypted.

use crate::Error;
use crate::encryption_config::{self, ConfigKey};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use cbc::cipher::{BlockModeDecrypt, KeyIvInit, block_padding::Pkcs7};
use salsa20::cipher::StreamCipher;
use std::borrow::Cow;

/// An encryption provider named in a value's `k8s:enc:<provider>:v<n>:` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Provider {
    AesCbc,
    AesGcm,
    Secretbox,
    KmsV1,
    KmsV2,
}

impl Provider {
    pub(crate) fn hint(self) -> &'static str {
        match self {
            Provider::KmsV1 | Provider::KmsV2 => {
                " — KMS-encrypted values need the cluster's KMS plugin and cannot be decrypted offline"
            }
            _ => "",
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Provider::AesCbc => "aescbc",
            Provider::AesGcm => "aesgcm",
            Provider::Secretbox => "secretbox",
            Provider::KmsV1 => "kms v1",
            Provider::KmsV2 => "kms v2",
        })
    }
}

/// An encrypted value split into its prefix parts and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedValue<'a> {
    pub provider: Provider,
    /// The key (or KMS provider) name from the prefix.
    pub key_name: &'a str,
    /// What follows the prefix: nonce or IV, ciphertext, tag.
    pub payload: &'a [u8],
}

impl<'a> EncryptedValue<'a> {
    /// Recognises `k8s:enc:<provider>:v<n>:<key name>:<payload>`.
    pub fn parse(value: &'a [u8]) -> Option<Self> {
        let rest = value.strip_prefix(b"k8s:enc:")?;
        let (provider, rest) = [
            (&b"aescbc:v1:"[..], Provider::AesCbc),
            (b"aesgcm:v1:", Provider::AesGcm),
            (b"secretbox:v1:", Provider::Secretbox),
            (b"kms:v1:", Provider::KmsV1),
            (b"kms:v2:", Provider::KmsV2),
        ]
        .into_iter()
        .find_map(|(p, v)| rest.strip_prefix(p).map(|r| (v, r)))?;
        let colon = rest.iter().position(|&b| b == b':')?;
        let key_name = std::str::from_utf8(&rest[..colon]).ok()?;
        Some(EncryptedValue {
            provider,
            key_name,
            payload: &rest[colon + 1..],
        })
    }
}

/// Decrypts values with the keys of an `EncryptionConfiguration`.
///
/// Keys are looked up by provider and name from each value's prefix, across
/// all resource sections of the file, the way the API server's read path
/// accepts any configured key.
pub struct Decryptor {
    keys: Vec<ConfigKey>,
}

impl std::fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("Decryptor")
            .field(
                "keys",
                &self
                    .keys
                    .iter()
                    .map(|k| (k.provider, &k.name))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Decryptor {
    /// Reads an `EncryptionConfiguration` (`apiserver.config.k8s.io/v1`) in YAML or JSON.
    pub fn from_config(text: &str) -> Result<Decryptor, Error> {
        Ok(Decryptor {
            keys: encryption_config::parse(text)?,
        })
    }

    /// The (provider, key name) pairs this decryptor holds.
    pub fn key_names(&self) -> impl Iterator<Item = (Provider, &str)> {
        self.keys.iter().map(|k| (k.provider, k.name.as_str()))
    }

    /// Returns the plaintext of `value` stored under `etcd_key` (the full key,
    /// which aesgcm authenticates), or `value` itself if it is not encrypted.
    pub fn decrypt<'v>(&self, etcd_key: &str, value: &'v [u8]) -> Result<Cow<'v, [u8]>, Error> {
        let Some(enc) = EncryptedValue::parse(value) else {
            return Ok(Cow::Borrowed(value));
        };
        let fail = |reason: String| Error::WrongKey {
            provider: enc.provider.to_string(),
            key_name: enc.key_name.to_string(),
            reason,
        };
        if matches!(enc.provider, Provider::KmsV1 | Provider::KmsV2) {
            return Err(Error::Encrypted {
                provider: enc.provider.to_string(),
                key_name: enc.key_name.to_string(),
                hint: enc.provider.hint(),
            });
        }
        let candidates: Vec<&ConfigKey> = self
            .keys
            .iter()
            .filter(|k| k.provider == enc.provider && k.name == enc.key_name)
            .collect();
        if candidates.is_empty() {
            return Err(Error::KeyNotFound {
                provider: enc.provider.to_string(),
                key_name: enc.key_name.to_string(),
            });
        }
        let mut last = String::new();
        // Several resource sections may reuse a key name with different secrets: try each.
        for k in candidates {
            match open(enc.provider, &k.secret, enc.payload, etcd_key.as_bytes()) {
                Ok(plain) if looks_like_object(&plain) => return Ok(Cow::Owned(plain)),
                Ok(_) => last = "the plaintext is not a Kubernetes object".into(),
                Err(e) => last = e,
            }
        }
        Err(fail(last))
    }
}

/// The plaintext of every value the API server encrypts is an object:
/// protobuf envelope or JSON. Checked because AES-CBC has no authentication.
fn looks_like_object(plain: &[u8]) -> bool {
    plain.starts_with(crate::envelope::MAGIC)
        || plain.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

fn open(provider: Provider, key: &[u8], payload: &[u8], aad: &[u8]) -> Result<Vec<u8>, String> {
    match provider {
        Provider::AesCbc => {
            if payload.len() <= 16 || !(payload.len() - 16).is_multiple_of(16) {
                return Err("the stored data is not an IV followed by whole AES blocks".into());
            }
            let (iv, data) = payload.split_at(16);
            macro_rules! cbc_open {
                ($aes:ty) => {{
                    let d = cbc::Decryptor::<$aes>::new_from_slices(key, iv)
                        .map_err(|_| "bad key or IV length".to_string())?;
                    let mut buf = data.to_vec();
                    let n = d
                        .decrypt_padded::<Pkcs7>(&mut buf)
                        .map_err(|_| "invalid PKCS#7 padding".to_string())?
                        .len();
                    buf.truncate(n);
                    Ok(buf)
                }};
            }
            match key.len() {
                16 => cbc_open!(aes::Aes128),
                24 => cbc_open!(aes::Aes192),
                32 => cbc_open!(aes::Aes256),
                n => Err(format!(
                    "an AES key must be 16, 24 or 32 bytes, this one is {n}"
                )),
            }
        }
        Provider::AesGcm => {
            if payload.len() < 12 + 16 {
                return Err("the stored data is shorter than a nonce and a tag".into());
            }
            let (nonce, data) = payload.split_at(12);
            let msg = Payload { msg: data, aad };
            let nonce =
                aes_gcm::Nonce::try_from(nonce).map_err(|_| "bad nonce length".to_string())?;
            let res = match key.len() {
                16 => aes_gcm::Aes128Gcm::new_from_slice(key).map(|c| c.decrypt(&nonce, msg)),
                32 => aes_gcm::Aes256Gcm::new_from_slice(key).map(|c| c.decrypt(&nonce, msg)),
                24 => {
                    aes_gcm::AesGcm::<aes::Aes192, aes_gcm::aead::consts::U12>::new_from_slice(key)
                        .map(|c| c.decrypt(&nonce, msg))
                }
                n => {
                    return Err(format!(
                        "an AES key must be 16, 24 or 32 bytes, this one is {n}"
                    ));
                }
            };
            res.map_err(|_| "bad key length".to_string())?.map_err(|_| "authentication failed (wrong key, or the value was moved from another etcd key)".to_string())
        }
        Provider::Secretbox => secretbox_open(key, payload),
        Provider::KmsV1 | Provider::KmsV2 => Err("KMS values cannot be decrypted offline".into()),
    }
}

/// NaCl `secretbox.Open` with the nonce in front, as Kubernetes stores it:
/// nonce (24) ‖ Poly1305 tag (16) ‖ XSalsa20 ciphertext.
fn secretbox_open(key: &[u8], payload: &[u8]) -> Result<Vec<u8>, String> {
    let key: [u8; 32] = key.try_into().map_err(|_| {
        format!(
            "a secretbox key must be 32 bytes, this one is {}",
            key.len()
        )
    })?;
    if payload.len() < 24 + 16 {
        return Err("the stored data is shorter than a nonce and a tag".into());
    }
    let (nonce, rest) = payload.split_at(24);
    let (tag, ct) = rest.split_at(16);
    let mut cipher =
        salsa20::XSalsa20::new(&key.into(), nonce.try_into().map_err(|_| "bad nonce")?);
    // The first 32 bytes of keystream are the one-time Poly1305 key.
    let mut mac_key = [0u8; 32];
    cipher.apply_keystream(&mut mac_key);
    use poly1305::universal_hash::KeyInit as _;
    let expected = poly1305::Poly1305::new(&mac_key.into()).compute_unpadded(ct);
    if expected
        .iter()
        .zip(tag)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        != 0
    {
        return Err("authentication failed".into());
    }
    let mut plain = ct.to_vec();
    cipher.apply_keystream(&mut plain);
    Ok(plain)
}
