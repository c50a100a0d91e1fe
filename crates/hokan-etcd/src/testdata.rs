//! Small bbolt files built in memory, laid out as bbolt lays them out: for
//! examples, unit tests and property tests that need a database without
//! starting etcd. (Tests against real etcd files live in `tests/`.)

use crate::bbolt::{
    BRANCH_PAGE, BUCKET_LEAF_FLAG, FREELIST_PAGE, LEAF_PAGE, MAGIC, META_PAGE, VERSION, fnv64a,
};

/// One key/value of a bucket.
pub type Pair = (Vec<u8>, Vec<u8>);

/// A bucket to write: its name, its sorted pairs, and whether it is stored
/// inline in the root bucket's leaf (bbolt does that for small buckets).
#[derive(Clone, Debug)]
pub struct TestBucket {
    /// Bucket name.
    pub name: Vec<u8>,
    /// Keys and values, sorted by key.
    pub pairs: Vec<Pair>,
    /// Store inline (only sensible for a few small pairs).
    pub inline: bool,
}

/// An etcd `key` bucket key: main revision, `_`, sub revision.
pub fn revision_key(main: u64, sub: u64) -> Vec<u8> {
    let mut k = main.to_be_bytes().to_vec();
    k.push(b'_');
    k.extend(sub.to_be_bytes());
    k
}

/// A database with a `key` bucket of three revisions (2, 3, 4) on its own
/// page and an inline `meta` bucket with one key.
pub fn tiny_db() -> Vec<u8> {
    build(
        4096,
        &[
            TestBucket {
                name: b"key".to_vec(),
                pairs: (2..5)
                    .map(|r| {
                        (
                            revision_key(r, 0),
                            format!("value of revision {r}").into_bytes(),
                        )
                    })
                    .collect(),
                inline: false,
            },
            TestBucket {
                name: b"meta".to_vec(),
                pairs: vec![(b"consistent_index".to_vec(), 7u64.to_be_bytes().to_vec())],
                inline: true,
            },
        ],
    )
}

/// Writes a database with these buckets (sorted by name by the caller).
/// Pages: 0 and 1 meta (page 1 current), 2 freelist (empty), 3 the root
/// bucket's leaf, then each page-stored bucket's leaves and branch.
pub fn build(page_size: u32, buckets: &[TestBucket]) -> Vec<u8> {
    let ps = page_size as usize;
    let mut pages: Vec<Vec<u8>> = vec![Vec::new(); 4];
    let mut root_elems: Vec<(u32, Vec<u8>, Vec<u8>)> = Vec::new();
    for b in buckets {
        let value = if b.inline {
            let mut v = vec![0u8; 16]; // root 0: inline
            v.extend(leaf_page(0, &flat(&b.pairs), 0));
            v
        } else {
            let root = write_tree(&mut pages, ps, &b.pairs);
            let mut v = root.to_le_bytes().to_vec();
            v.extend(0u64.to_le_bytes());
            v
        };
        root_elems.push((BUCKET_LEAF_FLAG, b.name.clone(), value));
    }
    pages[3] = leaf_page(3, &root_elems, ps);
    let mut free = vec![0u8; ps];
    free[..8].copy_from_slice(&2u64.to_le_bytes());
    free[8..10].copy_from_slice(&FREELIST_PAGE.to_le_bytes());
    pages[2] = free;
    let hwm = pages.iter().map(|p| p.len().div_ceil(ps)).sum::<usize>() as u64 + 2;
    pages[0] = meta_page(0, ps, hwm, 1);
    pages[1] = meta_page(1, ps, hwm, 2);
    pages.concat()
}

fn flat(pairs: &[Pair]) -> Vec<(u32, Vec<u8>, Vec<u8>)> {
    pairs
        .iter()
        .map(|(k, v)| (0, k.clone(), v.clone()))
        .collect()
}

/// Writes leaves (and one branch above them if needed); returns the root id.
fn write_tree(pages: &mut Vec<Vec<u8>>, ps: usize, pairs: &[Pair]) -> u64 {
    let mut leaves: Vec<(Vec<u8>, u64)> = Vec::new();
    let mut group: Vec<(u32, Vec<u8>, Vec<u8>)> = Vec::new();
    let mut used = 16;
    let mut flush = |group: &mut Vec<(u32, Vec<u8>, Vec<u8>)>, pages: &mut Vec<Vec<u8>>| {
        if group.is_empty() {
            return;
        }
        let id = next_id(pages, ps);
        leaves.push((group[0].1.clone(), id));
        pages.push(leaf_page(id, group, ps));
        group.clear();
    };
    for (k, v) in pairs {
        let need = 16 + k.len() + v.len();
        if !group.is_empty() && used + need > ps {
            flush(&mut group, pages);
            used = 16;
        }
        used += need;
        group.push((0, k.clone(), v.clone()));
    }
    flush(&mut group, pages);
    if leaves.len() == 1 {
        return leaves[0].1;
    }
    let id = next_id(pages, ps);
    let mut p = header(id, BRANCH_PAGE, leaves.len() as u16, 0);
    let mut data: Vec<u8> = Vec::new();
    let table = 16 * leaves.len();
    for (i, (k, child)) in leaves.iter().enumerate() {
        let pos = (table - 16 * i + data.len()) as u32;
        p.extend(pos.to_le_bytes());
        p.extend((k.len() as u32).to_le_bytes());
        p.extend(child.to_le_bytes());
        data.extend(k);
    }
    p.extend(data);
    p.resize(p.len().div_ceil(ps) * ps, 0);
    pages.push(p);
    id
}

fn next_id(pages: &[Vec<u8>], ps: usize) -> u64 {
    pages
        .iter()
        .map(|p| p.len().div_ceil(ps).max(1))
        .sum::<usize>() as u64
}

fn header(id: u64, flags: u16, count: u16, overflow: u32) -> Vec<u8> {
    let mut h = id.to_le_bytes().to_vec();
    h.extend(flags.to_le_bytes());
    h.extend(count.to_le_bytes());
    h.extend(overflow.to_le_bytes());
    h
}

/// A leaf page padded to whole pages of `ps` bytes (`ps` 0: no padding, for
/// inline pages), elements then payloads, as bbolt writes them.
fn leaf_page(id: u64, elems: &[(u32, Vec<u8>, Vec<u8>)], ps: usize) -> Vec<u8> {
    let size: usize = 16
        + elems
            .iter()
            .map(|(_, k, v)| 16 + k.len() + v.len())
            .sum::<usize>();
    let overflow = if ps == 0 { 0 } else { size.div_ceil(ps) - 1 };
    let mut p = header(id, LEAF_PAGE, elems.len() as u16, overflow as u32);
    let mut data: Vec<u8> = Vec::new();
    for (i, (flags, k, v)) in elems.iter().enumerate() {
        let pos = (16 * (elems.len() - i) + data.len()) as u32;
        p.extend(flags.to_le_bytes());
        p.extend(pos.to_le_bytes());
        p.extend((k.len() as u32).to_le_bytes());
        p.extend((v.len() as u32).to_le_bytes());
        data.extend(k);
        data.extend(v);
    }
    p.extend(data);
    if ps != 0 {
        p.resize((overflow + 1) * ps, 0);
    }
    p
}

fn meta_page(id: u64, ps: usize, hwm: u64, txid: u64) -> Vec<u8> {
    let mut p = header(id, META_PAGE, 0, 0);
    let mut m = Vec::new();
    m.extend(MAGIC.to_le_bytes());
    m.extend(VERSION.to_le_bytes());
    m.extend((ps as u32).to_le_bytes());
    m.extend(0u32.to_le_bytes());
    m.extend(3u64.to_le_bytes()); // root bucket page
    m.extend(0u64.to_le_bytes());
    m.extend(2u64.to_le_bytes()); // freelist page
    m.extend(hwm.to_le_bytes());
    m.extend(txid.to_le_bytes());
    let sum = fnv64a(&m);
    m.extend(sum.to_le_bytes());
    p.extend(m);
    p.resize(ps, 0);
    p
}

/// A ConfigMap-shaped JSON document of about `size` bytes, as Kubernetes
/// stores one (name, namespace, uid, labels, annotations, and a `data` map
/// of config-file text). The same `(index, generation)` always gives the
/// same bytes; another generation changes the resourceVersion, a label and
/// some of the data, as an update would.
pub fn configmap_json(index: u64, generation: u64, size: usize) -> Vec<u8> {
    const WORDS: [&str; 32] = [
        "server", "listen", "timeout", "replicas", "enabled", "false", "true", "endpoint", "cache",
        "retry", "backoff", "level", "debug", "info", "metrics", "port", "host", "region", "zone",
        "feature", "limit", "memory", "cpu", "path", "secret", "token", "tls", "cert", "queue",
        "worker", "batch", "interval",
    ];
    // xorshift: deterministic, fast, no dependency.
    let mut x = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let ns = format!("team-{}", index % 97);
    let mut data = String::new();
    let mut file = 0;
    while data.len() < size.saturating_sub(600) {
        data.push_str(&format!("\"config-{file}.yaml\":\""));
        for line in 0..12 {
            let w = WORDS[(next() % 32) as usize];
            let v = next() % 10_000;
            // Updates rewrite one line in three.
            let v = if line % 3 == (generation % 3) as usize {
                v + generation
            } else {
                v
            };
            data.push_str(&format!(
                "{w}_{line}: {v} {}\\n",
                WORDS[(next() % 32) as usize]
            ));
        }
        data.push_str("\",");
        file += 1;
    }
    data.pop();
    format!(
        concat!(
            "{{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":{{\"name\":\"app-{i}-config\",",
            "\"namespace\":\"{ns}\",\"uid\":\"{u1:08x}-{u2:04x}-4{u3:03x}-a{u4:03x}-{u5:012x}\",",
            "\"resourceVersion\":\"{rv}\",\"creationTimestamp\":\"2026-01-{d:02}T10:{m:02}:00Z\",",
            "\"labels\":{{\"app\":\"app-{i}\",\"generation\":\"{g}\"}},",
            "\"annotations\":{{\"hokan.test/checksum\":\"{c:016x}\"}}}},\"data\":{{{data}}}}}"
        ),
        i = index,
        ns = ns,
        u1 = next() as u32,
        u2 = next() as u16,
        u3 = next() % 0xfff,
        u4 = next() % 0xfff,
        u5 = next() & 0xffff_ffff_ffff,
        rv = 1000 + index * 7 + generation,
        d = 1 + index % 28,
        m = index % 60,
        g = generation,
        c = next() ^ generation,
        data = data,
    )
    .into_bytes()
}
