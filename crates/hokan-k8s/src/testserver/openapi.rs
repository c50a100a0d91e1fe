//! Minimal OpenAPI v3 documents, enough for `kubectl`: the root lists each
//! served group-version, and each group-version's document has, per
//! resource, its paths with a PATCH operation naming its kind
//! (`x-kubernetes-group-version-kind`) and the `fieldValidation` parameter.
//! From that kubectl learns the server validates fields itself, so it does
//! no client-side validation (which needs full schemas). The operations
//! declare no request body, so `kubectl apply` computes strategic merge
//! patches from its compiled-in types for built-in kinds and JSON merge
//! patches for custom resources, as it does for any kind without a schema.
//! No schemas are served (`kubectl explain` finds nothing); `/openapi/v2`
//! is 404, as on a server with it turned off.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::state::State;

impl State {
    /// `GET /openapi/v3`: the group-versions and their documents' URLs.
    pub fn openapi_root(&self) -> Value {
        let mut paths = serde_json::Map::new();
        let gvs: std::collections::BTreeSet<String> = self
            .discovery
            .resources
            .iter()
            .map(|r| gv_path(&r.group, &r.version))
            .collect();
        for gv in gvs {
            let hash = blake3::hash(self.openapi_group_version(&gv).to_string().as_bytes());
            let url = format!("/openapi/v3/{gv}?hash={}", &hash.to_hex()[..32]);
            paths.insert(gv, json!({"serverRelativeURL": url}));
        }
        json!({"paths": paths})
    }

    /// `GET /openapi/v3/api/v1`, `/openapi/v3/apis/<group>/<version>`.
    pub fn openapi_group_version(&self, gv: &str) -> Value {
        let mut paths: BTreeMap<String, Value> = BTreeMap::new();
        for r in self
            .discovery
            .resources
            .iter()
            .filter(|r| gv_path(&r.group, &r.version) == gv)
        {
            let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
            let scope = if r.namespaced {
                "namespaces/{namespace}/"
            } else {
                ""
            };
            let item = format!("/{gv}/{scope}{}/{{name}}", r.resource);
            let operation = |verb: &str| {
                json!({
                    "operationId": format!("{verb}{}", r.kind),
                    "x-kubernetes-action": verb,
                    "x-kubernetes-group-version-kind": gvk,
                    "parameters": [
                        {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                        {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                        {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                    ],
                    "responses": {"200": {"description": "OK"}},
                })
            };
            let mut path = json!({});
            if r.supports(&["get"]) {
                path["get"] = operation("get");
            }
            if r.supports(&["update"]) {
                path["put"] = operation("put");
            }
            if r.supports(&["patch"]) {
                path["patch"] = operation("patch");
            }
            paths.insert(item, path);
            let collection = format!("/{gv}/{scope}{}", r.resource);
            if r.supports(&["create"]) {
                paths.insert(collection, json!({"post": operation("post")}));
            }
        }
        json!({
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": "v1.31.0"},
            "paths": paths,
            "components": {"schemas": {}},
        })
    }
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}
