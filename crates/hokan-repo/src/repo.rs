//! The repository: open it with a password, then read and write through it.
//!
//! Layout in the store (every object but `config`'s header is encrypted):
//!
//! ```text
//! config                 settings; its presence makes a repository
//! keys/<id>              key files, each wrapping the master key
//! data/<id[..2]>/<id>    packs
//! index/<id>             index files
//! snapshots/<id>         snapshots
//! locks/<id>             prune's lock and markers
//! ```
//!
//! Writers only add objects, in the order packs → index files → snapshot,
//! so a reader never sees a snapshot whose data is not indexed and stored,
//! and two writers never conflict: names are hashes of contents.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};

use bytes::Bytes;
use rayon::prelude::*;

use hokan_core::fs::{Archiver, Excludes, Progress, Warning};
use hokan_core::{
    BlobReader, BlobType, BlobWriter, FinishedPack, Id, Index, IndexBuilder, MasterKey, Node,
    NodeKind, PackId, PackSink, PackSource, Tree, TreeId, WriteStats,
};

use crate::cache::{self, Cache};
use crate::config::{Config, InitOptions};
use crate::error::{Error, Result, from_core};
use crate::index_file::{IndexFile, IndexedPack};
use crate::keys::{self, KdfParams, KeyInfo};
use crate::object::{self, Kind};
use crate::snapshot::{self, Snapshot, SnapshotEntry, SnapshotFilter, SourceKind, Summary};
use crate::store::{Location, RetryPolicy, Store, runtime};

/// Where to keep the local cache of index files and snapshots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CacheMode {
    /// The default cache directory for remote repositories; none for local
    /// ones (their objects already are on this disk).
    #[default]
    Auto,
    /// No cache.
    Off,
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
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            retry: RetryPolicy::default(),
            cache: CacheMode::Auto,
            upload_concurrency: 4,
            download_concurrency: 16,
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

/// Where a pack lives in the store.
pub fn pack_path(id: &PackId) -> String {
    let hex = id.to_hex();
    format!("data/{}/{hex}", &hex[..2])
}

fn object_path(kind: Kind, id: &Id) -> String {
    let dir = match kind {
        Kind::Config => return "config".into(),
        Kind::Key => "keys",
        Kind::Index => "index",
        Kind::Snapshot => "snapshots",
        Kind::Lock => "locks",
    };
    format!("{dir}/{}", id.to_hex())
}

/// An open repository: its store, master key and settings.
pub struct Repository {
    store: Store,
    key: MasterKey,
    key_id: Id,
    config: Config,
    cache: Option<Cache>,
    options: OpenOptions,
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
        let store = Store::connect(&loc, true, options.retry)?;
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
        let loc = store.location().clone();
        if store.exists("config")? {
            return Err(Error::AlreadyExists {
                location: loc.to_string(),
            });
        }
        init.kdf.validate()?;
        let config = Config {
            repo_id: {
                let mut b = [0u8; 32];
                getrandom::fill(&mut b).map_err(|e| hokan_core::Error::Random(e.to_string()))?;
                Id(b)
            },
            chunk_min: init.chunker.min,
            chunk_avg: init.chunker.avg,
            chunk_max: init.chunker.max,
            compression: init.compression.level(),
            pack_size: init.pack_size,
            created: chrono::Utc::now().timestamp(),
        };
        config.validate()?;
        let key = MasterKey::generate()?;
        let (key_id, key_bytes) =
            keys::create(&key, password, init.kdf, &KeyInfo::here(init.key_label))?;
        store.put(&object_path(Kind::Key, &key_id), Bytes::from(key_bytes))?;
        // The config goes last: until it exists, this is not a repository.
        store.put(
            "config",
            Bytes::from(object::seal(&key, Kind::Config, &config)?),
        )?;
        Ok(Self::assemble(store, key, key_id, config, options))
    }

    fn assemble(
        store: Store,
        key: MasterKey,
        key_id: Id,
        config: Config,
        options: OpenOptions,
    ) -> Self {
        let cache = Self::make_cache(store.location(), &options, &config);
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
        let store = Store::connect(&loc, false, options.retry)?;
        Self::open_store(store, password, options)
    }

    /// [`open`](Self::open) on a store built by the caller.
    pub fn open_store(store: Store, password: &[u8], options: OpenOptions) -> Result<Self> {
        let loc = store.location().clone();
        let not_repo = |reason: &str| Error::NotARepository {
            location: loc.to_string(),
            reason: reason.to_string(),
        };
        let config_bytes = store
            .get_opt("config")?
            .ok_or_else(|| not_repo("it has no config object"))?;
        // Recognise foreign directories and newer formats before asking the KDF.
        if config_bytes.len() < object::HEADER_LEN || &config_bytes[..4] != object::OBJECT_MAGIC {
            return Err(not_repo(
                "its config is not a hokan config (another tool's repository?)",
            ));
        }
        object::check_header(&config_bytes, Kind::Config, "the repository config")?;
        let key_files = store.list("keys")?;
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
            let bytes = match store.get_opt(&object_path(Kind::Key, &id))? {
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
        let config: Config =
            object::open(&key, Kind::Config, &config_bytes, "the repository config")?;
        config.validate()?;
        Ok(Self::assemble(store, key, key_id, config, options))
    }

    fn make_cache(loc: &Location, options: &OpenOptions, config: &Config) -> Option<Cache> {
        let base = match &options.cache {
            CacheMode::Off => return None,
            CacheMode::Auto if loc.is_local() => return None,
            CacheMode::Auto => cache::default_base()?,
            CacheMode::Dir(d) => d.clone(),
        };
        // A cache that cannot be created only costs speed.
        Cache::open(&base, &config.repo_id).ok()
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

    /// Every key file, oldest first.
    pub fn keys(&self) -> Result<Vec<KeyDescription>> {
        let mut out = Vec::new();
        for k in self.store.list("keys")? {
            let Some(id) = Id::from_hex(&k.name) else {
                continue;
            };
            let what = format!("key file keys/{}", k.name);
            let Some(bytes) = self.store.get_opt(&object_path(Kind::Key, &id))? else {
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
            .put(&object_path(Kind::Key, &id), Bytes::from(bytes))?;
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
                return Err(Error::Key(format!(
                    "no key file matches {id_or_prefix:?}; see `hokan key list`"
                )));
            }
            _ => {
                return Err(Error::Key(format!(
                    "{id_or_prefix:?} matches {} key files; give more characters",
                    matching.len()
                )));
            }
        };
        if k.current {
            return Err(Error::Key(format!(
                "key {} is the one this repository was opened with; open it with another key to remove this one, \
                 or use `hokan key passwd` to replace it",
                k.id.short()
            )));
        }
        if keys.len() == 1 {
            return Err(Error::Key(
                "refusing to remove the last key file: the repository would be unreadable".into(),
            ));
        }
        self.store.delete(&object_path(Kind::Key, &k.id))?;
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
        self.store.delete(&object_path(Kind::Key, &old))?;
        Ok(new_id)
    }

    /// Reads objects of one kind by id, from the cache where possible, and
    /// checks each against its id. `None` for objects that vanished.
    fn fetch(&self, kind: Kind, ids: &[Id]) -> Result<Vec<Option<Bytes>>> {
        let dir = object_path(kind, &Id::default());
        let dir = dir.split('/').next().unwrap_or("");
        let mut out: Vec<Option<Bytes>> = vec![None; ids.len()];
        let mut missing = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            match self.cache.as_ref().and_then(|c| c.get(dir, id)) {
                Some(b) => out[i] = Some(Bytes::from(b)),
                None => missing.push(i),
            }
        }
        let paths: Vec<String> = missing
            .iter()
            .map(|&i| object_path(kind, &ids[i]))
            .collect();
        let fetched = self
            .store
            .get_many(&paths, self.options.download_concurrency);
        for (&i, got) in missing.iter().zip(fetched) {
            if let Some(bytes) = got? {
                if object::object_id(&bytes) != ids[i] {
                    return Err(Error::corrupted(
                        object_path(kind, &ids[i]),
                        "its content does not match its name",
                    ));
                }
                if let Some(c) = &self.cache {
                    c.put(dir, &ids[i], &bytes);
                }
                out[i] = Some(bytes);
            }
        }
        if let Some(c) = &self.cache {
            c.retain(dir, &ids.iter().copied().collect());
        }
        Ok(out)
    }

    pub(crate) fn list_ids(&self, dir: &str) -> Result<Vec<Id>> {
        Ok(self
            .store
            .list(dir)?
            .iter()
            .filter_map(|l| Id::from_hex(&l.name))
            .collect())
    }

    /// Every pack file in the store, by pack id, with its size and time.
    pub fn pack_files(&self) -> Result<std::collections::HashMap<PackId, crate::store::Listed>> {
        Ok(self
            .store
            .list("data")?
            .into_iter()
            .filter_map(|l| Some((PackId(l.name.rsplit('/').next().and_then(Id::from_hex)?), l)))
            .collect())
    }

    /// Every snapshot, oldest first.
    pub fn snapshots(&self) -> Result<Vec<SnapshotEntry>> {
        let ids = self.list_ids("snapshots")?;
        let fetched = self.fetch(Kind::Snapshot, &ids)?;
        let mut out = ids
            .par_iter()
            .zip(fetched.par_iter())
            .filter_map(|(id, bytes)| {
                let bytes = bytes.as_ref()?;
                Some(
                    object::open::<Snapshot>(
                        &self.key,
                        Kind::Snapshot,
                        bytes,
                        &format!("snapshot {}", id.short()),
                    )
                    .map(|snapshot| SnapshotEntry { id: *id, snapshot }),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        out.sort_by_key(|e| (e.snapshot.time, e.id));
        Ok(out)
    }

    /// The snapshot named by `latest`, an id or a unique id prefix.
    pub fn find_snapshot(&self, query: &str, filter: &SnapshotFilter) -> Result<SnapshotEntry> {
        let all = self.snapshots()?;
        Ok(snapshot::find(&all, query, filter)?.clone())
    }

    /// Stores a snapshot; returns its id. Call only after the data it
    /// names is stored and indexed.
    pub fn save_snapshot(&self, s: &Snapshot) -> Result<Id> {
        let bytes = object::seal(&self.key, Kind::Snapshot, s)?;
        let id = object::object_id(&bytes);
        self.store.put(
            &object_path(Kind::Snapshot, &id),
            Bytes::from(bytes.clone()),
        )?;
        if let Some(c) = &self.cache {
            c.put("snapshots", &id, &bytes);
        }
        Ok(id)
    }

    /// Deletes a snapshot (its data stays until prune).
    pub fn delete_snapshot(&self, id: &Id) -> Result<()> {
        self.store.delete(&object_path(Kind::Snapshot, id))
    }

    /// Every index file, decoded, with its id (superseded ones included).
    pub fn index_files(&self) -> Result<Vec<(Id, IndexFile)>> {
        let ids = self.list_ids("index")?;
        let fetched = self.fetch(Kind::Index, &ids)?;
        ids.par_iter()
            .zip(fetched.par_iter())
            .filter_map(|(id, bytes)| {
                let bytes = bytes.as_ref()?;
                let what = format!("index file {}", id.short());
                Some(
                    object::open::<IndexFile>(&self.key, Kind::Index, bytes, &what)
                        .map(|f| (*id, f)),
                )
            })
            .collect()
    }

    /// Packs marked for deletion by prune and not yet deleted.
    pub fn marked_packs(&self) -> Result<Vec<crate::maintenance::MarkedPack>> {
        Ok(self
            .locks()?
            .into_iter()
            .filter_map(|(_, l)| match l {
                crate::maintenance::LockObject::Deletion { marked } => Some(marked),
                _ => None,
            })
            .flatten()
            .collect())
    }

    /// Loads every index file, ready to read and write data.
    pub fn load_index(self) -> Result<IndexedRepository> {
        let ids = self.list_ids("index")?;
        let mut fetched = self.fetch(Kind::Index, &ids)?;
        // Postcard spends about 45 bytes on an entry: size the array once.
        let stored: usize = fetched.iter().flatten().map(|b| b.len()).sum();
        let mut builder = IndexBuilder::with_capacity(stored / 42, stored / 42 / 8);
        let mut superseded = HashSet::new();
        let mut present = Vec::new();
        // Decode a batch of files in parallel, fold it in, free it: only a
        // batch of decoded files is ever in memory beside the index.
        for (batch_ids, batch) in ids.chunks(32).zip(fetched.chunks_mut(32)) {
            let decoded = batch_ids
                .par_iter()
                .zip(batch.par_iter_mut())
                .filter_map(|(id, bytes)| {
                    let bytes = bytes.take()?;
                    let what = format!("index file {}", id.short());
                    Some(
                        object::open::<IndexFile>(&self.key, Kind::Index, &bytes, &what)
                            .map(|f| (*id, f)),
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            for (id, file) in decoded {
                superseded.extend(file.supersedes.iter().copied());
                present.push(id);
                for p in &file.packs {
                    builder.add_pack(p.id, p.kind, &p.blobs);
                }
            }
        }
        let marked = self.marked_packs()?;
        let index = if superseded.iter().any(|id| present.contains(id)) {
            // A prune or repair replaced some files but was interrupted
            // before deleting them: load again without the replaced ones.
            self.load_index_without(&ids, &superseded, &marked)?
        } else {
            // Packs marked for deletion stay readable (a backup that ran
            // during the prune may use them) but are not deduped against.
            for m in &marked {
                builder.add_hidden_pack(m.pack.id, m.pack.kind, &m.pack.blobs);
            }
            builder.build()
        };
        Ok(IndexedRepository {
            repo: self,
            index,
            index_files: present
                .into_iter()
                .filter(|id| !superseded.contains(id))
                .collect(),
        })
    }

    fn load_index_without(
        &self,
        ids: &[Id],
        skip: &HashSet<Id>,
        marked: &[crate::maintenance::MarkedPack],
    ) -> Result<Index> {
        let keep: Vec<Id> = ids
            .iter()
            .filter(|id| !skip.contains(id))
            .copied()
            .collect();
        let fetched = self.fetch(Kind::Index, &keep)?;
        let mut builder = IndexBuilder::default();
        for (id, bytes) in keep.iter().zip(fetched) {
            let Some(bytes) = bytes else { continue };
            let file: IndexFile = object::open(
                &self.key,
                Kind::Index,
                &bytes,
                &format!("index file {}", id.short()),
            )?;
            for p in &file.packs {
                builder.add_pack(p.id, p.kind, &p.blobs);
            }
        }
        for m in marked {
            builder.add_hidden_pack(m.pack.id, m.pack.kind, &m.pack.blobs);
        }
        Ok(builder.build())
    }

    /// Writes an index file for packs already stored; returns its id.
    pub fn write_index_file(&self, file: &IndexFile) -> Result<Id> {
        let bytes = object::seal(&self.key, Kind::Index, file)?;
        let id = object::object_id(&bytes);
        self.store
            .put(&object_path(Kind::Index, &id), Bytes::from(bytes.clone()))?;
        if let Some(c) = &self.cache {
            c.put("index", &id, &bytes);
        }
        Ok(id)
    }
}

impl PackSource for Store {
    fn read_range(&self, pack: &PackId, offset: u32, length: u32) -> hokan_core::Result<Vec<u8>> {
        let path = pack_path(pack);
        match self.get_range(&path, offset as u64..offset as u64 + length as u64) {
            Ok(b) => Ok(b.to_vec()),
            Err(Error::Missing { .. }) => Err(Error::Missing {
                what: format!("pack {} ({path})", pack.short()),
            }
            .into()),
            Err(e) => Err(e.into()),
        }
    }
}

impl PackSource for Repository {
    fn read_range(&self, pack: &PackId, offset: u32, length: u32) -> hokan_core::Result<Vec<u8>> {
        self.store.read_range(pack, offset, length)
    }
}

/// What a write session added.
#[derive(Clone, Debug, Default)]
pub struct WriteSummary {
    /// The data path's figures.
    pub stats: WriteStats,
    /// Packs uploaded.
    pub packs: Vec<IndexedPack>,
    /// Index files written for them.
    pub index_files: Vec<Id>,
}

/// A repository with its index loaded: ready to back up and restore.
pub struct IndexedRepository {
    repo: Repository,
    index: Index,
    index_files: Vec<Id>,
}

impl std::fmt::Debug for IndexedRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexedRepository")
            .field("repo", &self.repo)
            .field("blobs", &self.index.len())
            .finish()
    }
}

impl Deref for IndexedRepository {
    type Target = Repository;
    fn deref(&self) -> &Repository {
        &self.repo
    }
}

impl IndexedRepository {
    /// A repository with an index built elsewhere (prune's view of the
    /// packs it keeps).
    pub(crate) fn from_parts(repo: Repository, index: Index) -> Self {
        IndexedRepository {
            repo,
            index,
            index_files: Vec::new(),
        }
    }

    /// Gives back the repository.
    pub fn into_inner(self) -> Repository {
        self.repo
    }

    /// The merged index.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The index files it was loaded from (and written since).
    pub fn index_files(&self) -> &[Id] {
        &self.index_files
    }

    /// Runs `f` with a [`BlobWriter`] whose packs are uploaded as they fill;
    /// then waits for the uploads, writes index files for the new packs and
    /// adds them to the in-memory index. Nothing refers to the new data
    /// until the caller saves a snapshot.
    ///
    /// `f` also gets a [`BlobReader`] over the data stored before this
    /// session (to read a parent snapshot's trees).
    pub fn write<T>(
        &mut self,
        f: impl FnOnce(&BlobWriter<'_>, &BlobReader<'_>) -> Result<T>,
    ) -> Result<(T, WriteSummary)> {
        let uploader = Uploader::new(&self.repo);
        let outcome = {
            let config = self.repo.config.writer_config()?;
            let writer = BlobWriter::new(&self.repo.key, config, &self.index, &uploader)?;
            let reader = BlobReader::new(&self.repo.key, &self.index, &self.repo);
            match f(&writer, &reader) {
                Ok(v) => writer.finish().map(|stats| (v, stats)).map_err(from_core),
                Err(e) => Err(e),
            }
        };
        // Index what did get stored even after a failure: the next backup
        // reuses it instead of uploading it again.
        let finished = uploader.finish();
        let (packs, index_files) = match finished {
            Ok(done) => done,
            Err(upload_error) => {
                return Err(match outcome {
                    Err(e) => e,
                    Ok(_) => upload_error,
                });
            }
        };
        for p in &packs {
            self.index.insert_pack(p.id, p.kind, &p.blobs);
        }
        self.index_files.extend(index_files.iter().copied());
        let (value, stats) = outcome?;
        Ok((
            value,
            WriteSummary {
                stats,
                packs,
                index_files,
            },
        ))
    }

    /// A reader for blobs of this repository.
    pub fn reader(&self) -> BlobReader<'_> {
        BlobReader::new(&self.repo.key, &self.index, &self.repo)
    }

    /// Reads and decodes a tree.
    pub fn read_tree(&self, id: &TreeId) -> Result<Tree> {
        let bytes = self
            .reader()
            .read_blob(BlobType::Tree, &id.0)
            .map_err(from_core)?;
        Ok(Tree::decode(&bytes, id)?)
    }

    /// Backs up a byte stream as one file named `name` (`backup --stdin`):
    /// the library entry point stream sources (database dumps, etcd) use.
    /// Saves and returns the snapshot.
    pub fn backup_stream(
        &mut self,
        reader: impl Read + Send,
        name: &str,
        mut snapshot: StreamSnapshot,
    ) -> Result<SnapshotEntry> {
        let start = std::time::Instant::now();
        let name = name.trim_matches('/');
        if name.is_empty() || name.contains('/') {
            return Err(Error::Invalid {
                what: "stream file name",
                reason: format!("{name:?}; give a plain file name such as dump.sql"),
            });
        }
        let (tree, summary) = self.write(|w, _| {
            let chunks = w.write_stream(reader).map_err(from_core)?;
            let mut node = Node::new(name, NodeKind::File);
            node.size = chunks.iter().map(|c| c.len as u64).sum();
            node.mode = 0o600;
            node.content = chunks;
            let now = chrono::Utc::now();
            node.mtime = hokan_core::Timestamp {
                secs: now.timestamp(),
                nanos: now.timestamp_subsec_nanos(),
            };
            node.atime = node.mtime;
            node.ctime = node.mtime;
            let size = node.size;
            let tree = Tree::new(vec![node])?;
            let id = w
                .write_blob(BlobType::Tree, &tree.encode())
                .map_err(from_core)?;
            Ok((TreeId(id), size))
        })?;
        let (tree_id, size) = tree;
        let mut s = Snapshot::new(snapshot.source, vec![name.to_string()], tree_id);
        snapshot.tags.sort();
        snapshot.tags.dedup();
        s.tags = snapshot.tags;
        s.meta = snapshot.meta;
        s.parent = snapshot.parent;
        s.summary.files = 1;
        s.summary.bytes = size;
        s.summary.files_new = 1;
        s.summary.blobs_added = summary.stats.new_blobs;
        s.summary.bytes_added = summary.stats.new_bytes;
        s.summary.bytes_stored = summary.stats.stored_bytes;
        s.summary.packs_added = summary.packs.len() as u64;
        s.summary.duration_ms = start.elapsed().as_millis() as u64;
        let id = self.save_snapshot(&s)?;
        Ok(SnapshotEntry { id, snapshot: s })
    }

    /// Backs up files and directories into a new snapshot; see [`FsBackup`].
    /// Unreadable files are skipped and reported in the result, not as an
    /// error; a path that does not exist is an error before anything is
    /// stored.
    pub fn backup_paths(
        &mut self,
        paths: &[PathBuf],
        options: &FsBackup,
        progress: &dyn Progress,
    ) -> Result<FsBackupResult> {
        let start = std::time::Instant::now();
        let hostname = options.hostname.clone().unwrap_or_else(crate::hostname);
        let mut abs = paths
            .iter()
            .map(|p| hokan_core::fs::absolute(p))
            .collect::<hokan_core::Result<Vec<_>>>()?;
        abs.sort();
        abs.dedup();
        let wanted: Vec<String> = abs
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let parent = match &options.parent {
            ParentChoice::None => None,
            ParentChoice::Snapshot(id) => {
                Some(self.find_snapshot(&id.to_hex(), &SnapshotFilter::default())?)
            }
            ParentChoice::Auto => self.snapshots()?.into_iter().rev().find(|e| {
                e.snapshot.source == SourceKind::Fs
                    && e.snapshot.hostname == hostname
                    && e.snapshot.paths == wanted
            }),
        };
        let parent_tree = parent.as_ref().map(|p| p.snapshot.tree);
        let excludes = &options.excludes;
        let (archived, summary) = self.write(|w, r| {
            Archiver::new(w, Some(r), excludes, progress)
                .archive(&abs, parent_tree.as_ref())
                .map_err(from_core)
        })?;
        let mut s = Snapshot::new(
            SourceKind::Fs,
            archived
                .paths
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
            archived.tree,
        );
        s.hostname = hostname;
        let mut tags = options.tags.clone();
        tags.sort();
        tags.dedup();
        s.tags = tags;
        s.parent = parent.map(|p| p.id);
        let a = &archived.summary;
        s.summary = Summary {
            files_new: a.files_new,
            files_changed: a.files_changed,
            files_unmodified: a.files_unmodified,
            dirs: a.dirs,
            files: a.files,
            bytes: a.bytes,
            blobs_added: summary.stats.new_blobs,
            bytes_added: summary.stats.new_bytes,
            bytes_stored: summary.stats.stored_bytes,
            packs_added: summary.packs.len() as u64,
            errors: a.warnings,
            duration_ms: start.elapsed().as_millis() as u64,
        };
        let id = self.save_snapshot(&s)?;
        Ok(FsBackupResult {
            entry: SnapshotEntry { id, snapshot: s },
            warnings: archived.warnings,
        })
    }

    /// Writes the content of a snapshot holding one file (a stream
    /// snapshot) to `out`; returns the bytes written.
    pub fn restore_stream(&self, snapshot: &Snapshot, out: &mut (dyn Write + Send)) -> Result<u64> {
        let tree = self.read_tree(&snapshot.tree)?;
        let [node] = tree.nodes.as_slice() else {
            return Err(Error::Invalid {
                what: "snapshot",
                reason: format!("it holds {} entries, not one stream", tree.nodes.len()),
            });
        };
        if node.kind != NodeKind::File {
            return Err(Error::Invalid {
                what: "snapshot",
                reason: "its one entry is not a file".into(),
            });
        }
        self.reader()
            .read_chunks(&node.content, out)
            .map_err(from_core)
    }
}

/// Settings of a file-system backup.
#[derive(Clone, Debug, Default)]
pub struct FsBackup {
    /// What to leave out.
    pub excludes: Excludes,
    /// Tags for the snapshot.
    pub tags: Vec<String>,
    /// The snapshot to compare with: by default the newest one of this
    /// host with the same paths.
    pub parent: ParentChoice,
    /// Record this host name instead of the machine's.
    pub hostname: Option<String>,
}

/// Which snapshot an incremental backup compares with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ParentChoice {
    /// The newest snapshot of the same host and paths.
    #[default]
    Auto,
    /// None: read every file.
    None,
    /// This snapshot.
    Snapshot(Id),
}

/// A finished file-system backup.
#[derive(Clone, Debug)]
pub struct FsBackupResult {
    /// The snapshot saved.
    pub entry: SnapshotEntry,
    /// Files that could not be read or changed while read.
    pub warnings: Vec<Warning>,
}

/// Settings of a stream snapshot.
#[derive(Clone, Debug)]
pub struct StreamSnapshot {
    /// What the stream is.
    pub source: SourceKind,
    /// Tags.
    pub tags: Vec<String>,
    /// Source-specific facts.
    pub meta: Vec<(String, String)>,
    /// An earlier snapshot of the same stream.
    pub parent: Option<Id>,
}

impl Default for StreamSnapshot {
    fn default() -> Self {
        StreamSnapshot {
            source: SourceKind::Stream,
            tags: Vec::new(),
            meta: Vec::new(),
            parent: None,
        }
    }
}

/// Uploads packs on the I/O runtime, a bounded number at a time, and writes
/// index files for the ones that landed.
struct Uploader<'r> {
    repo: &'r Repository,
    shared: Arc<(Mutex<UploadState>, Condvar)>,
}

#[derive(Default)]
struct UploadState {
    in_flight: usize,
    landed: Vec<IndexedPack>,
    error: Option<Error>,
}

/// Packs per index file written during a long backup, so an interrupted
/// one leaves its stored packs indexed for the next run.
const PACKS_PER_INDEX_FILE: usize = 256;

impl<'r> Uploader<'r> {
    fn new(repo: &'r Repository) -> Self {
        Uploader {
            repo,
            shared: Arc::new((Mutex::new(UploadState::default()), Condvar::new())),
        }
    }

    /// Waits for every upload, then indexes what landed. Returns the packs
    /// and index files, or the first upload error (after indexing the packs
    /// that did land).
    fn finish(self) -> Result<(Vec<IndexedPack>, Vec<Id>)> {
        let (lock, cond) = &*self.shared;
        let mut st = lock.lock().expect("upload state");
        while st.in_flight > 0 {
            st = cond.wait(st).expect("upload state");
        }
        let landed = std::mem::take(&mut st.landed);
        let error = st.error.take();
        drop(st);
        let mut index_files = Vec::new();
        for batch in landed.chunks(PACKS_PER_INDEX_FILE) {
            index_files.push(self.repo.write_index_file(&IndexFile {
                supersedes: Vec::new(),
                packs: batch.to_vec(),
            })?);
        }
        match error {
            Some(e) => Err(e),
            None => Ok((landed, index_files)),
        }
    }
}

impl PackSink for Uploader<'_> {
    fn put_pack(&self, pack: FinishedPack) -> hokan_core::Result<()> {
        let (lock, cond) = &*self.shared;
        {
            let mut st = lock.lock().expect("upload state");
            while st.in_flight >= self.repo.options.upload_concurrency.max(1) && st.error.is_none()
            {
                st = cond.wait(st).expect("upload state");
            }
            if let Some(e) = &st.error {
                return Err(hokan_core::Error::Storage(
                    format!("an earlier pack upload failed: {e}").into(),
                ));
            }
            st.in_flight += 1;
        }
        let meta = IndexedPack {
            id: pack.id,
            kind: pack.kind,
            size: pack.bytes.len() as u64,
            blobs: pack.blobs,
        };
        let store = self.repo.store.clone();
        let shared = self.shared.clone();
        let bytes = Bytes::from(pack.bytes);
        runtime().spawn(async move {
            let result = store.put_async(&pack_path(&meta.id), bytes).await;
            let (lock, cond) = &*shared;
            let mut st = lock.lock().expect("upload state");
            st.in_flight -= 1;
            match result {
                Ok(()) => st.landed.push(meta),
                Err(e) => {
                    st.error.get_or_insert(e);
                }
            }
            cond.notify_all();
        });
        Ok(())
    }
}
