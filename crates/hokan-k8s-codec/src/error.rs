//! The crate's one public error type.

/// Everything that can go wrong reading a Kubernetes value from etcd.
///
/// Each message says what was found and, where there is one, what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are neither the protobuf envelope (`k8s\0…`), JSON, nor an
    /// encrypted value: not something the API server writes under `/registry`.
    #[error(
        "not a Kubernetes object: the value starts with {start:?}, not `k8s\\0` (protobuf), `{{` (JSON) or `k8s:enc:` (encrypted)"
    )]
    NotAnObject {
        /// The first bytes of the value, for the message.
        start: String,
    },
    /// The protobuf bytes do not follow the wire format or the schema.
    #[error("malformed protobuf at `{path}`: {reason}")]
    Malformed {
        /// Where in the object, as dotted JSON field names (empty: the top).
        path: String,
        reason: String,
    },
    /// A JSON-stored value is not valid JSON.
    #[error("the value is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The envelope names a type this build does not know.
    #[error(
        "unknown kind {kind:?} in apiVersion {api_version:?}: this build knows the built-in types of Kubernetes' k8s.io/api at the commit its schema was generated from (see SOURCE.md); a newer or aggregated API stored in protobuf cannot be decoded"
    )]
    UnknownKind { api_version: String, kind: String },
    /// The envelope says its payload is compressed or not protobuf.
    #[error("unsupported envelope: content encoding {encoding:?}, content type {content_type:?}")]
    UnsupportedEnvelope {
        encoding: String,
        content_type: String,
    },
    /// A `resource.Quantity` the API server itself would refuse to decode.
    #[error("invalid quantity {value:?} at `{path}`: {reason}")]
    InvalidQuantity {
        path: String,
        value: String,
        reason: String,
    },
    /// The value is encrypted at rest and no key was given for it.
    #[error(
        "the value is encrypted with provider {provider} (key {key_name:?}); pass the cluster's EncryptionConfiguration to decrypt it{hint}"
    )]
    Encrypted {
        provider: String,
        key_name: String,
        hint: &'static str,
    },
    /// The EncryptionConfiguration has no key with the name in the value's prefix.
    #[error(
        "no {provider} key named {key_name:?} in the EncryptionConfiguration; the value was written with a key that has since been removed, or with another cluster's file"
    )]
    KeyNotFound { provider: String, key_name: String },
    /// Decryption failed: the key is not the one the value was written with.
    #[error(
        "cannot decrypt with {provider} key {key_name:?}: {reason}; the key with this name in the EncryptionConfiguration is not the one the value was written with"
    )]
    WrongKey {
        provider: String,
        key_name: String,
        reason: String,
    },
    /// The EncryptionConfiguration file cannot be used.
    #[error("invalid EncryptionConfiguration: {0}")]
    EncryptionConfig(String),
    /// An etcd key that is not a Kubernetes registry key.
    #[error("not a Kubernetes registry key {key:?}: {reason}")]
    InvalidKey { key: String, reason: String },
}

impl Error {
    /// Prefixes the path of a decoding error with the field it happened in.
    pub(crate) fn in_field(mut self, name: &str) -> Self {
        if let Error::Malformed { path, .. } | Error::InvalidQuantity { path, .. } = &mut self
            && !name.is_empty()
        {
            *path = if path.is_empty() {
                name.to_string()
            } else {
                format!("{name}.{path}")
            };
        }
        self
    }
}
