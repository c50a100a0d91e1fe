//! The bridge between an async producer of objects (a backup reading the
//! API, a Velero import) and a repository session, which is synchronous and
//! blocks on its store.
//!
//! The producer writes into a [`FeedSink`], an [`ObjectSink`] whose `put`
//! sends over a bounded channel; the session's thread takes the objects off
//! the channel into a [`TreeBuilder`]. Reading the next page and storing the
//! last one overlap, and the channel's bound keeps memory at a page plus a
//! few hundred objects however fast either side is.

use hokan_core::fs::Progress;
use hokan_repo::{Committed, IndexedRepository, SnapshotSpec, Staged};
use tokio::sync::mpsc;

use super::tree::TreeBuilder;
use crate::backup::BackupSummary;
use crate::object::StoredObject;
use crate::seam::{Completed, ObjectSink};
use crate::{Error, Result};

/// Messages in flight between the producer and the session.
const CAPACITY: usize = 256;

pub(crate) enum Feed {
    Object(StoredObject),
    Completed(Completed),
    Finished(BackupSummary),
}

/// The producer's end: an [`ObjectSink`] feeding a repository session.
pub struct FeedSink {
    tx: mpsc::Sender<Feed>,
}

impl FeedSink {
    async fn send(&self, message: Feed) -> Result<()> {
        self.tx.send(message).await.map_err(|_| {
            // The session ended early; its own error is the one reported.
            Error::Store("the repository session stopped taking objects".into())
        })
    }
}

impl ObjectSink for FeedSink {
    async fn put(&mut self, object: StoredObject) -> Result<()> {
        self.send(Feed::Object(object)).await
    }

    async fn completed(&mut self, part: &Completed) -> Result<()> {
        self.send(Feed::Completed(part.clone())).await
    }

    async fn finish(&mut self, summary: &BackupSummary) -> Result<()> {
        self.send(Feed::Finished(summary.clone())).await
    }
}

/// A channel: the sink for the producer, the receiving end for [`store`].
pub(crate) fn channel() -> (FeedSink, mpsc::Receiver<Feed>) {
    let (tx, rx) = mpsc::channel(CAPACITY);
    (FeedSink { tx }, rx)
}

/// Why a session stopped without a snapshot: the producer stopped before
/// it finished (its own error says why), or storing failed.
enum Stopped {
    Abandoned,
    Failed(Error),
}

impl From<hokan_repo::Error> for Stopped {
    fn from(e: hokan_repo::Error) -> Self {
        Stopped::Failed(e.into())
    }
}

impl From<Error> for Stopped {
    fn from(e: Error) -> Self {
        Stopped::Failed(e)
    }
}

/// Runs a backup session on the calling thread (which must not be driving
/// async tasks: see [`super::off_runtime`]), storing what arrives on `rx`
/// until the producer finishes, and commits the snapshot. If the producer
/// stops without finishing, nothing is committed and `Ok(None)` is
/// returned: the producer's error says why.
pub(crate) fn store(
    repo: &mut IndexedRepository,
    spec: SnapshotSpec,
    mut rx: mpsc::Receiver<Feed>,
    progress: &dyn Progress,
) -> Result<Option<Committed<BackupSummary>>> {
    let committed = repo.backup(spec, |session| {
        let mut builder = TreeBuilder::new(session, progress);
        let fed = (|| -> Result<Option<BackupSummary>> {
            while let Some(message) = rx.blocking_recv() {
                match message {
                    Feed::Object(object) => builder.put(object)?,
                    Feed::Completed(part) => builder.completed(&part)?,
                    Feed::Finished(summary) => return Ok(Some(summary)),
                }
            }
            Ok(None)
        })();
        // Stop the producer at once whatever happened here.
        rx.close();
        let summary = fed?.ok_or(Stopped::Abandoned)?;
        let (tree, counts) = builder.finish()?;
        let staged = Staged {
            tree,
            bytes: summary.bytes,
            errors: summary.errors.len() as u64,
            counts: super::counts(&summary, &counts),
        };
        Ok((staged, summary))
    });
    match committed {
        Ok(c) => Ok(Some(c)),
        Err(Stopped::Abandoned) => Ok(None),
        Err(Stopped::Failed(e)) => Err(e),
    }
}
