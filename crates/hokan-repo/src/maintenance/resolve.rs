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

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use hokan_core::index::RecordSorter;
use hokan_core::{Id, PackId};

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

/// What resolving every copy found.
pub(crate) struct Resolved {
    /// The live packs, in index order.
    pub active: Vec<PackSummary>,
    /// Marked packs a snapshot reads from.
    pub marked_live: HashSet<PackId>,
    /// Distinct used blobs.
    pub used: usize,
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

fn spill_error(e: std::io::Error) -> Error {
    from_core(hokan_core::Error::io("using a spill file", e))
}

/// Gathers every copy (indexed packs as index files list them, then
/// marked packs), then resolves them against the used ids.
pub(crate) struct Resolver<'a> {
    dir: PathBuf,
    memory: usize,
    damaged: &'a HashSet<(PackId, Id)>,
    copies: RecordSorter<COPY>,
    /// Every pack listed, by sequence number: id, in the store, file.
    listed: Vec<(PackId, bool, u32)>,
    /// Sequence number → position among the live packs, or INACTIVE.
    active_at: Vec<u32>,
    active: Vec<PackSummary>,
    marked: Vec<PackId>,
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
            marked: Vec::new(),
        }
    }

    fn push(&mut self, seq: u32, p: &IndexedPack, absent: bool) -> Result<()> {
        for (pos, b) in p.blobs.iter().enumerate() {
            let damaged = self.damaged.contains(&(p.id, b.id));
            // Readers' order: intact, damaged with bytes left, gone.
            let class = if absent { 2 } else { damaged as u8 };
            let mut r = [0u8; COPY];
            r[..32].copy_from_slice(&b.id.0);
            r[32] = class;
            r[33..37].copy_from_slice(&seq.to_be_bytes());
            r[37..41].copy_from_slice(&(pos as u32).to_be_bytes());
            r[41..45].copy_from_slice(&b.offset.to_be_bytes());
            r[45..49].copy_from_slice(&b.length.to_be_bytes());
            r[49..53].copy_from_slice(&b.raw_len.to_be_bytes());
            r[53] = if damaged { DAMAGED } else { 0 };
            self.copies.push(r).map_err(from_core)?;
        }
        Ok(())
    }

    /// Adds a pack index file number `file` lists (files in the order
    /// they were listed, packs in their order).
    /// Returns its sequence number.
    pub fn add_indexed(&mut self, file: u32, p: &IndexedPack, stored: bool) -> Result<u32> {
        let seq = self.listed.len() as u32;
        assert!(seq < MARKED, "fewer than 2^31 packs");
        self.listed.push((p.id, stored, file));
        self.push(seq, p, !stored)?;
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
        self.active_at = self
            .listed
            .iter()
            .map(|(id, stored, file)| {
                if superseded.contains(file) || !seen.insert(*id) {
                    return INACTIVE;
                }
                self.active.push(PackSummary {
                    id: *id,
                    stored: *stored,
                    live: 0,
                    total: 0,
                    damaged: false,
                    undamaged: Vec::new(),
                });
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
        self.push(seq, p, false)
    }

    /// Resolves every copy against `used` (ascending, each once). A used
    /// blob no copy holds stops it: prune deletes packs in no index, and
    /// that blob's may be one.
    pub fn resolve(mut self, used: impl Iterator<Item = Result<Id>>) -> Result<Resolved> {
        let mut used = used.peekable();
        let mut count = 0usize;
        let mut by_pack = RecordSorter::<BLOB>::within(&self.dir, self.memory / 3);
        let not_indexed = |id: &Id| Error::NotIndexed {
            what: format!("blob {}, which a snapshot needs,", id.short()),
        };
        let copies = std::mem::replace(&mut self.copies, RecordSorter::new(&self.dir, 0));
        let copies = copies.finish().map_err(from_core)?;
        let mut current: Option<(Id, bool, Option<u32>)> = None;
        for r in copies {
            let r = r.map_err(from_core)?;
            let id = Id(r[..32].try_into().expect("32 bytes"));
            let seq = be(&r, 33);
            if seq < MARKED && self.active_at[seq as usize] == INACTIVE {
                continue;
            }
            if current.as_ref().is_none_or(|c| c.0 != id) {
                // A new blob: its first counted copy is the one read.
                let mut is_used = false;
                // Used ids up to this one (an error, too, comes out here).
                while let Some(u) = used.next_if(|u| !matches!(u, Ok(u) if *u > id)) {
                    let u = u?;
                    if u != id {
                        return Err(not_indexed(&u));
                    }
                    is_used = true;
                    count += 1;
                }
                current = Some((id, is_used, Some(seq)));
            }
            let (_, is_used, winner) = current.expect("set above");
            let mut b = [0u8; BLOB];
            b[..8].copy_from_slice(&r[33..41]);
            b[8..40].copy_from_slice(&r[..32]);
            b[40..52].copy_from_slice(&r[41..53]);
            b[52] = r[53]
                | if is_used && winner == Some(seq) {
                    LIVE
                } else {
                    0
                };
            by_pack.push(b).map_err(from_core)?;
        }
        if let Some(u) = used.next() {
            return Err(not_indexed(&u?));
        }
        let mut marked_live = HashSet::new();
        let partly_live = self.fold(by_pack, &mut marked_live)?;
        Ok(Resolved {
            active: self.active,
            marked_live,
            used: count,
            partly_live,
        })
    }

    /// Folds the copies, sorted by pack and position, into the packs'
    /// summaries (as `record_bytes` counts a pack's records).
    fn fold(
        &mut self,
        by_pack: RecordSorter<BLOB>,
        marked_live: &mut HashSet<PackId>,
    ) -> Result<Option<File>> {
        let mut partly: Option<BufWriter<File>> = None;
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
            pack.add(&b);
        }
        self.close(&mut pack, marked_live, &mut partly)?;
        match partly {
            None => Ok(None),
            Some(w) => Ok(Some(
                w.into_inner().map_err(|e| spill_error(e.into_error()))?,
            )),
        }
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
