//! A small weighted LRU: decoded trees (weighed as one each) and decoded
//! chunks (weighed in bytes). It holds at most a few hundred entries, so
//! eviction scans for the oldest instead of keeping a linked list.

use std::collections::HashMap;
use std::hash::Hash;

/// Least-recently-used entries leave first once the weights pass `capacity`.
pub struct Lru<K, V> {
    entries: HashMap<K, (V, u64, usize)>,
    tick: u64,
    weight: usize,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> Lru<K, V> {
    /// An empty cache holding up to `capacity` worth of weight (always at
    /// least the newest entry, however heavy).
    pub fn new(capacity: usize) -> Self {
        Lru {
            entries: HashMap::new(),
            tick: 0,
            weight: 0,
            capacity,
        }
    }

    /// The value for `key`, now the most recently used.
    pub fn get(&mut self, key: &K) -> Option<V> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(key).map(|e| {
            e.1 = tick;
            e.0.clone()
        })
    }

    /// Whether `key` is cached, without touching its age.
    pub fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// Adds (or replaces) `key`, then evicts the oldest entries over capacity.
    pub fn put(&mut self, key: K, value: V, weight: usize) {
        self.tick += 1;
        if let Some(old) = self.entries.insert(key, (value, self.tick, weight)) {
            self.weight -= old.2;
        }
        self.weight += weight;
        while self.weight > self.capacity && self.entries.len() > 1 {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.1)
                .map(|(k, _)| k.clone())
                .expect("not empty");
            if let Some(e) = self.entries.remove(&oldest) {
                self.weight -= e.2;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_by_weight() {
        let mut c = Lru::new(10);
        c.put(1, "a", 4);
        c.put(2, "b", 4);
        assert_eq!(c.get(&1), Some("a"));
        c.put(3, "c", 4); // over 10: 2 is the oldest
        assert!(c.contains(&1) && c.contains(&3) && !c.contains(&2));
        c.put(4, "d", 50); // heavier than everything: kept alone
        assert!(c.contains(&4) && !c.contains(&1) && !c.contains(&3));
        c.put(4, "e", 1);
        assert_eq!(c.get(&4), Some("e"));
        assert_eq!(c.weight, 1);
    }
}
