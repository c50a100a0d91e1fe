//! URL routing of the test server: discovery paths, then resource paths
//! (`/api/v1/namespaces/ns/configmaps/name`, `/apis/g/v/...`), verbs checked
//! against discovery, 404/405 answered as the real server answers them.

use serde_json::{Value, json};

use super::delete::DeleteOptions;
use super::events::{unview, view, view_list};
use super::patch::PatchKind;
use super::state::{ApiError, Query, State};
use super::watch::{WatchSpec, is_watch};
use crate::discovery::ResourceInfo;

/// A response: status, content type, body; or a watch to stream.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub watch: Option<WatchSpec>,
}

/// What the request carries besides its path.
pub struct Request<'a> {
    pub method: &'a str,
    pub query: &'a str,
    pub accept: &'a str,
    pub content_type: &'a str,
    pub body: &'a [u8],
}

const JSON: &str = "application/json";
const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

impl Reply {
    fn json(status: u16, v: &Value) -> Self {
        Reply {
            status,
            content_type: JSON,
            body: serde_json::to_vec(v).unwrap_or_default(),
            watch: None,
        }
    }

    fn raw(status: u16, content_type: &'static str, body: Vec<u8>) -> Self {
        Reply {
            status,
            content_type,
            body,
            watch: None,
        }
    }

    fn error(e: &ApiError) -> Self {
        Reply::json(e.code, &e.to_status())
    }
}

fn not_found() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

/// Answers one request.
pub fn route(state: &mut State, path: &str, req: &Request) -> Reply {
    let (method, accept) = (req.method, req.accept);
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let aggregated =
        accept.contains("as=APIGroupDiscoveryList") && accept.contains("g=apidiscovery.k8s.io");
    let discovery = |v: Option<Value>| match v {
        Some(v) => Reply::json(200, &v),
        None => Reply::error(&not_found()),
    };
    if method == "GET" {
        match segments.as_slice() {
            ["api"] if aggregated => {
                let body = serde_json::to_vec(&state.docs.core).unwrap_or_default();
                return Reply::raw(200, AGGREGATED, body);
            }
            ["api"] => return Reply::json(200, &state.docs.api_versions()),
            ["apis"] if aggregated => {
                let body = serde_json::to_vec(&state.docs.apis).unwrap_or_default();
                return Reply::raw(200, AGGREGATED, body);
            }
            ["apis"] => return Reply::json(200, &state.docs.group_list()),
            ["api", v] => return discovery(state.docs.resource_list("", v)),
            ["apis", g] => return discovery(state.docs.api_group(g)),
            ["apis", g, v] => return discovery(state.docs.resource_list(g, v)),
            ["openapi", "v3"] => return Reply::json(200, &state.openapi_root()),
            ["openapi", "v3", gv @ ..] => {
                let doc = state.openapi_group_version(&gv.join("/"));
                return if doc["paths"].as_object().is_some_and(|p| p.is_empty()) {
                    Reply::error(&not_found())
                } else {
                    Reply::json(200, &doc)
                };
            }
            ["version"] => {
                return Reply::json(
                    200,
                    &json!({"major": "1", "minor": "31", "gitVersion": "v1.31.0-hokan-test"}),
                );
            }
            _ => {}
        }
    }
    let (group, version, rest) = match segments.as_slice() {
        ["api", v, rest @ ..] if !rest.is_empty() => ("", *v, rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => (*g, *v, rest),
        _ => return Reply::error(&not_found()),
    };
    let Some(target) = Target::parse(state, group, version, rest) else {
        return Reply::error(&not_found());
    };
    if state.forbidden.contains(&target.resource.group_resource()) {
        let r = &target.resource;
        let message = format!(
            "{} is forbidden: User \"system:serviceaccount:hokan:backup\" cannot {} resource \"{}\" in API group \"{}\"",
            r.resource,
            method.to_ascii_lowercase(),
            r.resource,
            r.group
        );
        return Reply::error(&ApiError::new(403, "Forbidden", message));
    }
    if let Some(code) = state.failing.get(&target.resource.group_resource()) {
        let message = format!(
            "Internal error occurred: the server could not serve {}",
            target.resource.resource
        );
        return Reply::error(&ApiError::new(*code, "InternalError", message));
    }
    match target.handle(state, req) {
        Ok(reply) => reply,
        Err(e) => Reply::error(&e),
    }
}

/// What a resource path names.
struct Target {
    resource: ResourceInfo,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

impl Target {
    fn parse(state: &State, group: &str, version: &str, rest: &[&str]) -> Option<Self> {
        // `namespaces/<ns>/<resource>...` when <resource> is namespaced;
        // otherwise the path names a cluster-scoped resource (which may be
        // `namespaces` itself, with `status` or `finalize` after the name).
        if let ["namespaces", ns, resource, tail @ ..] = rest
            && let Some(r) = state
                .resource(group, version, resource)
                .filter(|r| r.namespaced)
        {
            return Target::build(r, Some(ns.to_string()), tail);
        }
        let (resource, tail) = rest.split_first()?;
        let r = state.resource(group, version, resource)?;
        Target::build(r, None, tail)
    }

    fn build(resource: ResourceInfo, namespace: Option<String>, tail: &[&str]) -> Option<Self> {
        let (name, subresource) = match tail {
            [] => (None, None),
            [name] => (Some(name.to_string()), None),
            [name, sub] if resource.subresources.iter().any(|s| s == sub) => {
                (Some(name.to_string()), Some(sub.to_string()))
            }
            _ => return None,
        };
        Some(Target {
            resource,
            namespace,
            name,
            subresource,
        })
    }

    fn handle(&self, state: &mut State, req: &Request) -> Result<Reply, ApiError> {
        let r = &self.resource;
        let query = &Query::parse(req.query);
        let body = req.body;
        if let (Some(sub), Some(name)) = (&self.subresource, &self.name) {
            let ns = self.namespace.as_deref().unwrap_or_default();
            let key = (ns, name.as_str(), sub.as_str());
            match super::pod_routes::handle(state, r, key, req.method, query, body) {
                Some(Ok(super::pod_routes::Answer::Json(code, v))) => {
                    return Ok(Reply::json(code, &v));
                }
                Some(Ok(super::pod_routes::Answer::Text(text))) => {
                    return Ok(Reply {
                        status: 200,
                        content_type: "text/plain",
                        body: text,
                        watch: None,
                    });
                }
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
        let verb = match (req.method, &self.name) {
            ("GET", None) if is_watch(query) => "watch",
            ("GET", None) => "list",
            ("POST", None) => "create",
            ("GET", Some(_)) => "get",
            ("PUT", Some(_)) => "update",
            ("PATCH", Some(_)) => "patch",
            ("DELETE", Some(_)) => "delete",
            ("DELETE", None) => "deletecollection",
            _ => "",
        };
        let allowed = if let Some(sub) = &self.subresource {
            sub == "status" && matches!(verb, "get" | "update" | "patch")
        } else {
            r.supports(&[verb]) && !verb.is_empty()
        };
        if !allowed {
            return Err(ApiError::new(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            ));
        }
        if r.namespaced
            && self.namespace.is_none()
            && !matches!(verb, "list" | "watch" | "deletecollection")
        {
            return Err(not_found());
        }
        if query.get("dryRun").is_some_and(|d| !d.is_empty())
            && !matches!(verb, "get" | "list" | "watch")
        {
            // Better refused than written for real.
            return Err(ApiError::new(
                400,
                "BadRequest",
                "dry run is not supported by this test server: the write would be made",
            ));
        }
        let ns = self.namespace.as_deref().unwrap_or_default();
        let parse = || -> Result<Value, ApiError> {
            serde_json::from_slice(body).map_err(|e| {
                ApiError::new(
                    400,
                    "BadRequest",
                    format!("the request body is not valid JSON: {e}"),
                )
            })
        };
        let status = self.subresource.is_some();
        // Where the objects live (events.k8s.io's Events are core Events).
        let store = &state.storage_of(r);
        let namespace = self.namespace.as_deref();
        match (verb, &self.name) {
            ("watch", _) => {
                let mut spec = WatchSpec::parse(r, store, namespace, query)?;
                spec.table = super::table::wants_table(req.accept);
                let mut reply = Reply::raw(200, JSON, Vec::new());
                reply.watch = Some(spec);
                Ok(reply)
            }
            ("list", _) if super::table::wants_table(req.accept) => {
                let list = state.list(store, namespace, query)?;
                Ok(Reply::json(200, &state.table(store, &list)))
            }
            ("list", _) => {
                let body = view_list(r, state.list(store, namespace, query)?);
                Ok(Reply::raw(200, JSON, body))
            }
            ("get", Some(name)) if super::table::wants_table(req.accept) => {
                let object = state.get(store, ns, name)?;
                let list = serde_json::to_vec(&json!({"metadata": {}, "items": [object]}))
                    .unwrap_or_default();
                Ok(Reply::json(200, &state.table(store, &list)))
            }
            ("patch", Some(name)) => {
                let kind = PatchKind::from_content_type(req.content_type)?;
                let (code, object) = state.patch(r, ns, name, kind, body, query, status)?;
                Ok(Reply::json(code, &object))
            }
            ("create", _) => {
                let created = state.create(store, ns, unview(r, parse()?))?;
                Ok(Reply::json(201, &view(r, created)))
            }
            ("get", Some(name)) => Ok(Reply::json(200, &view(r, state.get(store, ns, name)?))),
            ("update", Some(name)) => {
                let updated = state.update(store, ns, name, unview(r, parse()?), status)?;
                Ok(Reply::json(200, &view(r, updated)))
            }
            ("deletecollection", _) => {
                let options = DeleteOptions::parse(body, query)?;
                let list = state.delete_collection(store, namespace, query, &options)?;
                Ok(Reply::json(200, &list))
            }
            ("delete", Some(name)) => {
                let options = DeleteOptions::parse(body, query)?;
                let (code, object) = state.delete(store, ns, name, &options)?;
                Ok(Reply::json(code, &view(r, object)))
            }
            _ => Err(not_found()),
        }
    }
}
