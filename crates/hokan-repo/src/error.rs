//! The repository crate's one public error type.

/// What can go wrong with a repository. Every variant says what happened
/// and what to do; none of them leaves anything half-written behind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No repository at this location.
    #[error(
        "no hokan repository at {location}: {reason}; create one with `hokan -r {location} init`"
    )]
    NotARepository {
        /// Where we looked.
        location: String,
        /// What was (not) found.
        reason: String,
    },

    /// `init` on a location that already holds a repository.
    #[error("a repository already exists at {location}; nothing was changed")]
    AlreadyExists {
        /// The location.
        location: String,
    },

    /// No key file opens with the password.
    #[error(
        "wrong password: none of the {keys} key file(s) of the repository at {location} opens with it"
    )]
    WrongPassword {
        /// The location.
        location: String,
        /// How many key files were tried.
        keys: usize,
    },

    /// An object of a format newer than this build understands.
    #[error(
        "{what} uses format version {found}, but this build reads versions up to {supported}; \
         upgrade hokan to use this repository"
    )]
    NewerVersion {
        /// The object.
        what: String,
        /// Its version.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },

    /// An object is damaged.
    #[error("corrupted {what}: {reason}; run `hokan check` to find every damaged object")]
    Corrupted {
        /// The object.
        what: String,
        /// How the damage showed.
        reason: String,
    },

    /// An object the repository refers to is gone.
    #[error(
        "{what} is missing from the repository; run `hokan check`, and `hokan repair index` if packs were lost"
    )]
    Missing {
        /// The object.
        what: String,
    },

    /// The store did not answer, even after retries.
    #[error(
        "storage at {location} is unreachable ({detail}); check that it is running and reachable, then retry"
    )]
    Unreachable {
        /// The store.
        location: String,
        /// The last error.
        detail: String,
    },

    /// The store refused the credentials or the operation.
    #[error(
        "storage at {location} denied access ({detail}); check the credentials and the bucket's permissions"
    )]
    Denied {
        /// The store.
        location: String,
        /// The store's answer.
        detail: String,
    },

    /// Any other permanent storage failure.
    #[error("storage error at {location}: {detail}")]
    Storage {
        /// The store.
        location: String,
        /// The store's answer.
        detail: String,
    },

    /// A location string that names no store hokan knows.
    #[error("invalid repository location {location:?}: {reason}")]
    InvalidLocation {
        /// The string given.
        location: String,
        /// Why it was refused.
        reason: String,
    },

    /// No snapshot matches a query.
    #[error("no snapshot matches {query:?}; list them with `hokan snapshots`")]
    SnapshotNotFound {
        /// What was asked for.
        query: String,
    },

    /// A snapshot id prefix matches more than one snapshot.
    #[error("snapshot id prefix {prefix:?} matches {count} snapshots; give more characters")]
    AmbiguousSnapshot {
        /// The prefix.
        prefix: String,
        /// How many matched.
        count: usize,
    },

    /// A key operation that would lock everyone out, or names no key.
    #[error("{0}")]
    Key(String),

    /// Another prune holds the repository's prune lock.
    #[error("{0}")]
    Locked(String),

    /// A setting is out of range; nothing was written.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// The setting.
        what: &'static str,
        /// Why.
        reason: String,
    },

    /// Local I/O (the cache, a temporary file) failed.
    #[error("{context}: {source}")]
    Io {
        /// What hokan was doing.
        context: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },

    /// An error from the data path.
    #[error(transparent)]
    Core(#[from] hokan_core::Error),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True where retrying later may help (the store was unreachable).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unreachable { .. })
    }

    pub(crate) fn corrupted(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Corrupted {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<Error> for hokan_core::Error {
    /// Storage errors cross the core's [`PackSource`](hokan_core::PackSource)
    /// and [`PackSink`](hokan_core::PackSink) traits boxed; corruption the
    /// core itself detects stays a core error.
    fn from(e: Error) -> Self {
        match e {
            Error::Core(c) => c,
            other => hokan_core::Error::Storage(Box::new(other)),
        }
    }
}

/// Turns a core error that carries a boxed repository error back into it.
pub(crate) fn from_core(e: hokan_core::Error) -> Error {
    match e {
        hokan_core::Error::Storage(boxed) => match boxed.downcast::<Error>() {
            Ok(repo) => *repo,
            Err(other) => Error::Core(hokan_core::Error::Storage(other)),
        },
        other => Error::Core(other),
    }
}
