//! The `EncryptionConfiguration` file (`apiserver.config.k8s.io/v1`): the
//! keys of the aescbc, aesgcm and secretbox providers. Read with
//! serde-saphyr, a maintained pure-Rust YAML implementation (serde_yaml is
//! archived); JSON is read with serde_json.

use crate::Error;
use crate::encryption::Provider;
use base64::Engine;
use serde::Deserialize;

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    resources: Vec<Resource>,
}

#[derive(Deserialize)]
struct Resource {
    #[serde(default)]
    providers: Vec<ProviderConfig>,
}

#[derive(Deserialize)]
struct ProviderConfig {
    aescbc: Option<Keys>,
    aesgcm: Option<Keys>,
    secretbox: Option<Keys>,
}

#[derive(Deserialize)]
struct Keys {
    #[serde(default)]
    keys: Vec<Key>,
}

#[derive(Deserialize)]
struct Key {
    name: String,
    secret: String,
}

/// One usable key; the secret is wiped from memory when dropped.
pub(crate) struct ConfigKey {
    pub provider: Provider,
    pub name: String,
    pub secret: zeroize::Zeroizing<Vec<u8>>,
}

pub(crate) fn parse(text: &str) -> Result<Vec<ConfigKey>, Error> {
    let bad = |m: String| Error::EncryptionConfig(m);
    let config: Config = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON: {e}")))?
    } else {
        serde_saphyr::from_str(text).map_err(|e| bad(format!("not valid YAML: {e}")))?
    };
    if config.kind != "EncryptionConfiguration" {
        return Err(bad(format!(
            "kind is {:?}, expected \"EncryptionConfiguration\"",
            config.kind
        )));
    }
    let mut keys = Vec::new();
    for r in config.resources {
        for p in r.providers {
            for (provider, k) in [
                (Provider::AesCbc, p.aescbc),
                (Provider::AesGcm, p.aesgcm),
                (Provider::Secretbox, p.secretbox),
            ] {
                for key in k.map(|k| k.keys).unwrap_or_default() {
                    let secret = base64::engine::general_purpose::STANDARD
                        .decode(key.secret.trim())
                        .map_err(|e| {
                            bad(format!(
                                "{provider} key {:?}: secret is not base64: {e}",
                                key.name
                            ))
                        })?;
                    let ok = match provider {
                        Provider::Secretbox => secret.len() == 32,
                        _ => matches!(secret.len(), 16 | 24 | 32),
                    };
                    if !ok {
                        return Err(bad(format!(
                            "{provider} key {:?} is {} bytes; aescbc/aesgcm keys are 16, 24 or 32 bytes, secretbox keys 32",
                            key.name,
                            secret.len()
                        )));
                    }
                    keys.push(ConfigKey {
                        provider,
                        name: key.name,
                        secret: zeroize::Zeroizing::new(secret),
                    });
                }
            }
        }
    }
    if keys.is_empty() {
        return Err(bad("it has no aescbc, aesgcm or secretbox keys (identity and kms providers cannot decrypt offline)".into()));
    }
    Ok(keys)
}
