//! The read path: chunk ids in, verified plaintext out, in order.

use std::io::Write;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use super::{ChunkRef, PackSource};
use crate::blob::{self, Group};
use crate::error::{Error, Result};
use crate::id::{BlobType, Id, PackId, TreeId};
use crate::index::{Index, Location};
use crate::keys::MasterKey;
use crate::tree::carried_trees;

/// Where reassembled content goes: data, and holes the writer may skip
/// over (a restored file seeks past them and stays sparse).
pub trait ChunkWrite {
    /// Writes the next bytes.
    fn data(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    /// `len` zero bytes come next.
    fn hole(&mut self, len: u64) -> std::io::Result<()>;
}

/// Any [`Write`]: holes become written zeros.
struct Dense<'w>(&'w mut (dyn Write + Send));

impl ChunkWrite for Dense<'_> {
    fn data(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.0.write_all(bytes)
    }

    fn hole(&mut self, mut len: u64) -> std::io::Result<()> {
        static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
        while len > 0 {
            let n = len.min(ZEROS.len() as u64) as usize;
            self.0.write_all(&ZEROS[..n])?;
            len -= n as u64;
        }
        Ok(())
    }
}

/// One range request: a stretch of a pack holding several wanted records
/// (object stores charge a round trip per request).
struct Span {
    pack: PackId,
    offset: u32,
    end: u32,
    /// Positions (in the caller's list) of the blobs it holds.
    members: Vec<usize>,
}

/// The most bytes one span fetches: enough to hide a round trip, small
/// enough that a window still splits into spans for every core.
const SPAN_LIMIT: u32 = 4 << 20;

/// Unneeded bytes a span may read across to join two records: parallel
/// writers interleave the chunks of one file in a pack.
const SPAN_GAP: u32 = 256 << 10;

/// Decoded group records kept for the next reads: members of one group are
/// usually read one after the other (the files of a directory, the trees of
/// a walk), and decompressing a group once serves them all. Per kind: tree
/// walks read one tree at a time and come back to a group often, while
/// data is mostly read in batches that take a group's members together.
const GROUP_CACHE_BYTES: [usize; 2] = [DATA_GROUP_CACHE_BYTES, 32 << 20];
const DATA_GROUP_CACHE_BYTES: usize = 4 << 20;

/// A group record's place: its pack and offset.
type RecordAt = (PackId, u32);

#[derive(Default)]
struct GroupCache {
    /// Most recently used last.
    entries: Mutex<Vec<(RecordAt, Arc<Group>)>>,
}

impl GroupCache {
    fn get(&self, key: RecordAt) -> Option<Arc<Group>> {
        let mut e = self.entries.lock().expect("group cache");
        let i = e.iter().position(|(k, _)| *k == key)?;
        let hit = e.remove(i);
        let g = hit.1.clone();
        e.push(hit);
        Some(g)
    }

    fn put(&self, key: RecordAt, group: Arc<Group>) {
        let mut e = self.entries.lock().expect("group cache");
        if e.iter().any(|(k, _)| *k == key) {
            return;
        }
        let kind = group.kind();
        e.push((key, group));
        let mut total: usize = e
            .iter()
            .filter(|(_, g)| g.kind() == kind)
            .map(|(_, g)| g.len())
            .sum();
        // The oldest of the same kind go first; the newest always stays.
        let mut i = 0;
        while total > GROUP_CACHE_BYTES[kind as usize] && i + 1 < e.len() {
            if e[i].1.kind() == kind {
                total -= e.remove(i).1.len();
            } else {
                i += 1;
            }
        }
    }
}

/// Bytes of carried trees kept for their next read; past this the copies
/// are dropped and a carried tree is taken out of its carrier again.
const CARRIED_CACHE_BYTES: usize = 16 << 20;

/// Plaintexts of carried trees (version 3) met in trees this reader read:
/// most are read right after their carrier. Where they are is in the
/// index ([`Index::carried_in`]), which every reader shares.
#[derive(Default)]
struct CarriedCache {
    trees: std::collections::HashMap<Id, Arc<Vec<u8>>>,
    bytes: usize,
}

/// A piece of reassembled content.
enum Piece {
    Data(Vec<u8>),
    Hole(u64),
}

/// A chunk's data, if it has the length its chunk list records.
fn sized(c: &ChunkRef, data: Vec<u8>) -> Result<Vec<u8>> {
    if data.len() != c.len as usize {
        return Err(Error::corrupted(
            format!("chunk {}", c.id.short()),
            format!("{} bytes, the chunk list says {}", data.len(), c.len),
        ));
    }
    Ok(data)
}

/// The read path; see the module documentation.
pub struct BlobReader<'a> {
    key: &'a MasterKey,
    index: &'a Index,
    source: &'a dyn PackSource,
    window: usize,
    groups: GroupCache,
    carried: Mutex<CarriedCache>,
}

impl<'a> BlobReader<'a> {
    /// A reader that locates blobs in `index` and fetches them from `source`.
    pub fn new(key: &'a MasterKey, index: &'a Index, source: &'a dyn PackSource) -> Self {
        BlobReader {
            key,
            index,
            source,
            window: 32 << 20,
            groups: GroupCache::default(),
            carried: Mutex::default(),
        }
    }

    /// The repository key this reader decrypts and checks ids with.
    pub fn key(&self) -> &MasterKey {
        self.key
    }

    /// The index it locates blobs in.
    pub fn index(&self) -> &Index {
        self.index
    }

    fn locate(&self, kind: BlobType, id: &Id) -> Result<Location> {
        self.index
            .get(id)
            .filter(|l| l.kind == kind)
            .ok_or(Error::BlobNotFound { id: *id })
    }

    /// Damage found while reading is remembered in the index, so writers
    /// sharing it store the data again instead of deduping against it.
    /// A damaged group damages every blob in it, so the whole record is
    /// distrusted.
    fn noting_damage<T>(&self, id: &Id, r: Result<T>) -> Result<T> {
        if let Err(e) = &r
            && (e.is_corruption() || matches!(e, Error::MissingPack { .. }))
        {
            self.index.mark_damaged_record(id);
        }
        r
    }

    /// The group record at `loc` (fetched as `sealed`), opened once and
    /// kept for the next reads of its members.
    fn group(&self, kind: BlobType, id: &Id, loc: &Location, sealed: &[u8]) -> Result<Arc<Group>> {
        let key = (loc.pack, loc.offset);
        if let Some(g) = self.groups.get(key) {
            return Ok(g);
        }
        let holding = || {
            format!(
                "pack {} at offset {} (holding blob {})",
                loc.pack.short(),
                loc.offset,
                id.short()
            )
        };
        let g = Arc::new(blob::decode_group(self.key, kind, sealed, &holding)?);
        self.groups.put(key, g.clone());
        Ok(g)
    }

    /// Opens the record at `loc` (fetched as `sealed`) and returns blob `id`.
    fn decode(&self, kind: BlobType, id: &Id, loc: &Location, sealed: &[u8]) -> Result<Vec<u8>> {
        let here = || format!("pack {} at offset {}", loc.pack.short(), loc.offset);
        if !loc.group {
            return blob::decode(self.key, kind, id, sealed, &here);
        }
        self.group(kind, id, loc, sealed)?
            .member(self.key, id, &here)
    }

    /// Whether `id` is a tree carried inside a tree read before (version
    /// 3) rather than a blob of its own.
    pub fn is_carried(&self, id: &Id) -> bool {
        self.index.carried_in(id).is_some()
    }

    /// Notes the trees that tree `id` (its plaintext `bytes`) carries.
    fn note_carried(&self, id: &Id, bytes: &[u8]) -> Result<()> {
        if bytes.first() != Some(&3) {
            return Ok(());
        }
        let list = carried_trees(bytes, &TreeId(*id))?;
        let mut cache = self.carried.lock().expect("carried trees");
        for (at, t) in list.into_iter().enumerate() {
            let child = self.key.blob_id(BlobType::Tree, t);
            self.index.note_carried(child, *id, at as u32);
            if cache.bytes + t.len() > CARRIED_CACHE_BYTES {
                *cache = CarriedCache::default();
            }
            if !cache.trees.contains_key(&child) {
                cache.bytes += t.len();
                cache.trees.insert(child, Arc::new(t.to_vec()));
            }
        }
        Ok(())
    }

    /// A carried tree: from the cache, or taken out of its carrier again.
    /// `None` if no tree read so far carries `id`.
    fn read_carried(&self, id: &Id) -> Option<Result<Vec<u8>>> {
        let (carrier, at) = self.index.carried_in(id)?;
        if let Some(b) = self.carried.lock().expect("carried trees").trees.get(id) {
            return Some(Ok(b.to_vec()));
        }
        Some((|| {
            let parent = self.read_blob(BlobType::Tree, &carrier)?;
            match carried_trees(&parent, &TreeId(carrier))?.get(at as usize) {
                Some(t) if self.key.blob_id(BlobType::Tree, t) == *id => Ok(t.to_vec()),
                _ => Err(Error::corrupted(
                    format!("tree {}", id.short()),
                    format!("tree {} no longer carries it", carrier.short()),
                )),
            }
        })())
    }

    /// Reads one blob: located, fetched, authenticated, decompressed and
    /// checked against its id. A tree may also be one carried inside a
    /// tree read before.
    pub fn read_blob(&self, kind: BlobType, id: &Id) -> Result<Vec<u8>> {
        let loc = match self.locate(kind, id) {
            Ok(loc) => loc,
            Err(e) => {
                return match kind {
                    BlobType::Tree => {
                        let bytes = self.read_carried(id).unwrap_or(Err(e))?;
                        self.note_carried(id, &bytes)?;
                        Ok(bytes)
                    }
                    BlobType::Data => Err(e),
                };
            }
        };
        let read = (|| {
            if loc.group
                && let Some(g) = self.groups.get((loc.pack, loc.offset))
            {
                return g.member(self.key, id, &|| format!("pack {}", loc.pack.short()));
            }
            let sealed = self.source.read_range(&loc.pack, loc.offset, loc.length)?;
            self.decode(kind, id, &loc, &sealed)
        })();
        let read = self.noting_damage(id, read)?;
        if kind == BlobType::Tree {
            self.note_carried(id, &read)?;
        }
        Ok(read)
    }

    /// Reads many blobs of one kind, planned by pack: records that lie
    /// close together in a pack are fetched with one request, and each
    /// group is decompressed once. Returns one result per id, in order;
    /// damage affects only the blobs concerned. A failing store fails the
    /// whole call.
    pub fn read_blobs(&self, kind: BlobType, ids: &[Id]) -> Result<Vec<Result<Vec<u8>>>> {
        let mut out: Vec<Option<Result<Vec<u8>>>> = (0..ids.len()).map(|_| None).collect();
        let mut located = Vec::new();
        let mut carried = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            match self.locate(kind, id) {
                Ok(l) => located.push((i, l)),
                Err(_) if kind == BlobType::Tree && self.is_carried(id) => carried.push(i),
                Err(e) => out[i] = Some(Err(e)),
            }
        }
        for (i, r) in self.fetch_decoded(kind, ids, &located)? {
            out[i] = Some(match r {
                Ok(bytes) if kind == BlobType::Tree => {
                    self.note_carried(&ids[i], &bytes).map(|()| bytes)
                }
                r => r,
            });
        }
        // read_blob notes what these carry.
        for i in carried {
            out[i] = Some(self.read_blob(kind, &ids[i]));
        }
        Ok(out
            .into_iter()
            .map(|r| r.expect("every blob answered"))
            .collect())
    }

    /// Fetches the records of `located` (position in `ids`, location) in
    /// spans, in parallel, and decodes each wanted blob.
    fn fetch_decoded(
        &self,
        kind: BlobType,
        ids: &[Id],
        located: &[(usize, Location)],
    ) -> Result<Vec<(usize, Result<Vec<u8>>)>> {
        let mut order: Vec<&(usize, Location)> = located.iter().collect();
        order.sort_by_key(|(_, l)| (l.pack, l.offset));
        let mut spans: Vec<Span> = Vec::new();
        for (i, l) in order {
            let end = l.offset.saturating_add(l.length);
            match spans.last_mut() {
                Some(s)
                    if s.pack == l.pack
                        && l.offset <= s.end.saturating_add(SPAN_GAP)
                        && end.max(s.end) - s.offset <= SPAN_LIMIT =>
                {
                    s.end = s.end.max(end);
                    s.members.push(*i);
                }
                _ => spans.push(Span {
                    pack: l.pack,
                    offset: l.offset,
                    end,
                    members: vec![*i],
                }),
            }
        }
        let loc_of: std::collections::HashMap<usize, &Location> =
            located.iter().map(|(i, l)| (*i, l)).collect();
        // Each span is decoded as soon as it arrives and then dropped: at
        // most one sealed span per thread is held beside the results.
        let decoded: Vec<Vec<(usize, Result<Vec<u8>>)>> = spans
            .par_iter()
            .map(|span| -> Result<_> {
                // Members of one group share its record.
                let records: Vec<&[usize]> = span
                    .members
                    .chunk_by(|a, b| loc_of[a].offset == loc_of[b].offset)
                    .collect();
                let len = span.end - span.offset;
                match self.source.read_range(&span.pack, span.offset, len) {
                    Ok(fetched) => Ok(self.decode_records(
                        kind,
                        ids,
                        &records,
                        &loc_of,
                        &fetched,
                        span.offset,
                    )),
                    // A pack cut short damages the records past its end,
                    // not the store: each record is read on its own, and
                    // those in the intact part are restored.
                    Err(Error::Truncated { .. }) => records
                        .iter()
                        .map(|record| self.fetch_record(kind, ids, record, loc_of[&record[0]]))
                        .collect::<Result<Vec<_>>>()
                        .map(|r| r.into_iter().flatten().collect()),
                    Err(e @ Error::MissingPack { .. }) => Ok(self.lost(ids, &span.members, &e)),
                    Err(e) => Err(e),
                }
            })
            .collect::<Result<_>>()?;
        Ok(decoded.into_iter().flatten().collect())
    }

    /// Every blob of `members` (positions in `ids`) failed with the
    /// store's answer `e`: a lost pack damages its blobs; the store is fine.
    fn lost(&self, ids: &[Id], members: &[usize], e: &Error) -> Vec<(usize, Result<Vec<u8>>)> {
        let msg = match e {
            Error::MissingPack { what } => what.clone(),
            other => other.to_string(),
        };
        members
            .iter()
            .map(|&i| {
                let r = Err(Error::MissingPack { what: msg.clone() });
                (i, self.noting_damage(&ids[i], r))
            })
            .collect()
    }

    /// Fetches one record (its members, positions in `ids`) on its own and
    /// decodes them; a record the pack is too short to hold fails its
    /// members as damaged.
    fn fetch_record(
        &self,
        kind: BlobType,
        ids: &[Id],
        record: &[usize],
        l: &Location,
    ) -> Result<Vec<(usize, Result<Vec<u8>>)>> {
        match self.source.read_range(&l.pack, l.offset, l.length) {
            Ok(sealed) => {
                let loc_of = record.iter().map(|&i| (i, l)).collect();
                Ok(self.decode_records(kind, ids, &[record], &loc_of, &sealed, l.offset))
            }
            Err(Error::Truncated { what, reason }) => Ok(record
                .iter()
                .map(|&i| {
                    let r = Err(Error::truncated(what.clone(), reason.clone()));
                    (i, self.noting_damage(&ids[i], r))
                })
                .collect()),
            Err(e @ Error::MissingPack { .. }) => Ok(self.lost(ids, record, &e)),
            Err(e) => Err(e),
        }
    }

    /// Decodes the wanted blobs of `records` (each the positions in `ids`
    /// of one record's members) out of `fetched`, bytes of their pack
    /// from offset `at`, records in parallel. A group record is opened
    /// once for all its members.
    fn decode_records(
        &self,
        kind: BlobType,
        ids: &[Id],
        records: &[&[usize]],
        loc_of: &std::collections::HashMap<usize, &Location>,
        fetched: &[u8],
        at: u32,
    ) -> Vec<(usize, Result<Vec<u8>>)> {
        records
            .par_iter()
            .flat_map_iter(|record| {
                let l = loc_of[&record[0]];
                let start = (l.offset - at) as usize;
                let sealed = fetched.get(start..start + l.length as usize);
                // A group that fails to open fails each of its members
                // with its reason.
                let group = match (sealed, l.group) {
                    (Some(sealed), true) => Some(
                        self.group(kind, &ids[record[0]], l, sealed)
                            .map_err(|e| e.to_string()),
                    ),
                    _ => None,
                };
                record.iter().map(move |&i| {
                    let here = || format!("pack {} at offset {}", l.pack.short(), l.offset);
                    let r = match (sealed, &group) {
                        (None, _) => Err(Error::truncated(
                            format!("pack {}", l.pack.short()),
                            format!("wanted {} bytes at {}", l.length, l.offset),
                        )),
                        (Some(_), Some(Ok(g))) => g.member(self.key, &ids[i], &here),
                        (Some(_), Some(Err(why))) => Err(Error::corrupted(
                            format!("{kind} blob {} in {}", ids[i].short(), here()),
                            why.clone(),
                        )),
                        (Some(sealed), None) => self.decode(kind, &ids[i], l, sealed),
                    };
                    (i, self.noting_damage(&ids[i], r))
                })
            })
            .collect()
    }

    /// Reads a window of chunks, returned in order; holes cost nothing.
    fn read_window(&self, chunks: &[ChunkRef]) -> Result<Vec<Piece>> {
        if let [c] = chunks
            && !c.is_hole()
        {
            // Most files are one chunk: no spans to plan.
            return Ok(vec![Piece::Data(sized(
                c,
                self.read_blob(BlobType::Data, &c.id.0)?,
            )?)]);
        }
        let ids: Vec<Id> = chunks.iter().map(|c| c.id.0).collect();
        let located = chunks
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.is_hole())
            .map(|(i, c)| Ok((i, self.locate(BlobType::Data, &c.id.0)?)))
            .collect::<Result<Vec<_>>>()?;
        let mut out: Vec<Piece> = chunks
            .iter()
            .map(|c| Piece::Hole(if c.is_hole() { c.len as u64 } else { 0 }))
            .collect();
        for (i, r) in self.fetch_decoded(BlobType::Data, &ids, &located)? {
            out[i] = Piece::Data(sized(&chunks[i], r?)?);
        }
        Ok(out)
    }

    /// Reassembles a chunk list into `out`, decoding in parallel and writing
    /// in order; returns the bytes written. Holes are written as zeros.
    pub fn read_chunks(&self, chunks: &[ChunkRef], out: &mut (dyn Write + Send)) -> Result<u64> {
        self.read_chunks_to(chunks, &mut Dense(out))
    }

    /// [`read_chunks`](Self::read_chunks) into a [`ChunkWrite`] that is told
    /// about holes; returns the bytes (holes included) written.
    pub fn read_chunks_to(
        &self,
        chunks: &[ChunkRef],
        out: &mut (dyn ChunkWrite + Send),
    ) -> Result<u64> {
        let mut windows: Vec<Range<usize>> = Vec::new();
        let mut start = 0;
        let mut size = 0usize;
        for (i, c) in chunks.iter().enumerate() {
            if !c.is_hole() {
                size += c.len as usize;
            }
            if size >= self.window {
                windows.push(start..i + 1);
                start = i + 1;
                size = 0;
            }
        }
        if start < chunks.len() {
            windows.push(start..chunks.len());
        }
        let write = |pieces: Vec<Piece>, out: &mut (dyn ChunkWrite + Send)| -> Result<u64> {
            let mut n = 0;
            for p in pieces {
                match p {
                    Piece::Data(d) => {
                        out.data(&d)
                            .map_err(|e| Error::io("writing restored data", e))?;
                        n += d.len() as u64;
                    }
                    Piece::Hole(len) => {
                        out.hole(len)
                            .map_err(|e| Error::io("writing restored data", e))?;
                        n += len;
                    }
                }
            }
            Ok(n)
        };
        let mut written = 0u64;
        let mut pending: Option<Vec<Piece>> = None;
        for w in &windows {
            let (wrote, decoded) = rayon::join(
                || write(pending.take().unwrap_or_default(), &mut *out),
                || self.read_window(&chunks[w.clone()]),
            );
            written += wrote?;
            pending = Some(decoded?);
        }
        written += write(pending.unwrap_or_default(), out)?;
        Ok(written)
    }
}
