//! What a snapshot holds, learned while it streams past the splitter: the
//! figures `etcdctl snapshot status` prints and every record of the `key`
//! bucket, without keeping the database or reading it twice.
//!
//! Why this way: a live snapshot arrives in file order, but a database's
//! meaning is in tree order (which pages a bucket owns, keys in key order),
//! and the tree is only known once the last page has passed. So each
//! branch and leaf page leaves a few facts as it passes (a branch its
//! children, a leaf element its CRC-32C and length, and for records of the
//! `key` bucket's shape the parsed `mvccpb.KeyValue` and where its value
//! lies); at the end [`Inventory::finish`] walks the tree from the meta's
//! root over those facts. The status hash is the CRC over keys and values
//! in tree order, put together from each element's CRC with
//! `crc::combine`. Memory is about 100 bytes per record, not the
//! database's size.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use crate::bbolt::{
    BRANCH_PAGE, BUCKET_HEADER_LEN, BUCKET_LEAF_FLAG, ELEMENT_LEN, LEAF_PAGE, Meta,
    PAGE_HEADER_LEN, PageHeader, leaf_elements, u64_at,
};
use crate::catalog::{Entry, TypeTable, ValueAt};
use crate::kv::{KeyValue, Revision};
use crate::layout::MAX_RECORD;
use crate::status::Status;

/// Inline buckets inside inline buckets (damaged input) stop here.
const MAX_INLINE_DEPTH: u32 = 8;

/// The facts of the pages seen so far; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Inventory {
    pages: HashMap<u64, Page>,
    elems: Vec<Elem>,
    /// Bucket names, back to back.
    keys: Vec<u8>,
    entries: Vec<Entry>,
    pub(crate) types: TypeTable,
}

#[derive(Debug)]
enum Page {
    Branch(Vec<u64>),
    Leaf(Range<u32>),
    /// A page whose element table runs past its end.
    Bad(String),
}

#[derive(Debug)]
struct Elem {
    /// CRC-32C of key and value (of the key alone for a bucket).
    crc: u32,
    /// Bytes the CRC covers.
    len: u64,
    kind: ElemKind,
}

#[derive(Debug)]
enum ElemKind {
    Bucket {
        name: Range<u32>,
        root: Root,
    },
    Plain {
        /// The first 8 bytes of the key, big endian (a revision's main
        /// part in the `key` bucket); `None` for shorter keys.
        rev8: Option<i64>,
        /// Index into `entries` when it parses as a `key` bucket record.
        entry: Option<u32>,
    },
    /// The element runs past the bytes seen (a page run larger than the
    /// splitter looks ahead).
    Cut,
}

#[derive(Debug, Clone)]
enum Root {
    Page(u64),
    Inline(Range<u32>),
    /// An inline page that could not be read.
    Bad(String),
}

/// What [`Inventory::finish`] found.
#[derive(Debug)]
pub(crate) struct Finished {
    /// `etcdctl snapshot status` of the database.
    pub status: Status,
    /// The `key` bucket's records in key (revision) order.
    pub entries: Vec<Entry>,
    /// Records of the `key` bucket that are not `mvccpb.KeyValue`s.
    pub unreadable: u64,
    /// The value types the entries name.
    pub types: TypeTable,
}

impl Inventory {
    /// Takes the facts of one page, which starts at file `offset` (see
    /// [`crate::RecordSink::page`], which vouches that its header names its
    /// own position).
    pub(crate) fn page(&mut self, offset: u64, bytes: &[u8], first_record: Option<u64>) {
        let Some(h) = PageHeader::parse(bytes) else {
            return;
        };
        let id = h.id;
        let page = match h.flags {
            BRANCH_PAGE => branch(bytes, h.count, id),
            LEAF_PAGE => {
                let mut next_record = first_record;
                Page::Leaf(self.leaf(bytes, h.count, offset, &mut next_record, 0))
            }
            _ => return,
        };
        self.pages.insert(id, page);
    }

    /// Records the elements of the leaf (page or inline page) in `bytes`,
    /// which lies at file offset `offset`; returns their range.
    fn leaf(
        &mut self,
        bytes: &[u8],
        count: u16,
        offset: u64,
        next_record: &mut Option<u64>,
        depth: u32,
    ) -> Range<u32> {
        let mut own = Vec::with_capacity(usize::from(count));
        let mut inline = Vec::new();
        let Some(elements) = leaf_elements(bytes, count) else {
            let at = self.elems.len() as u32;
            self.elems.push(Elem {
                crc: 0,
                len: 0,
                kind: ElemKind::Cut,
            });
            return at..at + 1;
        };
        for e in elements {
            let len = u64::from(e.key_len) + u64::from(e.value_len);
            let is_bucket = e.flags & BUCKET_LEAF_FLAG != 0;
            // Numbered exactly as `layout::record_ranges` numbers the cut.
            let record = match next_record {
                Some(n) if !is_bucket && (1..=MAX_RECORD).contains(&len) => {
                    *n += 1;
                    Some(*n - 1)
                }
                _ => None,
            };
            let (k, end) = (e.key_at as usize, e.end());
            if end > bytes.len() as u64 {
                own.push(Elem {
                    crc: 0,
                    len: 0,
                    kind: ElemKind::Cut,
                });
                continue;
            }
            let end = end as usize;
            let key = &bytes[k..k + e.key_len as usize];
            let value = &bytes[k + e.key_len as usize..end];
            if is_bucket {
                let name = self.keep(key);
                let root = bucket_root(value);
                if let Root::Inline(_) = root {
                    inline.push((own.len(), value));
                }
                own.push(Elem {
                    crc: crc32c::crc32c(key),
                    len: key.len() as u64,
                    kind: ElemKind::Bucket { name, root },
                });
                continue;
            }
            let entry = self.entry(key, value, record, offset + (k + key.len()) as u64);
            own.push(Elem {
                crc: crc32c::crc32c(&bytes[k..end]),
                len,
                kind: ElemKind::Plain {
                    rev8: key
                        .get(..8)
                        .map(|b| i64::from_be_bytes(b.try_into().expect("8 bytes"))),
                    entry,
                },
            });
        }
        let start = self.elems.len() as u32;
        self.elems.extend(own);
        let range = start..self.elems.len() as u32;
        for (i, value) in inline {
            let at = start as usize + i;
            // The inline page starts after the bucket header; its elements
            // lie in the file at the value's offset plus their position.
            let value_offset = value.as_ptr() as u64 - bytes.as_ptr() as u64;
            let page = &value[BUCKET_HEADER_LEN..];
            let root = match PageHeader::parse(page) {
                _ if depth >= MAX_INLINE_DEPTH => Root::Bad("inline buckets nest too deep".into()),
                Some(h) if h.flags == LEAF_PAGE => {
                    let file_at = offset + value_offset + BUCKET_HEADER_LEN as u64;
                    Root::Inline(self.leaf(page, h.count, file_at, &mut None, depth + 1))
                }
                Some(h) => Root::Bad(format!("an inline bucket's page has flags {:#x}", h.flags)),
                None => Root::Bad("an inline bucket is shorter than a page header".into()),
            };
            if let ElemKind::Bucket { root: r, .. } = &mut self.elems[at].kind {
                *r = root;
            }
        }
        range
    }

    /// The facts of a record of the `key` bucket's shape; the value starts
    /// at file offset `value_at` (used when it is not a cut record).
    fn entry(
        &mut self,
        key: &[u8],
        value: &[u8],
        record: Option<u64>,
        value_at: u64,
    ) -> Option<u32> {
        let revision = Revision::parse(key)?;
        let kv = KeyValue::parse(value)?;
        let at = match record {
            Some(index) => ValueAt::Record {
                index,
                offset: (key.len() + kv.value.start) as u32,
            },
            None => ValueAt::File {
                offset: value_at + kv.value.start as u64,
            },
        };
        let value_type = self.types.classify(&value[kv.value.clone()]);
        self.entries.push(Entry {
            revision,
            key: kv.key.to_vec(),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: kv.lease,
            value_len: kv.value.len() as u32,
            value_type,
            at,
        });
        Some(self.entries.len() as u32 - 1)
    }

    fn keep(&mut self, key: &[u8]) -> Range<u32> {
        let start = self.keys.len() as u32;
        self.keys.extend_from_slice(key);
        start..self.keys.len() as u32
    }

    fn key(&self, r: &Range<u32>) -> &[u8] {
        &self.keys[r.start as usize..r.end as usize]
    }

    /// Walks the tree from `meta`'s root over the facts gathered; `Err`
    /// says why the database cannot be read from them (a page that never
    /// passed, a cycle, a plain key in the root bucket).
    pub(crate) fn finish(mut self, meta: &Meta) -> Result<Finished, String> {
        let mut seen = HashSet::new();
        let top = self.elements(&Root::Page(meta.root), meta, &mut seen)?;
        let mut crc = 0u32;
        let mut total_key = 0u64;
        let mut revision = 0i64;
        let mut key_elems = Vec::new();
        for i in top {
            let (name, root) = match &self.elems[i as usize].kind {
                ElemKind::Bucket { name, root } => (self.key(name).to_vec(), root.clone()),
                ElemKind::Plain { .. } => return Err("the root bucket holds a plain key".into()),
                ElemKind::Cut => return Err(cut()),
            };
            crc = crc32c::crc32c_append(crc, &name);
            let elems = self.elements(&root, meta, &mut seen)?;
            for &j in &elems {
                let e = &self.elems[j as usize];
                crc = crate::crc::combine(crc, e.crc, e.len);
                total_key += 1;
                match (&e.kind, name.as_slice()) {
                    (ElemKind::Cut, _) => return Err(cut()),
                    (ElemKind::Plain { rev8, .. }, b"key") => {
                        // etcdctl slices key[0:8] and would panic on less.
                        revision =
                            rev8.ok_or("a key of the `key` bucket is shorter than 8 bytes")?;
                    }
                    _ => {}
                }
            }
            if name == b"key" {
                key_elems = elems;
            }
        }
        let mut unreadable = 0;
        let mut entries = Vec::with_capacity(key_elems.len());
        let mut taken = std::mem::take(&mut self.entries);
        for j in key_elems {
            match &self.elems[j as usize].kind {
                ElemKind::Plain { entry: Some(n), .. } => {
                    entries.push(std::mem::take(&mut taken[*n as usize]));
                }
                _ => unreadable += 1,
            }
        }
        Ok(Finished {
            status: Status {
                hash: crc,
                revision,
                total_key,
                total_size: meta.db_size(),
            },
            entries,
            unreadable,
            types: self.types,
        })
    }

    /// The elements of a bucket in key order.
    fn elements(
        &self,
        root: &Root,
        meta: &Meta,
        seen: &mut HashSet<u64>,
    ) -> Result<Vec<u32>, String> {
        let mut out = Vec::new();
        let mut stack: Vec<u64> = match root {
            Root::Inline(r) => return Ok(r.clone().collect()),
            Root::Bad(why) => return Err(why.clone()),
            Root::Page(id) => vec![*id],
        };
        while let Some(id) = stack.pop() {
            if id < 2 || id >= meta.pgid {
                return Err(format!(
                    "a tree points to page {id}, outside 2..{}",
                    meta.pgid
                ));
            }
            if !seen.insert(id) {
                return Err(format!(
                    "page {id} is reached twice (a cycle or a shared page)"
                ));
            }
            match self.pages.get(&id) {
                None => {
                    return Err(format!(
                        "page {id} of the tree is not a branch or leaf page"
                    ));
                }
                Some(Page::Branch(children)) => stack.extend(children.iter().rev()),
                Some(Page::Leaf(r)) => out.extend(r.clone()),
                Some(Page::Bad(why)) => return Err(why.clone()),
            }
        }
        Ok(out)
    }
}

fn cut() -> String {
    format!(
        "a key and value run past the {} bytes a page run is read ahead",
        crate::layout::MAX_RUN
    )
}

/// A branch page: its child page ids in key order.
fn branch(bytes: &[u8], count: u16, id: u64) -> Page {
    let end = PAGE_HEADER_LEN + ELEMENT_LEN * usize::from(count);
    if end > bytes.len() {
        return Page::Bad(format!(
            "branch page {id} has {count} elements, more than fit"
        ));
    }
    Page::Branch(
        (0..usize::from(count))
            .map(|i| u64_at(bytes, PAGE_HEADER_LEN + ELEMENT_LEN * i + 8))
            .collect(),
    )
}

/// Where a bucket element's value says the bucket lives.
fn bucket_root(value: &[u8]) -> Root {
    if value.len() < BUCKET_HEADER_LEN {
        return Root::Bad(format!("a bucket header is {} bytes", value.len()));
    }
    match u64_at(value, 0) {
        // Filled in by the caller once the inline page is read.
        0 => Root::Inline(0..0),
        id => Root::Page(id),
    }
}

/// The status a backup records for `data`, learned while the pages stream
/// past the splitter as [`crate::import_file`] learns it, without a
/// repository: `Err` when the split refuses the input, `Ok(Err(why))` when
/// the inventory cannot walk the tree. For tests and fuzzing, which hold it
/// against [`crate::status()`], the same figures read another way.
#[doc(hidden)]
pub fn streamed_status(
    data: &[u8],
    what: &str,
) -> crate::Result<std::result::Result<Status, String>> {
    struct Pages(Inventory);
    impl crate::RecordSink for Pages {
        fn layout(&mut self, _: &[u8]) -> crate::Result<()> {
            Ok(())
        }
        fn record(&mut self, _: &[u8]) -> crate::Result<()> {
            Ok(())
        }
        fn page(&mut self, offset: u64, bytes: &[u8], first: Option<u64>) -> crate::Result<()> {
            self.0.page(offset, bytes, first);
            Ok(())
        }
    }
    let mut pages = Pages(Inventory::default());
    let summary = crate::split(data, &mut pages, &crate::SplitOptions::bbolt(what))?;
    let Some(meta) = summary.meta else {
        return Ok(Err("no bbolt meta".into()));
    };
    Ok(pages.0.finish(&meta).map(|f| f.status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::split::{RecordSink, SplitOptions, split};
    use crate::testdata::{TestBucket, build, revision_key};
    use proptest::prelude::*;

    struct Sink(Inventory);

    impl RecordSink for Sink {
        fn layout(&mut self, _: &[u8]) -> crate::Result<()> {
            Ok(())
        }
        fn record(&mut self, _: &[u8]) -> crate::Result<()> {
            Ok(())
        }
        fn page(&mut self, offset: u64, bytes: &[u8], first: Option<u64>) -> crate::Result<()> {
            self.0.page(offset, bytes, first);
            Ok(())
        }
    }

    fn finished(db: &[u8]) -> Option<Result<Finished, String>> {
        let mut sink = Sink(Inventory::default());
        let summary = split(db, &mut sink, &SplitOptions::any("db")).ok()?;
        Some(sink.0.finish(&summary.meta?))
    }

    /// A `key` bucket of `mvccpb.KeyValue` records with values of these sizes.
    fn etcd_like(sizes: &[usize], inline_meta: bool) -> Vec<u8> {
        let pairs = sizes
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                let rev = i as u64 + 2;
                let key = format!("/registry/configmaps/a/cm-{i}");
                let mut kv = vec![0x0a, key.len() as u8];
                kv.extend(key.as_bytes());
                kv.extend([0x10, rev as u8, 0x18, rev as u8, 0x20, 1, 0x2a]);
                let mut len = s;
                while len >= 0x80 {
                    kv.push(len as u8 | 0x80);
                    len >>= 7;
                }
                kv.push(len as u8);
                kv.extend(std::iter::repeat_n(b'{', s));
                (revision_key(rev, 0), kv)
            })
            .collect();
        build(
            4096,
            &[
                TestBucket {
                    name: b"key".to_vec(),
                    pairs,
                    inline: false,
                },
                TestBucket {
                    name: b"meta".to_vec(),
                    pairs: vec![(b"consistent_index".to_vec(), vec![0, 0, 0, 0, 0, 0, 0, 9])],
                    inline: inline_meta,
                },
            ],
        )
    }

    #[test]
    fn status_and_entries_match_a_walk_of_the_whole_file() {
        // One leaf; many leaves under a branch; values on overflow pages.
        for sizes in [vec![10, 20, 30], vec![300; 60], vec![5000, 12, 9000, 7]] {
            for inline in [true, false] {
                let db = etcd_like(&sizes, inline);
                let f = finished(&db).unwrap().unwrap();
                assert_eq!(f.status, crate::status(&db, "db").unwrap(), "{sizes:?}");
                assert_eq!(f.entries.len(), sizes.len());
                assert_eq!(f.unreadable, 0);
                for (i, e) in f.entries.iter().enumerate() {
                    assert_eq!(e.key, format!("/registry/configmaps/a/cm-{i}").as_bytes());
                    assert_eq!(e.value_len as usize, sizes[i]);
                    assert_eq!(e.revision.main, i as i64 + 2);
                    assert!(matches!(e.at, ValueAt::Record { index, .. } if index == i as u64));
                }
            }
        }
    }

    #[test]
    fn a_page_the_stream_never_showed_is_an_error_not_a_wrong_status() {
        let mut db = etcd_like(&[300; 60], false);
        // The last page (the `meta` bucket's leaf) names another page in
        // its header: the splitter does not show it as a tree page.
        let last = db.len() - 4096;
        db[last] ^= 1;
        let err = finished(&db).unwrap().unwrap_err();
        assert!(err.contains("not a branch or leaf page"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn damaged_input_never_panics_and_never_disagrees(
            sizes in proptest::collection::vec(1usize..6000, 1..30),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        ) {
            let mut db = etcd_like(&sizes, false);
            for (at, byte) in flips {
                let i = at.index(db.len());
                db[i] = byte;
            }
            if let (Some(Ok(f)), Ok(st)) = (finished(&db), crate::status(&db, "db")) {
                prop_assert_eq!(f.status, st);
            }
        }
    }
}
