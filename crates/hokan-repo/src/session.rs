//! Write sessions: the one way every source stores data and commits a
//! snapshot.
//!
//! A source describes the snapshot it is about to take ([`SnapshotSpec`]:
//! its kind, what it is a backup of, tags, labels), and
//! [`IndexedRepository::backup`] opens a [`Session`] for it. Through the
//! session the source stores byte streams cut by the repository's chunker,
//! chunks it cut itself along its own format, and trees of nodes, all on
//! the parallel pipeline; it reads its parent's trees to skip what did not
//! change. When the source returns its root tree ([`Staged`]), the session
//! commits:
//!
//! 1. every pack is stored durably, then the index files that list them;
//! 2. the packs the session deduplicated against are checked to still
//!    exist if a prune may have run meanwhile (the writer lock the session
//!    held was removed, or index files it loaded were replaced);
//! 3. damage found while reading is recorded, so no later writer trusts it;
//! 4. the snapshot is saved.
//!
//! If the source fails, or any step fails, no snapshot is saved; the packs
//! that landed are indexed, so the next run does not upload them again.
//!
//! The source's closure returns its own error type, any `E` that a
//! repository [`Error`] converts into: its errors come back from
//! [`IndexedRepository::backup`] as it returned them, and the session's
//! own errors arrive converted. A closure that only uses `?` on the
//! session's methods names its type, `|s| -> hokan_repo::Result<_> { … }`.
//!
//! Every snapshot is saved by one commit (steps 2 to 4): the sources'
//! through [`IndexedRepository::backup`], and copies of snapshots from
//! another repository ([`crate::copy`]) the same way.

use std::collections::HashSet;
use std::io::Read;
use std::ops::Range;

use hokan_core::{
    BlobReader, BlobWriter, ChunkRef, FormatVersion, Id, Node, PackId, Tree, TreeId, WriteStats,
};

use crate::error::{Error, Result, from_core};
use crate::index_file::IndexedPack;
use crate::index_load::IndexedRepository;
use crate::layout;
use crate::locks::{LockObject, WriterLock};
use crate::object::Kind;
use crate::packs::Uploader;
use crate::snapshot::{Snapshot, SnapshotEntry, SourceKind, Summary, normalize_tags};

/// Which snapshot a backup compares with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ParentChoice {
    /// The newest snapshot of the same source and identity (for file
    /// systems: of the same host and paths).
    #[default]
    Auto,
    /// None: read everything.
    None,
    /// This snapshot.
    Snapshot(Id),
}

/// What a source says about the snapshot it is about to take.
#[derive(Clone, Debug)]
pub struct SnapshotSpec {
    /// The kind of source.
    pub source: SourceKind,
    /// What this is a backup of, in the source's terms (a PVC, an etcd
    /// cluster id, a kube context); empty where host and paths say it.
    pub identity: String,
    /// The paths or names backed up.
    pub paths: Vec<String>,
    /// Tags, as given: the snapshot records them trimmed, without empty
    /// ones, sorted and each once ([`normalize_tags`]).
    pub tags: Vec<String>,
    /// Record this host name instead of the machine's.
    pub hostname: Option<String>,
    /// Source-specific facts.
    pub labels: Vec<(String, String)>,
    /// The parent.
    pub parent: ParentChoice,
}

impl SnapshotSpec {
    /// A snapshot of `source` with nothing else set.
    pub fn new(source: SourceKind) -> Self {
        SnapshotSpec {
            source,
            identity: String::new(),
            paths: Vec::new(),
            tags: Vec::new(),
            hostname: None,
            labels: Vec::new(),
            parent: ParentChoice::Auto,
        }
    }

    fn hostname(&self) -> String {
        self.hostname.clone().unwrap_or_else(crate::hostname)
    }
}

impl Default for SnapshotSpec {
    /// A byte stream (`backup --stdin`).
    fn default() -> Self {
        SnapshotSpec::new(SourceKind::STREAM)
    }
}

/// What a source hands back to be committed.
#[derive(Clone, Debug)]
pub struct Staged {
    /// The root tree.
    pub tree: TreeId,
    /// Bytes of content in the snapshot.
    pub bytes: u64,
    /// Entries skipped (unreadable, changed while read).
    pub errors: u64,
    /// Figures that fit the source ([`Summary::counts`]).
    pub counts: Vec<(String, u64)>,
}

impl Staged {
    /// A staged root tree with no figures yet.
    pub fn new(tree: TreeId) -> Self {
        Staged {
            tree,
            bytes: 0,
            errors: 0,
            counts: Vec::new(),
        }
    }
}

/// A snapshot committed, with what the source returned beside it.
#[derive(Clone, Debug)]
pub struct Committed<T> {
    /// The snapshot saved.
    pub entry: SnapshotEntry,
    /// The source's own result (warnings, say).
    pub value: T,
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
    /// Packs of the index the session deduplicated against.
    pub used_packs: Vec<PackId>,
}

/// A snapshot being taken: described, its parent chosen, its data not yet
/// stored.
struct Opened {
    snapshot: Snapshot,
    parent: Option<SnapshotEntry>,
    start: std::time::Instant,
}

impl Opened {
    /// The snapshot to save: the described one with the staged tree, its
    /// parent, and the figures of the source and of the write path.
    fn finish(self, staged: Staged, summary: &WriteSummary) -> Snapshot {
        let Opened {
            mut snapshot,
            parent,
            start,
        } = self;
        snapshot.tree = staged.tree;
        snapshot.parent = parent.map(|p| p.id);
        let mut counts = staged.counts;
        counts.sort();
        snapshot.summary = Summary {
            bytes: staged.bytes,
            blobs_added: summary.stats.new_blobs,
            bytes_added: summary.stats.new_bytes,
            bytes_stored: summary.stats.stored_bytes,
            packs_added: summary.packs.len() as u64,
            errors: staged.errors,
            duration_ms: start.elapsed().as_millis() as u64,
            counts,
        };
        snapshot
    }
}

/// An open write session; see the module documentation.
pub struct Session<'s> {
    writer: &'s BlobWriter<'s>,
    reader: &'s BlobReader<'s>,
    parent: Option<&'s SnapshotEntry>,
    format: FormatVersion,
}

impl<'s> Session<'s> {
    /// The write path, for sources that drive it themselves (the
    /// file-system archiver).
    pub fn writer(&self) -> &'s BlobWriter<'s> {
        self.writer
    }

    /// A reader of the data stored before this session (the parent's
    /// trees and chunks).
    pub fn reader(&self) -> &'s BlobReader<'s> {
        self.reader
    }

    /// The parent snapshot, if one was chosen.
    pub fn parent(&self) -> Option<&'s SnapshotEntry> {
        self.parent
    }

    /// The parent's root tree.
    pub fn parent_tree(&self) -> Option<TreeId> {
        self.parent.map(|p| p.snapshot.tree)
    }

    /// The repository's format: what may be stored.
    pub fn format(&self) -> FormatVersion {
        self.format
    }

    /// Fails unless the repository's format can hold `what`.
    pub fn require(&self, format: FormatVersion, what: &str) -> Result<()> {
        if self.format < format {
            return Err(Error::Core(hokan_core::Error::NeedsFormat {
                what: what.to_string(),
                needed: format.number(),
            }));
        }
        Ok(())
    }

    /// Stores a byte stream cut by the repository's chunker.
    pub fn store_stream(&self, reader: impl Read + Send) -> Result<Vec<ChunkRef>> {
        self.writer.write_stream(reader).map_err(from_core)
    }

    /// Stores bytes in memory, cut by the repository's chunker.
    pub fn store_bytes(&self, data: &[u8]) -> Result<Vec<ChunkRef>> {
        self.writer.write_slice(data).map_err(from_core)
    }

    /// Stores chunks the source cut itself: each range of `data` becomes
    /// one blob (small ones compressed together), deduplicated by content.
    pub fn store_cut(&self, data: &[u8], cuts: &[Range<usize>]) -> Result<Vec<ChunkRef>> {
        self.writer.write_cut(data, cuts).map_err(from_core)
    }

    /// [`store_cut`](Self::store_cut) for data produced in batches.
    pub fn store_cut_batches<F>(&self, next: F) -> Result<Vec<ChunkRef>>
    where
        F: FnMut() -> hokan_core::Result<Option<(Vec<u8>, Vec<Range<usize>>)>> + Send,
    {
        self.writer.write_cut_batches(next).map_err(from_core)
    }

    /// Stores a tree of these nodes; returns its id.
    pub fn store_tree(&self, nodes: Vec<Node>) -> Result<TreeId> {
        let tree = Tree::new(nodes)?;
        self.writer.write_tree(&tree).map_err(from_core)
    }

    /// Reads a tree stored before this session (a parent's).
    pub fn read_tree(&self, id: &TreeId) -> Result<Tree> {
        hokan_core::browse::read_tree(self.reader, id).map_err(from_core)
    }
}

impl IndexedRepository {
    /// The snapshot a backup described by `spec` compares with.
    pub fn find_parent(&self, spec: &SnapshotSpec) -> Result<Option<SnapshotEntry>> {
        let mut probe = Snapshot::new(spec.source.clone(), spec.paths.clone(), TreeId::default());
        probe.hostname = spec.hostname();
        probe.identity = spec.identity.clone();
        self.parent_of(spec, &probe, &mut None)
    }

    /// The parent `spec` asks for, for the snapshot `taking`; `listed`
    /// holds the snapshot list once read, so a batch reads it once.
    fn parent_of(
        &self,
        spec: &SnapshotSpec,
        taking: &Snapshot,
        listed: &mut Option<Vec<SnapshotEntry>>,
    ) -> Result<Option<SnapshotEntry>> {
        match &spec.parent {
            ParentChoice::None => Ok(None),
            ParentChoice::Snapshot(id) => {
                Ok(Some(self.find_snapshot(&id.to_hex(), &Default::default())?))
            }
            ParentChoice::Auto => {
                let lineage = taking.lineage();
                let listed = match listed {
                    Some(l) => l,
                    None => listed.insert(self.snapshots()?),
                };
                Ok(listed
                    .iter()
                    .rev()
                    .find(|e| e.snapshot.lineage() == lineage)
                    .cloned())
            }
        }
    }

    /// Runs a backup: opens a [`Session`] for `spec`, lets `source` store
    /// its data and return its root tree, and commits the snapshot (see
    /// the module documentation). Returns the snapshot and the source's
    /// own result; an error the source returned comes back unchanged.
    pub fn backup<T, E: From<Error>>(
        &mut self,
        spec: SnapshotSpec,
        source: impl FnOnce(&Session<'_>) -> Result<(Staged, T), E>,
    ) -> Result<Committed<T>, E> {
        let opened = self.open_snapshot(spec, &mut None)?;
        let lock = WriterLock::acquire(&self.repo, self.loaded_at)?;
        let ((staged, value), summary) = self.stage(&opened, source)?;
        self.index_written(&summary);
        let snapshot = opened.finish(staged, &summary);
        let entry = self.commit(snapshot, &summary, &lock)?;
        Ok(Committed { entry, value })
    }

    /// Runs several backups side by side, at most `threads` at a time,
    /// under one writer lock: for sources whose latency does not overlap
    /// by itself (many small volumes, each a walk of `stat` calls). Each
    /// job has its own write session, deduplicated against the index
    /// loaded before the batch (two jobs storing the same new chunk at the
    /// same time may both keep it; prune removes the spare). Results come
    /// back in the jobs' order; a failed job saves no snapshot and stops
    /// no other. The outer error is the batch's: the lock was refused.
    /// Each job's error comes back as its source returned it.
    pub fn backup_each<T, E, F>(
        &mut self,
        jobs: Vec<(SnapshotSpec, F)>,
        threads: usize,
    ) -> Result<Vec<Result<Committed<T>, E>>>
    where
        T: Send,
        E: From<Error> + Send,
        F: FnOnce(&Session<'_>) -> Result<(Staged, T), E> + Send,
    {
        let n = jobs.len();
        let lock = WriterLock::acquire(&self.repo, self.loaded_at)?;
        // Parents are chosen before any job runs, from one reading of the
        // snapshot list: jobs of one batch are of different things, never
        // each other's parents.
        let mut listed = None;
        let opened: Vec<Result<Opened>> = jobs
            .iter()
            .map(|(spec, _)| self.open_snapshot(spec.clone(), &mut listed))
            .collect();
        // Popped from the end: reversed, so jobs start in the given order.
        let queue = std::sync::Mutex::new(
            jobs.into_iter()
                .zip(opened)
                .enumerate()
                .rev()
                .collect::<Vec<_>>(),
        );
        type Done<T, E> = Result<(Opened, (Staged, T), WriteSummary), E>;
        let done: std::sync::Mutex<Vec<Option<Done<T, E>>>> =
            std::sync::Mutex::new((0..n).map(|_| None).collect());
        let this = &*self;
        std::thread::scope(|s| {
            for _ in 0..threads.clamp(1, n.max(1)) {
                s.spawn(|| {
                    loop {
                        let next = queue.lock().expect("queue").pop();
                        let Some((i, ((_, source), opened))) = next else {
                            break;
                        };
                        let result = opened.map_err(E::from).and_then(|o| {
                            let (value, summary) = this.stage(&o, source)?;
                            Ok((o, value, summary))
                        });
                        done.lock().expect("results")[i] = Some(result);
                    }
                });
            }
        });
        let done: Vec<Done<T, E>> = done
            .into_inner()
            .expect("results")
            .into_iter()
            .map(|d| d.expect("every job ran"))
            .collect();
        // Every job's packs are indexed before any commit checks its
        // dependencies, so each sees the others' index files as loaded.
        for (_, _, summary) in done.iter().flatten() {
            self.index_written(summary);
        }
        Ok(done
            .into_iter()
            .map(|d| {
                let (opened, (staged, value), summary) = d?;
                let snapshot = opened.finish(staged, &summary);
                let entry = self.commit(snapshot, &summary, &lock)?;
                Ok(Committed { entry, value })
            })
            .collect())
    }

    /// The snapshot `spec` describes, with its parent chosen (from
    /// `listed`, the snapshot list, read here if not yet).
    fn open_snapshot(
        &self,
        mut spec: SnapshotSpec,
        listed: &mut Option<Vec<SnapshotEntry>>,
    ) -> Result<Opened> {
        let start = std::time::Instant::now();
        let mut snapshot =
            Snapshot::new(spec.source.clone(), spec.paths.clone(), TreeId::default());
        snapshot.hostname = spec.hostname();
        snapshot.identity = spec.identity.clone();
        snapshot.tags = normalize_tags(std::mem::take(&mut spec.tags));
        spec.labels.sort();
        snapshot.labels = spec.labels.clone();
        let parent = self.parent_of(&spec, &snapshot, listed)?;
        Ok(Opened {
            snapshot,
            parent,
            start,
        })
    }

    /// Step 1: the source stores its data through a session.
    fn stage<T, E: From<Error>>(
        &self,
        opened: &Opened,
        source: impl FnOnce(&Session<'_>) -> Result<(Staged, T), E>,
    ) -> Result<((Staged, T), WriteSummary), E> {
        let format = self.repo.config.format;
        self.write_detached(|writer, reader| {
            let session = Session {
                writer,
                reader,
                parent: opened.parent.as_ref(),
                format,
            };
            source(&session)
        })
    }

    /// Steps 2 to 4, the one commit of every snapshot: the packs
    /// `summary` lists (stored and indexed in step 1) and the ones it
    /// deduplicated against are still there, damage found is recorded,
    /// and `snapshot` is saved. Sources come here through
    /// [`backup`](Self::backup), copies through
    /// [`copy_from`](Self::copy_from).
    pub(crate) fn commit(
        &mut self,
        snapshot: Snapshot,
        summary: &WriteSummary,
        lock: &WriterLock,
    ) -> Result<SnapshotEntry> {
        self.check_dependencies(summary, lock)?;
        self.record_damage()?;
        let id = self.save_snapshot(&snapshot)?;
        Ok(SnapshotEntry { id, snapshot })
    }

    /// Runs `f` with a [`BlobWriter`] whose packs are uploaded as they fill;
    /// then waits for the uploads, writes index files for the new packs and
    /// adds them to the in-memory index. Nothing refers to the new data
    /// until a snapshot does: sources use [`backup`](Self::backup); this is
    /// for moving data that snapshots already refer to (repacking).
    ///
    /// `f` also gets a [`BlobReader`] over the data stored before.
    pub fn write<T>(
        &mut self,
        f: impl FnOnce(&BlobWriter<'_>, &BlobReader<'_>) -> Result<T>,
    ) -> Result<(T, WriteSummary)> {
        let (value, summary) = self.write_detached(f)?;
        self.index_written(&summary);
        Ok((value, summary))
    }

    /// [`write`](Self::write) without adding the new packs to the
    /// in-memory index, so several can run at once on a shared handle;
    /// `f`'s error comes back as it returned it.
    fn write_detached<T, E: From<Error>>(
        &self,
        f: impl FnOnce(&BlobWriter<'_>, &BlobReader<'_>) -> Result<T, E>,
    ) -> Result<(T, WriteSummary), E> {
        let uploader = Uploader::new(&self.repo);
        let outcome = (|| -> Result<_, E> {
            let config = self.repo.config.writer_config()?;
            let writer = BlobWriter::new(&self.repo.key, config, &self.index, &uploader)
                .map_err(from_core)?;
            let reader = BlobReader::new(&self.repo.key, &self.index, &self.repo.store);
            let value = f(&writer, &reader)?;
            let used = writer.used_packs();
            let stats = writer.finish().map_err(from_core)?;
            Ok((value, stats, used))
        })();
        // What did get stored is in index files even after a failure: the
        // next run reuses it instead of uploading it again. When both
        // fail, the upload's error is the cause of the other.
        let uploaded = match (uploader.finish(), outcome) {
            (Ok(u), Ok(o)) => (u, o),
            (Err(e), _) => return Err(e.into()),
            (Ok(_), Err(e)) => return Err(e),
        };
        let (done, (value, stats, used_packs)) = uploaded;
        Ok((
            value,
            WriteSummary {
                stats,
                packs: done.packs,
                index_files: done.index_files,
                used_packs,
            },
        ))
    }

    /// Adds a finished session's packs to the in-memory index.
    fn index_written(&mut self, summary: &WriteSummary) {
        for p in &summary.packs {
            self.index.insert_pack(p.id, p.kind, &p.blobs);
        }
        self.index_files.extend(summary.index_files.iter().copied());
    }

    /// Step 2 of a commit: if a prune may have run beside this session,
    /// every pack the snapshot will depend on must still be there.
    fn check_dependencies(&self, summary: &WriteSummary, lock: &WriterLock) -> Result<()> {
        let listed: HashSet<Id> = self.repo.list_ids(Kind::Index)?.into_iter().collect();
        let undisturbed = lock.held()?
            && self
                .index_files
                .iter()
                .filter(|id| !summary.index_files.contains(id))
                .all(|id| listed.contains(id));
        if undisturbed {
            return Ok(());
        }
        let stored = self.repo.pack_files()?;
        let needed = summary
            .used_packs
            .iter()
            .chain(summary.packs.iter().map(|p| &p.id));
        for pack in needed {
            if !stored.contains_key(pack) {
                return Err(Error::RemovedDuringBackup {
                    what: format!("pack {} ({})", pack.short(), layout::pack(pack)),
                });
            }
        }
        Ok(())
    }

    /// Step 3 of a commit: blobs found damaged while reading are recorded,
    /// with the pack holding each damaged copy (damage recorded before is
    /// not recorded again).
    fn record_damage(&self) -> Result<()> {
        let damaged: Vec<(PackId, Id)> = self
            .index
            .damaged()
            .into_iter()
            .filter(|d| !self.recorded.contains(d))
            .collect();
        if damaged.is_empty() {
            return Ok(());
        }
        self.repo.save_lock(&LockObject::Damaged {
            found_at: chrono::Utc::now().timestamp(),
            blobs: damaged,
        })?;
        Ok(())
    }
}
