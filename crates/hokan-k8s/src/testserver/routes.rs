//! URL routing of the test server: discovery paths, then resource paths
//! (`/api/v1/namespaces/ns/configmaps/name`, `/apis/g/v/...`), verbs checked
//! against discovery, 404/405 answered as the real server answers them.

use serde_json::{Value, json};

use super::state::{ApiError, Query, State};
use crate::discovery::ResourceInfo;

/// A response: status, content type, body.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

const JSON: &str = "application/json";
const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

impl Reply {
    fn json(status: u16, v: &Value) -> Self {
        Reply {
            status,
            content_type: JSON,
            body: serde_json::to_vec(v).unwrap_or_default(),
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
pub fn route(
    state: &mut State,
    method: &str,
    path: &str,
    query: &str,
    accept: &str,
    body: &[u8],
) -> Reply {
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
                return Reply {
                    status: 200,
                    content_type: AGGREGATED,
                    body,
                };
            }
            ["api"] => return Reply::json(200, &state.docs.api_versions()),
            ["apis"] if aggregated => {
                let body = serde_json::to_vec(&state.docs.apis).unwrap_or_default();
                return Reply {
                    status: 200,
                    content_type: AGGREGATED,
                    body,
                };
            }
            ["apis"] => return Reply::json(200, &state.docs.group_list()),
            ["api", v] => return discovery(state.docs.resource_list("", v)),
            ["apis", g] => return discovery(state.docs.api_group(g)),
            ["apis", g, v] => return discovery(state.docs.resource_list(g, v)),
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
    let query = Query::parse(query);
    match target.handle(state, method, &query, body) {
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

    fn handle(
        &self,
        state: &mut State,
        method: &str,
        query: &Query,
        body: &[u8],
    ) -> Result<Reply, ApiError> {
        let r = &self.resource;
        if let (Some(sub), Some(name)) = (&self.subresource, &self.name) {
            let ns = self.namespace.as_deref().unwrap_or_default();
            let key = (ns, name.as_str(), sub.as_str());
            match super::pod_routes::handle(state, r, key, method, query, body) {
                Some(Ok(super::pod_routes::Answer::Json(code, v))) => {
                    return Ok(Reply::json(code, &v));
                }
                Some(Ok(super::pod_routes::Answer::Text(text))) => {
                    return Ok(Reply {
                        status: 200,
                        content_type: "text/plain",
                        body: text,
                    });
                }
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
        let verb = match (method, &self.name) {
            ("GET", None) => "list",
            ("POST", None) => "create",
            ("GET", Some(_)) => "get",
            ("PUT", Some(_)) => "update",
            ("DELETE", Some(_)) => "delete",
            _ => "",
        };
        let allowed = if let Some(sub) = &self.subresource {
            sub == "status" && matches!(verb, "get" | "update")
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
        if r.namespaced && self.namespace.is_none() && verb != "list" {
            return Err(not_found());
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
        match (verb, &self.name) {
            ("list", _) => {
                let body = state.list(r, self.namespace.as_deref(), query)?;
                Ok(Reply {
                    status: 200,
                    content_type: JSON,
                    body,
                })
            }
            ("create", _) => Ok(Reply::json(201, &state.create(r, ns, parse()?)?)),
            ("get", Some(name)) => Ok(Reply::json(200, &state.get(r, ns, name)?)),
            ("update", Some(name)) => Ok(Reply::json(
                200,
                &state.update(r, ns, name, parse()?, self.subresource.is_some())?,
            )),
            ("delete", Some(name)) => Ok(Reply::json(200, &state.delete(r, ns, name)?)),
            _ => Err(not_found()),
        }
    }
}
