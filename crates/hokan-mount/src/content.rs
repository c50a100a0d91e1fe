//! File content through the mount. The kernel asks for at most 128 KiB at
//! a time while chunks are ~512 KiB (up to 4 MiB) and must be fetched,
//! decrypted and decompressed whole, so decoded chunks are kept in a small
//! LRU shared by all open files, and while one chunk is served the next
//! ones of a file being read in order are fetched in parallel (the store
//! may be S3, where one request at a time would crawl).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use hokan_core::{BlobType, ChunkId, ChunkRef, Node};
use hokan_repo::IndexedRepository;

use crate::cache::Lru;

/// A decoded chunk.
pub type Chunk = Arc<Vec<u8>>;

struct State {
    cache: Lru<ChunkId, Chunk>,
    /// Chunks some thread is fetching: others wait for them instead of
    /// fetching the same bytes again.
    in_flight: HashSet<ChunkId>,
}

/// What read-ahead tasks share with the readers.
struct Shared {
    repo: Arc<IndexedRepository>,
    state: Mutex<State>,
    /// Signalled whenever a fetch ends (well or not).
    done: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves only a cache behind.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends the fetches of `asked`, keeping what was decoded.
    fn deliver(&self, asked: &[ChunkRef], decoded: Vec<(ChunkId, Chunk)>) {
        let mut st = self.lock();
        for c in asked {
            st.in_flight.remove(&c.id);
        }
        for (id, d) in decoded {
            let len = d.len();
            st.cache.put(id, d, len);
        }
        drop(st);
        self.done.notify_all();
    }
}

/// Ends a fetch when dropped, whether it returned or panicked: a chunk
/// left marked as under way would make its readers wait forever.
struct Fetch {
    shared: Arc<Shared>,
    asked: Vec<ChunkRef>,
    decoded: Vec<(ChunkId, Chunk)>,
}

impl Drop for Fetch {
    fn drop(&mut self) {
        self.shared
            .deliver(&self.asked, std::mem::take(&mut self.decoded));
    }
}

/// Decoded chunks: cached, fetched once however many readers want them,
/// and read ahead.
pub struct Blobs {
    shared: Arc<Shared>,
    readahead: u64,
}

impl Blobs {
    /// Chunks of `repo`, up to `cache_bytes` of them kept decoded, and up
    /// to `readahead` bytes fetched ahead of a sequential reader.
    pub fn new(repo: Arc<IndexedRepository>, cache_bytes: u64, readahead: u64) -> Self {
        Blobs {
            shared: Arc::new(Shared {
                repo,
                state: Mutex::new(State {
                    cache: Lru::new(cache_bytes as usize),
                    in_flight: HashSet::new(),
                }),
                done: Condvar::new(),
            }),
            readahead,
        }
    }

    /// One chunk, decoded: from the cache, from a fetch already under way,
    /// or fetched here.
    pub fn get(&self, c: &ChunkRef) -> hokan_core::Result<Chunk> {
        let sh = &self.shared;
        let mut st = sh.lock();
        loop {
            if let Some(b) = st.cache.get(&c.id) {
                return Ok(b);
            }
            if !st.in_flight.contains(&c.id) {
                break;
            }
            st = sh.done.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st.in_flight.insert(c.id);
        drop(st);
        let mut fetch = Fetch {
            shared: sh.clone(),
            asked: vec![*c],
            decoded: Vec::new(),
        };
        let read = sh
            .repo
            .reader()
            .read_blob(BlobType::Data, &c.id.0)
            .and_then(|d| checked(c, d));
        if let Ok(d) = &read {
            fetch.decoded.push((c.id, d.clone()));
        }
        read
    }

    /// Starts fetching the chunks of `next` (the ones after what a reader
    /// is being served) that are neither cached nor under way, up to the
    /// read-ahead size, in the background. Failures are dropped here: the
    /// reader that needs the chunk fetches it again and reports the error.
    ///
    /// Fetches go out in batches of at least half the window, started once
    /// less than half of it is ready or under way: a batch's records that
    /// lie together in a pack come in one request, where topping the
    /// window up chunk by chunk would make one small request per chunk
    /// (measured on Garage: 1M windows 40 MB/s, 16M 60 MB/s).
    pub fn read_ahead(&self, next: &[ChunkRef]) {
        let mut st = self.shared.lock();
        let ready = |st: &State, c: &ChunkRef| {
            c.is_hole() || st.in_flight.contains(&c.id) || st.cache.contains(&c.id)
        };
        let mut covered = 0u64;
        for c in next {
            if covered >= self.readahead / 2 || !ready(&st, c) {
                break;
            }
            covered += c.len as u64;
        }
        if covered >= self.readahead / 2 {
            return;
        }
        let mut want: Vec<ChunkRef> = Vec::new();
        let mut bytes = 0u64;
        for c in next {
            if bytes >= self.readahead {
                break;
            }
            bytes += c.len as u64;
            if ready(&st, c) {
                continue;
            }
            st.in_flight.insert(c.id);
            want.push(*c);
        }
        drop(st);
        if want.is_empty() {
            return;
        }
        let mut fetch = Fetch {
            shared: self.shared.clone(),
            asked: want,
            decoded: Vec::new(),
        };
        rayon::spawn(move || {
            // One call: records close together in a pack are fetched with
            // one request, and the chunks are decoded in parallel.
            let ids: Vec<_> = fetch.asked.iter().map(|c| c.id.0).collect();
            let reader = fetch.shared.repo.reader();
            if let Ok(results) = reader.read_blobs(BlobType::Data, &ids) {
                for (c, r) in fetch.asked.iter().zip(results) {
                    if let Ok(d) = r.and_then(|d| checked(c, d)) {
                        fetch.decoded.push((c.id, d));
                    }
                }
            }
            // `fetch` delivers as it drops.
        });
    }
}

/// A chunk's bytes must be as long as the chunk list says, or every later
/// offset in the file would be wrong.
fn checked(c: &ChunkRef, d: Vec<u8>) -> hokan_core::Result<Chunk> {
    if d.len() != c.len as usize {
        return Err(hokan_core::Error::Corrupted {
            what: format!("chunk {}", c.id.short()),
            reason: format!("{} bytes, the chunk list says {}", d.len(), c.len),
        });
    }
    Ok(Arc::new(d))
}

/// An open file: its chunks and where each starts.
pub struct OpenFile {
    /// The node, for its chunk list.
    pub node: Arc<Node>,
    /// Offset of each chunk; one more entry, the end.
    starts: Vec<u64>,
    /// Where the last read ended, to tell a sequential reader (worth
    /// reading ahead for) from a random one.
    last_end: AtomicU64,
}

impl OpenFile {
    /// Opens a file node.
    pub fn new(node: Arc<Node>) -> Self {
        let mut starts = Vec::with_capacity(node.content.len() + 1);
        let mut at = 0u64;
        for c in &node.content {
            starts.push(at);
            at += c.len as u64;
        }
        starts.push(at);
        OpenFile {
            node,
            starts,
            last_end: AtomicU64::new(0),
        }
    }

    /// The content's length (what the chunks hold).
    pub fn len(&self) -> u64 {
        *self.starts.last().expect("always one entry")
    }

    /// Up to `size` bytes at `offset`; fewer only at the end. Holes read as
    /// zeros.
    pub fn read(&self, blobs: &Blobs, offset: u64, size: u32) -> hokan_core::Result<Vec<u8>> {
        let end = self.len().min(offset.saturating_add(size as u64));
        if offset >= end {
            return Ok(Vec::new());
        }
        let chunks = &self.node.content;
        // The chunk holding `offset`: the last that starts at or before it.
        let first = self.starts.partition_point(|&s| s <= offset) - 1;
        let previous = self.last_end.swap(end, Ordering::Relaxed);
        // In order, give or take the kernel's own read-ahead arriving out
        // of order: fetch what comes next while this is decoded.
        let window = 4 << 20;
        if offset == 0 || offset.abs_diff(previous) <= window {
            blobs.read_ahead(&chunks[first + 1..]);
        }
        let mut out = Vec::with_capacity((end - offset) as usize);
        let mut i = first;
        while offset + (out.len() as u64) < end {
            let pos = offset + out.len() as u64;
            let c = &chunks[i];
            let from = (pos - self.starts[i]) as usize;
            let to = (end.min(self.starts[i + 1]) - self.starts[i]) as usize;
            if c.is_hole() {
                out.resize(out.len() + (to - from), 0);
            } else {
                out.extend_from_slice(&blobs.get(c)?[from..to]);
            }
            i += 1;
        }
        Ok(out)
    }
}
