//! `kubectl` against the in-process server: `apply -k` (client-side apply:
//! create, then patches with the last-applied annotation), `apply
//! --server-side`, `get` with a CRD's printer columns and built-in kinds'
//! Name/Age, `describe`, and `delete`, which waits for the deletion through
//! a watch. Needs kubectl 1.27 or newer on PATH (OpenAPI v3); without one
//! the test says so and passes.

use std::path::Path;
use std::process::Command;

use futures::TryStreamExt;
use hokan_k8s::testserver::TestServer;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::json;

fn kubectl_version() -> Option<(u32, u32)> {
    let out = Command::new("kubectl")
        .args(["version", "--client", "-o", "json"])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let minor = v["clientVersion"]["minor"]
        .as_str()?
        .trim_end_matches('+')
        .parse()
        .ok()?;
    Some((v["clientVersion"]["major"].as_str()?.parse().ok()?, minor))
}

/// Runs kubectl; answers stdout, or panics with what it said.
async fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let config = kubeconfig.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let shown = args.join(" ");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("kubectl")
            .env("KUBECONFIG", config)
            .env_remove("KUBECTL_EXTERNAL_DIFF")
            .args(&args)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kubectl {shown} failed: {stderr}\n{stdout}"
    );
    stdout
}

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
    additionalPrinterColumns:
    - {name: Phase, type: string, jsonPath: .status.phase}
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
"#;

fn write_base(dir: &Path, image: &str, data: &str) {
    std::fs::write(
        dir.join("kustomization.yaml"),
        "resources:\n- ns.yaml\n- crd.yaml\n- app.yaml\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("ns.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n",
    )
    .unwrap();
    std::fs::write(dir.join("crd.yaml"), CRD).unwrap();
    let app = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: demo\ndata:\n  a: \"{data}\"\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: demo\nspec:\n  replicas: 1\n  \
         selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      \
         containers:\n      - name: main\n        image: {image}\n"
    );
    std::fs::write(dir.join("app.yaml"), app).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_gets_describes_and_deletes() {
    match kubectl_version() {
        Some((1, minor)) if minor >= 27 => {}
        other => {
            eprintln!("kubectl 1.27 or newer is not on PATH ({other:?}); not testing kubectl");
            return;
        }
    }
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kubeconfig");
    server.write_kubeconfig(&config, "hokan-test").unwrap();
    let base = dir.path().join("base");
    std::fs::create_dir(&base).unwrap();

    write_base(&base, "registry.k8s.io/pause:3.9", "1");
    let out = kubectl(&config, &["apply", "-k", base.to_str().unwrap()]).await;
    assert!(
        out.contains("namespace/demo created") && out.contains("deployment.apps/web created"),
        "{out}"
    );

    // Changed files: client-side apply patches (strategic for built-in kinds).
    write_base(&base, "registry.k8s.io/pause:3.10", "2");
    let out = kubectl(&config, &["apply", "-k", base.to_str().unwrap()]).await;
    assert!(
        out.contains("configmap/cfg configured") && out.contains("namespace/demo unchanged"),
        "{out}"
    );
    let web = server
        .object("apps", "deployments", Some("demo"), "web")
        .unwrap();
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.k8s.io/pause:3.10"
    );
    assert_eq!(web["metadata"]["generation"], 2);
    assert!(
        web["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );
    let patches: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(
        patches.len(),
        2,
        "the config map and the deployment changed"
    );

    // A custom resource by server-side apply, its status set as a
    // controller would, and its printer columns.
    let widget = base.join("w.yaml");
    std::fs::write(&widget, "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1, namespace: demo}\nspec: {size: 3}\n").unwrap();
    let out = kubectl(
        &config,
        &["apply", "--server-side", "-f", widget.to_str().unwrap()],
    )
    .await;
    assert!(
        out.contains("widget.example.com/w1 serverside-applied"),
        "{out}"
    );
    let status =
        json!({"status": {"phase": "Ready", "conditions": [{"type": "Ready", "status": "True"}]}});
    let client = server.cluster().unwrap().client().clone();
    let ar = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    );
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(client, "demo", &ar);
    api.patch_status("w1", &Default::default(), &kube::api::Patch::Merge(status))
        .await
        .unwrap();
    let out = kubectl(&config, &["get", "wd", "-n", "demo"]).await;
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["NAME", "PHASE", "SIZE", "READY", "AGE"], "{out}");
    assert_eq!(lines[1][..4], ["w1", "Ready", "3", "True"], "{out}");
    assert!(lines[1][4].ends_with('s'), "an age: {out}");
    let out = kubectl(&config, &["get", "configmaps", "-A"]).await;
    assert!(
        out.starts_with("NAMESPACE") && out.contains("demo") && out.contains("cfg"),
        "{out}"
    );
    let out = kubectl(
        &config,
        &[
            "get",
            "deploy",
            "web",
            "-n",
            "demo",
            "-o",
            "jsonpath={.spec.replicas}",
        ],
    )
    .await;
    assert_eq!(out, "1");

    let out = kubectl(&config, &["describe", "widget", "w1", "-n", "demo"]).await;
    assert!(
        out.contains("Name:         w1") && out.lines().any(|l| l.trim() == "Phase:     Ready"),
        "{out}"
    );
    // An event an operator records shows in describe.
    let client = server.cluster().unwrap().client().clone();
    let configmaps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client.clone(), "demo");
    let cfg = configmaps.get("cfg").await.unwrap();
    let reporter = Reporter {
        controller: "hokan-test".into(),
        instance: None,
    };
    let event = Event {
        type_: EventType::Warning,
        reason: "Unreachable".into(),
        note: Some("the store did not answer".into()),
        action: "Check".into(),
        secondary: None,
    };
    Recorder::new(client, reporter)
        .publish(&event, &cfg.object_ref(&()))
        .await
        .unwrap();
    let out = kubectl(&config, &["describe", "configmap", "cfg", "-n", "demo"]).await;
    let line = out
        .lines()
        .find(|l| l.contains("Unreachable"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("Warning") && line.contains("the store did not answer"),
        "{out}"
    );

    // delete waits, watching, while a finalizer holds the object.
    let hold = json!({"metadata": {"finalizers": ["example.com/hold"]}});
    let held = api
        .patch("w1", &Default::default(), &kube::api::Patch::Merge(hold))
        .await
        .unwrap();
    let rv = held.metadata.resource_version.unwrap();
    let events = api
        .watch(&kube::api::WatchParams::default().timeout(20), &rv)
        .await
        .unwrap();
    let deleting = tokio::spawn({
        let config = config.clone();
        async move {
            kubectl(
                &config,
                &["delete", "widget", "w1", "-n", "demo", "--timeout=20s"],
            )
            .await
        }
    });
    let mut events = Box::pin(events);
    loop {
        match events.try_next().await.unwrap() {
            Some(kube::api::WatchEvent::Modified(w)) if w.metadata.deletion_timestamp.is_some() => {
                break;
            }
            Some(_) => {}
            None => panic!("the watch ended before kubectl deleted the widget"),
        }
    }
    // Released once kubectl watches for the deletion (it first reads the
    // object; polled, 20 s at most).
    let kubectl_watches = || {
        server.requests().into_iter().any(|r| {
            r.query.contains("watch=true")
                && r.path.ends_with("/widgets")
                && r.query.contains("metadata.name")
        })
    };
    for _ in 0..1000 {
        if kubectl_watches() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(kubectl_watches(), "kubectl waits through a watch");
    let release = json!({"metadata": {"finalizers": null}});
    api.patch("w1", &Default::default(), &kube::api::Patch::Merge(release))
        .await
        .unwrap();
    let out = deleting.await.unwrap();
    assert!(out.contains("widget.example.com \"w1\" deleted"), "{out}");
    let out = kubectl(
        &config,
        &["delete", "-k", base.to_str().unwrap(), "--timeout=20s"],
    )
    .await;
    assert!(out.contains("namespace \"demo\" deleted"), "{out}");
    assert!(server.object("", "namespaces", None, "demo").is_none());
    assert!(
        server
            .object("apps", "deployments", Some("demo"), "web")
            .is_none()
    );
}
