//! Watches: every change to a stored object goes through [`State::put`] or
//! [`State::remove`], which keep a bounded history of events (as the real
//! server's watch cache does) and wake the open watches. A watch starts from
//! a resourceVersion (events after it), or from the current state (synthetic
//! ADDED events) when none or `"0"` is given; a version older than the
//! history answers an ERROR event with a `410 Expired` Status, as the real
//! server does, so clients relist.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Bytes;
use serde_json::{Value, json};

use super::Inner;
use super::state::{ApiError, FieldTerm, Key, Query, State, Stored, fields_match};
use crate::discovery::ResourceInfo;
use crate::object::GroupResource;
use crate::selector::Selector;

/// How many events the server remembers unless a test says otherwise.
pub const DEFAULT_HISTORY: usize = 10_000;

/// How often an idle watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change, as the watch cache keeps it.
#[derive(Clone, Debug)]
pub struct Event {
    pub rv: u64,
    pub gr: GroupResource,
    pub key: Key,
    pub kind: EventType,
    /// The object after the change (before it, with the deletion's
    /// resourceVersion, for a deletion).
    pub object: Stored,
    /// The object before a modification, to tell watches whose selector it
    /// left or entered.
    pub prev: Option<Stored>,
}

/// The bounded event history and the bell that wakes watches.
pub struct History {
    events: VecDeque<Event>,
    pub limit: usize,
    /// Versions at or below this one are no longer in the history.
    floor: u64,
    bell: tokio::sync::watch::Sender<u64>,
}

impl History {
    pub fn new() -> Self {
        History {
            events: VecDeque::new(),
            limit: DEFAULT_HISTORY,
            floor: 0,
            bell: tokio::sync::watch::Sender::new(0),
        }
    }

    fn push(&mut self, event: Event) {
        let rv = event.rv;
        self.events.push_back(event);
        self.trim();
        self.bell.send_replace(rv);
    }

    /// Forgets the oldest events beyond the limit.
    pub fn trim(&mut self) {
        while self.events.len() > self.limit {
            if let Some(e) = self.events.pop_front() {
                self.floor = e.rv;
            }
        }
    }

    /// Whether events after `rv` are all still known.
    fn covers(&self, rv: u64) -> bool {
        rv >= self.floor
    }
}

impl State {
    /// Stores `body` (its resourceVersion already set) under `key`,
    /// recording ADDED or MODIFIED.
    pub fn put(&mut self, gr: &GroupResource, key: Key, body: Value) {
        let rv = rv_of(&body);
        let stored = Stored::from_value(body);
        let prev = self
            .objects
            .entry(gr.clone())
            .or_default()
            .insert(key.clone(), stored.clone());
        let kind = if prev.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.history.push(Event {
            rv,
            gr: gr.clone(),
            key,
            kind,
            object: stored,
            prev,
        });
    }

    /// Removes the object under `key`, recording DELETED with a new
    /// resourceVersion; answers the object as it was last stored.
    pub fn remove(&mut self, gr: &GroupResource, key: &Key) -> Option<Value> {
        let stored = self.objects.get_mut(gr)?.remove(key)?;
        let last = stored.value();
        let rv = self.next_rv();
        let mut gone = last.clone();
        gone["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.history.push(Event {
            rv,
            gr: gr.clone(),
            key: key.clone(),
            kind: EventType::Deleted,
            object: Stored::from_value(gone),
            prev: None,
        });
        Some(last)
    }

    /// Sets how many events are remembered (a smaller bound makes old
    /// versions expire at once).
    pub fn set_history_limit(&mut self, limit: usize) {
        self.history.limit = limit;
        self.history.trim();
    }
}

fn rv_of(body: &Value) -> u64 {
    body.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|v| v.parse().ok())
        .unwrap_or_default()
}

/// A watch request, checked before the stream starts.
pub struct WatchSpec {
    /// The resource as the client sees it.
    resource: ResourceInfo,
    /// The resource whose objects are watched (events.k8s.io's Events are
    /// core Events).
    storage: GroupResource,
    namespace: Option<String>,
    labels: Selector,
    fields: Vec<FieldTerm>,
    /// `None` for the current state first.
    from: Option<u64>,
    initial_events: bool,
    bookmarks: bool,
    timeout: Option<Duration>,
    /// Objects as one-row Tables, as `kubectl get -w` asks.
    pub table: bool,
}

impl std::fmt::Debug for WatchSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchSpec")
            .field("resource", &self.resource.resource)
            .field("from", &self.from)
            .finish()
    }
}

/// `watch=true` or `watch=1`.
pub fn is_watch(query: &Query) -> bool {
    matches!(query.get("watch"), Some("true" | "1"))
}

impl WatchSpec {
    pub fn parse(
        resource: &ResourceInfo,
        storage: &ResourceInfo,
        namespace: Option<&str>,
        query: &Query,
    ) -> Result<Self, ApiError> {
        let bad = |m: String| ApiError::new(400, "BadRequest", m);
        let labels =
            Selector::parse(query.get("labelSelector").unwrap_or_default()).map_err(bad)?;
        let fields = super::state::parse_field_selector(
            resource,
            query.get("fieldSelector").unwrap_or_default(),
        )?;
        let rv = query.get("resourceVersion").unwrap_or_default();
        let initial_events = query.get("sendInitialEvents") == Some("true");
        if initial_events && query.get("resourceVersionMatch") != Some("NotOlderThan") {
            return Err(ApiError::new(
                422,
                "Invalid",
                "ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless resourceVersionMatch is set to NotOlderThan",
            ));
        }
        let from = match rv {
            "" | "0" => None,
            _ if initial_events => None,
            v => Some(v.parse::<u64>().map_err(|_| {
                bad(format!(
                    "resourceVersion {v:?} is not valid: it must be a number"
                ))
            })?),
        };
        let timeout = match query.get("timeoutSeconds") {
            Some(t) => Some(Duration::from_secs(
                t.parse()
                    .map_err(|_| bad(format!("invalid timeoutSeconds {t:?}")))?,
            )),
            None => None,
        };
        Ok(WatchSpec {
            resource: resource.clone(),
            storage: storage.group_resource(),
            namespace: namespace.map(str::to_string),
            labels,
            fields,
            from,
            initial_events,
            bookmarks: query.get("allowWatchBookmarks") == Some("true"),
            timeout,
            table: false,
        })
    }

    fn matches(&self, key: &Key, stored: &Stored) -> bool {
        self.namespace.as_deref().is_none_or(|ns| key.0 == ns)
            && self.labels.matches(&stored.labels)
            && fields_match(&self.fields, stored)
    }

    fn line(&self, state: &State, kind: &str, object: &Stored) -> Bytes {
        let r = &self.resource;
        let mut object = object.value();
        super::state::set_type_meta(&mut object, r);
        let object = super::events::view(r, object);
        if !self.table {
            return event_line(kind, &object);
        }
        let rv = object["metadata"]["resourceVersion"].clone();
        let list = serde_json::to_vec(&json!({"metadata": {}, "items": [object]}));
        let mut table = state.table(r, &list.unwrap_or_default());
        table["metadata"]["resourceVersion"] = rv;
        event_line(kind, &table)
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({
            "kind": self.resource.kind, "apiVersion": self.resource.api_version(),
            "metadata": metadata,
        });
        event_line("BOOKMARK", &object)
    }

    /// The lines for history events after `cursor`; `None` when the
    /// history no longer reaches back that far.
    fn changes(&self, state: &State, cursor: u64) -> Option<Vec<Bytes>> {
        if !state.history.covers(cursor) {
            return None;
        }
        let gr = &self.storage;
        let mut lines = Vec::new();
        // Events are in version order: start after the cursor.
        let start = state.history.events.partition_point(|e| e.rv <= cursor);
        for e in state.history.events.range(start..) {
            if e.gr != *gr {
                continue;
            }
            let now = self.matches(&e.key, &e.object);
            let kind = match e.kind {
                EventType::Added if now => "ADDED",
                EventType::Deleted if now => "DELETED",
                EventType::Modified => {
                    let before = e.prev.as_ref().is_some_and(|p| self.matches(&e.key, p));
                    match (before, now) {
                        (true, true) => "MODIFIED",
                        (false, true) => "ADDED",
                        // It left the selection: to this watch it is gone.
                        (true, false) => "DELETED",
                        (false, false) => continue,
                    }
                }
                _ => continue,
            };
            lines.push(self.line(state, kind, &e.object));
        }
        Some(lines)
    }
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

fn expired(rv: u64, floor: u64) -> Bytes {
    let status = ApiError::new(
        410,
        "Expired",
        format!("too old resource version: {rv} ({})", floor + 1),
    )
    .to_status();
    event_line("ERROR", &status)
}

/// Streams a watch's events into `tx` until the timeout, the client going
/// away, or an expired version.
pub async fn serve(inner: Arc<Inner>, spec: WatchSpec, tx: tokio::sync::mpsc::Sender<Bytes>) {
    let deadline = spec.timeout.map(|t| tokio::time::Instant::now() + t);
    let start = {
        let state = super::lock(&inner.state);
        let bell = state.history.bell.subscribe();
        match spec.from {
            Some(rv) if !state.history.covers(rv) => Err(expired(rv, state.history.floor)),
            Some(rv) => Ok((bell, rv, Vec::new())),
            None => {
                let mut lines: Vec<Bytes> = state
                    .objects
                    .get(&spec.storage)
                    .into_iter()
                    .flatten()
                    .filter(|(k, s)| spec.matches(k, s))
                    .map(|(_, s)| spec.line(&state, "ADDED", s))
                    .collect();
                if spec.initial_events && spec.bookmarks {
                    lines.push(spec.bookmark(state.resource_version, true));
                }
                Ok((bell, state.resource_version, lines))
            }
        }
    };
    let (mut bell, mut cursor, first) = match start {
        Ok(start) => start,
        Err(line) => {
            let _ = tx.send(line).await;
            return;
        }
    };
    for line in first {
        if tx.send(line).await.is_err() {
            return;
        }
    }
    loop {
        let changes = {
            let state = super::lock(&inner.state);
            match spec.changes(&state, cursor) {
                Some(lines) => Ok((lines, state.resource_version)),
                None => Err(expired(cursor, state.history.floor)),
            }
        };
        let (lines, now) = match changes {
            Ok(c) => c,
            Err(line) => {
                let _ = tx.send(line).await;
                return;
            }
        };
        cursor = cursor.max(now);
        for line in lines {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        let timeout = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = bell.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = timeout => {
                // The real server sends a last bookmark before closing, so
                // the client resumes from it.
                if spec.bookmarks {
                    let _ = tx.send(spec.bookmark(cursor, false)).await;
                }
                return;
            }
            _ = tokio::time::sleep(BOOKMARK_EVERY), if spec.bookmarks => {
                if tx.send(spec.bookmark(cursor, false)).await.is_err() {
                    return;
                }
            }
            _ = tx.closed() => return,
        }
    }
}
