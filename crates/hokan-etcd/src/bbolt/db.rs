//! A read-only walk over a whole bbolt file held in memory (or mapped).
//!
//! Every offset read from the file is checked before use, every page is
//! visited at most once per walk (a damaged file with a cycle ends in an
//! error, not a loop), and nothing panics on any input.

use super::{
    BRANCH_PAGE, BUCKET_HEADER_LEN, BUCKET_LEAF_FLAG, ELEMENT_LEN, FREELIST_PAGE, LEAF_PAGE, Meta,
    NO_FREELIST, PAGE_HEADER_LEN, PageHeader, current_meta, leaf_element, u64_at,
};
use crate::error::{Error, Result};

/// A bbolt database over its bytes (a snapshot file read or mapped whole).
#[derive(Debug)]
pub struct Db<'a> {
    data: &'a [u8],
    meta: Meta,
    what: String,
}

/// A bucket: the root bucket, a bucket with its own pages, or one stored
/// inline in its parent's leaf element.
#[derive(Clone, Copy, Debug)]
pub struct Bucket<'a> {
    root: Root<'a>,
}

#[derive(Clone, Copy, Debug)]
enum Root<'a> {
    Page(u64),
    Inline(&'a [u8]),
}

/// One key of a bucket, in key order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The value; for a nested bucket, its 16-byte header (and inline page).
    pub value: &'a [u8],
    /// Whether the entry is a nested bucket (bbolt's cursor then gives a nil value).
    pub is_bucket: bool,
}

/// One page or inline page being read.
#[derive(Clone, Copy, Debug)]
struct Node<'a> {
    bytes: &'a [u8],
    header: PageHeader,
}

impl<'a> Db<'a> {
    /// Opens the database in `data`, named `what` in errors: picks the
    /// current meta and checks that the file holds every page it counts.
    /// Bytes past the database (etcdctl's SHA-256 trailer, preallocated
    /// space) are allowed.
    pub fn open(data: &'a [u8], what: &str) -> Result<Self> {
        let meta = current_meta(data, what)?;
        if (data.len() as u64) < meta.db_size() {
            return Err(Error::Truncated {
                what: what.to_string(),
                reason: format!(
                    "{} bytes, but its meta counts {} pages of {} bytes ({} bytes)",
                    data.len(),
                    meta.pgid,
                    meta.page_size,
                    meta.db_size()
                ),
            });
        }
        Ok(Db {
            data,
            meta,
            what: what.to_string(),
        })
    }

    /// The current meta.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The root bucket, whose keys name the top-level buckets.
    pub fn root(&self) -> Bucket<'a> {
        Bucket {
            root: Root::Page(self.meta.root),
        }
    }

    /// The top-level buckets in key order, with their names.
    pub fn buckets(&self) -> Result<Vec<(&'a [u8], Bucket<'a>)>> {
        let mut out = Vec::new();
        for entry in self.entries(self.root()) {
            let entry = entry?;
            if !entry.is_bucket {
                return Err(self.corrupt(format!(
                    "the root bucket holds a plain key {:?}, not a bucket",
                    String::from_utf8_lossy(entry.key)
                )));
            }
            out.push((entry.key, self.bucket(&entry)?));
        }
        Ok(out)
    }

    /// The nested bucket an entry with `is_bucket` set stands for.
    pub fn bucket(&self, entry: &Entry<'a>) -> Result<Bucket<'a>> {
        let v = entry.value;
        if !entry.is_bucket || v.len() < BUCKET_HEADER_LEN {
            return Err(self.corrupt(format!(
                "key {:?} is not a bucket header ({} bytes)",
                String::from_utf8_lossy(entry.key),
                v.len()
            )));
        }
        let root = u64_at(v, 0);
        Ok(Bucket {
            root: if root == 0 {
                Root::Inline(&v[BUCKET_HEADER_LEN..])
            } else {
                Root::Page(root)
            },
        })
    }

    /// The keys of a bucket in order (nested buckets included, flagged).
    pub fn entries(&self, bucket: Bucket<'a>) -> Entries<'a, '_> {
        let mut it = Entries {
            db: self,
            stack: Vec::new(),
            seen: Seen::new(self.meta.pgid),
            pending: None,
        };
        if let Err(e) = it.push(bucket.root) {
            it.pending = Some(e);
        }
        it
    }

    /// The free page ids listed in the freelist page, or `None` when etcd
    /// did not store one (bbolt's NoFreelistSync).
    pub fn freelist(&self) -> Result<Option<Vec<u64>>> {
        if self.meta.freelist == NO_FREELIST {
            return Ok(None);
        }
        let node = self.page(self.meta.freelist)?;
        if node.header.flags & FREELIST_PAGE == 0 {
            return Err(self.corrupt(format!(
                "page {} named as the freelist has flags {:#x}",
                self.meta.freelist, node.header.flags
            )));
        }
        let (count, start) = if node.header.count == 0xFFFF {
            let n = node
                .bytes
                .get(PAGE_HEADER_LEN..PAGE_HEADER_LEN + 8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
                .unwrap_or(u64::MAX);
            (n, PAGE_HEADER_LEN + 8)
        } else {
            (u64::from(node.header.count), PAGE_HEADER_LEN)
        };
        let room = (node.bytes.len() - start) as u64 / 8;
        if count > room {
            return Err(self.corrupt(format!(
                "freelist page {} lists {count} ids but holds {room}",
                self.meta.freelist
            )));
        }
        Ok(Some(
            (0..count as usize)
                .map(|i| u64_at(node.bytes, start + 8 * i))
                .collect(),
        ))
    }

    /// Structural check, as bbolt's `tx.Check` (which `etcdctl snapshot
    /// status` runs first): every page below the high-water mark is used by
    /// exactly one tree, or free, or a meta page; none is both.
    pub fn check(&self) -> Result<()> {
        let hwm = self.meta.pgid;
        // 0 = unseen, 1 = meta, 2 = free, 3 = reachable.
        let mut state =
            vec![0u8; usize::try_from(hwm).map_err(|_| self.corrupt("too many pages"))?];
        state[0] = 1;
        state[1] = 1;
        let mut mark = |id: u64, overflow: u32, what: u8, db: &Self| -> Result<()> {
            for p in id..=id.saturating_add(u64::from(overflow)) {
                let Some(s) = state.get_mut(p as usize).filter(|_| p < hwm) else {
                    return Err(db.corrupt(format!("page {p}: out of bounds: {hwm}")));
                };
                match (*s, what) {
                    (0, _) => *s = what,
                    (2, 2) => return Err(db.corrupt(format!("page {p}: already freed"))),
                    (2, _) | (_, 2) => {
                        return Err(db.corrupt(format!("page {p}: reachable freed")));
                    }
                    _ => return Err(db.corrupt(format!("page {p}: multiple references"))),
                }
            }
            Ok(())
        };
        let free = self.freelist()?;
        if let Some(free) = &free {
            let node = self.page(self.meta.freelist)?;
            mark(self.meta.freelist, node.header.overflow, 3, self)?;
            for &id in free {
                mark(id, 0, 2, self)?;
            }
        }
        let mut stack = vec![Root::Page(self.meta.root)];
        while let Some(root) = stack.pop() {
            let node = match root {
                Root::Page(id) => {
                    let node = self.page(id)?;
                    mark(id, node.header.overflow, 3, self)?;
                    node
                }
                Root::Inline(bytes) => self.inline(bytes)?,
            };
            match node.header.flags {
                BRANCH_PAGE => {
                    for i in 0..usize::from(node.header.count) {
                        stack.push(Root::Page(self.branch_child(&node, i)?));
                    }
                }
                LEAF_PAGE => {
                    for i in 0..usize::from(node.header.count) {
                        let e = self.leaf_entry(&node, i)?;
                        if e.is_bucket {
                            stack.push(self.bucket(&e)?.root);
                        }
                    }
                }
                f => {
                    return Err(
                        self.corrupt(format!("page {}: invalid type: {f:#x}", node.header.id))
                    );
                }
            }
        }
        if free.is_some()
            && let Some(p) = state.iter().position(|&s| s == 0)
        {
            return Err(self.corrupt(format!("page {p}: unreachable unfreed")));
        }
        Ok(())
    }

    fn corrupt(&self, reason: impl Into<String>) -> Error {
        Error::corrupted(&self.what, reason)
    }

    /// A page and its overflow pages.
    fn page(&self, id: u64) -> Result<Node<'a>> {
        if id < 2 || id >= self.meta.pgid {
            return Err(self.corrupt(format!(
                "a tree points to page {id}, outside 2..{}",
                self.meta.pgid
            )));
        }
        let start = id * u64::from(self.meta.page_size);
        let header = PageHeader::parse(&self.data[start as usize..])
            .ok_or_else(|| self.corrupt(format!("page {id} is cut short")))?;
        // bbolt writes every page with its own index as its id, and its
        // check walks pages by that id: one that names another page is
        // damage, which `etcdctl snapshot status` refuses too.
        if header.id != id {
            return Err(self.corrupt(format!("page {id}: its header names it page {}", header.id)));
        }
        let end = start.saturating_add(header.run_len(self.meta.page_size));
        if end > self.meta.db_size() {
            return Err(self.corrupt(format!(
                "page {id} with {} overflow pages runs past the last page",
                header.overflow
            )));
        }
        Ok(Node {
            bytes: &self.data[start as usize..end as usize],
            header,
        })
    }

    fn inline(&self, bytes: &'a [u8]) -> Result<Node<'a>> {
        let header = PageHeader::parse(bytes)
            .ok_or_else(|| self.corrupt("an inline bucket is shorter than a page header"))?;
        Ok(Node { bytes, header })
    }

    fn branch_child(&self, node: &Node<'a>, i: usize) -> Result<u64> {
        let e = PAGE_HEADER_LEN + ELEMENT_LEN * i;
        node.bytes
            .get(e + 8..e + 16)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .ok_or_else(|| {
                self.corrupt(format!(
                    "branch page {} has {} elements, more than fit",
                    node.header.id, node.header.count
                ))
            })
    }

    fn leaf_entry(&self, node: &Node<'a>, i: usize) -> Result<Entry<'a>> {
        let bad =
            |why: &str| self.corrupt(format!("leaf page {} element {i}: {why}", node.header.id));
        let e = leaf_element(node.bytes, node.header.count, i)
            .ok_or_else(|| bad("the element table does not fit in the page"))?;
        if e.end() > node.bytes.len() as u64 {
            return Err(bad("key and value run past the page end"));
        }
        let k = e.key_at as usize;
        let v = k + e.key_len as usize;
        Ok(Entry {
            key: &node.bytes[k..v],
            value: &node.bytes[v..e.end() as usize],
            is_bucket: e.flags & BUCKET_LEAF_FLAG != 0,
        })
    }
}

/// Pages already entered by one walk: a bitset over the high-water mark.
#[derive(Debug)]
struct Seen(Vec<u64>);

impl Seen {
    fn new(pages: u64) -> Self {
        Seen(vec![0; usize::try_from(pages.div_ceil(64)).unwrap_or(0)])
    }

    /// Marks `id`; false if it was marked already.
    fn insert(&mut self, id: u64) -> bool {
        let (w, b) = ((id / 64) as usize, id % 64);
        match self.0.get_mut(w) {
            Some(word) if *word & (1 << b) == 0 => {
                *word |= 1 << b;
                true
            }
            _ => false,
        }
    }
}

/// Iterator over a bucket's entries; see [`Db::entries`]. After the first
/// error it yields nothing more.
#[derive(Debug)]
pub struct Entries<'a, 'd> {
    db: &'d Db<'a>,
    stack: Vec<(Node<'a>, usize)>,
    seen: Seen,
    pending: Option<Error>,
}

/// Deeper than any real tree (a 4 KiB page holds at least two keys, so 64
/// levels would index more pages than a u64 counts); stops damaged inline
/// buckets from nesting without end.
const MAX_DEPTH: usize = 64;

impl<'a> Entries<'a, '_> {
    fn push(&mut self, root: Root<'a>) -> Result<()> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(self
                .db
                .corrupt(format!("a tree is deeper than {MAX_DEPTH} levels")));
        }
        let node = match root {
            Root::Page(id) => {
                if !self.seen.insert(id) {
                    return Err(self.db.corrupt(format!(
                        "page {id} is reached twice (a cycle or a shared page)"
                    )));
                }
                self.db.page(id)?
            }
            Root::Inline(bytes) => self.db.inline(bytes)?,
        };
        if node.header.flags != BRANCH_PAGE && node.header.flags != LEAF_PAGE {
            return Err(self.db.corrupt(format!(
                "page {} in a tree is neither branch nor leaf (flags {:#x})",
                node.header.id, node.header.flags
            )));
        }
        self.stack.push((node, 0));
        Ok(())
    }

    fn step(&mut self) -> Result<Option<Entry<'a>>> {
        while let Some((node, i)) = self.stack.last_mut() {
            let (node, at) = (*node, *i);
            if at >= usize::from(node.header.count) {
                self.stack.pop();
                continue;
            }
            *i += 1;
            if node.header.flags == BRANCH_PAGE {
                let child = self.db.branch_child(&node, at)?;
                self.push(Root::Page(child))?;
            } else {
                return self.db.leaf_entry(&node, at).map(Some);
            }
        }
        Ok(None)
    }
}

impl<'a> Iterator for Entries<'a, '_> {
    type Item = Result<Entry<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.pending.take() {
            self.stack.clear();
            return Some(Err(e));
        }
        match self.step() {
            Ok(entry) => entry.map(Ok),
            Err(e) => {
                self.stack.clear();
                Some(Err(e))
            }
        }
    }
}
