//! Kubernetes objects in their etcd storage form.
//!
//! The API server writes every object it stores under a `/registry/…` key in
//! etcd: built-in types as the protobuf envelope (`k8s\0` followed by a
//! `runtime.Unknown` whose `raw` is the object's protobuf encoding), custom
//! resources, CRDs and APIServices as JSON, and either of them encrypted at
//! rest when an `EncryptionConfiguration` says so. This crate reads all of
//! that back without an API server, for hokan's etcd snapshot browsing and
//! Kubernetes resource handling:
//!
//! - [`decode`] turns a stored value into an [`Object`]: its type and its JSON
//!   ([`serde_json::Value`]) with exactly the fields and values the API
//!   server would return — Go's struct-tag rules (omitempty, omitzero,
//!   pointers, inline structs) and apimachinery's hand-written forms
//!   (`Time`, `MicroTime`, `Duration`, canonical `Quantity`, `IntOrString`,
//!   `RawExtension`, `FieldsV1`, base64 bytes). [`peek_type`] reads only the
//!   type, for listing. [`to_json`] and [`to_yaml`] print as `kubectl get -o`.
//! - [`RegistryKey`] parses keys into group, resource, namespace and name,
//!   with Kubernetes' historic key names (`minions`, `services/specs`, …);
//!   [`object_key`] and [`object_key_for_kind`] build them;
//!   [`BUILTIN_RESOURCES`] lists what is stored, [`not_stored_reason`] what
//!   never is.
//! - [`EncryptedValue`] recognises `k8s:enc:<provider>:v1:<key>:` values and
//!   [`Decryptor`] opens the aescbc, aesgcm and secretbox ones with the
//!   cluster's `EncryptionConfiguration`.
//! - [`diff`] compares two decoded objects field by field.
//!
//! The protobuf schema is a set of static tables (`src/schema_generated.rs`)
//! that the `gen-schema` example derives from the upstream Kubernetes API
//! definitions (see `SOURCE.md`) and that are committed; nothing is parsed or
//! fetched while building.
//!
//! # Example
//!
//! ```
//! let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/k8s/api-testdata");
//! # if !std::path::Path::new(dir).exists() { return Ok(()); }
//! // A value exactly as kube-apiserver wrote it to etcd.
//! let value = std::fs::read(format!("{dir}/apps.v1.Deployment.pb"))?;
//! let obj = hokan_k8s_codec::decode(&value)?;
//! assert_eq!((obj.api_version.as_str(), obj.kind.as_str()), ("apps/v1", "Deployment"));
//! assert_eq!(obj.object["metadata"]["creationTimestamp"], "2008-01-01T01:01:01Z");
//!
//! // Where the API server keeps it, and back.
//! let key = hokan_k8s_codec::object_key_for_kind("apps/v1", "Deployment", "prod", "web").unwrap();
//! assert_eq!(key, "/registry/deployments/prod/web");
//! let parsed = hokan_k8s_codec::RegistryKey::parse("/registry/services/specs/default/kubernetes")?;
//! assert_eq!((parsed.resource.as_str(), parsed.namespace.as_deref()), ("services", Some("default")));
//!
//! // What changed between two versions of the object.
//! let mut newer = obj.object.clone();
//! newer["spec"]["replicas"] = 3.into();
//! let changes = hokan_k8s_codec::diff(&obj.object, &newer);
//! assert_eq!(changes[0].path(), "/spec/replicas");
//! print!("{}", hokan_k8s_codec::to_yaml(&newer));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod diff;
mod encryption;
mod encryption_config;
mod envelope;
mod error;
mod gotext;
mod keys;
mod message;
mod output;
mod quantity;
mod resources;
mod schema;
mod wire;

pub use diff::{Change, diff};
pub use encryption::{Decryptor, EncryptedValue, Provider};
pub use envelope::{Encoding, Object, StoredType, decode, decode_protobuf, peek_type};
pub use error::Error;
pub use keys::{KEY_PREFIXES, RegistryKey, key_path, object_key, object_key_for_kind};
pub use output::{to_json, to_yaml};
pub use resources::{BUILTIN_RESOURCES, BuiltinResource, not_stored_reason, resource_for_kind};

/// Every (apiVersion, kind) this build decodes from protobuf.
pub fn known_kinds() -> impl Iterator<Item = (&'static str, &'static str)> {
    schema::kinds()
}
