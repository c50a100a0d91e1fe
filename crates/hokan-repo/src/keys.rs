//! Key files: the master key wrapped under a password.
//!
//! A key file (`keys/<id>`) is an object (see [`crate::object`]) of kind
//! `key` whose body is `postcard(KeyFileBody)`:
//!
//! * the Argon2id parameters and a random 32-byte salt, in plain, so the
//!   password can be stretched the same way again;
//! * the 72 master-key bytes sealed under the stretched password;
//! * who made the key and when ([`KeyInfo`]), sealed under the master key,
//!   so host and user names never appear in plain.
//!
//! Several key files open one repository; adding or removing one never
//! touches the data. Every repository has its own random master key: no key
//! is shared between repositories.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use hokan_core::crypto::{Cipher, object_aad};
use hokan_core::{Id, MasterKey};

use crate::error::{Error, Result};
use crate::object::{self, Kind};

/// Argon2id cost parameters, stored in each key file.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane: about 0.15 s on one core of the build
    /// machines, well above OWASP's recommended minimum for Argon2id
    /// (19 MiB, 2 passes).
    fn default() -> Self {
        KdfParams {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

impl KdfParams {
    /// Refuses parameters too weak to mean anything or so large that a
    /// forged key file could exhaust memory (over 4 GiB).
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| {
            Err(Error::Invalid {
                what: "key derivation parameters",
                reason,
            })
        };
        if self.parallelism == 0 || self.parallelism > 64 {
            return bad(format!(
                "parallelism {} is outside 1..=64",
                self.parallelism
            ));
        }
        if self.iterations == 0 || self.iterations > 100 {
            return bad(format!("iterations {} is outside 1..=100", self.iterations));
        }
        if self.memory_kib < 8 * self.parallelism || self.memory_kib > 4 * 1024 * 1024 {
            return bad(format!(
                "memory {} KiB is outside 8 KiB per lane..4 GiB",
                self.memory_kib
            ));
        }
        Ok(())
    }

    fn derive(&self, password: &[u8], salt: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>> {
        self.validate()?;
        let params =
            argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
                .map_err(|e| Error::Invalid {
                    what: "key derivation parameters",
                    reason: e.to_string(),
                })?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(password, salt, &mut out[..])
            .map_err(|e| Error::Invalid {
                what: "password",
                reason: e.to_string(),
            })?;
        Ok(out)
    }
}

/// Who made a key file and when; sealed under the master key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// Host that created it.
    pub hostname: String,
    /// User that created it.
    pub username: String,
    /// Creation time, Unix seconds.
    pub created: i64,
    /// A free-form label.
    pub label: String,
}

impl KeyInfo {
    /// Info for a key made now, here, with a label.
    pub fn here(label: impl Into<String>) -> Self {
        KeyInfo {
            hostname: crate::hostname(),
            username: std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .unwrap_or_default(),
            created: chrono::Utc::now().timestamp(),
            label: label.into(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct KeyFileBody {
    kdf: KdfParams,
    salt: [u8; 32],
    wrapped: Vec<u8>,
    info: Vec<u8>,
}

fn wrap_aad() -> Vec<u8> {
    object_aad("key", Kind::Key.current_version())
}

fn info_aad() -> Vec<u8> {
    object_aad("key-info", Kind::Key.current_version())
}

/// A new key file for `master` under `password`: its id and bytes.
pub fn create(
    master: &MasterKey,
    password: &[u8],
    kdf: KdfParams,
    info: &KeyInfo,
) -> Result<(Id, Vec<u8>)> {
    if password.is_empty() {
        return Err(Error::Invalid {
            what: "password",
            reason: "it is empty; an empty password would leave the repository open to anyone"
                .into(),
        });
    }
    let mut salt = [0u8; 32];
    getrandom::fill(&mut salt).map_err(|e| hokan_core::Error::Random(e.to_string()))?;
    let kek = kdf.derive(password, &salt)?;
    let wrapped = Cipher::new(&kek).seal(&wrap_aad(), &master.to_bytes()[..])?;
    let info_plain = postcard::to_stdvec(info).expect("key info serializes");
    let info = master.cipher().seal(&info_aad(), &info_plain)?;
    let body = postcard::to_stdvec(&KeyFileBody {
        kdf,
        salt,
        wrapped,
        info,
    })
    .expect("key file serializes");
    let mut bytes = object::header(Kind::Key, Kind::Key.current_version()).to_vec();
    bytes.extend_from_slice(&body);
    Ok((object::object_id(&bytes), bytes))
}

fn parse(bytes: &[u8], what: &str) -> Result<KeyFileBody> {
    let body = object::check_header(bytes, Kind::Key, what)?;
    postcard::from_bytes(body)
        .map_err(|e| Error::corrupted(what, format!("undecodable key file: {e}")))
}

/// The master key, if `password` opens this key file; `Ok(None)` if not.
pub fn unwrap(bytes: &[u8], password: &[u8], what: &str) -> Result<Option<MasterKey>> {
    let body = parse(bytes, what)?;
    let kek = body.kdf.derive(password, &body.salt)?;
    match Cipher::new(&kek).open(&wrap_aad(), &body.wrapped) {
        Ok(plain) => {
            let plain = Zeroizing::new(plain);
            Ok(Some(MasterKey::from_bytes(&plain)?))
        }
        Err(_) => Ok(None),
    }
}

/// The sealed [`KeyInfo`] and the KDF parameters of a key file.
pub fn describe(bytes: &[u8], master: &MasterKey, what: &str) -> Result<(KeyInfo, KdfParams)> {
    let body = parse(bytes, what)?;
    let plain = master.cipher().open(&info_aad(), &body.info).map_err(|_| {
        Error::corrupted(
            what,
            "its key info failed authentication (a key file of another repository?)",
        )
    })?;
    let info = postcard::from_bytes(&plain)
        .map_err(|e| Error::corrupted(what, format!("undecodable key info: {e}")))?;
    Ok((info, body.kdf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> KdfParams {
        KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn wrap_unwrap_describe() {
        let master = MasterKey::generate().unwrap();
        let info = KeyInfo::here("test");
        let (id, bytes) = create(&master, b"secret", fast(), &info).unwrap();
        assert_eq!(id, object::object_id(&bytes));
        let back = unwrap(&bytes, b"secret", "k").unwrap().unwrap();
        assert_eq!(back.chunk_id(b"x"), master.chunk_id(b"x"));
        assert!(unwrap(&bytes, b"wrong", "k").unwrap().is_none());
        assert_eq!(describe(&bytes, &master, "k").unwrap(), (info, fast()));
        assert!(create(&master, b"", fast(), &KeyInfo::here("")).is_err());
    }

    #[test]
    fn hostile_parameters_are_refused() {
        let big = KdfParams {
            memory_kib: u32::MAX,
            iterations: 1,
            parallelism: 1,
        };
        assert!(big.validate().is_err());
        assert!(KdfParams::default().validate().is_ok());
    }
}
