//! The repository: open it with a password, manage its keys, upgrade its
//! format. Reading and writing objects is in [`crate::objects`], the index
//! in [`crate::index_load`], writing data in [`crate::session`].
//!
//! Writers only add objects, in the order packs → index files → snapshot,
//! each stored durably before the next is written, so a reader never sees
//! a snapshot whose data is not indexed and stored, and two writers never
//! conflict: names are hashes of contents.

use std::path::PathBuf;

use bytes::Bytes;

use hokan_core::{FormatVersion, Id, MasterKey};

use crate::cache::{self, Cache};
use crate::config::{Config, ConfigV1, InitOptions};
use crate::error::{Error, Result};
use crate::keys::{self, KdfParams, KeyInfo};
use crate::layout;
use crate::object::{self, Kind};
use crate::store::{Location, Removal, RetryPolicy, Store};

/// Where to keep the local cache of index files and snapshots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CacheMode {
    /// The default cache directory; for local repositories (their objects
    /// already are on this disk) it holds only the mapped index, which
    /// keeps a process's memory from growing with the repository.
    #[default]
    Auto,
    /// No cache. The index is still mapped, from a file written to the
    /// temporary directory and removed at once, so memory stays bounded.
    Off,
    /// No cache, and the index loaded into memory: the quickest to open
    /// for a small repository, but memory grows with the repository
    /// (about 46 bytes a blob, more while loading).
    Memory,
    /// This directory, whatever the repository.
    Dir(PathBuf),
}

/// How to talk to the store.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Retries of transient storage errors.
    pub retry: RetryPolicy,
    /// The local cache.
    pub cache: CacheMode,
    /// Pack uploads in flight at once.
    pub upload_concurrency: usize,
    /// Concurrent downloads of small objects.
    pub download_concurrency: usize,
    /// The store's settings and credentials, over the environment
    /// ([`Store::connect_with`]): for programs serving several repositories.
    pub store_settings: crate::store::StoreSettings,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            retry: RetryPolicy::default(),
            cache: CacheMode::Auto,
            upload_concurrency: 4,
            download_concurrency: 16,
            store_settings: Default::default(),
        }
    }
}

/// One key file, as `key list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyDescription {
    /// The key file's id.
    pub id: Id,
    /// Who made it, when.
    pub info: KeyInfo,
    /// Its password-stretching cost.
    pub kdf: KdfParams,
    /// Whether this is the key the repository was opened with.
    pub current: bool,
}

/// An open repository: its store, master key and settings.
pub struct Repository {
    pub(crate) store: Store,
    pub(crate) key: MasterKey,
    pub(crate) key_id: Id,
    pub(crate) config: Config,
    pub(crate) cache: Option<Cache>,
    pub(crate) options: OpenOptions,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("location", &self.store.location().to_string())
            .field("key", &self.key_id.short())
            .finish()
    }
}

impl Repository {
    /// Creates a repository: a fresh master key, one key file for
    /// `password`, and the config, written last. Refuses a location that
    /// already holds one.
    pub fn init(
        location: &str,
        password: &[u8],
        init: InitOptions,
        options: OpenOptions,
    ) -> Result<Self> {
        let loc = Location::parse(location)?;
        let store = Store::connect_with(&loc, true, options.retry, &options.store_settings)?;
        Self::init_store(store, password, init, options)
    }

    /// [`init`](Self::init) on a store built by the caller (a custom
    /// backend, or one that injects faults in tests).
    pub fn init_store(
        store: Store,
        password: &[u8],
        init: InitOptions,
        options: OpenOptions,
    ) -> Result<Self> {
        init.kdf.validate()?;
        let key = MasterKey::generate()?;
        Self::init_with_key(store, password, init, options, key)
    }

    /// Creates a repository that chunks and identifies data exactly as
    /// `from` does (`init --copy-chunker-params-from`): `from`'s chunk
    /// sizes, chunker seed and id key, with a data key and repository id
    /// of its own. `hokan copy` between the two then moves blobs and trees
    /// without re-chunking or re-identifying them; see `docs/DECISIONS.md`
    /// for why sharing these leaks nothing new.
    pub fn init_sharing_ids(
        location: &str,
        password: &[u8],
        mut init: InitOptions,
        options: OpenOptions,
        from: &Repository,
    ) -> Result<Self> {
        let loc = Location::parse(location)?;
        let store = Store::connect_with(&loc, true, options.retry, &options.store_settings)?;
        init.chunker = from.config.chunker()?;
        init.kdf.validate()?;
        let key = MasterKey::generate_sharing_ids(&from.key)?;
        Self::init_with_key(store, password, init, options, key)
    }

    fn init_with_key(
        store: Store,
        password: &[u8],
        init: InitOptions,
        options: OpenOptions,
        key: MasterKey,
    ) -> Result<Self> {
        let loc = store.location().clone();
        if store.exists(layout::CONFIG)? {
            return Err(Error::AlreadyExists {
                location: loc.to_string(),
            });
        }
        // Keys or data without a config: the config was lost. A new master
        // key here would split the repository in two.
        if let Some(found) = Self::data_without_config(&store)? {
            return Err(Error::ConfigLost {
                location: loc.to_string(),
                found,
            });
        }
        let config = new_config(&init)?;
        // From the first object on, an immutable repository only creates.
        let mut store = store;
        store.set_immutable(config.immutable.map(|m| m.retention_secs));
        let (key_id, key_bytes) =
            keys::create(&key, password, init.kdf, &KeyInfo::here(init.key_label))?;
        store.put(&layout::object(Kind::Key, &key_id), Bytes::from(key_bytes))?;
        // The config goes last: until it exists, this is not a repository.
        store.put(layout::CONFIG, Bytes::from(config.seal(&key)?))?;
        Ok(Self::assemble(store, key, key_id, config, options))
    }

    /// Writes a new config into a repository whose config was lost
    /// ([`Error::ConfigLost`]) or is damaged ([`Error::ConfigDamaged`]),
    /// after checking that `password` opens one of its key files. A config
    /// that opens is never replaced. The master key (and with it the chunker seed) is
    /// in the key files, so every stored object stays readable; the chunk
    /// sizes, compression and pack size come from `init` and should match
    /// the lost config's for new data to dedup against old.
    pub fn recreate_config(
        location: &str,
        password: &[u8],
        init: InitOptions,
        options: OpenOptions,
    ) -> Result<Self> {
        let loc = Location::parse(location)?;
        let store = Store::connect_with(&loc, false, options.retry, &options.store_settings)?;
        let existing = store.get_opt(layout::CONFIG)?;
        let mut opened = None;
        for k in store.list(layout::dir(Kind::Key))? {
            let Some(id) = Id::from_hex(&k.name) else {
                continue;
            };
            let Some(bytes) = store.get_opt(&layout::object(Kind::Key, &id))? else {
                continue;
            };
            if let Ok(Some(key)) =
                keys::unwrap(&bytes, password, &format!("key file {}", id.short()))
            {
                opened = Some((id, key));
                break;
            }
        }
        let Some((key_id, key)) = opened else {
            return Err(Error::WrongPassword {
                location: loc.to_string(),
                keys: store.list(layout::dir(Kind::Key))?.len(),
            });
        };
        // Only a config whose bytes are damaged is replaced: its settings
        // are unreadable anyway, and the master key is in the key file.
        if let Some(bytes) = existing {
            match Config::open(&key, &bytes, "the repository config") {
                Err(Error::Corrupted { .. }) => {}
                Err(e) => return Err(e),
                Ok(_) => {
                    return Err(Error::AlreadyExists {
                        location: loc.to_string(),
                    });
                }
            }
        }
        let config = new_config(&init)?;
        let mut store = store;
        store.set_immutable(config.immutable.map(|m| m.retention_secs));
        store.put(layout::CONFIG, Bytes::from(config.seal(&key)?))?;
        Ok(Self::assemble(store, key, key_id, config, options))
    }

    /// What repository data a location holds besides a config, if any.
    fn data_without_config(store: &Store) -> Result<Option<String>> {
        let mut found = Vec::new();
        for dir in layout::DIRS {
            let n = store.list(dir)?.len();
            if n > 0 {
                found.push(format!("{n} object(s) under {dir}/"));
            }
        }
        Ok((!found.is_empty()).then(|| found.join(", ")))
    }

    fn assemble(
        store: Store,
        key: MasterKey,
        key_id: Id,
        config: Config,
        options: OpenOptions,
    ) -> Self {
        let cache = Self::make_cache(store.location(), &options, &config);
        let mut store = store;
        store.set_immutable(config.immutable.map(|m| m.retention_secs));
        Repository {
            store,
            key,
            key_id,
            config,
            cache,
            options,
        }
    }

    /// Opens a repository with a password.
    pub fn open(location: &str, password: &[u8], options: OpenOptions) -> Result<Self> {
        let loc = Location::parse(location)?;
        let store = Store::connect_with(&loc, false, options.retry, &options.store_settings)?;
        Self::open_store(store, password, options)
    }

    /// [`open`](Self::open) on a store built by the caller.
    pub fn open_store(store: Store, password: &[u8], options: OpenOptions) -> Result<Self> {
        let loc = store.location().clone();
        let not_repo = |reason: &str| Error::NotARepository {
            location: loc.to_string(),
            reason: reason.to_string(),
        };
        let config_bytes = match store.get_opt(layout::CONFIG)? {
            Some(b) => b,
            None => {
                return Err(match Self::data_without_config(&store)? {
                    Some(found) => Error::ConfigLost {
                        location: loc.to_string(),
                        found,
                    },
                    None => not_repo("it has no config object"),
                });
            }
        };
        // Recognise foreign directories and newer formats before asking the KDF.
        if config_bytes.len() < object::HEADER_LEN || &config_bytes[..4] != object::OBJECT_MAGIC {
            return Err(not_repo(
                "its config is not a hokan config (another tool's repository?)",
            ));
        }
        object::check_header(&config_bytes, Kind::Config, "the repository config")?;
        let key_files = store.list(layout::dir(Kind::Key))?;
        if key_files.is_empty() {
            return Err(Error::corrupted(
                "the repository",
                "it has a config but no key files",
            ));
        }
        let mut damaged = Vec::new();
        let mut opened = None;
        for k in &key_files {
            let what = format!("key file keys/{}", k.name);
            let Some(id) = Id::from_hex(&k.name) else {
                continue;
            };
            let bytes = match store.get_opt(&layout::object(Kind::Key, &id))? {
                Some(b) => b,
                None => continue, // removed meanwhile
            };
            match keys::unwrap(&bytes, password, &what) {
                Ok(Some(key)) => {
                    opened = Some((id, key));
                    break;
                }
                Ok(None) => {}
                Err(Error::NewerVersion { .. })
                | Err(Error::Corrupted { .. })
                | Err(Error::Invalid { .. }) => damaged.push(what),
                Err(e) => return Err(e),
            }
        }
        let Some((key_id, key)) = opened else {
            if !damaged.is_empty() {
                return Err(Error::corrupted(
                    damaged.join(", "),
                    "no other key file opens with this password; if it belongs to the damaged one, restore that file",
                ));
            }
            return Err(Error::WrongPassword {
                location: loc.to_string(),
                keys: key_files.len(),
            });
        };
        let config = Config::open(&key, &config_bytes, "the repository config").map_err(|e| {
            match e {
                // The key opened: the data is fine, only the config is not.
                Error::Corrupted { reason, .. } => Error::ConfigDamaged {
                    location: loc.to_string(),
                    reason,
                },
                other => other,
            }
        })?;
        Ok(Self::assemble(store, key, key_id, config, options))
    }

    fn make_cache(loc: &Location, options: &OpenOptions, config: &Config) -> Option<Cache> {
        // A cache that cannot be created only costs speed (and memory: the
        // index is loaded instead of mapped).
        match &options.cache {
            CacheMode::Off | CacheMode::Memory => None,
            CacheMode::Auto if loc.is_local() => {
                Cache::index_only(&cache::default_base()?, &config.repo_id).ok()
            }
            CacheMode::Auto => Cache::open(&cache::default_base()?, &config.repo_id).ok(),
            CacheMode::Dir(d) => Cache::open(d, &config.repo_id).ok(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The master key.
    pub fn master_key(&self) -> &MasterKey {
        &self.key
    }

    /// The key file the repository was opened with.
    pub fn key_id(&self) -> &Id {
        &self.key_id
    }

    /// The local cache, if any.
    pub fn cache(&self) -> Option<&Cache> {
        self.cache.as_ref()
    }

    /// The repository's format version: what writers may use.
    pub fn format(&self) -> FormatVersion {
        self.config.format
    }

    /// Upgrades the repository to the current format (`hokan migrate`):
    /// rewrites the config object only; every object already stored stays
    /// valid. Releases that read only older formats can no longer open the
    /// repository afterwards. Returns the format it had.
    pub fn upgrade(&mut self) -> Result<FormatVersion> {
        let old = self.config.format;
        if old >= FormatVersion::CURRENT {
            return Ok(old);
        }
        let mut config = Config::new(self.config.base.clone());
        config.format = FormatVersion::CURRENT;
        config.validate()?;
        self.store
            .put(layout::CONFIG, Bytes::from(config.seal(&self.key)?))?;
        self.config = config;
        Ok(old)
    }

    /// The version objects of `kind` are written in, by this repository's
    /// format.
    pub(crate) fn object_version(&self, kind: Kind) -> u16 {
        kind.version_for(self.config.format)
    }

    /// Every key file, oldest first.
    pub fn keys(&self) -> Result<Vec<KeyDescription>> {
        let mut out = Vec::new();
        for k in self.store.list(layout::dir(Kind::Key))? {
            let Some(id) = Id::from_hex(&k.name) else {
                continue;
            };
            let what = format!("key file keys/{}", k.name);
            let Some(bytes) = self.store.get_opt(&layout::object(Kind::Key, &id))? else {
                continue;
            };
            let (info, kdf) = keys::describe(&bytes, &self.key, &what)?;
            out.push(KeyDescription {
                id,
                info,
                kdf,
                current: id == self.key_id,
            });
        }
        out.sort_by_key(|k| (k.info.created, k.id));
        Ok(out)
    }

    /// Adds a key file for another password; returns its id.
    pub fn add_key(&self, password: &[u8], kdf: KdfParams, label: &str) -> Result<Id> {
        let (id, bytes) = keys::create(&self.key, password, kdf, &KeyInfo::here(label))?;
        self.store
            .put(&layout::object(Kind::Key, &id), Bytes::from(bytes))?;
        Ok(id)
    }

    /// Removes a key file by id or unique id prefix. Refuses the key in
    /// use (use [`change_password`](Self::change_password)) and the last key.
    pub fn remove_key(&self, id_or_prefix: &str) -> Result<Id> {
        let keys = self.keys()?;
        let q = id_or_prefix.to_ascii_lowercase();
        let matching: Vec<_> = keys
            .iter()
            .filter(|k| !q.is_empty() && k.id.to_hex().starts_with(&q))
            .collect();
        let k = match matching.as_slice() {
            [k] => *k,
            [] => {
                return Err(Error::KeyNotFound {
                    query: id_or_prefix.to_string(),
                });
            }
            _ => {
                return Err(Error::Key(format!(
                    "{id_or_prefix:?} matches {} key files; give more characters",
                    matching.len()
                )));
            }
        };
        // The last key first: "open with another key" would send the user
        // looking for a key that does not exist.
        if keys.len() == 1 {
            return Err(Error::Key(
                "refusing to remove the last key file: the repository would be unreadable".into(),
            ));
        }
        if k.current {
            return Err(Error::KeyInUse { id: k.id });
        }
        if let Removal::Kept { until } =
            self.store.remove(&layout::object(Kind::Key, &k.id), None)?
        {
            return Err(kept_key(&self.store, &k.id, until));
        }
        Ok(k.id)
    }

    /// Replaces the current key file with one for a new password: the new
    /// key file is written first, then the old one removed. Returns the new id.
    pub fn change_password(&mut self, new_password: &[u8], kdf: KdfParams) -> Result<Id> {
        let label = self
            .keys()?
            .into_iter()
            .find(|k| k.current)
            .map(|k| k.info.label)
            .unwrap_or_default();
        let new_id = self.add_key(new_password, kdf, &label)?;
        let old = std::mem::replace(&mut self.key_id, new_id);
        if let Removal::Kept { until } =
            self.store.remove(&layout::object(Kind::Key, &old), None)?
        {
            return Err(kept_key(&self.store, &old, until));
        }
        Ok(new_id)
    }
}

/// A key file the object lock keeps: its password still opens the
/// repository, which the user must know.
fn kept_key(store: &Store, id: &Id, until: Option<i64>) -> Error {
    let when = match until {
        Some(t) => format!(
            "the object lock keeps it until {}",
            chrono::DateTime::from_timestamp(t, 0)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default()
        ),
        None => "the store refused to delete it".to_string(),
    };
    Error::Immutable {
        location: store.location().to_string(),
        path: layout::object(Kind::Key, id),
        action: "deleted",
        reason: format!(
            "the repository is immutable and {when}; its password still opens the repository \
             until then: remove key {} again after that date",
            id.short()
        ),
    }
}

/// The config of a new repository (or a recreated one): a fresh random id
/// and the settings `init` asks for.
fn new_config(init: &InitOptions) -> Result<Config> {
    let mut repo_id = [0u8; 32];
    getrandom::fill(&mut repo_id).map_err(|e| hokan_core::Error::Random(e.to_string()))?;
    let mut config = Config::new(ConfigV1 {
        repo_id: Id(repo_id),
        chunk_min: init.chunker.min,
        chunk_avg: init.chunker.avg,
        chunk_max: init.chunker.max,
        compression: init.compression.level(),
        pack_size: init.pack_size,
        created: chrono::Utc::now().timestamp(),
    });
    config.format = init.format;
    config.immutable = init.immutable;
    config.validate()?;
    Ok(config)
}
