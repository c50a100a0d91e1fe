//! Stream backups: one byte stream (a database dump, `backup --stdin`)
//! stored as one file in a snapshot of its own.

use std::io::Read;

use hokan_core::{Node, NodeKind, Timestamp};

use crate::error::{Error, Result};
use crate::index_load::IndexedRepository;
use crate::session::{SnapshotSpec, Staged};
use crate::snapshot::{SnapshotEntry, counts};

impl IndexedRepository {
    /// Backs up a byte stream as one file named `name` (`backup --stdin`).
    /// `spec` says what the stream is (its source kind, tags, labels);
    /// its paths are `[name]` unless it gives its own (a claim's device
    /// records the claim). Saves and returns the snapshot.
    pub fn backup_stream(
        &mut self,
        reader: impl Read + Send,
        name: &str,
        mut spec: SnapshotSpec,
    ) -> Result<SnapshotEntry> {
        let name = name.trim_matches('/');
        if name.is_empty() || name.contains('/') {
            return Err(Error::Invalid {
                what: "stream file name",
                reason: format!("{name:?}; give a plain file name such as dump.sql"),
            });
        }
        if spec.paths.is_empty() {
            spec.paths = vec![name.to_string()];
        }
        let done = self.backup(spec, |s| -> Result<_> {
            let chunks = s.store_stream(reader)?;
            let mut node = Node::new(name, NodeKind::File);
            node.size = chunks.iter().map(|c| c.len as u64).sum();
            node.mode = 0o600;
            node.content = chunks;
            node.mtime = Timestamp::now();
            node.atime = node.mtime;
            node.ctime = node.mtime;
            let size = node.size;
            let mut staged = Staged::new(s.store_tree(vec![node])?);
            staged.bytes = size;
            staged.counts = vec![(counts::FILES.into(), 1), (counts::FILES_NEW.into(), 1)];
            Ok((staged, ()))
        })?;
        Ok(done.entry)
    }
}
