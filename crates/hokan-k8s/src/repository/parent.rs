//! The parent snapshot's directories, read as a backup writes the same
//! ones, to count what is new, changed, unmodified and removed.
//!
//! Directories are written in list order, so consecutive lookups share
//! their upper directories: one tree per level is cached, and each of the
//! parent's directories is read about once.

use std::collections::BTreeMap;

use hokan_core::{Tree, TreeId};
use hokan_repo::Session;

use crate::Result;
use crate::layout::VERSIONS_DIR;

/// Reads directories of the parent snapshot; see the module documentation.
pub(crate) struct ParentTrees<'a, 's> {
    session: &'a Session<'s>,
    root: TreeId,
    /// The trees on the path to the last directory looked up: level `d`
    /// holds the directory named by the first `d` components.
    levels: Vec<(String, Tree)>,
}

impl<'a, 's> ParentTrees<'a, 's> {
    pub(crate) fn new(session: &'a Session<'s>, root: TreeId) -> Self {
        ParentTrees {
            session,
            root,
            levels: Vec::new(),
        }
    }

    /// The parent's directory at `dir` (`core/configmaps/shop`), if it has one.
    pub(crate) fn dir(&mut self, dir: &str) -> Result<Option<Tree>> {
        let parts: Vec<&str> = dir.split('/').collect();
        let mut id = self.root;
        for (depth, part) in parts.iter().enumerate() {
            let key = parts[..depth].join("/");
            if self.levels.get(depth).map(|(k, _)| k) != Some(&key) {
                let tree = self.session.read_tree(&id)?;
                self.levels.truncate(depth);
                self.levels.push((key, tree));
            }
            match self.levels[depth]
                .1
                .get(part.as_bytes())
                .and_then(|n| n.subtree)
            {
                Some(sub) => id = sub,
                None => return Ok(None),
            }
        }
        Ok(Some(self.session.read_tree(&id)?))
    }

    /// How many objects the parent holds in directories not in `written`
    /// (a namespace or a resource that is gone).
    pub(crate) fn entries_outside(&mut self, written: &BTreeMap<String, TreeId>) -> Result<u64> {
        let mut count = 0;
        self.walk(self.root, String::new(), 0, false, written, &mut count)?;
        Ok(count)
    }

    /// Object directories sit at depth 3 (`group/resource/scope`), or at
    /// depth 5 below `_versions/<version>/`.
    fn walk(
        &self,
        id: TreeId,
        path: String,
        depth: usize,
        in_versions: bool,
        written: &BTreeMap<String, TreeId>,
        count: &mut u64,
    ) -> Result<()> {
        let leaf_depth = if in_versions { 5 } else { 3 };
        if depth == leaf_depth {
            if !written.contains_key(&path) {
                *count += self.session.read_tree(&id)?.nodes.len() as u64;
            }
            return Ok(());
        }
        for node in self.session.read_tree(&id)?.nodes {
            let Some(sub) = node.subtree else { continue };
            let name = node.name_lossy().into_owned();
            let child = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}/{name}")
            };
            let versions = in_versions || (depth == 2 && name == VERSIONS_DIR);
            self.walk(sub, child, depth + 1, versions, written, count)?;
        }
        Ok(())
    }
}
