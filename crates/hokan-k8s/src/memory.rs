//! [`MemoryStore`]: objects kept in a map, for tests and small tools.

use std::collections::BTreeMap;

use crate::object::{ObjectEntry, StoredObject};
use crate::seam::{ObjectSink, ObjectSource};
use crate::{BackupSummary, Error, Result};

/// Objects in memory, keyed by their tree path. Both a sink and a source, so
/// a backup can be restored straight from it.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    objects: BTreeMap<String, StoredObject>,
    summary: Option<BackupSummary>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many objects (entries) it holds.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// The object stored at `path`.
    pub fn get(&self, path: &str) -> Option<&StoredObject> {
        self.objects.get(path)
    }

    /// Every object, in path order.
    pub fn objects(&self) -> impl Iterator<Item = &StoredObject> {
        self.objects.values()
    }

    /// The summary passed to [`ObjectSink::finish`], once the backup finished.
    pub fn summary(&self) -> Option<&BackupSummary> {
        self.summary.as_ref()
    }

    /// Adds an object directly (as a sink `put` would).
    pub fn insert(&mut self, object: StoredObject) {
        self.objects.insert(object.entry.path(), object);
    }
}

impl ObjectSink for MemoryStore {
    async fn put(&mut self, object: StoredObject) -> Result<()> {
        self.insert(object);
        Ok(())
    }

    async fn finish(&mut self, summary: &BackupSummary) -> Result<()> {
        self.summary = Some(summary.clone());
        Ok(())
    }
}

impl ObjectSource for MemoryStore {
    async fn list(&self) -> Result<Vec<ObjectEntry>> {
        Ok(self.objects.values().map(|o| o.entry.clone()).collect())
    }

    async fn fetch(&self, entry: &ObjectEntry) -> Result<Vec<u8>> {
        let path = entry.path();
        self.objects
            .get(&path)
            .map(|o| o.json.clone())
            .ok_or(Error::NotFound { path })
    }
}
