//! A fresh machine builds hokan with the Rust toolchain alone (issue 23,
//! item 1): no crate that `cargo build` or `cargo test --workspace` compiles
//! runs protoc in its build script. etcd-client did; hokan-etcd now carries
//! the generated etcd gRPC code (`src/grpc/`, made by `tools/etcd-grpc`).

/// Crates whose build scripts compile .proto files with protoc (or build
/// protoc itself), and etcd-client, which used them.
const NEED_PROTOC: &[&str] = &[
    "etcd-client",
    "prost-build",
    "tonic-build",
    "tonic-prost-build",
    "protobuf-src",
    "protoc-bin-vendored",
];

#[test]
fn no_crate_in_the_workspace_needs_protoc_to_build() {
    let lock = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock");
    let lock = std::fs::read_to_string(&lock).expect("the workspace's Cargo.lock");
    let found: Vec<&str> = lock
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|name| NEED_PROTOC.contains(name))
        .collect();
    assert!(
        found.is_empty(),
        "Cargo.lock has {found:?}: building would need protoc; generate the code with \
         tools/etcd-grpc and commit it instead"
    );
}
