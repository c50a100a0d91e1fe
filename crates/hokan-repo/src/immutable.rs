//! Immutable mode's bookkeeping: what a command could not delete because
//! the store's object lock still holds it, for its summary.
//!
//! The mode itself lives where each step happens: conditional creates and
//! guarded deletes in [`crate::store`], the setting in [`crate::config`],
//! released locks in [`crate::locks`], what prune may delete in
//! `maintenance/prune.rs`.

use serde::Serialize;

use crate::store::Removal;

/// Objects kept because the lock does not allow their deletion yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Kept {
    /// How many.
    pub objects: usize,
    /// Their size in bytes, where known (packs; 0 for small objects whose
    /// size was not looked up).
    pub bytes: u64,
    /// The earliest time (Unix seconds) one of them becomes deletable.
    pub earliest: Option<i64>,
    /// How many of them the store refused to delete although the
    /// configured retention had passed (a longer retention on the object,
    /// a legal hold, a policy without delete permission).
    pub refused: usize,
}

impl Kept {
    /// Counts one removal attempt of an object of `bytes`.
    pub fn add(&mut self, bytes: u64, r: Removal) {
        let Removal::Kept { until } = r else {
            return;
        };
        self.objects += 1;
        self.bytes += bytes;
        match until {
            Some(t) => self.earliest = Some(self.earliest.map_or(t, |e| e.min(t))),
            None => self.refused += 1,
        }
    }

    /// Adds another tally.
    pub fn merge(&mut self, other: &Kept) {
        self.objects += other.objects;
        self.bytes += other.bytes;
        self.refused += other.refused;
        if let Some(t) = other.earliest {
            self.earliest = Some(self.earliest.map_or(t, |e| e.min(t)));
        }
    }

    /// Whether nothing was kept.
    pub fn is_empty(&self) -> bool {
        self.objects == 0
    }

    /// One line for a summary: "3 objects (1.2 MiB) kept by the object
    /// lock, deletable from …".
    pub fn describe(&self) -> String {
        let mut s = format!("{} object(s)", self.objects);
        if self.bytes > 0 {
            s.push_str(&format!(" ({} bytes of packs)", self.bytes));
        }
        s.push_str(" kept by the object lock");
        if let Some(t) = self.earliest {
            s.push_str(&format!(
                ", the first deletable from {}",
                chrono::DateTime::from_timestamp(t, 0)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default()
            ));
        }
        if self.refused > 0 {
            s.push_str(&format!(
                "; the store refused {} delete(s) after the configured retention: the objects \
                 may carry a longer retention or a legal hold",
                self.refused
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally() {
        let mut k = Kept::default();
        k.add(10, Removal::Deleted);
        assert!(k.is_empty());
        k.add(10, Removal::Kept { until: Some(50) });
        k.add(5, Removal::Kept { until: Some(20) });
        k.add(1, Removal::Kept { until: None });
        assert_eq!(
            (k.objects, k.bytes, k.earliest, k.refused),
            (3, 16, Some(20), 1)
        );
        assert!(k.describe().contains("refused 1"));
    }
}
