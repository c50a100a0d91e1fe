//! Backing up an etcd snapshot into a repository: a live snapshot streamed
//! from etcd, or a file (`etcdctl snapshot save`'s, or a member's raw
//! `member/snap/db`).
//!
//! The snapshot streams through the splitter once. A thread splits it and
//! fills batches: layout bytes cut by the repository's chunker, records cut
//! along bbolt's elements, and the inventory learns the tree as pages pass.
//! The session stores the batches as they come ([`Session::store_cut_batches`]:
//! each cut one blob, deduplicated by id), so memory stays bounded by a few
//! batches whatever the database's size, and nothing is written to disk
//! but the repository. A split that fails (a cut stream, a SHA-256
//! mismatch, a file that is not bbolt) fails the session: no snapshot.

use std::io::Read;
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use hokan_core::fs::Progress;
use hokan_core::{ChunkRef, Chunker, Node};
use hokan_repo::{
    IndexedRepository, ParentChoice, Session, SnapshotEntry, SnapshotSpec, SourceKind, Staged,
};

use crate::bbolt::Db;
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::inventory::{Finished, Inventory};
use crate::live::{EtcdEndpoint, LiveSnapshot};
use crate::split::{RecordSink, SplitOptions, SplitSummary, split};
use crate::stored::{DbFacts, LAYOUT, OBJECTS, RECORDS, RECORDS_PER_PART, has_trailer, hex_of};

/// Bytes of records and layout handed to the session at a time.
const BATCH_BYTES: usize = 8 << 20;
/// Batches waiting between the splitter and the session.
const BATCHES_QUEUED: usize = 2;

/// What a backup records beside the data.
#[derive(Clone, Debug, Default)]
pub struct BackupOptions {
    /// Tags for the snapshot.
    pub tags: Vec<String>,
    /// Record this host name instead of the machine's.
    pub hostname: Option<String>,
    /// Labels to add (links to static pod resources, say).
    pub labels: Vec<(String, String)>,
    /// The cluster id to record and group by, hex; for files, instead of
    /// the one derived from the members bucket.
    pub cluster_id: Option<String>,
    /// The snapshot to compare with; by default the newest of the cluster.
    pub parent: ParentChoice,
}

/// A stored snapshot and what it holds.
#[derive(Clone, Debug)]
pub struct Backed {
    /// The snapshot saved.
    pub entry: SnapshotEntry,
    /// The database's facts, as its layout node records them.
    pub facts: DbFacts,
    /// Keys that exist at the snapshot's revision.
    pub keys: u64,
}

/// Backs up a live snapshot of the etcd member at `endpoint`: streamed from
/// the Maintenance `Snapshot` RPC into the repository, the SHA-256 etcd
/// sends checked before the snapshot is committed. Blocking.
pub fn backup_live(
    repo: &mut IndexedRepository,
    endpoint: &EtcdEndpoint,
    options: &BackupOptions,
    progress: &dyn Progress,
) -> Result<Backed> {
    let live = LiveSnapshot::start(endpoint)?;
    let id = live.identity().clone();
    if id.db_size > 0 {
        progress.totals(1, id.db_size as u64);
    }
    let facts = DbFacts {
        cluster_id: Some(format!("{:x}", id.cluster_id)),
        cluster_id_source: Some("etcd".into()),
        member_id: Some(format!("{:x}", id.member_id)),
        member_name: Some(id.member_name.clone()).filter(|n| !n.is_empty()),
        etcd_version: Some(id.version.clone()),
        ..Default::default()
    };
    if let Some(given) = &options.cluster_id
        && Some(given) != facts.cluster_id.as_ref()
    {
        return Err(Error::invalid(
            "cluster id",
            format!(
                "{given} was given, but {} answers for cluster {:x}",
                endpoint.url, id.cluster_id
            ),
        ));
    }
    let what = format!("the snapshot stream from {}", endpoint.url);
    store(
        repo,
        Counting(live, progress),
        &what,
        vec![endpoint.url.clone()],
        facts,
        options,
    )
}

/// Backs up a snapshot file: one written by `etcdctl snapshot save` (with
/// its SHA-256 trailer) or a member's `member/snap/db`. The file is checked
/// as `etcdctl snapshot status` checks it before anything is stored;
/// anything else is refused.
pub fn import_file(
    repo: &mut IndexedRepository,
    path: &Path,
    options: &BackupOptions,
    progress: &dyn Progress,
) -> Result<Backed> {
    let what = path.display().to_string();
    let (file, len) = open_input(path, &what)?;
    // Checked through a map first, so a bad file stores nothing at all.
    let members = {
        if len == 0 {
            return Err(Error::NotBbolt {
                what,
                reason: "the file is empty".into(),
            });
        }
        // SAFETY: read only; a file shrunk while mapped raises SIGBUS, as
        // documented for `hokan etcd import` (give a copy, not the db of a
        // running member that defragments meanwhile).
        let map = unsafe { memmap2::MmapOptions::new().len(len as usize).map(&file) }
            .map_err(|e| Error::io(format!("mapping {what}"), e))?;
        // What `etcdctl snapshot status` refuses is refused here.
        crate::status::status(&map, &what)?;
        member_ids(&Db::open(&map, &what)?)?
    };
    let mut facts = DbFacts::default();
    match &options.cluster_id {
        Some(id) => {
            facts.cluster_id = Some(id.clone());
            facts.cluster_id_source = Some("given".into());
        }
        None if !members.is_empty() => {
            facts.cluster_id = Some(format!("{:x}", cluster_id(&members)));
            facts.cluster_id_source = Some("members".into());
        }
        None => {}
    }
    progress.totals(1, len);
    let reader = std::io::BufReader::with_capacity(1 << 20, file);
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    store(
        repo,
        Counting(reader, progress),
        &what,
        vec![abs.display().to_string()],
        facts,
        options,
    )
}

/// Opens an import's input and returns it with its length: a regular file,
/// or a block device (a member's disk, a volume snapshot). Anything else is
/// refused before it is opened: opening a FIFO with no writer blocks
/// forever, and opening a character device can act on the device. It is
/// opened without blocking and its type checked again on the descriptor,
/// so a path swapped for a FIFO in between cannot block either.
fn open_input(path: &Path, what: &str) -> Result<(std::fs::File, u64)> {
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let refuse = |t: std::fs::FileType| -> Result<()> {
        if t.is_file() || t.is_block_device() {
            return Ok(());
        }
        let kind = if t.is_fifo() {
            "a FIFO (named pipe)"
        } else if t.is_char_device() {
            "a character device"
        } else if t.is_socket() {
            "a socket"
        } else if t.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        Err(Error::NotBbolt {
            what: what.to_string(),
            reason: format!(
                "it is {kind}, not a file or a block device (save a stream to a file first)"
            ),
        })
    };
    let meta = std::fs::metadata(path).map_err(|e| Error::io(format!("reading {what}"), e))?;
    refuse(meta.file_type())?;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::io(format!("opening {what}"), e))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io(format!("reading {what}"), e))?;
    refuse(meta.file_type())?;
    let len = if meta.file_type().is_block_device() {
        // A block device's length is not in its metadata.
        let len = file
            .seek(SeekFrom::End(0))
            .map_err(|e| Error::io(format!("reading {what}"), e))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io(format!("reading {what}"), e))?;
        len
    } else {
        meta.len()
    };
    Ok((file, len))
}

/// The member ids in a database's `members` bucket, sorted.
fn member_ids(db: &Db<'_>) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    for (name, bucket) in db.buckets()? {
        if name != b"members" {
            continue;
        }
        for e in db.entries(bucket) {
            let e = e?;
            if let Some(id) = std::str::from_utf8(e.key)
                .ok()
                .and_then(|s| u64::from_str_radix(s, 16).ok())
            {
                ids.push(id);
            }
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// The cluster id etcd computes when a cluster is created
/// (`membership.RaftCluster.genID`): the first 8 bytes, big endian, of
/// the SHA-1 of the sorted member ids. It stays the cluster's id when
/// members change later; then the derived one differs, and `--cluster-id`
/// says which it is.
pub fn cluster_id(sorted_members: &[u64]) -> u64 {
    use sha1::Digest;
    let mut h = sha1::Sha1::new();
    for id in sorted_members {
        h.update(id.to_be_bytes());
    }
    u64::from_be_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
}

/// A reader that reports bytes read to a progress display.
struct Counting<'p, R>(R, &'p dyn Progress);

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1.bytes(n as u64);
        Ok(n)
    }
}

/// The session side of the split; see the module docs.
fn store<R: Read + Send>(
    repo: &mut IndexedRepository,
    reader: R,
    what: &str,
    paths: Vec<String>,
    facts: DbFacts,
    options: &BackupOptions,
) -> Result<Backed> {
    let mut labels = options.labels.clone();
    let identity = facts.cluster_id.clone().unwrap_or_default();
    if !identity.is_empty() {
        labels.push(("etcd-cluster-id".into(), identity.clone()));
    }
    let spec = SnapshotSpec {
        identity,
        paths,
        tags: options.tags.clone(),
        hostname: options.hostname.clone(),
        labels,
        parent: options.parent.clone(),
        ..SnapshotSpec::new(SourceKind::ETCD)
    };
    let committed = repo.backup(spec, |s| {
        stage(s, reader, what, facts).map(|(staged, facts, keys)| (staged, (facts, keys)))
    })?;
    let (facts, keys) = committed.value;
    Ok(Backed {
        entry: committed.entry,
        facts,
        keys,
    })
}

/// Stores the data and the tree inside the session.
fn stage<R: Read + Send>(
    s: &Session<'_>,
    reader: R,
    what: &str,
    mut facts: DbFacts,
) -> Result<(Staged, DbFacts, u64)> {
    // Refused before any data moves: object nodes and snapshot identities
    // need format 2.
    s.require(hokan_core::FormatVersion::V2, "an etcd snapshot")?;
    let chunker = s.writer().chunker().clone();
    let (tx, rx) = sync_channel::<Batch>(BATCHES_QUEUED);
    let (refs, is_layout, produced) = std::thread::scope(|scope| {
        let producer = scope.spawn(move || produce(reader, what, chunker, tx));
        let mut is_layout = Vec::new();
        let refs = s.store_cut_batches(consume(rx, &mut is_layout));
        let produced = producer
            .join()
            .unwrap_or_else(|_| Err(Error::Sink("the splitting thread panicked".into())));
        (refs, is_layout, produced)
    });
    let (refs, (summary, inventory)) = match (refs, produced) {
        (Ok(r), Ok(p)) => (r, p),
        // The splitter stopped because the session did: the session's
        // error is the cause.
        (Err(e), Err(Error::Sink(_))) | (Err(e), Ok(_)) => return Err(e.into()),
        (_, Err(e)) => return Err(e),
    };
    let (mut layout, mut records) = (Vec::new(), Vec::with_capacity(summary.records as usize));
    for (r, l) in refs.into_iter().zip(is_layout) {
        if l { layout.push(r) } else { records.push(r) }
    }
    let meta = summary
        .meta
        .ok_or_else(|| Error::invalid("input", "no bbolt meta"))?;
    facts.size = summary.total_bytes;
    facts.sha256 = hex_of(&summary.sha256);
    facts.page_size = summary.page_size;
    facts.trailer = has_trailer(summary.trailer);
    facts.records = summary.records;
    facts.record_bytes = summary.record_bytes;
    facts.layout_bytes = summary.layout_bytes;
    let mut nodes = vec![records_dir(s, &records)?];
    let mut keys = 0;
    match inventory.finish(&meta) {
        Ok(found) => {
            facts.status = Some(found.status);
            let (node, live) = catalog_node(s, found)?;
            keys = live;
            nodes.push(node);
        }
        Err(why) => facts.inventory_error = Some(why),
    }
    nodes.push(Node::object(LAYOUT, layout, facts.attrs()));
    let mut staged = Staged::new(s.store_tree(nodes)?);
    staged.bytes = summary.total_bytes;
    staged.counts = vec![("keys".into(), keys), ("records".into(), summary.records)];
    if let Some(st) = &facts.status {
        staged
            .counts
            .push(("revision".into(), st.revision.max(0) as u64));
        staged.counts.push(("total_key".into(), st.total_key));
    }
    Ok((staged, facts, keys))
}

/// The records directory: parts of [`RECORDS_PER_PART`] records, each a
/// tree of its own.
fn records_dir(s: &Session<'_>, records: &[ChunkRef]) -> hokan_repo::Result<Node> {
    let mut parts = Vec::new();
    for (i, part) in records.chunks(RECORDS_PER_PART).enumerate() {
        let tree = s.store_tree(vec![Node::object(RECORDS, part.to_vec(), Vec::new())])?;
        parts.push(Node::dir(format!("{i:06}"), tree));
    }
    Ok(Node::dir(RECORDS, s.store_tree(parts)?))
}

/// The catalog node, and the number of keys that exist.
fn catalog_node(s: &Session<'_>, found: Finished) -> hokan_repo::Result<(Node, u64)> {
    let catalog = Catalog {
        types: found.types,
        entries: found.entries,
    };
    let live = catalog.live().len() as u64;
    let content = s.store_bytes(&catalog.encode())?;
    let attrs = vec![
        hokan_core::Attr {
            key: "format".into(),
            value: hokan_core::AttrValue::Int(i64::from(crate::catalog::VERSION)),
        },
        hokan_core::Attr {
            key: "keys".into(),
            value: hokan_core::AttrValue::Int(live as i64),
        },
        hokan_core::Attr {
            key: "entries".into(),
            value: hokan_core::AttrValue::Int(catalog.entries.len() as i64),
        },
        hokan_core::Attr {
            key: "unreadable".into(),
            value: hokan_core::AttrValue::Int(found.unreadable as i64),
        },
    ];
    Ok((Node::object(OBJECTS, content, attrs), live))
}

/// One batch for the session: bytes, their cuts, and which cuts are
/// layout chunks (the rest are records).
struct Batch {
    data: Vec<u8>,
    cuts: Vec<std::ops::Range<usize>>,
    is_layout: Vec<bool>,
}

impl Batch {
    fn new() -> Self {
        Batch {
            data: Vec::with_capacity(BATCH_BYTES + (1 << 20)),
            cuts: Vec::new(),
            is_layout: Vec::new(),
        }
    }

    fn push(&mut self, bytes: &[u8], layout: bool) {
        let start = self.data.len();
        self.data.extend_from_slice(bytes);
        self.cuts.push(start..self.data.len());
        self.is_layout.push(layout);
    }
}

/// What the session pulls: a batch's bytes and its cuts, `None` at the end.
type Pulled = hokan_core::Result<Option<(Vec<u8>, Vec<std::ops::Range<usize>>)>>;

/// The pull side: batches from the splitter thread, until it is done.
fn consume<'v>(
    rx: Receiver<Batch>,
    is_layout: &'v mut Vec<bool>,
) -> impl FnMut() -> Pulled + Send + 'v {
    move || match rx.recv() {
        Ok(b) => {
            is_layout.extend(b.is_layout);
            Ok(Some((b.data, b.cuts)))
        }
        // The splitter ended, well or not: its result says which.
        Err(_) => Ok(None),
    }
}

/// The splitter thread.
fn produce<R: Read>(
    reader: R,
    what: &str,
    chunker: Chunker,
    tx: SyncSender<Batch>,
) -> Result<(SplitSummary, Inventory)> {
    let mut sink = SessionSink {
        chunker,
        pending: Vec::new(),
        pending_at: 0,
        batch: Batch::new(),
        tx,
        inventory: Inventory::default(),
    };
    let summary = split(reader, &mut sink, &SplitOptions::bbolt(what))?;
    sink.finish()?;
    Ok((summary, sink.inventory))
}

/// The [`RecordSink`] of a backup: layout bytes are cut with the
/// repository's chunker as soon as a maximum-size chunk's worth is
/// pending, records go into the batch whole.
struct SessionSink {
    chunker: Chunker,
    /// Layout bytes not cut yet: `pending[pending_at..]`.
    pending: Vec<u8>,
    pending_at: usize,
    batch: Batch,
    tx: SyncSender<Batch>,
    inventory: Inventory,
}

impl SessionSink {
    fn send_if_full(&mut self) -> Result<()> {
        if self.batch.data.len() >= BATCH_BYTES {
            self.send()?;
        }
        Ok(())
    }

    fn send(&mut self) -> Result<()> {
        let batch = std::mem::replace(&mut self.batch, Batch::new());
        self.tx
            .send(batch)
            .map_err(|_| Error::Sink("the repository stopped taking data".into()))
    }

    /// Cuts the pending layout: whole chunks only, unless `at_end`.
    fn cut_layout(&mut self, at_end: bool) -> Result<()> {
        loop {
            let rest = &self.pending[self.pending_at..];
            if rest.is_empty() {
                break;
            }
            let Some(len) = self.chunker.next_cut(rest, at_end) else {
                break;
            };
            let chunk = &self.pending[self.pending_at..self.pending_at + len];
            self.batch.push(chunk, true);
            self.pending_at += len;
            self.send_if_full()?;
        }
        // Compact once the cut part dominates, not on every chunk.
        if self.pending_at > self.pending.len() / 2 {
            self.pending.drain(..self.pending_at);
            self.pending_at = 0;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        self.cut_layout(true)?;
        if !self.batch.cuts.is_empty() {
            self.send()?;
        }
        Ok(())
    }
}

impl RecordSink for SessionSink {
    fn layout(&mut self, bytes: &[u8]) -> Result<()> {
        self.pending.extend_from_slice(bytes);
        if self.pending.len() - self.pending_at >= self.chunker.params().max as usize {
            self.cut_layout(false)?;
        }
        Ok(())
    }

    fn record(&mut self, record: &[u8]) -> Result<()> {
        self.batch.push(record, false);
        self.send_if_full()
    }

    fn page(&mut self, offset: u64, bytes: &[u8], first_record: Option<u64>) -> Result<()> {
        self.inventory.page(offset, bytes, first_record);
        Ok(())
    }
}
