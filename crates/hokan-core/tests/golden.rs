//! Golden tests: the bytes hokan writes must not change by accident.
//!
//! A change that alters chunk boundaries or ids breaks dedup against every
//! existing repository; a change to the pack encoding makes old packs
//! unreadable. If a change is deliberate, bump the format version in
//! `docs/FORMAT.md`, keep reading the old files in `tests/golden/`, and
//! regenerate new ones with `HOKAN_BLESS=1 cargo test -p hokan-core --test golden`.

use std::path::PathBuf;

use hokan_core::blob::EncodedGroup;
use hokan_core::compress::CODEC_RAW;
use hokan_core::crypto::{blob_aad, group_aad};
use hokan_core::sample::{Kind, generate, golden_key};
use hokan_core::{
    Attr, AttrValue, BlobType, ChunkId, ChunkRef, Chunker, ChunkerParams, EncodedBlob,
    FormatVersion, Id, Node, NodeKind, PackId, PackReader, PackWriter, Timestamp, Tree, TreeId,
    Xattr,
};

#[test]
fn defaults_are_pinned() {
    // Changing the default is allowed (existing repositories keep theirs),
    // but it must be a decision: update this line and docs/DECISIONS.md.
    assert_eq!(ChunkerParams::default(), default_v1());
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Compares with the committed file, or writes it when blessing.
fn check_golden(name: &str, actual: &[u8]) {
    let path = golden_path(name);
    if std::env::var_os("HOKAN_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (bless with HOKAN_BLESS=1)", path.display()));
    if expected != actual {
        let (e, a) = (
            String::from_utf8_lossy(&expected),
            String::from_utf8_lossy(actual),
        );
        let first = e
            .lines()
            .zip(a.lines())
            .position(|(x, y)| x != y)
            .unwrap_or(0);
        panic!(
            "{name} changed (first differing line {}):\n  expected: {}\n  actual:   {}\n\
             This breaks compatibility with existing repositories; see the comment atop golden.rs",
            first + 1,
            e.lines().nth(first).unwrap_or(""),
            a.lines().nth(first).unwrap_or("")
        );
    }
}

/// restic's sizes, hokan's defaults when this file was written, and small
/// sizes for many boundaries: explicit, because a repository stores its
/// sizes and must cut the same way whatever the defaults become.
fn restic_like() -> ChunkerParams {
    ChunkerParams::new(512 << 10, 1 << 20, 8 << 20).unwrap()
}

fn default_v1() -> ChunkerParams {
    ChunkerParams::new(256 << 10, 512 << 10, 4 << 20).unwrap()
}

fn small() -> ChunkerParams {
    ChunkerParams::new(16 << 10, 64 << 10, 256 << 10).unwrap()
}

#[test]
fn chunk_boundaries_and_ids() {
    let key = golden_key();
    let mut out = String::new();
    out.push_str(&format!("chunker-seed {}\n", key.chunker_seed()));
    out.push_str(&format!("chunk-id(\"\") {}\n", key.chunk_id(b"")));
    out.push_str(&format!("tree-id(\"\") {}\n", key.tree_id(b"")));
    out.push_str(&format!("chunk-id(\"hokan\") {}\n", key.chunk_id(b"hokan")));
    let cases = [
        (Kind::Random, 12 << 20, 1, restic_like()),
        (Kind::Text, 6 << 20, 2, restic_like()),
        (Kind::Zeros, 20 << 20, 3, restic_like()),
        (Kind::Random, 8 << 20, 6, default_v1()),
        (Kind::Text, 4 << 20, 7, default_v1()),
        (Kind::Random, 2 << 20, 4, small()),
        (Kind::Text, 2 << 20, 5, small()),
    ];
    for (kind, len, seed, params) in cases {
        let data = generate(kind, len, seed);
        let chunker = Chunker::new(params, key.chunker_seed()).unwrap();
        out.push_str(&format!(
            "input {} len={len} seed={seed} min={} avg={} max={}\n",
            kind.name(),
            params.min,
            params.avg,
            params.max
        ));
        for r in chunker.chunks(&data) {
            out.push_str(&format!(
                "{} {} {}\n",
                r.start,
                r.len(),
                key.chunk_id(&data[r.clone()])
            ));
        }
    }
    check_golden("chunks-v1.txt", out.as_bytes());
}

/// A pack built by hand from the specification in docs/FORMAT.md, with
/// fixed nonces, must match the committed bytes exactly, and so must the
/// pack the library writes from the same blobs.
#[test]
fn pack_encoding_is_pinned() {
    let key = golden_key();
    let cipher = key.cipher();
    let mut w = PackWriter::with_version(BlobType::Data, 0, 1);
    for (i, data) in [&b"first blob"[..], b"", b"third blob, a little longer"]
        .iter()
        .enumerate()
    {
        let id = key.chunk_id(data);
        let mut payload = vec![CODEC_RAW];
        payload.extend_from_slice(data);
        let mut sealed = Vec::new();
        cipher.seal_into_with_nonce(
            &mut sealed,
            &[i as u8 + 1; 24],
            &blob_aad(BlobType::Data, &id.0),
            &payload,
        );
        w.add(&EncodedBlob {
            kind: BlobType::Data,
            id: id.0,
            raw_len: data.len() as u32,
            sealed,
        })
        .unwrap();
    }
    let pack = w.finish_with_nonce(&key, &[0xAA; 24]);
    assert_eq!(&pack.bytes[..8], b"HKPACK\x01\x00");
    assert_eq!(&pack.bytes[pack.bytes.len() - 4..], b"HKPT");
    // Header: 4 + 3 × 41 plaintext bytes, sealed: + 40.
    let header_len =
        u32::from_le_bytes(pack.bytes[pack.bytes.len() - 8..][..4].try_into().unwrap());
    assert_eq!(header_len, 4 + 3 * 41 + 40);
    assert_eq!(pack.blobs[0].offset, 8);
    assert_eq!(pack.blobs[1].offset, 8 + 10 + 1 + 40);
    check_golden("pack-v1.bin", &pack.bytes);
    check_golden("pack-v1.id", format!("{}\n", pack.id).as_bytes());
    assert_eq!(PackId::of(&pack.bytes), pack.id);
}

/// Packs written by an earlier build (random nonces, zstd) stay readable.
#[test]
fn committed_packs_stay_readable() {
    let key = golden_key();
    let text = generate(Kind::Text, 300_000, 9);
    let random = generate(Kind::Random, 70_000, 10);
    if std::env::var_os("HOKAN_BLESS").is_some() && !golden_path("pack-v1-zstd.bin").exists() {
        let mut w = PackWriter::with_version(BlobType::Data, 0, 1);
        for d in [&text[..], &random[..]] {
            let b =
                hokan_core::blob::encode_new(&key, BlobType::Data, d, Default::default()).unwrap();
            w.add(&b).unwrap();
        }
        let p = w.finish(&key).unwrap();
        check_golden("pack-v1-zstd.bin", &p.bytes);
    }
    let bytes = std::fs::read(golden_path("pack-v1-zstd.bin")).unwrap();
    let reader = PackReader::open(&bytes, Some(&PackId::of(&bytes)), &key).unwrap();
    let blobs = reader.blobs().to_vec();
    assert_eq!(blobs.len(), 2);
    assert_eq!(reader.read(&key, &blobs[0]).unwrap(), text);
    assert_eq!(reader.read(&key, &blobs[1]).unwrap(), random);
    // The text blob was compressed, the random one stored raw.
    assert!(blobs[0].length < 150_000, "{}", blobs[0].length);
    assert_eq!(blobs[1].length as usize, random.len() + 1 + 40);
}

/// A version-2 pack built by hand from docs/FORMAT.md §6: one blob sealed
/// alone, then a group of two small blobs, with fixed nonces.
#[test]
fn pack_v2_encoding_is_pinned() {
    let key = golden_key();
    let cipher = key.cipher();
    let mut w = PackWriter::with_version(BlobType::Data, 0, 2);
    let alone = b"a blob sealed alone";
    let id = key.chunk_id(alone).0;
    let mut payload = vec![CODEC_RAW];
    payload.extend_from_slice(alone);
    let mut sealed = Vec::new();
    cipher.seal_into_with_nonce(
        &mut sealed,
        &[1; 24],
        &blob_aad(BlobType::Data, &id),
        &payload,
    );
    w.add(&EncodedBlob {
        kind: BlobType::Data,
        id,
        raw_len: alone.len() as u32,
        sealed,
    })
    .unwrap();
    // A group: count (u16) || (id[..8] || length (u32)) per member || data.
    let members: [&[u8]; 2] = [b"small one", b"small two, a bit longer"];
    let ids: Vec<Id> = members.iter().map(|m| key.chunk_id(m).0).collect();
    let mut plain = vec![CODEC_RAW, 2, 0];
    for (id, m) in ids.iter().zip(members) {
        plain.extend_from_slice(&id.as_bytes()[..8]);
        plain.extend_from_slice(&(m.len() as u32).to_le_bytes());
    }
    for m in members {
        plain.extend_from_slice(m);
    }
    let mut sealed = Vec::new();
    cipher.seal_into_with_nonce(&mut sealed, &[2; 24], &group_aad(BlobType::Data), &plain);
    let group_len = sealed.len() as u32;
    w.add_group(&EncodedGroup {
        kind: BlobType::Data,
        members: ids
            .iter()
            .zip(members)
            .map(|(i, m)| (*i, m.len() as u32))
            .collect(),
        sealed,
    })
    .unwrap();
    let pack = w.finish_with_nonce(&key, &[0xBB; 24]);
    assert_eq!(&pack.bytes[..8], b"HKPACK\x02\x00");
    // Header: records (4) + 2 records × 7 + 3 members × 36, sealed: + 40.
    let header_len =
        u32::from_le_bytes(pack.bytes[pack.bytes.len() - 8..][..4].try_into().unwrap());
    assert_eq!(header_len, 4 + 2 * 7 + 3 * 36 + 40);
    let second = 8 + alone.len() as u32 + 1 + 40;
    assert_eq!(pack.blobs[1].offset, second);
    assert_eq!(
        (pack.blobs[2].offset, pack.blobs[2].length),
        (second, group_len)
    );
    check_golden("pack-v2.bin", &pack.bytes);
    check_golden("pack-v2.id", format!("{}\n", pack.id).as_bytes());
    let bytes = std::fs::read(golden_path("pack-v2.bin")).unwrap();
    let r = PackReader::open(&bytes, Some(&PackId::of(&bytes)), &key).unwrap();
    assert_eq!(r.read(&key, &r.blobs()[0]).unwrap(), alone);
    assert_eq!(r.read(&key, &r.blobs()[1]).unwrap(), members[0]);
    assert_eq!(r.read(&key, &r.blobs()[2]).unwrap(), members[1]);
}

/// The version-2 tree encoding: object nodes, every kind of typed
/// attribute, and holes.
#[test]
fn tree_v2_encoding_is_pinned() {
    let attrs = vec![
        Attr {
            key: "apiVersion".into(),
            value: AttrValue::Str("v1".into()),
        },
        Attr {
            key: "generation".into(),
            value: AttrValue::Int(-7),
        },
        Attr {
            key: "encrypted".into(),
            value: AttrValue::Bool(true),
        },
        Attr {
            key: "key".into(),
            value: AttrValue::Bytes(vec![0, 0xff]),
        },
        Attr {
            key: "created".into(),
            value: AttrValue::Time(Timestamp {
                secs: 1_700_000_000,
                nanos: 5,
            }),
        },
    ];
    let object = Node::object(
        "web.json",
        vec![ChunkRef {
            id: ChunkId(Id([5; 32])),
            len: 42,
        }],
        attrs,
    );
    let mut sparse = Node::new("disk.img", NodeKind::File);
    sparse.mode = 0o600;
    sparse.content = vec![
        ChunkRef {
            id: ChunkId(Id([6; 32])),
            len: 4096,
        },
        ChunkRef::hole(1 << 30),
    ];
    sparse.size = 4096 + (1 << 30);
    let mut ns = Node::dir("ns1", TreeId(Id([7; 32])));
    ns.set_attrs(vec![Attr {
        key: "uid-range".into(),
        value: AttrValue::Str("1000/10000".into()),
    }]);
    let tree = Tree::new(vec![object, sparse, ns]).unwrap();
    assert!(tree.encode(FormatVersion::V1).is_err());
    let bytes = tree.encode(FormatVersion::V2).unwrap();
    assert_eq!(bytes[0], 2);
    pin_tree("tree-v2", &bytes, &tree);
}

/// Pins tree blob `bytes` (the encoding of `tree`) as `<name>.bin`, and its
/// id under the golden key as `<name>.id`; the committed file must decode
/// to `tree`. Returns the committed bytes.
fn pin_tree(name: &str, bytes: &[u8], tree: &Tree) -> Vec<u8> {
    let key = golden_key();
    check_golden(&format!("{name}.bin"), bytes);
    check_golden(
        &format!("{name}.id"),
        format!("{}\n", key.tree_id(bytes)).as_bytes(),
    );
    let committed = std::fs::read(golden_path(&format!("{name}.bin"))).unwrap();
    assert_eq!(
        &Tree::decode(&committed, &key.tree_id(&committed)).unwrap(),
        tree
    );
    committed
}

/// A version-3 tree (format 2 writes it when small subtrees are carried)
/// is pinned byte for byte: the carried trees' framing, then the tree as
/// version 2 encodes it.
#[test]
fn tree_v3_encoding_is_pinned() {
    let key = golden_key();
    let mut file = Node::new("django.po", NodeKind::File);
    file.mode = 0o644;
    file.size = 3;
    file.mtime = Timestamp {
        secs: 1_700_000_000,
        nanos: 0,
    };
    file.content = vec![ChunkRef {
        id: ChunkId(Id([0x11; 32])),
        len: 3,
    }];
    let leaf = Tree::new(vec![file])
        .unwrap()
        .encode(FormatVersion::V2)
        .unwrap();
    let empty = Tree::default().encode(FormatVersion::V2).unwrap();
    let mut messages = Node::new("LC_MESSAGES", NodeKind::Dir);
    messages.mode = 0o755;
    messages.subtree = Some(key.tree_id(&leaf));
    let mut none = Node::new("empty", NodeKind::Dir);
    none.subtree = Some(key.tree_id(&empty));
    let tree = Tree::new(vec![messages, none]).unwrap();
    let bytes = tree
        .encode_carrying(FormatVersion::V2, &[&leaf, &empty])
        .unwrap();
    let committed = pin_tree("tree-v3", &bytes, &tree);
    assert_eq!(
        hokan_core::tree::carried_trees(&committed, &key.tree_id(&committed)).unwrap(),
        vec![&leaf[..], &empty[..]]
    );
}

/// The tree encoding of a node with every field set is pinned byte for
/// byte: trees that encode differently no longer dedup against old ones.
/// Version-1 repositories keep writing this encoding.
#[test]
fn tree_encoding_is_pinned() {
    let mut file = Node::new(&b"r\xc3\xa9sum\xc3\xa9.txt"[..], NodeKind::File);
    file.mode = 0o4755;
    file.uid = 1000;
    file.gid = 100;
    file.user = "alice".into();
    file.group = "users".into();
    file.mtime = Timestamp {
        secs: 1_700_000_000,
        nanos: 123_456_789,
    };
    file.atime = Timestamp { secs: -5, nanos: 1 };
    file.ctime = Timestamp {
        secs: 1_700_000_001,
        nanos: 0,
    };
    file.size = 300;
    file.device = 2049;
    file.inode = 1 << 40;
    file.links = 2;
    file.xattrs = vec![Xattr {
        name: b"user.a".to_vec(),
        value: vec![0, 255],
    }];
    file.content = vec![
        ChunkRef {
            id: ChunkId(Id([1; 32])),
            len: 100,
        },
        ChunkRef {
            id: ChunkId(Id([2; 32])),
            len: 200,
        },
    ];
    let mut dir = Node::new("d", NodeKind::Dir);
    dir.subtree = Some(TreeId(Id([3; 32])));
    let mut link = Node::new("l", NodeKind::Symlink);
    link.target = b"../target".to_vec();
    let mut dev = Node::new("null", NodeKind::CharDevice);
    dev.rdev = 0x103;
    let nodes = vec![
        file,
        dir,
        link,
        dev,
        Node::new("p", NodeKind::Fifo),
        Node::new("s", NodeKind::Socket),
        Node::new("b", NodeKind::BlockDevice),
    ];
    let tree = Tree::new(nodes).unwrap();
    let bytes = tree.encode(FormatVersion::V1).unwrap();
    check_golden("tree-v1.bin", &bytes);
    let key = golden_key();
    check_golden(
        "tree-v1.id",
        format!("{}\n", key.tree_id(&bytes)).as_bytes(),
    );
    assert_eq!(Tree::decode(&bytes, &key.tree_id(&bytes)).unwrap(), tree);
    // The same POSIX nodes in version 2: the v1 fields, then no attributes.
    let v2 = tree.encode(FormatVersion::V2).unwrap();
    assert_eq!(v2.len(), bytes.len() + tree.nodes.len());
    assert_eq!(Tree::decode(&v2, &key.tree_id(&v2)).unwrap(), tree);
}
