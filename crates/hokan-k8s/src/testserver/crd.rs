//! CustomResourceDefinitions: a created CRD is NamesAccepted, then
//! Established (at once, or after a number of GETs a test sets), and from
//! then on its resource is served.

use serde_json::{Value, json};

use super::state::State;
use super::write::now;
use crate::object::GroupResource;

pub const CRD: (&str, &str) = ("apiextensions.k8s.io", "customresourcedefinitions");

impl State {
    /// Records a CRD; it is Established at once, or after
    /// `crd_establish_after` GETs (a real server takes a moment).
    pub(super) fn register_crd(&mut self, name: &str, body: &mut Value) {
        let kind = |k: &str| {
            body.pointer(&format!("/spec/names/{k}"))
                .cloned()
                .unwrap_or(Value::Null)
        };
        let accepted = json!({"plural": kind("plural"), "singular": kind("singular"), "kind": kind("kind"), "listKind": kind("listKind")});
        let stored: Vec<Value> = body
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|v| v["storage"] == true)
            .map(|v| v["name"].clone())
            .collect();
        body["status"] = json!({
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now()},
                {"type": "Established", "status": "False", "reason": "Installing", "message": "the initial names have been accepted", "lastTransitionTime": now()},
            ],
            "acceptedNames": accepted,
            "storedVersions": stored,
        });
        if self.crd_establish_after == 0 {
            set_established(body);
            self.serve_crd(body);
        } else {
            self.crd_gets.insert(name.to_string(), 0);
        }
    }

    pub(super) fn establish_crd(&mut self, name: &str) {
        let gr = GroupResource::new(CRD.0, CRD.1);
        let Some(stored) = self
            .objects
            .get(&gr)
            .and_then(|m| m.get(&(String::new(), name.to_string())))
        else {
            return;
        };
        let mut body = stored.value();
        set_established(&mut body);
        self.serve_crd(&body);
        body["metadata"]["resourceVersion"] = json!(self.next_rv().to_string());
        self.put(&gr, (String::new(), name.to_string()), body);
    }

    /// A deleted CRD's resource stops being served and its objects go.
    pub(super) fn unserve_crd(&mut self, name: &str) {
        let Some((plural, group)) = name.split_once('.') else {
            return;
        };
        let gr = GroupResource::new(group, plural);
        let keys: Vec<_> = self
            .objects
            .get(&gr)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for key in keys {
            self.remove(&gr, &key);
        }
        self.objects.remove(&gr);
        self.custom.remove(&gr);
        self.docs.remove_crd(group, plural);
        self.refresh_discovery();
    }

    fn serve_crd(&mut self, body: &Value) {
        self.docs.add_crd(body);
        self.refresh_discovery();
        if let (Some(group), Some(plural)) = (
            body.pointer("/spec/group").and_then(Value::as_str),
            body.pointer("/spec/names/plural").and_then(Value::as_str),
        ) {
            self.custom.insert(GroupResource::new(group, plural));
        }
    }
}

fn set_established(body: &mut Value) {
    for c in body
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if c["type"] == "Established" {
            c["status"] = json!("True");
            c["reason"] = json!("InitialNamesAccepted");
            c["message"] = json!("the initial names have been accepted");
        }
    }
}
