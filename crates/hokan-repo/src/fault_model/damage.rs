//! Damage for the fault model: a byte flipped, a pack cut short or
//! deleted, an index file deleted, between any two steps; and the ledger of
//! what each destroyed, so that verification tells the data the damage
//! took from data lost beyond it.

use std::collections::HashSet;

use hokan_core::{Id, PackId, PackReader, PackedBlob};

use crate::index_file::live_packs;
use crate::layout;
use crate::object::Kind;
use crate::repository::Repository;

/// What a damage step does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DamageKind {
    /// Flip one byte of a pack.
    Flip,
    /// Cut a pack short.
    Truncate,
    /// Delete a pack.
    DeletePack,
    /// Delete an index file (no data is lost: the packs describe
    /// themselves).
    DeleteIndexFile,
}

/// What damage destroyed: the truth the repository's own records are
/// checked against.
#[derive(Default)]
pub(super) struct Ledger {
    /// Copies of blobs destroyed, as (pack, blob).
    copies: HashSet<(PackId, Id)>,
    /// Blobs that had no intact copy left when damage struck, and have not
    /// been stored again since. A blob that had an intact copy elsewhere
    /// is never lost to damage: if it goes missing later, the repository
    /// lost it.
    lost: HashSet<Id>,
}

impl Ledger {
    /// Damages one object of the repository (the `pick`-th pack or index
    /// file, at byte `at`) and records the copies it destroyed. Returns
    /// false when there was nothing to damage.
    pub fn apply(
        &mut self,
        repo: &Repository,
        kind: DamageKind,
        pick: u64,
        at: u64,
    ) -> crate::Result<bool> {
        let store = repo.store();
        if kind == DamageKind::DeleteIndexFile {
            let ids = repo.list_ids(Kind::Index)?;
            let Some(id) = ids.get((pick % ids.len().max(1) as u64) as usize) else {
                return Ok(false);
            };
            store.delete(&layout::object(Kind::Index, id))?;
            return Ok(true);
        }
        let mut packs: Vec<PackId> = repo.pack_files()?.into_keys().collect();
        packs.sort();
        let Some(pack) = packs
            .get((pick % packs.len().max(1) as u64) as usize)
            .copied()
        else {
            return Ok(false);
        };
        let path = layout::pack(&pack);
        let mut bytes = store.get(&path)?.to_vec();
        let records = records_of(repo, &pack, &bytes)?;
        let len = bytes.len() as u64;
        let destroyed: Vec<&PackedBlob> = match kind {
            DamageKind::Flip => {
                let x = at % len.max(1);
                bytes[x as usize] ^= 0x20;
                store.put(&path, bytes.into())?;
                records
                    .iter()
                    .filter(|b| (b.offset as u64..b.offset as u64 + b.length as u64).contains(&x))
                    .collect()
            }
            DamageKind::Truncate => {
                let cut = at % len.max(1);
                bytes.truncate(cut as usize);
                store.put(&path, bytes.into())?;
                records
                    .iter()
                    .filter(|b| b.offset as u64 + b.length as u64 > cut)
                    .collect()
            }
            DamageKind::DeletePack => {
                store.delete(&path)?;
                records.iter().collect()
            }
            DamageKind::DeleteIndexFile => unreachable!("handled above"),
        };
        self.copies.extend(destroyed.iter().map(|b| (pack, b.id)));
        let ids: HashSet<Id> = destroyed.iter().map(|b| b.id).collect();
        let intact = self.intact(repo, &ids)?;
        self.lost.extend(ids.difference(&intact));
        Ok(true)
    }

    /// The blobs the damage took that no backup stored again since: their
    /// every copy that the index (live or marked packs, still stored) lists
    /// was destroyed.
    pub fn lost(&mut self, repo: &Repository) -> crate::Result<HashSet<Id>> {
        if self.lost.is_empty() {
            return Ok(HashSet::new());
        }
        let healed = self.intact(repo, &self.lost)?;
        self.lost.retain(|b| !healed.contains(b));
        Ok(self.lost.clone())
    }

    /// Those of `ids` with a copy no damage touched in a pack the index
    /// lists (live or marked) and the store holds.
    fn intact(&self, repo: &Repository, ids: &HashSet<Id>) -> crate::Result<HashSet<Id>> {
        let stored = repo.pack_files()?;
        let files = repo.index_files()?.files;
        let indexed = live_packs(&files)
            .into_iter()
            .chain(repo.marked_packs()?.into_iter().map(|m| m.pack));
        let mut intact = HashSet::new();
        for p in indexed.filter(|p| stored.contains_key(&p.id)) {
            for b in &p.blobs {
                if ids.contains(&b.id) && !self.copies.contains(&(p.id, b.id)) {
                    intact.insert(b.id);
                }
            }
        }
        Ok(intact)
    }
}

/// The records of a pack as it really is: its header's list where it
/// reads, else what the index says of it.
fn records_of(repo: &Repository, pack: &PackId, bytes: &[u8]) -> crate::Result<Vec<PackedBlob>> {
    if let Ok(r) = PackReader::open(bytes, None, repo.master_key()) {
        return Ok(r.blobs().to_vec());
    }
    let files = repo.index_files()?.files;
    Ok(live_packs(&files)
        .into_iter()
        .chain(repo.marked_packs()?.into_iter().map(|m| m.pack))
        .filter(|p| p.id == *pack)
        .flat_map(|p| p.blobs)
        .collect())
}
