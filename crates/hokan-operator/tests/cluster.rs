//! The operator's API calls that the test server already answers: the
//! Lease that keeps one replica active, and reading a repository's
//! password from its Secret. Runs against a real cluster given
//! `HOKAN_TEST_KUBECONFIG`.

use hokan_k8s::testserver::TestCluster;
use hokan_operator::api::SecretKeyRef;
use hokan_operator::lease::Elector;
use hokan_operator::reconcile::repository::secret_value;
use serde_json::json;

async fn cluster_with_namespace(name: &str) -> (TestCluster, String) {
    let mut tc = TestCluster::new().await.unwrap();
    tc.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
        .await
        .unwrap();
    let ns = tc.namespace(name);
    (tc, ns)
}

#[tokio::test]
async fn one_replica_holds_the_lease_until_it_releases_it() {
    let (mut tc, ns) = cluster_with_namespace("lease").await;
    let client = tc.cluster().client().clone();
    let a = Elector::new(client.clone(), &ns, "hokan-operator", "replica-a");
    let b = Elector::new(client.clone(), &ns, "hokan-operator", "replica-b");
    assert!(a.try_hold().await.unwrap(), "a free Lease is taken");
    assert!(!b.try_hold().await.unwrap(), "a held Lease is not");
    assert!(a.try_hold().await.unwrap(), "the holder renews");
    // Releasing does nothing for a replica that does not hold it.
    b.release().await.unwrap();
    assert!(!b.try_hold().await.unwrap());
    a.release().await.unwrap();
    assert!(
        b.try_hold().await.unwrap(),
        "a released Lease is taken at once"
    );
    assert!(!a.try_hold().await.unwrap());
    if let Some(server) = tc.server() {
        // Every write to the Lease carried the version it read (a PUT of a
        // stale version is a 409, so two replicas cannot both win).
        let puts: Vec<_> = server
            .requests()
            .into_iter()
            .filter(|r| r.method == "PUT" && r.path.contains("/leases/"))
            .collect();
        assert!(!puts.is_empty());
        for p in puts {
            let rv = &p.body.as_ref().unwrap()["metadata"]["resourceVersion"];
            assert!(rv.as_str().is_some_and(|v| !v.is_empty()), "{p:?}");
        }
    }
    tc.cleanup().await.unwrap();
}

#[tokio::test]
async fn the_password_comes_from_the_secret_or_the_error_says_what_is_missing() {
    let (mut tc, ns) = cluster_with_namespace("secrets").await;
    tc.create(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "hokan-repository", "namespace": "secrets"},
        "data": {"password": "c2VjcmV0"}
    }))
    .await
    .unwrap();
    let client = tc.cluster().client().clone();
    let key = |name: &str, key: &str| SecretKeyRef {
        name: name.into(),
        key: key.into(),
    };
    let pw = secret_value(&client, &ns, &key("hokan-repository", "password"))
        .await
        .unwrap();
    assert_eq!(pw, b"secret");
    let e = secret_value(&client, &ns, &key("hokan-repository", "pw"))
        .await
        .unwrap_err();
    assert!(e.contains("has no key pw"), "{e}");
    let e = secret_value(&client, &ns, &key("missing", "password"))
        .await
        .unwrap_err();
    assert!(e.contains("does not exist"), "{e}");
    tc.cleanup().await.unwrap();
}
