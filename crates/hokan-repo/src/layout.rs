//! The store layout: which object lives under which name. Every path the
//! repository reads or writes is spelled here and nowhere else.
//!
//! ```text
//! config                     settings; its presence makes a repository
//! keys/<id>                  key files, each wrapping the master key
//! data/<id[..2]>/<id>        packs
//! index/<id>                 index files
//! snapshots/<id>             snapshots
//! locks/<id>                 locks, deletion markers, damage records
//! ```
//!
//! Objects are named by the BLAKE3 of their bytes in 64 hex characters
//! (packs: of the pack file; everything else: of the object).

use hokan_core::{Id, PackId};

use crate::object::Kind;

/// The config object's name.
pub const CONFIG: &str = "config";
/// The directory of packs.
pub const DATA: &str = "data";

/// The directory of objects of `kind` (`config` has none).
pub fn dir(kind: Kind) -> &'static str {
    match kind {
        Kind::Config => CONFIG,
        Kind::Key => "keys",
        Kind::Index => "index",
        Kind::Snapshot => "snapshots",
        Kind::Lock => "locks",
    }
}

/// Where an object of `kind` named `id` lives.
pub fn object(kind: Kind, id: &Id) -> String {
    match kind {
        Kind::Config => CONFIG.to_string(),
        _ => format!("{}/{}", dir(kind), id.to_hex()),
    }
}

/// Where a pack lives.
pub fn pack(id: &PackId) -> String {
    let hex = id.to_hex();
    format!("{DATA}/{}/{hex}", &hex[..2])
}

/// The pack a listing of [`DATA`] names (`ab/abcd…`), if it names one.
pub fn pack_of_listed(name: &str) -> Option<PackId> {
    Id::from_hex(name.rsplit('/').next()?).map(PackId)
}

/// Every directory a repository writes to, for checks that a location
/// holds a repository's data.
pub const DIRS: [&str; 5] = ["keys", DATA, "index", "snapshots", "locks"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let id = Id([0xab; 32]);
        assert_eq!(
            object(Kind::Snapshot, &id),
            format!("snapshots/{}", id.to_hex())
        );
        assert_eq!(object(Kind::Config, &id), "config");
        let p = pack(&PackId(id));
        assert!(p.starts_with("data/ab/abab"));
        assert_eq!(pack_of_listed(&p["data/".len()..]), Some(PackId(id)));
        assert_eq!(pack_of_listed("ab/not-an-id"), None);
    }
}
