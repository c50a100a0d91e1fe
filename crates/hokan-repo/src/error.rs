//! The repository crate's one public error type.

/// What can go wrong with a repository. Every variant says what happened
/// and where; none of them leaves anything half-written behind. Which
/// command helps is for the command-line tool to add (see
/// `hokan-cli`'s hints): a library does not know its caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No repository at this location.
    #[error("no hokan repository at {location}: {reason}")]
    NotARepository {
        /// Where we looked.
        location: String,
        /// What was (not) found.
        reason: String,
    },

    /// A location that holds a repository's data but no config object: the
    /// config was lost. Nothing may be created here, or a second master key
    /// would split the repository.
    #[error(
        "{location} holds hokan data ({found}) but no config object: the repository's config \
         was lost or removed; nothing was changed. Put the config back from a copy of the \
         repository, or recreate it from the key files with the repository's password"
    )]
    ConfigLost {
        /// The location.
        location: String,
        /// What was found there.
        found: String,
    },

    /// The config object is damaged, though a key file opened with the
    /// password: the data is intact, and a config rewritten from the key
    /// file makes it readable again. Nothing was changed.
    #[error(
        "the config of the repository at {location} is damaged ({reason}); the key files and \
         data are not affected, and a new config written from the key files makes them \
         readable again; nothing was changed"
    )]
    ConfigDamaged {
        /// The location.
        location: String,
        /// How the damage showed.
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
    #[error("corrupted {what}: {reason}")]
    Corrupted {
        /// The object.
        what: String,
        /// How the damage showed.
        reason: String,
    },

    /// An object the repository refers to is gone.
    #[error("{what} is missing from the repository")]
    Missing {
        /// The object.
        what: String,
    },

    /// Prune found data a snapshot needs in no index, so it cannot know
    /// which packs hold it; it deleted nothing.
    #[error("{what} is in no index (an index file may be lost or damaged); nothing was deleted")]
    NotIndexed {
        /// What was looked for, and for whom.
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

    /// The bucket or container a location names does not exist.
    #[error("{what} does not exist (repository location {location}); nothing was changed: {fix}")]
    NoBucket {
        /// The location.
        location: String,
        /// The store and the bucket or container, named.
        what: String,
        /// What creates it or corrects the location.
        fix: String,
    },

    /// The store refused the credentials or the operation. `detail` says
    /// which of them, what fixes it, and what the store answered.
    #[error("storage at {location} denied access: {detail}")]
    Denied {
        /// The store.
        location: String,
        /// The store's answer.
        detail: String,
    },

    /// The store has no room left; what was stored before is intact.
    #[error(
        "storage at {location} is full ({detail}); nothing stored before was lost or changed, \
         free space and run again"
    )]
    Full {
        /// The store.
        location: String,
        /// The store's answer.
        detail: String,
    },

    /// The store refused to delete an object in a repository that is not
    /// immutable: a missing permission, or a bucket whose object lock
    /// (S3 Object Lock) still holds it.
    #[error(
        "storage at {location} denied access: {detail}; if the bucket has S3 Object Lock, its \
         retention still holds {path}: such a bucket needs an immutable repository whose lock \
         retention is the bucket's default retention"
    )]
    DeleteDenied {
        /// The store.
        location: String,
        /// The object.
        path: String,
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
    #[error("no snapshot matches {query:?}")]
    SnapshotNotFound {
        /// What was asked for.
        query: String,
    },

    /// `latest` was asked for while some snapshot files cannot be read.
    /// A damaged file's time is unknown, so it may be the newest snapshot:
    /// answering with the newest readable one would silently give an older
    /// snapshot than asked for. Nothing was read or changed.
    #[error(
        "{}, and may be the newest snapshot, so \"latest\" was not resolved past it; name \
         the snapshot by its id instead{}, or remove the damaged snapshot file",
        unreadable_list(unreadable),
        newest_readable.map(|id| format!(" (the newest readable one that matches is {})", id.short())).unwrap_or_default()
    )]
    LatestUnreadable {
        /// The snapshot files that cannot be read.
        unreadable: Vec<crate::objects::Unreadable>,
        /// The newest readable snapshot that matches, if any: what
        /// `latest` would have given before.
        newest_readable: Option<hokan_core::Id>,
    },

    /// A snapshot id prefix matches more than one snapshot.
    #[error("snapshot id prefix {prefix:?} matches {count} snapshots; give more characters")]
    AmbiguousSnapshot {
        /// The prefix.
        prefix: String,
        /// How many matched.
        count: usize,
    },

    /// No snapshot of the kind asked for matches the query (`latest` of a
    /// kind, among the snapshots a filter admits).
    #[error("no {kind} snapshot matches {query:?} (among the snapshots the filter admits)")]
    NoSnapshotOfKind {
        /// The source kind asked for.
        kind: String,
        /// What was asked for.
        query: String,
    },

    /// A snapshot of another source kind was named where one kind is needed.
    #[error(
        "snapshot {snapshot} is {} snapshot, not {} one",
        with_article(found),
        with_article(wanted)
    )]
    OtherKind {
        /// The snapshot's short id.
        snapshot: String,
        /// Its source kind.
        found: String,
        /// The kind needed.
        wanted: String,
    },

    /// A key operation that would lock everyone out, or is ambiguous.
    #[error("{0}")]
    Key(String),

    /// No key file matches an id or prefix.
    #[error("no key file matches {query:?}")]
    KeyNotFound {
        /// What was asked for.
        query: String,
    },

    /// The key file the repository was opened with cannot be removed
    /// through it: that would leave this handle without a key.
    #[error(
        "key {} is the one this repository was opened with; open the repository with another \
         key to remove this one, or change this key's password instead",
        id.short()
    )]
    KeyInUse {
        /// The key file.
        id: hokan_core::Id,
    },

    /// A restore onto a device selected other than one file or device
    /// with content; nothing was written.
    #[error(
        "a restore onto a device writes one file or device with content; the patterns select \
         {selected}{}; narrow them to one",
        if names.is_empty() { String::new() } else { format!(" ({})", names.join(", ")) }
    )]
    NotOneFile {
        /// How many files with content were selected.
        selected: usize,
        /// The first few of them.
        names: Vec<String>,
    },

    /// An overwrite or deletion that the repository's immutable mode
    /// forbids, or that the store refused (object lock, a policy that
    /// denies deletes, a precondition). `reason` says which, and the fix.
    #[error("{path} at {location} was not {action}: {reason}")]
    Immutable {
        /// The store.
        location: String,
        /// The object.
        path: String,
        /// "overwritten" or "deleted".
        action: &'static str,
        /// Why, and what to do.
        reason: String,
    },

    /// Another process holds a lock this operation needs (a running prune,
    /// or backups that an instant deletion would harm).
    #[error("{0}")]
    Locked(String),

    /// Data a backup refers to was removed while it ran (a prune deleted a
    /// pack it deduplicated against); its snapshot was not saved.
    #[error(
        "{what} was removed while this backup ran (a prune beside it deleted it); \
         the snapshot was not saved and nothing stored before was lost; run the backup again"
    )]
    RemovedDuringBackup {
        /// What vanished.
        what: String,
    },

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
    Core(hokan_core::Error),
}

/// "snapshot file P cannot be read (R)" for each, at most three named.
fn unreadable_list(list: &[crate::objects::Unreadable]) -> String {
    const NAMED: usize = 3;
    let mut text: Vec<String> = list
        .iter()
        .take(NAMED)
        .map(|u| format!("snapshot file {} cannot be read ({})", u.path, u.reason))
        .collect();
    if list.len() > NAMED {
        text.push(format!("{} more cannot be read", list.len() - NAMED));
    }
    text.join("; ")
}

/// "an etcd", "a volume": a kind name with its article.
fn with_article(kind: &str) -> String {
    match kind.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {kind}"),
        _ => format!("a {kind}"),
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True where retrying later may help (the store was unreachable).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unreachable { .. })
    }

    /// True where the repository's stored data is damaged or lost (as
    /// opposed to the store being unreachable, a wrong password, bad input).
    pub fn is_damage(&self) -> bool {
        match self {
            Error::Corrupted { .. } | Error::Missing { .. } | Error::ConfigDamaged { .. } => true,
            Error::Core(c) => {
                c.is_corruption()
                    || matches!(
                        c,
                        hokan_core::Error::MissingPack { .. }
                            | hokan_core::Error::BlobNotFound { .. }
                    )
            }
            _ => false,
        }
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
    /// core itself detects stays a core error, and a lost object becomes
    /// the core's "missing pack" so readers can tell it from an outage.
    fn from(e: Error) -> Self {
        match e {
            Error::Core(c) => c,
            Error::Missing { what } => hokan_core::Error::MissingPack { what },
            other => hokan_core::Error::Storage(Box::new(other)),
        }
    }
}

impl From<hokan_core::Error> for Error {
    /// The data path's error; a repository error that crossed the core's
    /// storage traits boxed (see the conversion the other way) comes back
    /// as itself, so callers match on it as on any other.
    fn from(e: hokan_core::Error) -> Self {
        match e {
            hokan_core::Error::Storage(boxed) => match boxed.downcast::<Error>() {
                Ok(repo) => *repo,
                Err(other) => Error::Core(hokan_core::Error::Storage(other)),
            },
            other => Error::Core(other),
        }
    }
}

/// [`Error::from`] a core error, for `map_err`.
pub(crate) fn from_core(e: hokan_core::Error) -> Error {
    Error::from(e)
}
