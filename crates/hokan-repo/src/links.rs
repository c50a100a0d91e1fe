//! Snapshots linked to another: stored by the same run, meaningless
//! without it, and forgotten with it.
//!
//! An etcd backup stores the control plane's static pod resources (the
//! encryption keys among them) as a file-system snapshot of their own and
//! links it from the etcd snapshot; restoring the one needs the other. A
//! link is two labels on the snapshot that links, so any source can make
//! one and every reader sees it without a format change:
//!
//! | label                      | value                                              |
//! |----------------------------|----------------------------------------------------|
//! | `link:<name>`              | the linked snapshot's id (64 hex digits)           |
//! | `link-repository:<name>`   | the repository holding it, when it is another one  |
//!
//! Every forget ([`Repository::forget`](crate::Repository::forget),
//! [`forget_after_backup`](crate::Repository::forget_after_backup),
//! [`forget_snapshots`](crate::Repository::forget_snapshots)) follows
//! links in the same repository: a linked snapshot lives exactly as long
//! as a snapshot linking to it does. A link into another repository is
//! reported ([`LinkFate::Elsewhere`]), not followed: this repository
//! cannot open that one.

use hokan_core::Id;

use crate::snapshot::Snapshot;

/// Label prefix of a link: `link:<name>` = the linked snapshot's id.
pub const LINK_LABEL_PREFIX: &str = "link:";
/// Label prefix of a link's repository, when it is another one:
/// `link-repository:<name>` = its location.
pub const LINK_REPOSITORY_LABEL_PREFIX: &str = "link-repository:";

/// A link from one snapshot to another that belongs to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// What the linked snapshot is to the one linking (`static-pods`).
    pub name: String,
    /// The linked snapshot's id, as recorded (hex).
    pub snapshot: String,
    /// The location of the repository holding it, when it is another one.
    pub repository: Option<String>,
}

impl Link {
    /// A link to `snapshot` in the same repository.
    pub fn new(name: &str, snapshot: &Id) -> Self {
        Link {
            name: name.to_string(),
            snapshot: snapshot.to_hex(),
            repository: None,
        }
    }

    /// The labels that record this link on the snapshot linking.
    pub fn labels(&self) -> Vec<(String, String)> {
        let mut out = vec![(
            format!("{LINK_LABEL_PREFIX}{}", self.name),
            self.snapshot.clone(),
        )];
        if let Some(r) = &self.repository {
            out.push((
                format!("{LINK_REPOSITORY_LABEL_PREFIX}{}", self.name),
                r.clone(),
            ));
        }
        out
    }

    /// The linked snapshot's id, if the label holds one.
    pub fn id(&self) -> Option<Id> {
        Id::from_hex(&self.snapshot)
    }
}

impl Snapshot {
    /// The snapshots this one links to, by name.
    pub fn links(&self) -> Vec<Link> {
        self.labels
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix(LINK_LABEL_PREFIX)?;
                Some(Link {
                    name: name.to_string(),
                    snapshot: v.clone(),
                    repository: self
                        .label(&format!("{LINK_REPOSITORY_LABEL_PREFIX}{name}"))
                        .map(str::to_string),
                })
            })
            .collect()
    }

    /// The link called `name`, if this snapshot has one.
    pub fn link(&self, name: &str) -> Option<Link> {
        self.links().into_iter().find(|l| l.name == name)
    }
}

/// What became of a linked snapshot when the snapshot linking to it was
/// forgotten.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkFate {
    /// Forgotten with it (in a dry run: would be).
    Forgotten,
    /// Forgotten, but in an immutable repository the object lock keeps its
    /// file until then (Unix seconds; `None`: the store refused the delete).
    KeptByLock(Option<i64>),
    /// Kept: this snapshot, which stays, links to it too.
    Kept {
        /// The snapshot that keeps it.
        by: Id,
    },
    /// Not in the repository (forgotten before).
    Missing,
    /// In another repository ([`Link::repository`]), which this forget
    /// does not open: forget it there.
    Elsewhere,
}

/// A link of a forgotten snapshot, and what became of its snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Linked {
    /// The link.
    pub link: Link,
    /// What became of the linked snapshot.
    pub fate: LinkFate,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::SourceKind;
    use hokan_core::TreeId;

    #[test]
    fn links_round_trip_through_labels() {
        let id = Id([7; 32]);
        let mut s = Snapshot::new(SourceKind::ETCD, vec![], TreeId::default());
        let here = Link::new("static-pods", &id);
        let there = Link {
            repository: Some("s3:keys".into()),
            ..Link::new("keys", &id)
        };
        s.labels = [
            here.labels(),
            there.labels(),
            vec![("x".into(), "y".into())],
        ]
        .concat();
        assert_eq!(s.links(), [here.clone(), there]);
        assert_eq!(s.link("static-pods"), Some(here.clone()));
        assert_eq!(here.id(), Some(id));
        assert_eq!(s.link("other"), None);
    }
}
