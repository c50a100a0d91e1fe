//! Tree blob plaintexts of every version (1, 2, and 3 carrying small
//! subtrees): no input panics; a decoded tree holds what `Tree::new`
//! promises (names a directory can hold, sorted and unique, attributes
//! sorted), so no reader meets a tree no writer could make; and it encodes
//! and decodes to itself in every version that can hold it, carried trees
//! included.
#![no_main]

use hokan_core::tree::carried_trees;
use hokan_core::{FormatVersion, Id, Tree, TreeId};
use libfuzzer_sys::fuzz_target;

use hokan_fuzz as _;

const ID: TreeId = TreeId(Id([7; 32]));

fuzz_target!(|bytes: &[u8]| {
    let carried = carried_trees(bytes, &ID);
    let Ok(tree) = Tree::decode(bytes, &ID) else {
        return;
    };
    assert_eq!(Tree::new(tree.nodes.clone()).ok().as_ref(), Some(&tree));
    for format in [FormatVersion::V1, FormatVersion::V2] {
        if let Ok(enc) = tree.encode(format) {
            assert_eq!(Tree::decode(&enc, &ID).unwrap(), tree);
        }
    }
    let carried = carried.unwrap_or_default();
    let enc = tree.encode_carrying(FormatVersion::V2, &carried).unwrap();
    assert_eq!(Tree::decode(&enc, &ID).unwrap(), tree);
    assert_eq!(carried_trees(&enc, &ID).unwrap(), carried);
});
