//! Repository locations: the strings users give (`/srv/backup`,
//! `s3://bucket/prefix`, ...) and what they name.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// A parsed repository location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A directory on this machine.
    Local(PathBuf),
    /// An S3 bucket, with an explicit endpoint when given in the location.
    S3 {
        /// `http(s)://host:port`, or `None` for the environment's or AWS's.
        endpoint: Option<String>,
        /// The bucket.
        bucket: String,
        /// Key prefix inside the bucket, without leading or trailing `/`.
        prefix: String,
    },
    /// A Google Cloud Storage bucket.
    Gcs {
        /// The bucket.
        bucket: String,
        /// Key prefix.
        prefix: String,
    },
    /// An Azure Blob Storage container.
    Azure {
        /// The container.
        container: String,
        /// Key prefix.
        prefix: String,
    },
    /// An in-process store, shared by name within the process.
    Memory(String),
}

impl Location {
    /// Parses a location string (see the module documentation).
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidLocation {
            location: s.to_string(),
            reason: reason.to_string(),
        };
        let bucket_and_prefix = |rest: &str| -> Result<(String, String)> {
            let rest = rest.trim_matches('/');
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket name"));
            }
            Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
        };
        if s.is_empty() {
            return Err(bad(
                "empty; give a directory or a URL such as s3://bucket/prefix",
            ));
        }
        if let Some(rest) = s.strip_prefix("memory://") {
            return Ok(Location::Memory(rest.to_string()));
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = bucket_and_prefix(rest)?;
            return Ok(Location::S3 {
                endpoint: None,
                bucket,
                prefix,
            });
        }
        if let Some(url) = s.strip_prefix("s3:") {
            // restic's form: s3:http://host:port/bucket/prefix
            let (scheme, rest) = url.split_once("://").ok_or_else(|| {
                bad("expected s3://bucket/prefix or s3:http(s)://host:port/bucket/prefix")
            })?;
            if scheme != "http" && scheme != "https" {
                return Err(bad("the endpoint must be http:// or https://"));
            }
            let (host, path) = rest
                .split_once('/')
                .ok_or_else(|| bad("no bucket after the endpoint"))?;
            let (bucket, prefix) = bucket_and_prefix(path)?;
            return Ok(Location::S3 {
                endpoint: Some(format!("{scheme}://{host}")),
                bucket,
                prefix,
            });
        }
        if let Some(rest) = s.strip_prefix("gs://") {
            let (bucket, prefix) = bucket_and_prefix(rest)?;
            return Ok(Location::Gcs { bucket, prefix });
        }
        if let Some(rest) = s.strip_prefix("az://") {
            let (container, prefix) = bucket_and_prefix(rest)?;
            return Ok(Location::Azure { container, prefix });
        }
        if let Some(path) = s.strip_prefix("file://") {
            if path.is_empty() {
                return Err(bad("no path after file://"));
            }
            return Ok(Location::Local(PathBuf::from(path)));
        }
        if s.contains("://") {
            return Err(bad(
                "unknown scheme; use a path, s3://, gs://, az:// or memory://",
            ));
        }
        Ok(Location::Local(PathBuf::from(s)))
    }

    /// True for a directory on this machine.
    pub fn is_local(&self) -> bool {
        matches!(self, Location::Local(_))
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let join = |a: &str, p: &str| {
            if p.is_empty() {
                a.to_string()
            } else {
                format!("{a}/{p}")
            }
        };
        match self {
            // A directory whose name would read as a URL keeps its scheme,
            // so the printed location names the same directory again.
            Location::Local(p) => {
                let shown = p.display().to_string();
                if shown.contains("://") || shown.starts_with("s3:") {
                    write!(f, "file://{shown}")
                } else {
                    write!(f, "{shown}")
                }
            }
            Location::S3 {
                endpoint: Some(e),
                bucket,
                prefix,
            } => write!(f, "s3:{e}/{}", join(bucket, prefix)),
            Location::S3 { bucket, prefix, .. } => write!(f, "s3://{}", join(bucket, prefix)),
            Location::Gcs { bucket, prefix } => write!(f, "gs://{}", join(bucket, prefix)),
            Location::Azure { container, prefix } => write!(f, "az://{}", join(container, prefix)),
            Location::Memory(n) => write!(f, "memory://{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_locations() {
        assert_eq!(
            Location::parse("/tmp/r").unwrap(),
            Location::Local("/tmp/r".into())
        );
        assert_eq!(
            Location::parse("file:///tmp/r").unwrap(),
            Location::Local("/tmp/r".into())
        );
        assert_eq!(
            Location::parse("s3://b/some/prefix/").unwrap(),
            Location::S3 {
                endpoint: None,
                bucket: "b".into(),
                prefix: "some/prefix".into()
            }
        );
        let restic_style = Location::parse("s3:http://127.0.0.1:3900/bucket/p").unwrap();
        assert_eq!(
            restic_style,
            Location::S3 {
                endpoint: Some("http://127.0.0.1:3900".into()),
                bucket: "bucket".into(),
                prefix: "p".into()
            }
        );
        assert_eq!(
            restic_style.to_string(),
            "s3:http://127.0.0.1:3900/bucket/p"
        );
        assert_eq!(
            Location::parse("gs://g").unwrap(),
            Location::Gcs {
                bucket: "g".into(),
                prefix: "".into()
            }
        );
        assert_eq!(
            Location::parse("az://c/x").unwrap(),
            Location::Azure {
                container: "c".into(),
                prefix: "x".into()
            }
        );
        assert_eq!(
            Location::parse("memory://t").unwrap(),
            Location::Memory("t".into())
        );
        for bad in ["", "ftp://x", "s3://", "s3:ftp://h/b", "s3:http://host"] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
    }

    /// A location prints as a string that parses back to it (found by the
    /// `location_parse` fuzz target): `file://` alone named the empty
    /// path, printed as "", and a local directory whose name reads as a
    /// URL printed as that URL.
    #[test]
    fn locations_print_as_they_parse() {
        assert!(Location::parse("file://").is_err());
        for s in [
            "/srv/r",
            "file://s3://bucket/p",
            "file://memory://x",
            "file://gs://b",
            "file://s3:http://h/b",
            "s3://b/p",
            "s3:http://127.0.0.1:3900/b/p",
            "gs://g",
            "az://c/x",
            "memory://t",
            "memory://",
        ] {
            let loc = Location::parse(s).unwrap();
            assert_eq!(Location::parse(&loc.to_string()).unwrap(), loc, "{s}");
        }
        assert_eq!(
            Location::parse("file://s3://bucket/p").unwrap().to_string(),
            "file://s3://bucket/p"
        );
    }
}
