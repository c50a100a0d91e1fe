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

/// In-process work opens a repository with the keys of its credentials
/// Secret as the store's settings (the operator serves many repositories
/// from one process environment): a Secret with a wrong secret key is
/// refused by Garage although the process's environment holds the right
/// one, the right Secret opens it, and a missing Secret is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_credentials_come_from_the_repository_secret() {
    use hokan_operator::api::repository::{Repository, RepositorySpec, StoreCredentials};
    use hokan_repo::conformance::{self as suite, Remote};
    let Some(location) = Remote::S3.fresh("operator-credentials") else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let mut open = suite::test_open_options(cache.path());
    open.retry.attempts = 1;
    tokio::task::block_in_place(|| {
        hokan_repo::Repository::init(&location, b"pw", suite::test_init_options(), open.clone())
    })
    .unwrap();
    let (mut tc, ns) = cluster_with_namespace("credentials").await;
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(tc.cluster().client().clone(), &ns);
    let key_id = std::env::var("AWS_ACCESS_KEY_ID").unwrap();
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap();
    for (name, secret_key) in [("s3-right", secret.clone()), ("s3-wrong", "0".repeat(64))] {
        let bytes = |s: &str| k8s_openapi::ByteString(s.as_bytes().to_vec());
        let object = k8s_openapi::api::core::v1::Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            data: Some(
                [
                    ("AWS_ACCESS_KEY_ID".to_string(), bytes(&key_id)),
                    ("AWS_SECRET_ACCESS_KEY".to_string(), bytes(&secret_key)),
                ]
                .into(),
            ),
            ..Default::default()
        };
        secrets.create(&Default::default(), &object).await.unwrap();
    }
    let ctx = hokan_operator::reconcile::Context {
        client: tc.cluster().client().clone(),
        clock: std::sync::Arc::new(hokan_operator::clock::SystemClock),
        endpoints: Default::default(),
        open_options: open,
        image: "localhost/hokan:test".into(),
        job_retries: 0,
        failures: Default::default(),
    };
    let repo = |secret: &str| {
        let mut r = Repository::new(
            "main",
            RepositorySpec {
                location: location.clone(),
                credentials: Some(StoreCredentials {
                    secret_name: Some(secret.into()),
                    web_identity: None,
                }),
                ..Default::default()
            },
        );
        r.metadata.namespace = Some(ns.clone());
        r
    };
    let open_with = |secret: &'static str| {
        let ctx = &ctx;
        let r = repo(secret);
        let ns = ns.clone();
        async move {
            let options = hokan_operator::reconcile::repository::open_options(ctx, &ns, &r).await?;
            assert!(options.store_settings.contains_key("AWS_SECRET_ACCESS_KEY"));
            let location = r.spec.location.clone();
            tokio::task::spawn_blocking(move || {
                hokan_repo::Repository::open(&location, b"pw", options)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
            .await
            .unwrap()
        }
    };
    let e = open_with("s3-wrong").await.unwrap_err().to_lowercase();
    assert!(
        e.contains("denied") || e.contains("credential") || e.contains("signature"),
        "{e}"
    );
    open_with("s3-right").await.unwrap();
    let e = open_with("s3-missing").await.unwrap_err();
    assert!(e.contains("does not exist"), "{e}");
    tc.cleanup().await.unwrap();
}
