//! Which copy of each used blob readers resolve, and what that makes of
//! every pack, within a memory bound.
//!
//! An in-memory index of every copy and a hash set of every used blob grow
//! with the repository (at 10 M blobs, gigabytes). Here both are sorted
//! streams instead: every copy goes into an external sort by (blob id,
//! rank), where the rank orders copies as readers resolve them (see
//! [`super::readable_index`]: intact copies first, then damaged ones whose
//! bytes are still there, then those of packs that are gone; among equals,
//! live packs in index order, then marked packs). Merged with the sorted
//! used ids, the first copy of each id is the one read, so every copy's
//! liveness is known without a lookup. The copies are then sorted again by
//! pack and folded into one [`PackSummary`] a pack: memory grows with the
//! packs, not the blobs.
//!
//! Check resolves the same way ([`Resolver::for_check`]) with three
//! differences: copies past the end of a pack shorter than the index says
//! rank with those of gone packs, live packs rank by pack id (check's
//! order), and a used blob with no copy is a finding, not an error. It
//! also learns, for every copy, whether another copy replaces it.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use hokan_core::index::RecordSorter;
use hokan_core::{BlobType, Id, PackId, PackedBlob};

use crate::error::{Error, Result, from_core};
use crate::index_file::IndexedPack;

/// Sequence numbers from here on are marked packs' (index files list
/// fewer packs than this).
const MARKED: u32 = 1 << 31;
/// Not a live pack (in a superseded file, or listed twice).
const INACTIVE: u32 = u32::MAX;

/// A copy by blob: id, class, seq, position in its pack, offset, length,
/// plaintext length, flags (big-endian, so bytes sort as the fields do).
const COPY: usize = 32 + 1 + 4 * 5 + 1;
/// A copy by pack: seq, position, id, offset, length, plaintext length,
/// flags.
const BLOB: usize = 4 * 2 + 32 + 4 * 3 + 1;
const DAMAGED: u8 = 1;
const LIVE: u8 = 2;
const TREE: u8 = 4;
/// Its bytes are gone (its pack is, or lies short of it).
const ABSENT: u8 = 8;
/// Readers read the blob from another pack.
const HEALED: u8 = 16;
/// A copy as check reads packs: id, offset, length, plaintext length,
/// flags.
const ENTRY: usize = 32 + 4 * 3 + 1;

fn be(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// What the survey needs to know of an indexed pack once every copy has
/// been resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PackSummary {
    pub id: PackId,
    /// Whether the store has it.
    pub stored: bool,
    /// Stored bytes of its records that snapshots read (a group record in
    /// proportion to its live members' plaintext).
    pub live: u64,
    /// Stored bytes of all its records.
    pub total: u64,
    /// Whether it holds a copy recorded as damaged.
    pub damaged: bool,
    /// Only for a pack not in the store: its blobs not recorded as
    /// damaged, in its own order.
    pub undamaged: Vec<Id>,
}

/// What check learns of an indexed pack beyond its summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PackDetail {
    /// Its size as the index says.
    pub size: u64,
    /// Copies it lists.
    pub blobs: usize,
    /// Its copies whose bytes are gone (all of them if the pack is), in
    /// its order, each with whether readers read that blob from another
    /// pack.
    pub absent: Vec<(Id, bool)>,
}

/// What resolving every copy found.
pub(crate) struct Resolved {
    /// The live packs, in index order.
    pub active: Vec<PackSummary>,
    /// Marked packs a snapshot reads from.
    pub marked_live: HashSet<PackId>,
    /// Distinct used blobs some copy holds.
    pub used: usize,
    /// Check only: beside `active`, the rest of what check needs of each.
    pub details: Vec<PackDetail>,
    /// Check only: the used blobs no copy holds, ascending.
    pub missing: Vec<Id>,
    /// Check only: the pack readers read each blob damage records name
    /// from (none: no copy).
    pub winners: HashMap<Id, PackId>,
    /// Check only, when asked: every copy of every pack, for reading them.
    pub entries: Option<PackEntries>,
    /// The live blobs of packs partly live (not damaged, in the store):
    /// (position in `active`, blob id) records, for repacking.
    partly_live: Option<File>,
}

impl Resolved {
    /// The live copies of the packs at `positions` in `active` (those
    /// chosen for repacking).
    pub fn live_copies(&self, positions: &HashSet<usize>) -> Result<HashSet<(PackId, Id)>> {
        let mut out = HashSet::new();
        let Some(mut f) = self.partly_live.as_ref() else {
            return Ok(out);
        };
        f.seek(SeekFrom::Start(0)).map_err(spill_error)?;
        let mut r = BufReader::new(f);
        let mut rec = [0u8; 36];
        loop {
            match r.read_exact(&mut rec) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(spill_error(e)),
            }
            let at = be(&rec, 0) as usize;
            if positions.contains(&at) {
                let id = Id(rec[4..].try_into().expect("32 bytes"));
                out.insert((self.active[at].id, id));
            }
        }
        Ok(out)
    }
}

/// Every copy of every pack, spilled in pack order, so that reading a
/// pack in full needs only its own entries in memory.
pub(crate) struct PackEntries {
    file: std::sync::Mutex<File>,
    /// Each pack's first record and count.
    packs: HashMap<PackId, (u64, u32)>,
}

impl PackEntries {
    /// A pack's copies as its index entry (or deletion marker) lists
    /// them, each with whether snapshots read that blob from this pack.
    pub fn get(&self, pack: &PackId) -> Result<Vec<(PackedBlob, bool)>> {
        let Some(&(start, n)) = self.packs.get(pack) else {
            return Ok(Vec::new());
        };
        let mut buf = vec![0u8; n as usize * ENTRY];
        {
            let mut f = self
                .file
                .lock()
                .expect("a spill file's lock is never poisoned");
            f.seek(SeekFrom::Start(start * ENTRY as u64))
                .map_err(spill_error)?;
            f.read_exact(&mut buf).map_err(spill_error)?;
        }
        Ok(buf
            .chunks_exact(ENTRY)
            .map(|e| {
                let b = PackedBlob {
                    kind: match e[44] & TREE {
                        0 => BlobType::Data,
                        _ => BlobType::Tree,
                    },
                    id: Id(e[..32].try_into().expect("32 bytes")),
                    offset: be(e, 32),
                    length: be(e, 36),
                    raw_len: be(e, 40),
                };
                (b, e[44] & LIVE != 0)
            })
            .collect())
    }
}

fn spill_error(e: std::io::Error) -> Error {
    from_core(hokan_core::Error::io("using a spill file", e))
}

/// A pack listed by an index file.
struct Listed {
    id: PackId,
    stored: bool,
    file: u32,
    size: u64,
    blobs: usize,
}

/// What check asks of the resolver beyond prune.
struct CheckMode {
    /// Blobs whose winning pack to report.
    asked: HashSet<Id>,
    /// Whether to keep every copy for reading packs.
    entries: bool,
}

/// Gathers every copy (indexed packs as index files list them, then
/// marked packs), then resolves them against the used ids.
pub(crate) struct Resolver<'a> {
    dir: PathBuf,
    memory: usize,
    damaged: &'a HashSet<(PackId, Id)>,
    copies: RecordSorter<COPY>,
    /// Every pack listed, by sequence number.
    listed: Vec<Listed>,
    /// Sequence number → position among the live packs, or INACTIVE.
    active_at: Vec<u32>,
    active: Vec<PackSummary>,
    details: Vec<PackDetail>,
    marked: Vec<PackId>,
    check: Option<CheckMode>,
}

/// What the merge with the used ids counts.
#[derive(Default)]
struct Tally {
    used: usize,
    missing: Vec<Id>,
    winners: HashMap<Id, PackId>,
}

impl<'a> Resolver<'a> {
    /// A resolver spilling to `dir`, its sorters within about `memory`
    /// bytes in all; `damaged` names the copies damage records list.
    pub fn new(dir: &Path, memory: usize, damaged: &'a HashSet<(PackId, Id)>) -> Self {
        Resolver {
            dir: dir.to_path_buf(),
            memory,
            damaged,
            // The copies' buffer lives until the end; the used ids' and
            // the per-pack sort's share the rest.
            copies: RecordSorter::within(dir, memory / 3),
            listed: Vec::new(),
            active_at: Vec::new(),
            active: Vec::new(),
            details: Vec::new(),
            marked: Vec::new(),
            check: None,
        }
    }

    /// A resolver for check (see the module's documentation); with
    /// `entries`, it keeps every copy for reading packs in full.
    pub fn for_check(
        dir: &Path,
        memory: usize,
        damaged: &'a HashSet<(PackId, Id)>,
        entries: bool,
    ) -> Self {
        let asked = damaged.iter().map(|(_, b)| *b).collect();
        Resolver {
            check: Some(CheckMode { asked, entries }),
            ..Self::new(dir, memory, damaged)
        }
    }

    fn push(
        &mut self,
        seq: u32,
        p: &IndexedPack,
        gone: impl Fn(&PackedBlob) -> bool,
    ) -> Result<()> {
        for (pos, b) in p.blobs.iter().enumerate() {
            let damaged = self.damaged.contains(&(p.id, b.id));
            let gone = gone(b);
            // Readers' order: intact, damaged with bytes left, gone.
            let class = if gone { 2 } else { damaged as u8 };
            let mut r = [0u8; COPY];
            r[..32].copy_from_slice(&b.id.0);
            r[32] = class;
            r[33..37].copy_from_slice(&seq.to_be_bytes());
            r[37..41].copy_from_slice(&(pos as u32).to_be_bytes());
            r[41..45].copy_from_slice(&b.offset.to_be_bytes());
            r[45..49].copy_from_slice(&b.length.to_be_bytes());
            r[49..53].copy_from_slice(&b.raw_len.to_be_bytes());
            r[53] = if damaged { DAMAGED } else { 0 }
                | if gone { ABSENT } else { 0 }
                | if b.kind == BlobType::Tree { TREE } else { 0 };
            self.copies.push(r).map_err(from_core)?;
        }
        Ok(())
    }

    fn list(&mut self, file: u32, p: &IndexedPack, stored: bool) -> u32 {
        let seq = self.listed.len() as u32;
        assert!(seq < MARKED, "fewer than 2^31 packs");
        self.listed.push(Listed {
            id: p.id,
            stored,
            file,
            size: p.size,
            blobs: p.blobs.len(),
        });
        seq
    }

    /// Adds a pack index file number `file` lists (files in the order
    /// they were listed, packs in their order): its copies are gone if
    /// it is not `stored` (prune trusts the rest: it reads what it
    /// repacks). Returns its sequence number.
    pub fn add_indexed(&mut self, file: u32, p: &IndexedPack, stored: bool) -> Result<u32> {
        let seq = self.list(file, p, stored);
        self.push(seq, p, |_| !stored)?;
        Ok(seq)
    }

    /// [`add_indexed`] for check, given the pack's size in the store
    /// (none: not there): copies lying past its end are gone too.
    ///
    /// [`add_indexed`]: Self::add_indexed
    pub fn add_indexed_sized(
        &mut self,
        file: u32,
        p: &IndexedPack,
        size: Option<u64>,
    ) -> Result<u32> {
        let seq = self.list(file, p, size.is_some());
        let past = |b: &PackedBlob| size.is_none_or(|s| b.offset as u64 + b.length as u64 > s);
        self.push(seq, p, past)?;
        Ok(seq)
    }

    /// Whether the pack listed as `seq` is live (after [`settle`]).
    ///
    /// [`settle`]: Self::settle
    pub fn is_active(&self, seq: u32) -> bool {
        self.active_at[seq as usize] != INACTIVE
    }

    /// Decides which listed packs are live: those of files no other
    /// supersedes, the first listing of each (as the index loader takes
    /// them). Returns them in order.
    pub fn settle(&mut self, superseded: &HashSet<u32>) -> Vec<PackId> {
        let mut seen = HashSet::new();
        let check = self.check.is_some();
        self.active_at = self
            .listed
            .iter()
            .map(|l| {
                if superseded.contains(&l.file) || !seen.insert(l.id) {
                    return INACTIVE;
                }
                self.active.push(PackSummary {
                    id: l.id,
                    stored: l.stored,
                    live: 0,
                    total: 0,
                    damaged: false,
                    undamaged: Vec::new(),
                });
                if check {
                    self.details.push(PackDetail {
                        size: l.size,
                        blobs: l.blobs,
                        absent: Vec::new(),
                    });
                }
                (self.active.len() - 1) as u32
            })
            .collect();
        self.active.iter().map(|p| p.id).collect()
    }

    /// Adds a marked pack that is in the store, after [`settle`]: in
    /// pack id order (any fixed order would do; readers pick among marked
    /// duplicates arbitrarily).
    ///
    /// [`settle`]: Self::settle
    pub fn add_marked(&mut self, p: &IndexedPack) -> Result<()> {
        let seq = MARKED + self.marked.len() as u32;
        self.marked.push(p.id);
        self.push(seq, p, |_| false)
    }

    fn pack_of(&self, seq: u32) -> PackId {
        match seq.checked_sub(MARKED) {
            Some(m) => self.marked[m as usize],
            None => self.listed[seq as usize].id,
        }
    }

    /// Resolves every copy against `used` (ascending, each once). A used
    /// blob no copy holds stops prune (it deletes packs in no index, and
    /// that blob's may be one); check lists it.
    pub fn resolve(mut self, used: impl Iterator<Item = Result<Id>>) -> Result<Resolved> {
        let mut used = used.peekable();
        let mut tally = Tally::default();
        let mut by_pack = RecordSorter::<BLOB>::within(&self.dir, self.memory / 3);
        let copies = std::mem::replace(&mut self.copies, RecordSorter::new(&self.dir, 0));
        // One blob's copies at a time (a handful), best ranked first.
        let mut group: Vec<[u8; COPY]> = Vec::new();
        for r in copies.finish().map_err(from_core)? {
            let r = r.map_err(from_core)?;
            let seq = be(&r, 33);
            if seq < MARKED && self.active_at[seq as usize] == INACTIVE {
                continue;
            }
            if group.first().is_some_and(|g| g[..32] != r[..32]) {
                self.resolve_blob(&group, &mut used, &mut by_pack, &mut tally)?;
                group.clear();
            }
            group.push(r);
        }
        if !group.is_empty() {
            self.resolve_blob(&group, &mut used, &mut by_pack, &mut tally)?;
        }
        for u in used {
            self.missing(u?, &mut tally)?;
        }
        let mut marked_live = HashSet::new();
        let (partly_live, entries) = self.fold(by_pack, &mut marked_live)?;
        Ok(Resolved {
            active: self.active,
            marked_live,
            used: tally.used,
            details: self.details,
            missing: tally.missing,
            winners: tally.winners,
            entries,
            partly_live,
        })
    }

    fn missing(&self, id: Id, tally: &mut Tally) -> Result<()> {
        if self.check.is_none() {
            return Err(Error::NotIndexed {
                what: format!("blob {}, which a snapshot needs,", id.short()),
            });
        }
        tally.missing.push(id);
        Ok(())
    }

    /// The copy readers read among one blob's, ranked: the first, but
    /// check ranks equals by pack id (live packs first), as its index did.
    fn winner(&self, group: &[[u8; COPY]]) -> u32 {
        let first = &group[0];
        if self.check.is_none() {
            return be(first, 33);
        }
        group
            .iter()
            .take_while(|r| r[32] == first[32])
            .map(|r| be(r, 33))
            .min_by_key(|&seq| (seq >= MARKED, self.pack_of(seq)))
            .expect("a blob has a copy")
    }

    /// Marks which of one blob's copies (`group`) snapshots read, taking
    /// the used ids up to it from `used`.
    fn resolve_blob<I: Iterator<Item = Result<Id>>>(
        &self,
        group: &[[u8; COPY]],
        used: &mut std::iter::Peekable<I>,
        by_pack: &mut RecordSorter<BLOB>,
        tally: &mut Tally,
    ) -> Result<()> {
        let id = Id(group[0][..32].try_into().expect("32 bytes"));
        let mut is_used = false;
        // Used ids up to this one (an error, too, comes out here).
        while let Some(u) = used.next_if(|u| !matches!(u, Ok(u) if *u > id)) {
            let u = u?;
            if u != id {
                self.missing(u, tally)?;
                continue;
            }
            is_used = true;
            tally.used += 1;
        }
        let winner = self.winner(group);
        if self.check.as_ref().is_some_and(|c| c.asked.contains(&id)) {
            tally.winners.insert(id, self.pack_of(winner));
        }
        for r in group {
            let seq = be(r, 33);
            let mut b = [0u8; BLOB];
            b[..8].copy_from_slice(&r[33..41]);
            b[8..40].copy_from_slice(&r[..32]);
            b[40..52].copy_from_slice(&r[41..53]);
            b[52] = r[53]
                | if is_used && seq == winner { LIVE } else { 0 }
                | if seq != winner { HEALED } else { 0 };
            by_pack.push(b).map_err(from_core)?;
        }
        Ok(())
    }

    /// Folds the copies, sorted by pack and position, into the packs'
    /// summaries (as `record_bytes` counts a pack's records); for check,
    /// spills them as read again when packs are read.
    fn fold(
        &mut self,
        by_pack: RecordSorter<BLOB>,
        marked_live: &mut HashSet<PackId>,
    ) -> Result<(Option<File>, Option<PackEntries>)> {
        let mut partly: Option<BufWriter<File>> = None;
        let mut entries = match &self.check {
            Some(c) if c.entries => Some((
                BufWriter::new(
                    hokan_core::index::sorter::spill_file(&self.dir).map_err(from_core)?,
                ),
                0u64,
                HashMap::new(),
            )),
            _ => None,
        };
        let mut pack = Fold::default();
        for b in by_pack.finish().map_err(from_core)? {
            let b = b.map_err(from_core)?;
            let seq = be(&b, 0);
            if pack.seq != Some(seq) {
                self.close(&mut pack, marked_live, &mut partly)?;
                pack = Fold {
                    seq: Some(seq),
                    ..Default::default()
                };
            }
            if let Some((w, at, packs)) = entries.as_mut() {
                let (start, n) = packs.entry(self.pack_of(seq)).or_insert((*at, 0u32));
                debug_assert_eq!(*start + *n as u64, *at, "a pack's copies are together");
                *n += 1;
                *at += 1;
                w.write_all(&b[8..]).map_err(spill_error)?;
            }
            pack.add(&b);
        }
        self.close(&mut pack, marked_live, &mut partly)?;
        let done = |w: BufWriter<File>| w.into_inner().map_err(|e| spill_error(e.into_error()));
        let entries = match entries {
            None => None,
            Some((w, _, packs)) => Some(PackEntries {
                file: std::sync::Mutex::new(done(w)?),
                packs,
            }),
        };
        Ok((partly.map(done).transpose()?, entries))
    }

    fn close(
        &mut self,
        f: &mut Fold,
        marked_live: &mut HashSet<PackId>,
        partly: &mut Option<BufWriter<File>>,
    ) -> Result<()> {
        let Some(seq) = f.seq else {
            return Ok(());
        };
        f.end_record();
        if seq >= MARKED {
            if f.any_live {
                marked_live.insert(self.marked[(seq - MARKED) as usize]);
            }
            return Ok(());
        }
        let at = self.active_at[seq as usize];
        let s = &mut self.active[at as usize];
        (s.live, s.total, s.damaged) = (f.live, f.total, f.damaged);
        if !s.stored {
            s.undamaged = std::mem::take(&mut f.undamaged);
        }
        if self.check.is_some() {
            self.details[at as usize].absent = std::mem::take(&mut f.absent);
            return Ok(());
        }
        if s.stored && s.live > 0 && s.live < s.total && !s.damaged {
            if partly.is_none() {
                let file = hokan_core::index::sorter::spill_file(&self.dir).map_err(from_core)?;
                *partly = Some(BufWriter::new(file));
            }
            let w = partly.as_mut().expect("just made");
            for id in &f.live_ids {
                w.write_all(&at.to_be_bytes()).map_err(spill_error)?;
                w.write_all(&id.0).map_err(spill_error)?;
            }
        }
        Ok(())
    }
}

/// One pack's copies being folded.
#[derive(Default)]
struct Fold {
    seq: Option<u32>,
    live: u64,
    total: u64,
    damaged: bool,
    any_live: bool,
    undamaged: Vec<Id>,
    live_ids: Vec<Id>,
    /// Copies whose bytes are gone, with whether another copy replaces
    /// them.
    absent: Vec<(Id, bool)>,
    /// The record being read: offset, stored length, plaintext of all
    /// members, of live ones, whether any member is live.
    record: Option<(u32, u64, u64, u64, bool)>,
}

impl Fold {
    fn add(&mut self, b: &[u8; BLOB]) {
        let id = Id(b[8..40].try_into().expect("32 bytes"));
        let (offset, length, raw) = (be(b, 40), be(b, 44) as u64, be(b, 48) as u64);
        let (damaged, live) = (b[52] & DAMAGED != 0, b[52] & LIVE != 0);
        if self.record.is_some_and(|r| r.0 != offset) {
            self.end_record();
        }
        let r = self.record.get_or_insert((offset, length, 0, 0, false));
        r.2 += raw;
        if live {
            r.3 += raw;
            r.4 = true;
            self.any_live = true;
            self.live_ids.push(id);
        }
        self.damaged |= damaged;
        if !damaged {
            self.undamaged.push(id);
        }
        if b[52] & ABSENT != 0 {
            self.absent.push((id, b[52] & HEALED != 0));
        }
    }

    fn end_record(&mut self) {
        if let Some((_, length, raw, live_raw, any)) = self.record.take() {
            self.total += length;
            self.live += live_share(length, raw, live_raw, any);
        }
    }
}

/// The live stored bytes of a record of `length` bytes whose members hold
/// `raw` bytes of plaintext, `live_raw` of them live: in proportion,
/// rounded up, so a record with any live member is never counted as dead
/// (rounded down, a small live member of a well-compressed group counted
/// as 0, and a pack holding only such a record was marked for deletion).
pub(crate) fn live_share(length: u64, raw: u64, live_raw: u64, any_live: bool) -> u64 {
    match raw {
        0 => length * u64::from(any_live),
        raw => (length * live_raw).div_ceil(raw),
    }
}

#[cfg(test)]
impl Resolved {
    /// A result made elsewhere (the reference the tests compare with).
    pub fn from_summaries(
        active: Vec<PackSummary>,
        marked_live: HashSet<PackId>,
        used: usize,
    ) -> Self {
        Resolved {
            active,
            marked_live,
            used,
            details: Vec::new(),
            missing: Vec::new(),
            winners: HashMap::new(),
            entries: None,
            partly_live: None,
        }
    }
}

#[cfg(test)]
mod share_tests {
    use super::live_share;

    #[test]
    fn a_record_with_a_live_member_is_never_dead() {
        // 100 stored bytes for 1 MB of plaintext; a 5-byte member is live.
        assert_eq!(live_share(100, 1_000_000, 5, true), 1);
        assert_eq!(live_share(100, 1_000, 500, true), 50);
        assert_eq!(live_share(100, 1_000, 0, false), 0);
        assert_eq!(live_share(100, 0, 0, true), 100);
        assert_eq!(live_share(100, 0, 0, false), 0);
    }
}
