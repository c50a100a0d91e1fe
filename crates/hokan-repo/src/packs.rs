//! Moving packs: uploading them as a backup fills them ([`Uploader`], the
//! core's [`PackSink`]) and reading byte ranges of stored ones (the core's
//! [`PackSource`]).

use std::sync::{Arc, Condvar, Mutex};

use bytes::Bytes;

use hokan_core::{FinishedPack, Id, PackId, PackSink, PackSource};

use crate::error::{Error, Result};
use crate::index_file::{IndexFile, IndexedPack};
use crate::layout;
use crate::repository::Repository;
use crate::store::Store;

impl PackSource for Store {
    fn read_range(&self, pack: &PackId, offset: u32, length: u32) -> hokan_core::Result<Vec<u8>> {
        let path = layout::pack(pack);
        match self.get_range(&path, offset as u64..offset as u64 + length as u64) {
            Ok(b) => Ok(b.to_vec()),
            Err(Error::Missing { .. }) => Err(hokan_core::Error::MissingPack {
                what: format!("pack {} ({path})", pack.short()),
            }),
            Err(e) => Err(e.into()),
        }
    }
}

impl PackSource for Repository {
    fn read_range(&self, pack: &PackId, offset: u32, length: u32) -> hokan_core::Result<Vec<u8>> {
        self.store().read_range(pack, offset, length)
    }
}

/// Packs per index file: a long backup writes one each time this many
/// packs have landed, so an interrupted one leaves its stored packs
/// indexed for the next run to dedup against.
const PACKS_PER_INDEX_FILE: usize = 256;
/// ... or once they hold this many blobs (small blobs fill a pack with
/// 100,000 of them): an index file is decoded whole, so its size is the
/// memory a reader needs for one (about 100 bytes a blob decoded).
const BLOBS_PER_INDEX_FILE: usize = 1 << 18;

/// Uploads packs on the I/O runtime, a bounded number at a time, and writes
/// index files for the ones that landed.
pub(crate) struct Uploader<'r> {
    repo: &'r Repository,
    shared: Arc<(Mutex<UploadState>, Condvar)>,
}

#[derive(Default)]
struct UploadState {
    in_flight: usize,
    /// Packs stored and not yet in an index file.
    landed: Vec<IndexedPack>,
    /// Every pack stored.
    all: Vec<IndexedPack>,
    /// Index files written for them.
    index_files: Vec<Id>,
    error: Option<Error>,
}

/// What an upload session stored.
pub(crate) struct Uploaded {
    pub packs: Vec<IndexedPack>,
    pub index_files: Vec<Id>,
}

impl<'r> Uploader<'r> {
    pub(crate) fn new(repo: &'r Repository) -> Self {
        Uploader {
            repo,
            shared: Arc::new((Mutex::new(UploadState::default()), Condvar::new())),
        }
    }

    fn wait_idle(&self) -> std::sync::MutexGuard<'_, UploadState> {
        let (lock, cond) = &*self.shared;
        let mut st = lock.lock().expect("upload state");
        while st.in_flight > 0 {
            st = cond.wait(st).expect("upload state");
        }
        st
    }

    /// Writes an index file for the landed packs (already stored durably).
    fn index_landed(&self, st: &mut UploadState) -> Result<()> {
        if st.landed.is_empty() {
            return Ok(());
        }
        let packs = std::mem::take(&mut st.landed);
        match self.repo.write_index_file(&IndexFile {
            supersedes: Vec::new(),
            packs: packs.clone(),
        }) {
            Ok(id) => {
                st.index_files.push(id);
                Ok(())
            }
            Err(e) => {
                st.landed = packs;
                Err(e)
            }
        }
    }

    /// Waits for every upload, then indexes what landed. Returns the packs
    /// and index files, or the first error (after indexing the packs that
    /// did land, so the next backup reuses them).
    pub(crate) fn finish(self) -> Result<Uploaded> {
        let mut st = self.wait_idle();
        let indexed = self.index_landed(&mut st);
        let error = st.error.take();
        match (error, indexed) {
            (Some(e), _) | (None, Err(e)) => Err(e),
            (None, Ok(())) => Ok(Uploaded {
                packs: std::mem::take(&mut st.all),
                index_files: std::mem::take(&mut st.index_files),
            }),
        }
    }
}

impl PackSink for Uploader<'_> {
    fn put_pack(&self, pack: FinishedPack) -> hokan_core::Result<()> {
        let (lock, cond) = &*self.shared;
        {
            let mut st = lock.lock().expect("upload state");
            while st.in_flight >= self.repo.options.upload_concurrency.max(1) && st.error.is_none()
            {
                st = cond.wait(st).expect("upload state");
            }
            if let Some(e) = &st.error {
                return Err(hokan_core::Error::Storage(
                    format!("an earlier pack upload failed: {e}").into(),
                ));
            }
            if st.landed.len() >= PACKS_PER_INDEX_FILE
                || st.landed.iter().map(|p| p.blobs.len()).sum::<usize>() >= BLOBS_PER_INDEX_FILE
            {
                self.index_landed(&mut st)?;
            }
            st.in_flight += 1;
        }
        let meta = IndexedPack {
            id: pack.id,
            kind: pack.kind,
            size: pack.bytes.len() as u64,
            blobs: pack.blobs,
        };
        let store = self.repo.store().clone();
        let shared = self.shared.clone();
        let bytes = Bytes::from(pack.bytes);
        crate::store::runtime().spawn(async move {
            let result = store.put_async(&layout::pack(&meta.id), bytes).await;
            let (lock, cond) = &*shared;
            let mut st = lock.lock().expect("upload state");
            st.in_flight -= 1;
            match result {
                Ok(()) => {
                    st.landed.push(meta.clone());
                    st.all.push(meta);
                }
                Err(e) => {
                    st.error.get_or_insert(e);
                }
            }
            cond.notify_all();
        });
        Ok(())
    }

    /// Every pack handed over so far is stored (each upload returns only
    /// once its pack is durable).
    fn flush(&self) -> hokan_core::Result<()> {
        let st = self.wait_idle();
        match &st.error {
            Some(e) => Err(hokan_core::Error::Storage(
                format!("a pack upload failed: {e}").into(),
            )),
            None => Ok(()),
        }
    }
}
