//! Runs the in-process test API server until killed, for trying `kubectl`
//! against it by hand:
//!
//! ```sh
//! cargo run -p hokan-k8s --example test_server --features test-server -- /tmp/kubeconfig &
//! KUBECONFIG=/tmp/kubeconfig kubectl apply -k deploy/
//! KUBECONFIG=/tmp/kubeconfig kubectl get crds
//! ```

use hokan_k8s::testserver::TestServer;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: test_server KUBECONFIG-PATH (the kubeconfig to write)")?;
    let server = TestServer::start().await?;
    server.write_kubeconfig(std::path::Path::new(&path), "hokan-test")?;
    println!("serving {} (kubeconfig {path})", server.url());
    std::future::pending::<()>().await;
    Ok(())
}
