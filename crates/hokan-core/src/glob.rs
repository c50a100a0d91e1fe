//! Path patterns, one dialect for every command that takes them (backup
//! excludes, restore includes and excludes, `find`), as restic reads them:
//!
//! * `*` and `?` stay within one path component, `**` crosses them;
//! * a pattern starting with `/` matches the whole path from the root;
//! * any other pattern matches the trailing components at any depth, so
//!   `*.conf` matches a name anywhere and `etc/*.conf` a name in any `etc`;
//! * a trailing `/` is ignored; `\` escapes the next character.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};

/// Compiles patterns (see the module documentation) into one matcher,
/// case-sensitive; `None` for no patterns.
pub fn compile_patterns(patterns: &[String]) -> Result<Option<GlobSet>> {
    compile(patterns, false)
}

/// [`compile_patterns`], matching case-insensitively when asked.
pub fn compile(patterns: &[String], case_insensitive: bool) -> Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        let p = p.trim_end_matches('/');
        let anchored = if p.starts_with('/') {
            p.to_string()
        } else {
            format!("**/{p}")
        };
        let glob = GlobBuilder::new(&anchored)
            .literal_separator(true)
            .backslash_escape(true)
            .case_insensitive(case_insensitive)
            .build()
            .map_err(|e| Error::invalid("pattern", format!("{p:?}: {e}")))?;
        builder.add(glob);
    }
    Ok(Some(
        builder
            .build()
            .map_err(|e| Error::invalid("patterns", e.to_string()))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_dialect() {
        let m = |p: &str, ci: bool| compile(&[p.to_string()], ci).unwrap().unwrap();
        assert!(m("*.conf", false).is_match("/etc/nginx/nginx.conf"));
        assert!(!m("*.conf", false).is_match("/etc/nginx/nginx.CONF"));
        assert!(m("*.conf", true).is_match("/etc/nginx/nginx.CONF"));
        // `*` does not cross `/`, with or without case.
        assert!(!m("docs/*.MD", true).is_match("/src/docs/a/b.md"));
        assert!(m("docs/*.MD", true).is_match("/src/docs/b.md"));
        assert!(m("/etc/**", false).is_match("/etc/a/b"));
        assert!(!m("/etc/*", false).is_match("/usr/etc/a"));
        assert!(compile(&["a[".to_string()], false).is_err());
        assert!(compile(&[], true).unwrap().is_none());
    }
}
