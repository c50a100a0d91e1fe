//! Starts the in-process test API server with hokan's CRDs installed and
//! writes a kubeconfig for it, so the operator binary and kubectl can be
//! tried by hand:
//!
//! ```text
//! cargo run -p hokan-operator --example test_cluster -- /tmp/hokan.kubeconfig &
//! KUBECONFIG=/tmp/hokan.kubeconfig hokan-operator run --listen 127.0.0.1:18080
//! curl -s 127.0.0.1:18080/metrics
//! ```
//!
//! It serves until stopped (Ctrl-C or SIGTERM).

use hokan_k8s::testserver::TestServer;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("give the kubeconfig path to write")?;
    let server = TestServer::start().await?;
    let cluster = server.cluster()?;
    for (_, crd) in hokan_operator::api::crds() {
        let body = serde_json::to_value(&crd)?;
        cluster
            .create(
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                &body,
            )
            .await?;
    }
    cluster
        .create(
            "/api/v1/namespaces",
            &serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "hokan-system"}}),
        )
        .await?;
    server.write_kubeconfig(std::path::Path::new(&path), "hokan-test")?;
    eprintln!("test API server at {}; kubeconfig in {path}", server.url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
