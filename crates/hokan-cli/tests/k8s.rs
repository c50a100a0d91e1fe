//! `hokan k8s ...` and the generic commands on resource snapshots, through
//! the binary, against hokan-k8s's in-process API server (a kubeconfig file
//! points the binary at it). The round trip also runs against a real
//! cluster when `HOKAN_TEST_KUBECONFIG` names one (`HOKAN_TEST_CONTEXT`
//! picks the context); tests that read the server's request log or inject
//! failures run on the in-process server only.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use hokan_k8s::testserver::{GenerateOptions, TestCluster, TestServer};
use serde_json::{Value, json};

/// A tokio runtime that keeps in-process servers serving while the test
/// thread runs the binary.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A repository, its cache, and where the test's files go.
struct Repo {
    dir: tempfile::TempDir,
    repo: String,
    cache: PathBuf,
}

impl Repo {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo").to_str().unwrap().to_string();
        let cache = dir.path().join("cache");
        init(&repo, &cache);
        Repo { dir, repo, cache }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = hokan(&self.repo, &self.cache);
        c.args(args).env_remove("KUBECONFIG");
        run(c)
    }

    fn ok(&self, args: &[&str]) -> String {
        ok(&self.run(args))
    }

    fn json(&self, args: &[&str]) -> Vec<Value> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        json_lines(&self.ok(&all))
    }
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The flags that reach `cluster`: its own kubeconfig and context on a real
/// cluster, a kubeconfig written for the in-process server otherwise.
fn cluster_flags(cluster: &TestCluster, repo: &Repo, name: &str) -> Vec<String> {
    if let Some(server) = cluster.server() {
        let file = repo.path(&format!("{name}.kubeconfig"));
        server.write_kubeconfig(&file, name).unwrap();
        return vec!["--kubeconfig".into(), file.to_str().unwrap().into()];
    }
    let mut flags = vec![
        "--kubeconfig".to_string(),
        std::env::var(hokan_k8s::testserver::KUBECONFIG_ENV).unwrap(),
    ];
    if let Ok(context) = std::env::var("HOKAN_TEST_CONTEXT") {
        flags.extend(["--context".to_string(), context]);
    }
    flags
}

fn kubeconfig_for(server: &TestServer, repo: &Repo, name: &str) -> String {
    let file = repo.path(&format!("{name}.kubeconfig"));
    server.write_kubeconfig(&file, name).unwrap();
    file.to_str().unwrap().to_string()
}

fn args<'a>(fixed: &[&'a str], flags: &'a [String]) -> Vec<&'a str> {
    let mut all = fixed.to_vec();
    all.extend(flags.iter().map(String::as_str));
    all
}

/// A namespace, a CRD with a widget, config maps, a service, a deployment.
/// `ns` is the test's name for the namespace; the cluster prefixes it on a
/// real cluster ([`TestCluster::namespace`]).
async fn shop(cluster: &mut TestCluster, ns: &str) {
    let created = [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web", "namespace": ns, "labels": {"app": "web"}}, "data": {"greeting": "hello"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "db", "namespace": ns}, "data": {"size": "small"}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns, "labels": {"app": "web"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.9"}]}}}}),
    ];
    for object in created {
        cluster.create(object).await.unwrap();
    }
    cluster
        .create(widget_crd(&["v1beta1", "v1"]))
        .await
        .unwrap();
    cluster
        .create(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "blue", "namespace": ns}, "spec": {"size": 3}}))
        .await
        .unwrap();
}

/// `widgets.example.com`, served in `versions` (the last is stored).
fn widget_crd(versions: &[&str]) -> Value {
    let schema = json!({"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}});
    let last = versions.len() - 1;
    let versions: Vec<Value> = versions
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"name": v, "served": true, "storage": i == last, "schema": schema}))
        .collect();
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": versions}})
}

fn summary(lines: &[Value]) -> &Value {
    lines
        .iter()
        .rev()
        .find(|l| l["message_type"] == "summary")
        .expect("a summary line")
}

#[test]
fn backup_browse_and_restore_round_trip() {
    let rt = runtime();
    let mut cluster = rt.block_on(TestCluster::new()).unwrap();
    rt.block_on(shop(&mut cluster, "shop"));
    let ns = cluster.namespace("shop");
    let repo = Repo::new();
    let flags = cluster_flags(&cluster, &repo, "source");
    let backup = |tag: &str| {
        let lines = repo.json(&args(
            &["k8s", "backup", "--include-namespaces", &ns, "--tag", tag],
            &flags,
        ));
        summary(&lines).clone()
    };

    let first = backup("first");
    let objects = first["summary"]["objects"].as_u64().unwrap();
    assert!(objects >= 7, "{first}");
    assert_eq!(first["source"], "k8s");
    assert_eq!(first["summary"]["objects_new"], objects);
    assert_eq!(first["k8s"]["errors"], json!([]));
    let web = format!("core/configmaps/{ns}/web.json");

    // ls: every object at its layout path, with its attributes.
    let listed = repo.json(&["ls", "latest"]);
    let paths: Vec<&str> = listed.iter().filter_map(|l| l["path"].as_str()).collect();
    for want in [
        format!("/{web}"),
        format!("/apps/deployments/{ns}/web.json"),
        format!("/example.com/widgets/{ns}/blue.json"),
        "/apiextensions.k8s.io/customresourcedefinitions/_cluster/widgets.example.com.json"
            .to_string(),
        format!("/core/namespaces/_cluster/{ns}.json"),
    ] {
        assert!(paths.contains(&want.as_str()), "{want} not in {paths:?}");
    }
    let node = listed
        .iter()
        .find(|l| l["path"] == format!("/{web}"))
        .unwrap();
    assert_eq!(node["type"], "object");
    assert_eq!(node["attributes"]["kind"], "ConfigMap");
    let long = repo.ok(&["ls", "-l", "latest", &format!("core/configmaps/{ns}")]);
    assert!(
        long.contains("kind=ConfigMap") && long.contains("apiVersion=v1"),
        "{long}"
    );

    // find by name, dump as stored, as YAML and as JSON.
    let found = repo.ok(&["find", "web.json"]);
    assert!(
        found.contains(&web) && found.contains("kind=ConfigMap"),
        "{found}"
    );
    assert!(!found.contains("1970"), "objects have no times: {found}");
    let raw: Value = serde_json::from_str(&repo.ok(&["dump", "latest", &web])).unwrap();
    assert_eq!(raw["data"]["greeting"], "hello");
    let yaml = repo.ok(&["dump", "latest", &web, "-o", "yaml"]);
    assert!(yaml.starts_with("apiVersion: v1\n"), "{yaml}");
    assert!(
        yaml.contains("  greeting: hello\n") && yaml.contains("kind: ConfigMap\n"),
        "{yaml}"
    );
    let pretty = repo.ok(&["dump", "latest", &web, "--format", "json"]);
    assert_eq!(serde_json::from_str::<Value>(&pretty).unwrap(), raw);
    assert!(
        pretty.contains("\n    \"data\": {"),
        "kubectl's indentation: {pretty}"
    );
    let not_object = repo.run(&["dump", "latest", "core/configmaps", "-o", "yaml"]);
    assert!(!not_object.status.success());
    assert!(
        stderr(&not_object).contains("--format applies to objects"),
        "{}",
        stderr(&not_object)
    );

    // Unchanged: nothing stored (on a real cluster controllers may touch
    // the deployment meanwhile, so only "almost").
    let second = backup("second");
    assert_eq!(second["parent"], first["id"]);
    let added = second["summary"]["data_added"].as_u64().unwrap();
    if cluster.server().is_some() {
        assert_eq!(added, 0, "{second}");
        assert_eq!(second["summary"]["objects_unmodified"], objects);
        assert_eq!(second["tree"], first["tree"]);
    }

    // A change shows in the next backup's figures and in diff.
    let path = format!("/api/v1/namespaces/{ns}/configmaps/web");
    rt.block_on(async {
        let mut cm = cluster.cluster().get(&path).await.unwrap().unwrap();
        cm["data"]["greeting"] = json!("bonjour");
        cluster.cluster().replace(&path, &cm).await.unwrap();
    });
    let third = backup("third");
    assert!(
        third["summary"]["objects_changed"].as_u64().unwrap() >= 1,
        "{third}"
    );
    let second_id = second["id"].as_str().unwrap();
    let third_id = third["id"].as_str().unwrap();
    let diff = repo.ok(&["diff", second_id, third_id]);
    assert!(diff.contains(&format!("M    /{web}")), "{diff}");
    assert!(diff.contains("Objects:"), "{diff}");

    // Restored as manifests, in order.
    let out = repo.path("manifests");
    let text = repo.ok(&[
        "k8s",
        "restore",
        "latest",
        "--to-dir",
        out.to_str().unwrap(),
    ]);
    assert!(text.contains("written"), "{text}");
    let restored: Value = serde_json::from_slice(&std::fs::read(out.join(&web)).unwrap()).unwrap();
    assert_eq!(restored["data"]["greeting"], "bonjour");
    assert!(restored["metadata"].get("uid").is_none(), "sanitized");
    let order = std::fs::read_to_string(out.join("restore-order.txt")).unwrap();
    let first_line = order.lines().next().unwrap();
    assert!(first_line.starts_with("apiextensions.k8s.io/"), "{order}");

    // Restored into the cluster under another namespace.
    let dr = format!("{ns}-dr");
    let mapping = format!("{ns}:{dr}");
    let lines = repo.json(&args(
        &["k8s", "restore", "latest", "--namespace-mapping", &mapping],
        &flags,
    ));
    let done = summary(&lines);
    assert_eq!(done["totals"]["failed"], 0, "{lines:?}");
    assert!(done["totals"]["created"].as_u64().unwrap() >= 6, "{done}");
    let copy = rt
        .block_on(
            cluster
                .cluster()
                .get(&format!("/api/v1/namespaces/{dr}/configmaps/web")),
        )
        .unwrap()
        .expect("the mapped copy exists");
    assert_eq!(copy["data"]["greeting"], "bonjour");

    // The generic commands: the snapshot's source and identity, a restore
    // of its files, check, and forget grouping by cluster.
    let snapshots = repo.json(&["snapshots"]);
    let list = snapshots[0].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert!(
        list.iter()
            .all(|s| s["source"] == "k8s" && s["identity"] == first["identity"])
    );
    let files = repo.path("files");
    repo.ok(&["restore", "latest", "--target", files.to_str().unwrap()]);
    let as_file: Value = serde_json::from_slice(&std::fs::read(files.join(&web)).unwrap()).unwrap();
    assert_eq!(as_file["data"]["greeting"], "bonjour");
    repo.ok(&["check"]);
    repo.ok(&["forget", "--keep-last", "1"]);
    let left = repo.json(&["snapshots"]);
    assert_eq!(
        left[0].as_array().unwrap().len(),
        1,
        "one cluster, one group"
    );

    rt.block_on(async {
        let _ = cluster
            .cluster()
            .delete(&format!("/api/v1/namespaces/{dr}"))
            .await;
        cluster.cleanup().await.unwrap();
    });
}

#[test]
fn a_restore_to_a_fresh_cluster_keeps_order_sanitizes_and_picks_versions() {
    let rt = runtime();
    let source = rt.block_on(TestServer::start()).unwrap();
    let target = rt.block_on(TestServer::start()).unwrap();
    let repo = Repo::new();
    let source_config = kubeconfig_for(&source, &repo, "prod");
    let target_config = kubeconfig_for(&target, &repo, "dr");
    // Seeded as a running cluster has them: status, cluster IPs, a node.
    let scc = json!({"openshift.io/sa.scc.uid-range": "1000650000/10000", "openshift.io/sa.scc.supplemental-groups": "1000650000/10000", "openshift.io/sa.scc.mcs": "s0:c26,c5"});
    source
        .seed([
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "annotations": scc}}),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "builder", "namespace": "shop"}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "shop"}, "type": "Opaque", "data": {"p": "cHc="}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web", "namespace": "shop"}, "data": {"a": "b"}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "shop"},
                "spec": {"type": "NodePort", "clusterIP": "10.96.7.7", "clusterIPs": ["10.96.7.7"], "selector": {"app": "api"},
                    "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 30123}]}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "api-0", "namespace": "shop"},
                "spec": {"nodeName": "node-1", "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.9"}]},
                "status": {"phase": "Running"}}),
            json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "api-0.1", "namespace": "shop"}, "reason": "Started", "involvedObject": {"kind": "Pod", "name": "api-0"}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "db"}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-creds", "namespace": "db"}, "type": "Opaque", "data": {"p": "cHc="}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "db-config", "namespace": "db"}, "data": {"size": "small"}}),
            widget_crd(&["v1beta1", "v1"]),
        ])
        .unwrap();
    source
        .seed([
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "blue", "namespace": "shop"}, "spec": {"size": 3}}),
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "green", "namespace": "db"}, "spec": {"size": 1}}),
        ])
        .unwrap();
    // The target knows widgets already, in v1beta1 only.
    target.seed([widget_crd(&["v1beta1"])]).unwrap();
    repo.ok(&[
        "k8s",
        "backup",
        "--kubeconfig",
        &source_config,
        "--include-namespaces",
        "shop,db",
        "--all-api-versions",
    ]);

    // The dry run: the plan with every decision, and no write to the target.
    target.clear_requests();
    let plan = repo.ok(&[
        "k8s",
        "restore",
        "latest",
        "--kubeconfig",
        &target_config,
        "--namespace-mapping",
        "shop:shop-dr,db:db-dr",
        "--dry-run",
    ]);
    if std::env::var_os("HOKAN_SHOW_PLAN").is_some() {
        eprintln!("{plan}");
    }
    for want in [
        "Restore plan (dry run, nothing is changed): snapshot",
        "namespaces shop-dr (from shop)  v1 (target's preferred)",
        "namespaces db-dr (from db)  v1 (target's preferred)",
        "widgets.example.com db-dr/green (from db)  example.com/v1beta1 (target's preferred)",
        "widgets.example.com shop-dr/blue (from shop)  example.com/v1beta1 (target's preferred)",
        "spec.clusterIP",
        "spec.ports[0].nodePort",
        "spec.nodeName",
        "kept openshift.io/sa.scc.* annotations",
        "left out: events shop/api-0.1: never restored",
        "would be created",
    ] {
        assert!(plan.contains(want), "{want:?} missing from:\n{plan}");
    }
    assert!(
        target.requests().iter().all(|r| r.method == "GET"),
        "a dry run writes nothing"
    );

    // The restore: creations in Velero's order, sanitized, in v1beta1.
    repo.ok(&[
        "k8s",
        "restore",
        "latest",
        "--kubeconfig",
        &target_config,
        "--namespace-mapping",
        "shop:shop-dr,db:db-dr",
    ]);
    let posts: Vec<_> = target
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.status == 201)
        .collect();
    let order: Vec<&str> = posts.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        order,
        [
            "/api/v1/namespaces",
            "/api/v1/namespaces",
            "/api/v1/namespaces/shop-dr/serviceaccounts",
            "/api/v1/namespaces/db-dr/secrets",
            "/api/v1/namespaces/shop-dr/secrets",
            "/api/v1/namespaces/db-dr/configmaps",
            "/api/v1/namespaces/shop-dr/configmaps",
            "/api/v1/namespaces/shop-dr/pods",
            "/api/v1/namespaces/shop-dr/services",
            "/apis/example.com/v1beta1/namespaces/db-dr/widgets",
            "/apis/example.com/v1beta1/namespaces/shop-dr/widgets",
        ],
        "CRD left alone (the target has it), then Velero's order"
    );
    let body = |suffix: &str| {
        posts
            .iter()
            .find(|r| r.path.ends_with(suffix))
            .and_then(|r| r.body.clone())
            .unwrap()
    };
    let svc = body("/services");
    assert!(svc["spec"].get("clusterIP").is_none(), "{svc}");
    assert!(svc["spec"]["ports"][0].get("nodePort").is_none(), "{svc}");
    let pod = body("/pods");
    assert!(
        pod["spec"].get("nodeName").is_none() && pod.get("status").is_none(),
        "{pod}"
    );
    for b in posts.iter().filter_map(|r| r.body.as_ref()) {
        let meta = &b["metadata"];
        assert!(
            meta.get("uid").is_none() && meta.get("resourceVersion").is_none(),
            "{b}"
        );
    }
    let shop_ns = posts
        .iter()
        .filter_map(|r| r.body.as_ref())
        .find(|b| b["metadata"]["name"] == "shop-dr")
        .unwrap();
    assert_eq!(
        shop_ns["metadata"]["annotations"]["openshift.io/sa.scc.uid-range"],
        "1000650000/10000"
    );
    assert_eq!(body("shop-dr/widgets")["apiVersion"], "example.com/v1beta1");
    assert_eq!(body("shop-dr/widgets")["metadata"]["namespace"], "shop-dr");
}

#[test]
fn velero_tarballs_export_and_import() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start()).unwrap();
    let repo = Repo::new();
    let config = kubeconfig_for(&server, &repo, "prod");
    server.generate(&GenerateOptions {
        objects: 300,
        namespaces: 3,
        seed: 7,
    });
    let saved = repo.json(&["k8s", "backup", "--kubeconfig", &config]);
    let original = summary(&saved).clone();

    let tarball = repo.path("backup.tar.gz");
    let lines = repo.json(&["k8s", "export-velero", "latest", tarball.to_str().unwrap()]);
    assert_eq!(summary(&lines)["entries"], original["summary"]["entries"]);
    let names = tar_names(&tarball);
    assert!(names.contains(&"metadata/version".to_string()));
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("resources/configmaps/namespaces/bench-000/")),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("resources/deployments.apps/v1-preferredversion/"))
    );

    let imported = repo.json(&[
        "k8s",
        "import-velero",
        tarball.to_str().unwrap(),
        "--identity",
        "prod-velero",
        "--tag",
        "imported",
    ]);
    let imported = summary(&imported);
    assert_eq!(imported["identity"], "prod-velero");
    assert_eq!(
        imported["tree"], original["tree"],
        "the same objects, the same tree"
    );
    assert_eq!(imported["summary"]["data_added"], 0);

    let bad = repo.path("notes.tar.gz");
    std::fs::write(&bad, b"not a tarball").unwrap();
    let out = repo.run(&["k8s", "import-velero", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is not a Velero backup tarball"),
        "{}",
        stderr(&out)
    );
}

fn tar_names(file: &Path) -> Vec<String> {
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(file).unwrap());
    let mut archive = tar::Archive::new(gz);
    archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn refusals_name_the_resource_and_the_status() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start()).unwrap();
    let repo = Repo::new();
    let config = kubeconfig_for(&server, &repo, "prod");
    server
        .seed([
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web", "namespace": "shop"}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "shop"}}),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa", "namespace": "shop"}}),
        ])
        .unwrap();
    server.forbid("", "secrets");
    server.fail("", "serviceaccounts", 500);

    // Partially failed: saved without them, exit code 3, both named.
    let out = repo.run(&["k8s", "backup", "--kubeconfig", &config]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("secrets (v1) was not backed up") && err.contains("403 Forbidden"),
        "{err}"
    );
    assert!(
        err.contains("serviceaccounts (v1) was not backed up") && err.contains("500"),
        "{err}"
    );
    assert!(err.contains("RBAC"), "the fix for a 403: {err}");
    let paths = repo.ok(&["ls", "latest"]);
    assert!(
        paths.contains("/core/configmaps/shop/web.json") && !paths.contains("secrets"),
        "{paths}"
    );

    // A target that refuses: the object FAILED with the status, exit 3
    // (the others were restored).
    let target = rt.block_on(TestServer::start()).unwrap();
    let target_config = kubeconfig_for(&target, &repo, "dr");
    target.forbid("", "configmaps");
    let out = repo.run(&["k8s", "restore", "latest", "--kubeconfig", &target_config]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text.contains("configmaps shop/web v1: FAILED") && text.contains("403"),
        "{text}"
    );
    assert!(
        stderr(&out).contains("1 object(s) could not be restored"),
        "{}",
        stderr(&out)
    );

    // No server at all: a clear error and no snapshot.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gone = repo.path("gone.kubeconfig");
    std::fs::write(
        &gone,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: gone\nclusters:\n- name: gone\n  cluster:\n    server: http://{closed}\n\
             users:\n- name: gone\n  user:\n    token: x\ncontexts:\n- name: gone\n  context:\n    cluster: gone\n    user: gone\n"
        ),
    )
    .unwrap();
    let before = repo.json(&["snapshots"])[0].as_array().unwrap().len();
    let out = repo.run(&["k8s", "backup", "--kubeconfig", gone.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot reach the Kubernetes API server"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        repo.json(&["snapshots"])[0].as_array().unwrap().len(),
        before
    );

    // Usage errors before anything is read.
    let out = repo.run(&[
        "k8s",
        "backup",
        "--kubeconfig",
        &config,
        "--selector",
        "app in (",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("invalid label selector \"app in (\""),
        "{}",
        stderr(&out)
    );
    let out = repo.run(&[
        "k8s",
        "restore",
        "latest",
        "--to-dir",
        "x",
        "--namespace-mapping",
        "Shop",
    ]);
    assert!(
        stderr(&out).contains("invalid namespace mapping \"Shop\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unchanged_cluster_backs_up_to_almost_nothing() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start()).unwrap();
    let repo = Repo::new();
    let config = kubeconfig_for(&server, &repo, "prod");
    server.generate(&GenerateOptions {
        objects: 4000,
        namespaces: 20,
        seed: 11,
    });
    let first = repo.json(&[
        "k8s",
        "backup",
        "--kubeconfig",
        &config,
        "--page-size",
        "250",
    ]);
    let first = summary(&first);
    let second = repo.json(&[
        "k8s",
        "backup",
        "--kubeconfig",
        &config,
        "--page-size",
        "250",
    ]);
    let second = summary(&second);
    let stored = |s: &Value| s["summary"]["data_added_packed"].as_u64().unwrap();
    assert!(stored(first) > 100_000, "{first}");
    assert_eq!(stored(second), 0, "{second}");
    assert_eq!(
        second["summary"]["objects_unmodified"],
        first["summary"]["objects"]
    );
    // The snapshot file itself is all the second backup wrote.
    let text = repo.ok(&["k8s", "backup", "--kubeconfig", &config]);
    assert!(
        text.contains("0 new, 0 changed, 4020 unmodified, 0 removed"),
        "{text}"
    );
}
