//! The in-memory dedup index: blob id → (pack, offset, length).
//!
//! A repository of a few terabytes holds millions of blobs, and every
//! backup keeps the whole index in memory, so its size per entry is what
//! matters. An entry here is 44 bytes (id 32, pack number 4, offset 4,
//! length 4) in one sorted array, found through a table of bucket starts
//! keyed by the id's leading bits (ids are uniform, so buckets are even) and
//! a short binary search. Packs are numbered once in a side table. New
//! entries wait in a small hash map and are merged into the array in
//! batches, so inserting stays cheap without a hash table's per-entry slack.
//! [`Index::bytes_per_entry`] reports the real figure, allocations included.
//!
//! An index may also stand on a [`MappedRun`]: a sorted, immutable file
//! searched in place through a memory map (see [`mapped`]). Its entries and
//! packs come first (pack numbers `0..n` are the run's); the array and the
//! pending map above hold only what was added since, so a process holds in
//! memory what it wrote, not what the repository holds.
//!
//! An [`IdSorter`] (see [`sorter`]) is a set of ids within a memory bound,
//! spilled to disk and handed back sorted: the building block of a prune
//! and check whose memory does not grow with the number of blobs.

pub mod mapped;
pub mod sorter;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crate::id::{BlobType, Id, PackId};
use crate::pack::{PackedBlob, group_members};

pub use mapped::{MappedRun, RunBuilder, RunMeta};
pub use sorter::{IdSorter, RecordSorter, SortedIds, SortedRecords};

/// Where a blob is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// The pack holding it.
    pub pack: PackId,
    /// Data or tree (the pack's type).
    pub kind: BlobType,
    /// Offset of its sealed record in the pack.
    pub offset: u32,
    /// Length of its sealed record.
    pub length: u32,
    /// Its pack is marked for deletion by prune: readable, but new data
    /// must not depend on it (see [`Index::contains_visible`]).
    pub hidden: bool,
    /// The record at `offset` is a group of small blobs compressed
    /// together (pack version 2), not this blob alone.
    pub group: bool,
}

/// The top bit of a stored record length marks a group record: records are
/// at most 1 GiB plus overhead, so the bit is free, and the entry stays 44
/// bytes.
const GROUP_BIT: u32 = 1 << 31;

/// A pack's number in an [`Index`], returned by [`Index::add_pack`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PackRef(u32);

/// A pack's entry in the side table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PackInfo {
    id: PackId,
    kind: BlobType,
    hidden: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct Entry {
    id: [u8; 32],
    pack: u32,
    offset: u32,
    length: u32,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 44);

/// A hasher for keys that already are uniformly random: keyed BLAKE3 ids,
/// which no one without the repository key can steer into collisions.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // `Id` hashes as its 32-byte array; take eight of them.
        let take = bytes.len().min(8);
        let mut buf = [0u8; 8];
        buf[..take].copy_from_slice(&bytes[bytes.len() - take..]);
        self.0 ^= u64::from_le_bytes(buf);
    }
    fn write_usize(&mut self, _: usize) {
        // The array length prefix carries no information.
    }
}

/// `BuildHasher` for maps and sets keyed by ids.
pub type IdBuildHasher = BuildHasherDefault<IdHasher>;
/// A hash map keyed by ids.
pub type IdMap<V> = HashMap<Id, V, IdBuildHasher>;
/// A hash set of ids.
pub type IdSet = std::collections::HashSet<Id, IdBuildHasher>;

/// Entries per bucket the bucket table aims for.
const BUCKET_TARGET: usize = 16;
/// Pending entries are merged once they exceed this share of the array:
/// a merge moves every entry, so this trades insert cost (about 128 entry
/// moves per insert, a few hundred nanoseconds) against the hash map's
/// per-entry overhead.
const PENDING_SHARE: usize = 128;
/// ... or this many, whichever is larger.
const PENDING_MIN: usize = 1024;
/// Arrays grow by this share beyond need, not by doubling.
const GROWTH_SHARE: usize = 32;

/// The dedup index. See the module documentation for its layout.
#[derive(Debug, Default)]
pub struct Index {
    /// The mapped run below everything else: its packs are numbers
    /// `0..base_packs`, those of `packs` follow.
    base: Option<Arc<MappedRun>>,
    base_packs: u32,
    packs: Vec<PackInfo>,
    sorted: Vec<Entry>,
    /// `buckets[b]..buckets[b + 1]` is the range of `sorted` whose ids start
    /// with the `bucket_bits`-bit prefix `b`.
    buckets: Vec<u32>,
    bucket_bits: u32,
    pending: IdMap<(u32, u32, u32)>,
    /// Blobs found damaged while this index was in use: still located (so a
    /// read reports the damage), but never deduped against, so a writer
    /// stores a fresh copy.
    damaged: Mutex<IdSet>,
    /// Records found damaged, by pack number and offset: every blob in
    /// them (a group holds many) is distrusted.
    damaged_records: Mutex<std::collections::HashSet<(u32, u32)>>,
    /// Whether anything is damaged: the locks stay off the hot path.
    any_damaged: AtomicBool,
    /// Trees carried inside other trees (tree version 3), as reads found
    /// them: tree id → the tree carrying it and its place in that tree's
    /// list. Kept here, beside the blobs, because every reader of this
    /// index may be asked for a tree whose carrier another reader read.
    carried: Mutex<std::collections::HashMap<Id, (Id, u32)>>,
}

impl Clone for Index {
    fn clone(&self) -> Self {
        Index {
            base: self.base.clone(),
            base_packs: self.base_packs,
            packs: self.packs.clone(),
            sorted: self.sorted.clone(),
            buckets: self.buckets.clone(),
            bucket_bits: self.bucket_bits,
            pending: self.pending.clone(),
            damaged: Mutex::new(self.damaged.lock().expect("damaged set").clone()),
            damaged_records: Mutex::new(self.damaged_records.lock().expect("damaged set").clone()),
            any_damaged: AtomicBool::new(self.any_damaged.load(Relaxed)),
            carried: Mutex::new(self.carried.lock().expect("carried trees").clone()),
        }
    }
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// An index standing on a mapped run: its entries are searched in
    /// place, and what is added later is held in memory above it.
    pub fn on_run(run: Arc<MappedRun>) -> Self {
        Index {
            base_packs: run.pack_count() as u32,
            base: Some(run),
            ..Self::default()
        }
    }

    /// The mapped run this index stands on, if any.
    pub fn run(&self) -> Option<&Arc<MappedRun>> {
        self.base.as_ref()
    }

    /// Writes every pack and entry of this index (its run's, then the
    /// ones held in memory) into a new run file `dest` within the memory
    /// bound of a [`RunBuilder`] of `memory_entries`, and stands on it
    /// instead. Damage marks and carried trees stay as they were.
    pub fn write_run(
        &mut self,
        meta: &RunMeta,
        dest: &std::path::Path,
        memory_entries: usize,
    ) -> crate::Result<()> {
        let dir = dest.parent().unwrap_or(std::path::Path::new("."));
        let mut b = match &self.base {
            Some(run) => RunBuilder::extending(run.clone(), dir, memory_entries),
            None => RunBuilder::new(dir, memory_entries),
        };
        for p in &self.packs {
            b.add_pack(p.id, p.kind, p.hidden);
        }
        for e in &self.sorted {
            b.push(Id(e.id), e.pack, e.offset, e.length)?;
        }
        for (id, &(pack, offset, length)) in &self.pending {
            b.push(*id, pack, offset, length)?;
        }
        let run = Arc::new(b.finish(meta, dest)?);
        self.base_packs = run.pack_count() as u32;
        self.base = Some(run);
        self.packs = Vec::new();
        self.sorted = Vec::new();
        self.pending = IdMap::default();
        self.rebuild_buckets();
        Ok(())
    }

    /// Registers a pack and returns its number for [`insert`](Self::insert).
    pub fn add_pack(&mut self, id: PackId, kind: BlobType) -> PackRef {
        self.register(id, kind, false)
    }

    /// Registers a pack marked for deletion: its blobs can be read, but
    /// [`contains_visible`](Self::contains_visible) does not see them, so
    /// new snapshots never come to depend on it.
    pub fn add_hidden_pack(&mut self, id: PackId, kind: BlobType) -> PackRef {
        self.register(id, kind, true)
    }

    fn register(&mut self, id: PackId, kind: BlobType, hidden: bool) -> PackRef {
        let n = self.base_packs as usize + self.packs.len();
        assert!(n < u32::MAX as usize, "more than 4 billion packs");
        if self.packs.len() == self.packs.capacity() {
            self.packs.reserve_exact(n / GROWTH_SHARE + 16);
        }
        self.packs.push(PackInfo { id, kind, hidden });
        PackRef(n as u32)
    }

    /// Adds a blob stored alone in its record; returns false (and keeps
    /// the existing location) if the id is already present, as when two
    /// writers stored the same chunk.
    pub fn insert(&mut self, id: Id, pack: PackRef, offset: u32, length: u32) -> bool {
        self.insert_record(id, pack, offset, length, false)
    }

    /// Adds a blob whose record at `offset` is a group (`group`) or the
    /// blob alone.
    pub fn insert_record(
        &mut self,
        id: Id,
        pack: PackRef,
        offset: u32,
        length: u32,
        group: bool,
    ) -> bool {
        if self.contains(&id) {
            return false;
        }
        self.pending
            .insert(id, (pack.0, offset, stored_length(length, group)));
        if self.pending.len() > PENDING_MIN.max(self.sorted.len() / PENDING_SHARE) {
            // Measured against the array, not the run: merging moves only
            // the array.
            self.merge_pending();
        }
        true
    }

    /// Registers a pack and all of its blobs; returns how many were new.
    pub fn insert_pack(&mut self, id: PackId, kind: BlobType, blobs: &[PackedBlob]) -> usize {
        let pack = self.add_pack(id, kind);
        blobs
            .iter()
            .zip(group_members(blobs))
            .filter(|(b, group)| self.insert_record(b.id, pack, b.offset, b.length, *group))
            .count()
    }

    /// Loads many packs at once: one sort instead of many merges.
    pub fn extend_packs<'a, I>(&mut self, packs: I)
    where
        I: IntoIterator<Item = (PackId, BlobType, &'a [PackedBlob])>,
    {
        let mut builder = IndexBuilder::from_index(std::mem::take(self));
        for (id, kind, blobs) in packs {
            builder.add_pack(id, kind, blobs);
        }
        *self = builder.build();
    }

    /// Where a blob is, if it is indexed.
    pub fn get(&self, id: &Id) -> Option<Location> {
        let (pack, offset, length) = self.lookup(id)?;
        Some(self.location(pack, offset, length))
    }

    /// Pack number, offset and stored length of a blob: the pending map,
    /// then the array, then the run.
    fn lookup(&self, id: &Id) -> Option<(u32, u32, u32)> {
        if let Some(&v) = self.pending.get(id) {
            return Some(v);
        }
        if let Some(i) = self.find_sorted(id) {
            let e = &self.sorted[i];
            return Some((e.pack, e.offset, e.length));
        }
        let run = self.base.as_ref()?;
        let e = run.entry(run.find(id)?);
        Some((e.pack, e.offset, e.length))
    }

    fn pack_info(&self, pack: u32) -> PackInfo {
        match (&self.base, pack.checked_sub(self.base_packs)) {
            (_, Some(n)) => self.packs[n as usize],
            (Some(run), None) => run.pack(pack as usize),
            (None, None) => unreachable!("pack numbers below base_packs need a run"),
        }
    }

    fn location(&self, pack: u32, offset: u32, length: u32) -> Location {
        let p = self.pack_info(pack);
        Location {
            pack: p.id,
            kind: p.kind,
            offset,
            length: length & !GROUP_BIT,
            hidden: p.hidden,
            group: length & GROUP_BIT != 0,
        }
    }

    /// Whether a blob is indexed in a pack that is not marked for deletion,
    /// and not known to be damaged: what writers may dedup against.
    pub fn contains_visible(&self, id: &Id) -> bool {
        self.visible_pack(id).is_some()
    }

    /// The number of the pack holding a blob writers may dedup against
    /// (see [`contains_visible`](Self::contains_visible)).
    pub fn visible_pack(&self, id: &Id) -> Option<u32> {
        let (pack, offset) = self.raw(id)?;
        (!self.pack_info(pack).hidden && !self.damaged_at(id, pack, offset)).then_some(pack)
    }

    /// Pack number and record offset of a blob.
    fn raw(&self, id: &Id) -> Option<(u32, u32)> {
        self.lookup(id).map(|(pack, offset, _)| (pack, offset))
    }

    fn damaged_at(&self, id: &Id, pack: u32, offset: u32) -> bool {
        self.any_damaged.load(Relaxed)
            && (self.damaged.lock().expect("damaged set").contains(id)
                || self
                    .damaged_records
                    .lock()
                    .expect("damaged set")
                    .contains(&(pack, offset)))
    }

    /// The id of pack number `n` (as [`visible_pack`](Self::visible_pack)
    /// returns them).
    pub fn pack_id(&self, n: u32) -> Option<PackId> {
        ((n as usize) < self.pack_count()).then(|| self.pack_info(n).id)
    }

    /// Records that reading a blob found it damaged: writers stop deduping
    /// against it and store the data again.
    pub fn mark_damaged(&self, id: &Id) {
        self.damaged.lock().expect("damaged set").insert(*id);
        self.any_damaged.store(true, Relaxed);
    }

    /// Notes that tree `carrier` carries tree `tree` at place `at` of its
    /// list (tree version 3).
    pub fn note_carried(&self, tree: Id, carrier: Id, at: u32) {
        self.carried
            .lock()
            .expect("carried trees")
            .entry(tree)
            .or_insert((carrier, at));
    }

    /// The tree carrying tree `tree` and its place there, if a read found
    /// one.
    pub fn carried_in(&self, tree: &Id) -> Option<(Id, u32)> {
        self.carried
            .lock()
            .expect("carried trees")
            .get(tree)
            .copied()
    }

    /// Records that the record holding blob `id` was found damaged (a
    /// group that does not open): every blob in it is distrusted.
    pub fn mark_damaged_record(&self, id: &Id) {
        if let Some(at) = self.raw(id) {
            self.damaged_records.lock().expect("damaged set").insert(at);
        }
        self.mark_damaged(id);
    }

    /// Whether a blob was found damaged, alone or with its record.
    pub fn is_damaged(&self, id: &Id) -> bool {
        match self.raw(id) {
            Some((pack, offset)) => self.damaged_at(id, pack, offset),
            None => {
                self.any_damaged.load(Relaxed)
                    && self.damaged.lock().expect("damaged set").contains(id)
            }
        }
    }

    /// Every blob found damaged so far, with the pack holding the damaged
    /// copy: those marked one by one, and every blob of a damaged record.
    pub fn damaged(&self) -> Vec<(PackId, Id)> {
        if !self.any_damaged.load(Relaxed) {
            return Vec::new();
        }
        let records = self.damaged_records.lock().expect("damaged set").clone();
        let ids = self.damaged.lock().expect("damaged set").clone();
        let mut out: Vec<(PackId, Id)> = ids
            .iter()
            .filter_map(|id| Some((self.get(id)?.pack, *id)))
            .collect();
        if !records.is_empty() {
            let in_record = |pack: u32, offset: u32| records.contains(&(pack, offset));
            out.extend(
                self.entries()
                    .filter(|e| in_record(e.pack, e.offset))
                    .map(|e| (self.pack_info(e.pack).id, Id(e.id))),
            );
        }
        out.sort();
        out.dedup();
        out
    }

    /// Whether a blob is indexed.
    pub fn contains(&self, id: &Id) -> bool {
        self.pending.contains_key(id)
            || self.find_sorted(id).is_some()
            || self.base.as_ref().is_some_and(|r| r.find(id).is_some())
    }

    /// Number of blobs.
    pub fn len(&self) -> usize {
        self.base.as_ref().map_or(0, |r| r.len()) + self.sorted.len() + self.pending.len()
    }

    /// True when no blob is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of packs registered.
    pub fn pack_count(&self) -> usize {
        self.base_packs as usize + self.packs.len()
    }

    /// Every blob and its location, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (Id, Location)> + '_ {
        self.entries()
            .map(move |e| (Id(e.id), self.location(e.pack, e.offset, e.length)))
    }

    /// Every entry: the run's, the array's, the pending ones.
    fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        let run = self.base.as_deref();
        (0..run.map_or(0, |r| r.len()))
            .map(move |i| run.expect("a run").entry(i))
            .chain(self.sorted.iter().copied())
            .chain(
                self.pending
                    .iter()
                    .map(|(id, &(pack, offset, length))| Entry {
                        id: id.0,
                        pack,
                        offset,
                        length,
                    }),
            )
    }

    /// Heap bytes held, counting allocated (not only used) capacity (a
    /// mapped run's pages are not counted: they are the file's, read as
    /// lookups touch them).
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        // hashbrown: a power-of-two number of buckets holding up to 7/8 of
        // it in entries, each bucket a slot and one control byte.
        let pending_slot = size_of::<(Id, (u32, u32, u32))>() + 1;
        let pending_buckets = match self.pending.capacity() {
            0 => 0,
            c => (c * 8 / 7).next_power_of_two(),
        };
        self.sorted.capacity() * size_of::<Entry>()
            + self.buckets.capacity() * size_of::<u32>()
            + self.packs.capacity() * size_of::<PackInfo>()
            + pending_buckets * pending_slot
    }

    /// [`memory_bytes`](Self::memory_bytes) divided by the number of blobs.
    pub fn bytes_per_entry(&self) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        self.memory_bytes() as f64 / self.len() as f64
    }

    /// Folds the pending entries into the sorted array, growing it by at
    /// most 1/32 beyond need and merging from the back in place.
    fn merge_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut fresh: Vec<Entry> = self
            .pending
            .drain()
            .map(|(id, (pack, offset, length))| Entry {
                id: id.0,
                pack,
                offset,
                length,
            })
            .collect();
        self.pending.shrink_to(PENDING_MIN);
        fresh.sort_unstable_by_key(|e| e.id);
        let old = self.sorted.len();
        let total = old + fresh.len();
        if self.sorted.capacity() < total {
            self.sorted
                .reserve_exact(total - old + total / GROWTH_SHARE);
        }
        self.sorted.resize(
            total,
            Entry {
                id: [0; 32],
                pack: 0,
                offset: 0,
                length: 0,
            },
        );
        // Merge from the back: the write position never overtakes the
        // unread part of the old entries.
        let (mut i, mut j, mut w) = (old, fresh.len(), total);
        while j > 0 {
            w -= 1;
            if i > 0 && self.sorted[i - 1].id > fresh[j - 1].id {
                self.sorted[w] = self.sorted[i - 1];
                i -= 1;
            } else {
                self.sorted[w] = fresh[j - 1];
                j -= 1;
            }
        }
        self.rebuild_buckets();
    }

    fn rebuild_buckets(&mut self) {
        let n = self.sorted.len();
        let bits = if n < BUCKET_TARGET * 2 {
            0
        } else {
            (n / BUCKET_TARGET).ilog2().min(24)
        };
        self.bucket_bits = bits;
        let count = 1usize << bits;
        self.buckets.clear();
        self.buckets.reserve_exact(count + 1);
        let mut pos = 0usize;
        for b in 0..count {
            self.buckets.push(pos as u32);
            while pos < n && self.bucket_of(&self.sorted[pos].id) == b {
                pos += 1;
            }
        }
        self.buckets.push(n as u32);
    }

    fn bucket_of(&self, id: &[u8; 32]) -> usize {
        if self.bucket_bits == 0 {
            0
        } else {
            (Id(*id).prefix_u64() >> (64 - self.bucket_bits)) as usize
        }
    }

    fn find_sorted(&self, id: &Id) -> Option<usize> {
        if self.sorted.is_empty() {
            return None;
        }
        let b = self.bucket_of(&id.0);
        let (lo, hi) = (self.buckets[b] as usize, self.buckets[b + 1] as usize);
        self.sorted[lo..hi]
            .binary_search_by(|e| e.id.cmp(&id.0))
            .ok()
            .map(|i| lo + i)
    }
}

fn stored_length(length: u32, group: bool) -> u32 {
    debug_assert!(length & GROUP_BIT == 0, "records are under 2 GiB");
    if group { length | GROUP_BIT } else { length }
}

/// Builds an [`Index`] from many packs (opening a repository): entries are
/// appended unsorted and sorted once at the end, and the caller can drop
/// each decoded index file as soon as it is added.
#[derive(Debug, Default)]
pub struct IndexBuilder {
    index: Index,
}

impl IndexBuilder {
    /// An empty builder expecting about `entries` blobs in `packs` packs.
    pub fn with_capacity(entries: usize, packs: usize) -> Self {
        let mut index = Index::default();
        index.sorted.reserve_exact(entries);
        index.packs.reserve_exact(packs);
        IndexBuilder { index }
    }

    /// A builder that starts from an existing index (whose entries win
    /// over later duplicates).
    pub fn from_index(mut index: Index) -> Self {
        index.merge_pending();
        IndexBuilder { index }
    }

    /// Adds a pack and its blobs.
    pub fn add_pack(&mut self, id: PackId, kind: BlobType, blobs: &[PackedBlob]) {
        let pack = self.index.add_pack(id, kind).0;
        self.push(pack, blobs, |_| true);
    }

    /// Adds a pack and those of its blobs `keep` accepts (known-damaged
    /// copies are left out). Group records are recognised from the whole
    /// list, so a group that keeps one member is still read as a group.
    pub fn add_pack_filtered(
        &mut self,
        id: PackId,
        kind: BlobType,
        blobs: &[PackedBlob],
        keep: impl Fn(&PackedBlob) -> bool,
    ) {
        let pack = self.index.add_pack(id, kind).0;
        self.push(pack, blobs, keep);
    }

    /// Adds a pack marked for deletion (see [`Index::add_hidden_pack`]).
    /// Add these after the visible packs: among duplicate ids the first
    /// added wins, so a blob stored twice resolves to its live copy.
    pub fn add_hidden_pack(&mut self, id: PackId, kind: BlobType, blobs: &[PackedBlob]) {
        self.add_hidden_pack_filtered(id, kind, blobs, |_| true);
    }

    /// [`add_hidden_pack`](Self::add_hidden_pack) with those of its blobs
    /// `keep` accepts, as [`add_pack_filtered`](Self::add_pack_filtered).
    pub fn add_hidden_pack_filtered(
        &mut self,
        id: PackId,
        kind: BlobType,
        blobs: &[PackedBlob],
        keep: impl Fn(&PackedBlob) -> bool,
    ) {
        let pack = self.index.add_hidden_pack(id, kind).0;
        self.push(pack, blobs, keep);
    }

    fn push(&mut self, pack: u32, blobs: &[PackedBlob], keep: impl Fn(&PackedBlob) -> bool) {
        self.index.sorted.extend(
            blobs
                .iter()
                .zip(group_members(blobs))
                .filter(|(b, _)| keep(b))
                .map(|(b, group)| Entry {
                    id: b.id.0,
                    pack,
                    offset: b.offset,
                    length: stored_length(b.length, group),
                }),
        );
    }

    /// Sorts, drops duplicate ids (the first added wins), and sizes the
    /// arrays exactly.
    pub fn build(self) -> Index {
        let mut index = self.index;
        // Stable: among duplicates the first added entry stays first.
        index.sorted.sort_by_key(|e| e.id);
        index
            .sorted
            .dedup_by(|later, earlier| later.id == earlier.id);
        if let Some(run) = &index.base {
            // The run's entries were added first.
            index.sorted.retain(|e| run.find(&Id(e.id)).is_none());
        }
        index.sorted.shrink_to_fit();
        index.packs.shrink_to_fit();
        index.rebuild_buckets();
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> Id {
        Id(*blake3::hash(&n.to_le_bytes()).as_bytes())
    }

    #[test]
    fn insert_get_and_duplicates() {
        let mut ix = Index::new();
        let p = ix.add_pack(PackId(Id([1; 32])), BlobType::Data);
        for n in 0..20_000u64 {
            assert!(ix.insert(id(n), p, n as u32, 7));
        }
        assert!(!ix.insert(id(5), p, 999, 1));
        assert_eq!(ix.len(), 20_000);
        for n in 0..20_000u64 {
            let loc = ix.get(&id(n)).unwrap();
            assert_eq!((loc.offset, loc.length), (n as u32, 7));
        }
        assert!(ix.get(&id(20_001)).is_none());
        assert_eq!(ix.iter().count(), 20_000);
    }

    #[test]
    fn bulk_load_is_compact() {
        let mut ix = Index::new();
        let blobs: Vec<Vec<PackedBlob>> = (0..1000u64)
            .map(|p| {
                (0..100u64)
                    .map(|i| PackedBlob {
                        kind: BlobType::Data,
                        id: id(p * 100 + i),
                        offset: i as u32,
                        length: 1,
                        raw_len: 1,
                    })
                    .collect()
            })
            .collect();
        ix.extend_packs(
            blobs
                .iter()
                .enumerate()
                .map(|(p, b)| (PackId(id(1 << 40 | p as u64)), BlobType::Data, &b[..])),
        );
        assert_eq!(ix.len(), 100_000);
        assert!(ix.bytes_per_entry() < 46.0, "{}", ix.bytes_per_entry());
        assert_eq!(ix.get(&id(12_345)).unwrap().offset, 45);
    }
}
