//! What a copy remembers between windows and snapshots, within a bound.

use std::collections::HashMap;
use std::hash::Hash;

use hokan_core::{ChunkId, TreeId};

/// How much a copy's walk holds at once: two read batches of data (32 MiB
/// each), one window, the directories on the walk's path, and the memo.
/// None of it grows with the snapshot; the target's write session still
/// keeps a record of each blob it stores until its commit.
#[derive(Clone, Debug)]
pub struct CopyBounds {
    /// Data blobs read from the source in one window, at most.
    pub window_blobs: usize,
    /// Their plaintext bytes, at most (a blob larger than this is a
    /// window alone).
    pub window_bytes: u64,
    /// Encoded bytes of finished trees waiting for their window's data to
    /// be stored, at most.
    pub tree_bytes: usize,
    /// Ids the memo keeps per generation (two generations, for data and
    /// for trees each): what it forgets is read again and deduplicated by
    /// the target's writer, so this bounds memory, never correctness.
    pub memo_entries: usize,
}

impl Default for CopyBounds {
    fn default() -> Self {
        CopyBounds {
            window_blobs: 65_536,
            window_bytes: 512 << 20,
            tree_bytes: 32 << 20,
            // Under hashbrown's 7/8 load at 2^17 buckets: about 9 MB a map.
            memo_entries: 100_000,
        }
    }
}

/// A map that keeps the most recently used entries, about `limit` to
/// `2 × limit` of them: when the newer generation fills, the older is
/// dropped and the newer takes its place. An entry read from the older
/// generation moves to the newer, so what a run keeps meeting stays.
pub(crate) struct Recent<K, V> {
    newer: HashMap<K, V>,
    older: HashMap<K, V>,
    limit: usize,
}

impl<K: Eq + Hash + Copy, V: Copy> Recent<K, V> {
    pub fn new(limit: usize) -> Self {
        Recent {
            newer: HashMap::new(),
            older: HashMap::new(),
            limit: limit.max(1),
        }
    }

    pub fn get(&mut self, k: &K) -> Option<V> {
        if let Some(v) = self.newer.get(k) {
            return Some(*v);
        }
        let v = self.older.remove(k)?;
        self.insert(*k, v);
        Some(v)
    }

    pub fn insert(&mut self, k: K, v: V) {
        self.newer.insert(k, v);
        if self.newer.len() >= self.limit {
            self.older = std::mem::take(&mut self.newer);
        }
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.newer.retain(|k, v| keep(k, v));
        self.older.retain(|k, v| keep(k, v));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.newer.len() + self.older.len()
    }
}

/// What earlier windows and snapshots of this run stored: source id →
/// target id. Only a shortcut: a blob or tree it no longer holds is read
/// and stored again, and the target's writer finds it already there.
pub(crate) struct Memo {
    pub data: Recent<ChunkId, ChunkId>,
    pub trees: Recent<TreeId, TreeId>,
}

impl Memo {
    pub fn new(bounds: &CopyBounds) -> Self {
        Memo {
            data: Recent::new(bounds.memo_entries),
            trees: Recent::new(bounds.memo_entries),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_keeps_what_is_used_and_forgets_within_twice_its_limit() {
        let mut r: Recent<u32, u32> = Recent::new(4);
        for i in 0..4 {
            r.insert(i, i * 10);
        }
        // The newer generation filled and became the older one.
        assert_eq!(r.len(), 4);
        assert_eq!(r.get(&0), Some(0));
        for i in 4..7 {
            r.insert(i, i * 10);
        }
        // 0 was used, so it moved on with 4, 5, 6; 1, 2, 3 are forgotten.
        assert_eq!(r.get(&0), Some(0));
        assert_eq!(r.get(&1), None);
        assert_eq!(r.get(&6), Some(60));
        for i in 100..1000 {
            r.insert(i, i);
            assert!(r.len() <= 8);
        }
        r.retain(|k, _| k % 2 == 0);
        assert!(r.get(&999).is_none());
        assert_eq!(r.get(&998), Some(998));
    }
}
