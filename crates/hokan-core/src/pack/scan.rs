//! Reading a whole pack under damage: every blob that can be read, and
//! why each other one cannot.
//!
//! `check --read-data` and `repair packs` both read packs this way, so
//! damage is counted, recorded and salvaged per blob: a flipped byte costs
//! the record it falls in, a pack cut short its records past the cut, and a
//! damaged prefix, header or trailer costs nothing at all, because the
//! index still says where each record lies and every record authenticates
//! on its own.

use super::{PackReader, PackedBlob};
use crate::error::{Error, Result};
use crate::id::PackId;
use crate::keys::MasterKey;

/// Where the list of a scanned pack's blobs came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listed {
    /// The pack's own header, which authenticated.
    Header,
    /// The entries the caller gave (an index's): the header could not be
    /// used.
    Entries,
}

/// What [`scan`] found about a pack as a whole.
#[derive(Clone, Debug)]
pub struct Scanned {
    /// Whether the bytes hash to the pack's name.
    pub intact: bool,
    /// What is wrong with the pack as a whole (its content does not match
    /// its name, its header cannot be used), if anything.
    pub problem: Option<String>,
    /// Where the list of blobs came from.
    pub listed: Listed,
    /// The blobs read: those of the list used, in pack order, then any
    /// entry given that the header does not list.
    pub blobs: Vec<PackedBlob>,
    /// How many of them could not be read.
    pub damaged: usize,
}

impl Scanned {
    /// Whether anything at all is wrong with the pack.
    pub fn is_damaged(&self) -> bool {
        !self.intact || self.damaged > 0 || self.problem.is_some()
    }
}

/// Reads every blob of pack `id` (its bytes as stored), handing each to
/// `visit` with its plaintext or with why it cannot be read.
///
/// The pack's header lists the blobs where it authenticates; where it
/// does not (a damaged prefix, header or trailer, a pack cut short),
/// `entries` does — the index's entries for the pack. Errors that are not
/// damage are returned instead: a wrong key, or a pack version this build
/// does not read, on a pack whose bytes match its name.
pub fn scan(
    bytes: &[u8],
    id: &PackId,
    entries: &[PackedBlob],
    key: &MasterKey,
    mut visit: impl FnMut(&PackedBlob, Result<Vec<u8>>),
) -> Result<Scanned> {
    let intact = PackId::of(bytes) == *id;
    // With the name verified, a header that fails to open means a wrong
    // key, not damage; `open` tells the two apart when given the id.
    let (reader, listed, problem) = match PackReader::open(bytes, intact.then_some(id), key) {
        Ok(mut r) => {
            // Opened without the id when the bytes do not match it; its
            // errors still name the pack.
            r.name = super::pack_name(Some(id));
            let problem = (!intact).then(|| {
                format!(
                    "its content hashes to {}, not to its name",
                    PackId::of(bytes).short()
                )
            });
            (r, Listed::Header, problem)
        }
        Err(e @ (Error::WrongKey { .. } | Error::UnsupportedVersion { .. })) if intact => {
            return Err(e);
        }
        Err(e) => (
            PackReader::from_list(bytes, entries.to_vec(), Some(id)),
            Listed::Entries,
            Some(format!(
                "{e}; its blobs were read where the index places them"
            )),
        ),
    };
    let mut damaged = 0;
    let mut read_all = |reader: &PackReader<'_>| {
        for b in reader.blobs() {
            let read = reader.read(key, b);
            damaged += read.is_err() as usize;
            visit(b, read);
        }
    };
    read_all(&reader);
    // Entries the header does not list are read where they say, too: a
    // caller that drops the pack after salvaging it must not lose them
    // unread.
    let listed_here: std::collections::HashSet<(crate::id::Id, u32, u32)> = reader
        .blobs()
        .iter()
        .map(|b| (b.id, b.offset, b.length))
        .collect();
    let extra: Vec<PackedBlob> = entries
        .iter()
        .filter(|b| !listed_here.contains(&(b.id, b.offset, b.length)))
        .copied()
        .collect();
    let mut blobs = reader.blobs().to_vec();
    if !extra.is_empty() {
        let others = PackReader::from_list(bytes, extra, Some(id));
        read_all(&others);
        blobs.extend_from_slice(others.blobs());
    }
    Ok(Scanned {
        intact,
        problem,
        listed,
        blobs,
        damaged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob;
    use crate::compress::Compression;
    use crate::id::{BlobType, Id};
    use crate::pack::PackWriter;

    /// A pack of three single blobs and a group of three, and its contents.
    fn sample(key: &MasterKey) -> (crate::pack::FinishedPack, Vec<(Id, Vec<u8>)>) {
        let data: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i; 5_000 + i as usize]).collect();
        let ids: Vec<(Id, Vec<u8>)> = data
            .iter()
            .map(|d| (key.blob_id(BlobType::Data, d), d.clone()))
            .collect();
        let mut w = PackWriter::new(BlobType::Data, 0);
        for (id, d) in &ids[..3] {
            w.add(&blob::encode(key, BlobType::Data, *id, d, Compression::default()).unwrap())
                .unwrap();
        }
        let members: Vec<(Id, &[u8])> = ids[3..].iter().map(|(i, d)| (*i, &d[..])).collect();
        w.add_group(
            &blob::encode_group(key, BlobType::Data, &members, Compression::default()).unwrap(),
        )
        .unwrap();
        (w.finish(key).unwrap(), ids)
    }

    fn read_all(
        bytes: &[u8],
        p: &crate::pack::FinishedPack,
        key: &MasterKey,
    ) -> (Scanned, Vec<(Id, bool)>) {
        let mut seen = Vec::new();
        let s = scan(bytes, &p.id, &p.blobs, key, |b, r| {
            seen.push((b.id, r.is_ok()))
        })
        .unwrap();
        (s, seen)
    }

    #[test]
    fn an_intact_pack_reads_whole() {
        let key = MasterKey::generate().unwrap();
        let (p, ids) = sample(&key);
        let mut got = Vec::new();
        let s = scan(&p.bytes, &p.id, &[], &key, |b, r| {
            got.push((b.id, r.unwrap()))
        })
        .unwrap();
        assert!(!s.is_damaged());
        assert_eq!(s.listed, Listed::Header);
        assert_eq!(got, ids);
    }

    /// A flipped byte in a record costs that record only: one blob, or the
    /// members of one group.
    #[test]
    fn a_flipped_byte_costs_its_record() {
        let key = MasterKey::generate().unwrap();
        let (p, _) = sample(&key);
        let mut b = p.bytes.clone();
        b[(p.blobs[1].offset + p.blobs[1].length / 2) as usize] ^= 1;
        let (s, seen) = read_all(&b, &p, &key);
        assert_eq!(s.listed, Listed::Header);
        assert!(!s.intact && s.problem.is_some());
        let bad: Vec<bool> = seen.iter().map(|(_, ok)| !ok).collect();
        assert_eq!(bad, [false, true, false, false, false, false]);

        let mut b = p.bytes.clone();
        b[(p.blobs[4].offset + p.blobs[4].length / 2) as usize] ^= 1;
        let (s, seen) = read_all(&b, &p, &key);
        assert_eq!(s.damaged, 3, "the group's three members: {seen:?}");
    }

    /// Damage to the prefix, the header or the trailer costs no blob: the
    /// entries given say where each record lies.
    #[test]
    fn a_damaged_frame_costs_nothing() {
        let key = MasterKey::generate().unwrap();
        let (p, _) = sample(&key);
        let header_at = p.blobs.last().map(|b| b.offset + b.length).unwrap() as usize;
        for at in [0, 6, header_at + 3, p.bytes.len() - 6, p.bytes.len() - 1] {
            let mut b = p.bytes.clone();
            b[at] ^= 0x40;
            let (s, seen) = read_all(&b, &p, &key);
            assert_eq!(s.listed, Listed::Entries, "byte {at}");
            assert_eq!(s.damaged, 0, "byte {at}: {:?}", s.problem);
            assert_eq!(seen.len(), 6);
            assert!(s.is_damaged());
        }
    }

    /// A pack cut short keeps what lies before the cut.
    #[test]
    fn a_truncated_pack_keeps_its_first_part() {
        let key = MasterKey::generate().unwrap();
        let (p, _) = sample(&key);
        let cut = (p.blobs[2].offset + p.blobs[2].length / 2) as usize;
        let (s, seen) = read_all(&p.bytes[..cut], &p, &key);
        assert_eq!(s.listed, Listed::Entries);
        let ok: Vec<bool> = seen.iter().map(|(_, ok)| *ok).collect();
        assert_eq!(ok, [true, true, false, false, false, false]);
    }

    /// A wrong key is no damage: an error, nothing visited.
    #[test]
    fn a_wrong_key_is_an_error() {
        let key = MasterKey::generate().unwrap();
        let (p, _) = sample(&key);
        let other = MasterKey::generate().unwrap();
        let e = scan(&p.bytes, &p.id, &p.blobs, &other, |_, _| panic!("visited")).unwrap_err();
        assert!(matches!(e, Error::WrongKey { .. }), "{e}");
    }
}
