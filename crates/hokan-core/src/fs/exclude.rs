//! What a backup leaves out, as restic decides it.
//!
//! * glob patterns (`--exclude`, `--exclude-file`): `*` and `?` stay within
//!   one path component, `**` crosses them; a pattern starting with `/`
//!   matches the absolute path from the root, any other pattern matches the
//!   trailing components at any depth (`*.o`, `target/debug`); a pattern
//!   that matches a directory excludes everything below it;
//! * `--exclude-caches`: directories holding a `CACHEDIR.TAG` with the
//!   standard signature (<https://bford.info/cachedir/>);
//! * `--exclude-if-present NAME`: directories holding a file `NAME`;
//! * `--one-file-system`: entries on another file system than the path
//!   given (mount points below it are left out entirely).

use std::io::Read;
use std::path::{Path, PathBuf};

use globset::GlobSet;

use crate::error::{Error, Result};
use crate::glob::compile_patterns;

/// The signature line a `CACHEDIR.TAG` starts with.
pub const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// Exclusion rules for a backup.
#[derive(Clone, Debug, Default)]
pub struct Excludes {
    globs: Option<GlobSet>,
    patterns: Vec<String>,
    caches: bool,
    if_present: Vec<String>,
    /// Stay on the file system of each path given.
    pub one_file_system: bool,
}

impl Excludes {
    /// No exclusions.
    pub fn none() -> Self {
        Self::default()
    }

    /// Rules from patterns, pattern files (one pattern per line; blank lines
    /// and lines starting with `#` are ignored), and the directory markers.
    pub fn new(
        patterns: &[String],
        pattern_files: &[PathBuf],
        caches: bool,
        if_present: &[String],
        one_file_system: bool,
    ) -> Result<Self> {
        let mut all: Vec<String> = patterns.to_vec();
        for f in pattern_files {
            let text = std::fs::read_to_string(f)
                .map_err(|e| Error::io_path("reading exclude file", f, e))?;
            all.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(String::from),
            );
        }
        let globs = compile_patterns(&all)?;
        Ok(Excludes {
            globs,
            patterns: all,
            caches,
            if_present: if_present.to_vec(),
            one_file_system,
        })
    }

    /// The patterns in effect.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether an absolute path matches an exclude pattern.
    pub fn excludes_path(&self, path: &Path) -> bool {
        self.globs.as_ref().is_some_and(|g| g.is_match(path))
    }

    /// Whether a directory is left out for the marker files it holds.
    pub fn excludes_dir(&self, dir: &Path) -> bool {
        if self
            .if_present
            .iter()
            .any(|name| dir.join(name).symlink_metadata().is_ok())
        {
            return true;
        }
        if self.caches {
            let mut head = [0u8; CACHEDIR_SIGNATURE.len()];
            if let Ok(mut f) = std::fs::File::open(dir.join("CACHEDIR.TAG"))
                && f.read_exact(&mut head).is_ok()
                && head == CACHEDIR_SIGNATURE
            {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_like_restic() {
        let ex = Excludes::new(
            &[
                "*.o".into(),
                "target/debug".into(),
                "/etc/shadow".into(),
                "cache/**/tmp".into(),
            ],
            &[],
            false,
            &[],
            false,
        )
        .unwrap();
        assert!(ex.excludes_path(Path::new("/src/a.o")));
        assert!(ex.excludes_path(Path::new("/src/deep/er/b.o")));
        assert!(!ex.excludes_path(Path::new("/src/a.o.txt")));
        assert!(ex.excludes_path(Path::new("/proj/target/debug")));
        assert!(!ex.excludes_path(Path::new("/proj/target/release")));
        assert!(ex.excludes_path(Path::new("/etc/shadow")));
        assert!(!ex.excludes_path(Path::new("/backup/etc/shadow")));
        assert!(ex.excludes_path(Path::new("/home/cache/x/y/tmp")));
        assert!(Excludes::new(&["[".into()], &[], false, &[], false).is_err());
    }

    #[test]
    fn markers() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("c1")).unwrap();
        std::fs::write(
            d.join("c1/CACHEDIR.TAG"),
            [CACHEDIR_SIGNATURE, b"\n# a cache"].concat(),
        )
        .unwrap();
        std::fs::create_dir_all(d.join("c2")).unwrap();
        std::fs::write(d.join("c2/CACHEDIR.TAG"), b"not the signature").unwrap();
        std::fs::create_dir_all(d.join("n")).unwrap();
        std::fs::write(d.join("n/.nobackup"), b"").unwrap();
        let ex = Excludes::new(&[], &[], true, &[".nobackup".into()], false).unwrap();
        assert!(ex.excludes_dir(&d.join("c1")));
        assert!(!ex.excludes_dir(&d.join("c2")));
        assert!(ex.excludes_dir(&d.join("n")));
        assert!(!Excludes::none().excludes_dir(&d.join("c1")));
        let f = d.join("patterns");
        std::fs::write(&f, "# comment\n\n*.tmp\n").unwrap();
        let ex = Excludes::new(&[], &[f], false, &[], false).unwrap();
        assert!(ex.excludes_path(Path::new("/x/y.tmp")));
    }
}
