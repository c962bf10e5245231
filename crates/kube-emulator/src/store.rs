//! Object storage, the global resourceVersion counter and the event history that watches replay.
//! Pure (no I/O); the server wraps it in a mutex.

use std::collections::{BTreeMap, VecDeque};

use base64::Engine as _;
use serde_json::{Value, json};

use super::events;
use super::patch::{self, PatchKind};
use super::registry::ResourceDef;
use super::rules::{self, Target, UpdateEffect, UpdateMode, meta_mut, meta_str};
use super::selectors::Selectors;
use super::status::{self, ApiError};

/// Watch event types stored in the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One committed change, kept for watch replay.
#[derive(Clone, Debug)]
pub(crate) struct HistoryEvent {
    pub rv: u64,
    pub storage_key: String,
    pub namespace: String,
    pub event_type: EventType,
    /// The object after the change (for DELETED: the final object).
    pub object: Value,
    /// The object before the change (for selector transitions).
    pub previous: Option<Value>,
}

/// Outcome of a PUT or PATCH.
#[derive(Clone, Debug)]
pub(crate) enum Written {
    /// The object was created (201).
    Created(Value),
    /// The object was changed, or left as it was by a no-op write (200).
    Updated(Value),
    /// The write removed the last finalizer of a deleting object, which is now gone (200).
    Removed(Value),
}

/// Outcome of a DELETE.
#[derive(Clone, Debug)]
pub(crate) enum Deleted {
    /// Finalizers pending: the object stays with `deletionTimestamp` set.
    Pending(Value),
    /// The object is gone; this is its final state.
    Removed(Value),
}

/// What a PATCH request carries besides the object it names: its patch type, its body, and
/// whether it is for the object or its `/status`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Patching<'a> {
    /// The patch type (from the Content-Type).
    pub kind: PatchKind,
    /// The patch.
    pub body: &'a [u8],
    /// The object or its `/status`.
    pub target: Target,
}

/// Per-request write options.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WriteOptions<'a> {
    /// RFC 3339 timestamp used for creation/deletion timestamps.
    pub now: &'a str,
    /// `dryRun=All`: validate and compute, but change nothing.
    ///
    /// Deviation: dry-run results carry the old (or no) resourceVersion and no uid guarantees.
    pub dry_run: bool,
    /// The `fieldManager` of the request, if given.
    pub field_manager: Option<&'a str>,
}

/// A list request's options.
#[derive(Clone, Debug, Default)]
pub(crate) struct ListOptions {
    pub namespace: Option<String>,
    pub selectors: Selectors,
    /// Page size; `None` or 0 means everything.
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

type Objects = BTreeMap<(String, String), Value>;

/// All stored objects plus the history window.
#[derive(Debug)]
pub(crate) struct Store {
    rv: u64,
    objects: BTreeMap<String, Objects>,
    /// The last `history_cap` committed changes.
    ///
    /// Deviation: one window shared by all resources and counted in events, so busy resources
    /// (Lease renewals, Events) push out the history of quiet ones. A real apiserver keeps a
    /// watch cache per resource and etcd compacts by time (every 5 minutes), so its 410s come at
    /// other moments (kube-rs recovers from both by relisting).
    history: VecDeque<HistoryEvent>,
    history_cap: usize,
    /// The resourceVersion of the newest event dropped from history; watching from an older
    /// version is refused with 410.
    compacted_rv: u64,
    /// What each field manager last applied (server-side apply), by object uid, target and
    /// manager: a field it stops applying is removed, as the real server does.
    applied: patch::AppliedFields,
}

/// Sets the `apiVersion` the client asked for (storage is shared between versions).
fn present(def: &ResourceDef, obj: &Value) -> Value {
    let mut out = obj.clone();
    out["apiVersion"] = json!(def.kind.api_version());
    out["kind"] = json!(def.kind.kind);
    out
}

/// Presents an object as an item of a list: built-in list items carry no kind/apiVersion on a
/// real server (typed lists), custom resource items do (unstructured lists).
fn present_item(def: &ResourceDef, obj: &Value) -> Value {
    let mut out = present(def, obj);
    if !def.custom
        && let Value::Object(m) = &mut out
    {
        m.remove("apiVersion");
        m.remove("kind");
    }
    out
}

fn ns_key(def: &ResourceDef, ns: Option<&str>) -> String {
    if def.kind.namespaced {
        ns.unwrap_or_default().to_string()
    } else {
        String::new()
    }
}

impl Store {
    /// An empty store keeping `history_cap` events for watch resume.
    pub fn new(history_cap: usize) -> Self {
        Self {
            rv: 0,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            history_cap: history_cap.max(1),
            compacted_rv: 0,
            applied: patch::AppliedFields::default(),
        }
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    fn bucket(&self, def: &ResourceDef) -> Option<&Objects> {
        self.objects.get(&def.storage_key())
    }

    fn lookup(&self, def: &ResourceDef, ns: Option<&str>, name: &str) -> Option<&Value> {
        self.bucket(def)?.get(&(ns_key(def, ns), name.to_string()))
    }

    /// GET of one object.
    pub fn get(&self, def: &ResourceDef, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
        self.lookup(def, ns, name)
            .map(|o| present(def, o))
            .ok_or_else(|| ApiError::not_found(def, name))
    }

    /// Current objects in `ns` (all namespaces if `None`) matching `selectors`, in key order, as
    /// sent in watch events.
    pub fn matching(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        selectors: &Selectors,
    ) -> Vec<Value> {
        self.bucket(def)
            .into_iter()
            .flat_map(|b| b.iter())
            .filter(|((ons, _), _)| ns.is_none_or(|ns| ns == ons))
            .filter(|(_, o)| selectors.matches(o))
            .map(|(_, o)| present(def, o))
            .collect()
    }

    /// LIST with selectors and `limit`/`continue` pagination.
    ///
    /// Deviation: later pages show the current state after the continue key rather than a
    /// snapshot at the first page's resourceVersion (they do report that resourceVersion, and a
    /// token older than the kept history is refused with 410 as on a real server). The
    /// `resourceVersion`/`resourceVersionMatch` list parameters are ignored: lists are always
    /// served from the latest state.
    pub fn list(&self, def: &ResourceDef, opts: &ListOptions) -> Result<Value, ApiError> {
        let (list_rv, start_after) = match opts.continue_token.as_deref().filter(|t| !t.is_empty())
        {
            Some(token) => {
                let (rv, key) = decode_continue(token)?;
                if rv < self.compacted_rv {
                    return Err(ApiError::expired(
                        "The provided continue parameter is too old to display a consistent list result. \
                         You can start a new list without the continue parameter.",
                    ));
                }
                (rv, Some(key))
            }
            None => (self.rv, None),
        };
        let limit = opts.limit.filter(|l| *l > 0);
        let mut items = Vec::new();
        let mut last_key = None;
        let mut remaining = 0usize;
        for ((ns, name), obj) in self.bucket(def).into_iter().flat_map(|b| b.iter()) {
            if opts.namespace.as_deref().is_some_and(|want| want != ns) {
                continue;
            }
            if start_after
                .as_ref()
                .is_some_and(|(sns, sname)| (ns, name) <= (sns, sname))
            {
                continue;
            }
            if !opts.selectors.matches(obj) {
                continue;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                remaining += 1;
                continue;
            }
            items.push(present_item(def, obj));
            last_key = Some((ns.clone(), name.clone()));
        }
        let mut metadata = json!({ "resourceVersion": list_rv.to_string() });
        if remaining > 0
            && let Some(key) = last_key
        {
            metadata["continue"] = json!(encode_continue(list_rv, &key));
            if opts.selectors.is_empty() {
                metadata["remainingItemCount"] = json!(remaining);
            }
        }
        Ok(json!({
            "kind": format!("{}List", def.kind.kind),
            "apiVersion": def.kind.api_version(),
            "metadata": metadata,
            "items": items,
        }))
    }

    /// Events with a resourceVersion greater than `rv`, or 410 if some were already dropped.
    pub fn events_after(&self, rv: u64) -> Result<impl Iterator<Item = &HistoryEvent>, ApiError> {
        if rv < self.compacted_rv {
            return Err(too_old(rv, self.compacted_rv));
        }
        let start = self.history.partition_point(|e| e.rv <= rv);
        Ok(self.history.range(start..))
    }

    /// Forgets the watch history, as a restarted apiserver's fresh watch cache does: a watch
    /// from any resourceVersion older than the current one gets 410 from now on.
    ///
    /// Deviation: continue tokens from before are refused too (410); a real server serves them
    /// from etcd until etcd compacts.
    pub fn reset_history(&mut self) {
        self.history.clear();
        self.compacted_rv = self.rv;
    }

    /// Whether a watch may start from `rv`.
    pub fn check_watch_start(&self, rv: u64) -> Result<(), ApiError> {
        self.events_after(rv).map(|_| ())
    }

    /// Records a change: bumps the resourceVersion, updates storage and history.
    fn commit(
        &mut self,
        def: &ResourceDef,
        previous: Option<Value>,
        mut object: Value,
        event_type: EventType,
    ) -> Value {
        self.rv += 1;
        meta_mut(&mut object).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let ns = meta_str(&object, "namespace")
            .unwrap_or_default()
            .to_string();
        let name = meta_str(&object, "name").unwrap_or_default().to_string();
        let bucket = self.objects.entry(def.storage_key()).or_default();
        if event_type == EventType::Deleted {
            bucket.remove(&(ns.clone(), name));
        } else {
            bucket.insert((ns.clone(), name), object.clone());
        }
        self.history.push_back(HistoryEvent {
            rv: self.rv,
            storage_key: def.storage_key(),
            namespace: ns,
            event_type,
            object: object.clone(),
            previous,
        });
        while self.history.len() > self.history_cap {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted_rv = dropped.rv;
            }
        }
        object
    }

    /// POST.
    pub fn create(
        &mut self,
        def: &ResourceDef,
        ns: Option<&str>,
        body: Value,
        opts: WriteOptions<'_>,
    ) -> Result<Value, ApiError> {
        let obj = rules::prepare_create(def, ns, body, opts.now, |name| {
            self.lookup(def, ns, name).is_some()
        })?;
        events::validate_create(def, &obj)?;
        if opts.dry_run {
            return Ok(present(def, &obj));
        }
        let stored = self.commit(def, None, obj, EventType::Added);
        Ok(present(def, &stored))
    }

    /// Stores the effect of an update.
    fn finish_update(
        &mut self,
        def: &ResourceDef,
        old: Value,
        candidate: Value,
        target: Target,
        mode: UpdateMode,
        opts: WriteOptions<'_>,
    ) -> Result<Written, ApiError> {
        let effect = rules::prepare_update(def, &old, candidate, target, mode)?;
        if let UpdateEffect::Store(new) | UpdateEffect::Remove(new) = &effect {
            events::validate_update(def, &old, new)?;
        }
        if opts.dry_run {
            return Ok(match effect {
                UpdateEffect::Unchanged => Written::Updated(present(def, &old)),
                UpdateEffect::Store(o) => Written::Updated(present(def, &o)),
                UpdateEffect::Remove(o) => Written::Removed(present(def, &o)),
            });
        }
        Ok(match effect {
            UpdateEffect::Unchanged => Written::Updated(present(def, &old)),
            UpdateEffect::Store(o) => Written::Updated(present(
                def,
                &self.commit(def, Some(old), o, EventType::Modified),
            )),
            UpdateEffect::Remove(o) => Written::Removed(present(
                def,
                &self.commit(def, Some(old), o, EventType::Deleted),
            )),
        })
    }

    /// PUT of the object or its `/status`.
    pub fn update(
        &mut self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        mut body: Value,
        target: Target,
        opts: WriteOptions<'_>,
    ) -> Result<Written, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request("request body must be a JSON object"));
        }
        rules::check_type_meta(def, &mut body)?;
        rules::check_namespace(def, &mut body, ns)?;
        match meta_str(&body, "name") {
            Some(given) if given != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({given}) does not match the name on the URL ({name})"
                )));
            }
            _ => {
                meta_mut(&mut body).insert("name".into(), json!(name));
            }
        }
        let Some(old) = self.lookup(def, ns, name).cloned() else {
            if def.allow_create_on_update() && target == Target::Main {
                meta_mut(&mut body).remove("resourceVersion");
                return self.create(def, ns, body, opts).map(Written::Created);
            }
            return Err(ApiError::not_found(def, name));
        };
        self.finish_update(def, old, body, target, UpdateMode::Put, opts)
    }

    /// PATCH of the object or its `/status`.
    ///
    /// Server-side apply creates a missing object, as the real server does.
    pub fn patch(
        &mut self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        request: Patching<'_>,
        opts: WriteOptions<'_>,
    ) -> Result<Written, ApiError> {
        let Patching { kind, body, target } = request;
        if kind == PatchKind::Strategic && def.custom {
            return Err(ApiError::unsupported_media_type(
                "application/strategic-merge-patch+json",
            ));
        }
        let Some(old) = self.lookup(def, ns, name).cloned() else {
            if kind == PatchKind::Apply && target == Target::Main {
                let mut applied = patch::parse_apply_body(body)?;
                check_apply_body(def, &applied)?;
                check_apply_name(&applied, name)?;
                meta_mut(&mut applied).insert("name".into(), json!(name));
                meta_mut(&mut applied).remove("resourceVersion");
                return self.create(def, ns, applied, opts).map(Written::Created);
            }
            return Err(ApiError::not_found(def, name));
        };
        let mut applied_by = None;
        if kind == PatchKind::Apply {
            let applied = patch::parse_apply_body(body)?;
            check_apply_body(def, &applied)?;
            check_apply_name(&applied, name)?;
            applied_by = Some(applied);
        }
        let mut candidate = old.clone();
        patch::apply_patch(&mut candidate, kind, body)?;
        if let (Some(applied), Some(manager)) = (&applied_by, opts.field_manager) {
            let uid = meta_str(&old, "uid").unwrap_or_default().to_owned();
            let key = (uid, target == Target::Status, manager.to_owned());
            let owned = patch::owned_paths(applied, target == Target::Status);
            patch::remove_unapplied(&mut candidate, self.applied.get(&key), &owned);
            if !opts.dry_run {
                self.applied.insert(key, owned);
            }
        }
        if !candidate.is_object() {
            // A JSON patch can replace the whole document (`"path": ""`); the real server then
            // fails to decode the result into the resource's type.
            return Err(ApiError::unprocessable(
                "the patched document is not a JSON object",
            ));
        }
        rules::check_type_meta(def, &mut candidate)?;
        if meta_str(&candidate, "name") != Some(name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta_str(&candidate, "name").unwrap_or_default()
            )));
        }
        rules::check_namespace(def, &mut candidate, ns)?;
        self.finish_update(def, old, candidate, target, UpdateMode::Patch, opts)
    }

    /// DELETE of one object.
    ///
    /// Deviation: `propagationPolicy`/`orphanDependents` are ignored — there is no garbage
    /// collector, so owner references are never acted upon.
    pub fn delete(
        &mut self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        options: &Value,
        opts: WriteOptions<'_>,
    ) -> Result<Deleted, ApiError> {
        let old = self
            .lookup(def, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(def, name))?;
        rules::check_delete_preconditions(def, &old, options)?;
        if !rules::finalizers(&old).is_empty() {
            return Ok(Deleted::Pending(
                match rules::mark_deleting(&old, opts.now) {
                    None => present(def, &old),
                    Some(marked) if opts.dry_run => present(def, &marked),
                    Some(marked) => present(
                        def,
                        &self.commit(def, Some(old), marked, EventType::Modified),
                    ),
                },
            ));
        }
        if opts.dry_run {
            return Ok(Deleted::Removed(present(def, &old)));
        }
        // Immediate deletion: the DELETED event and response carry the last stored state (no
        // deletionTimestamp) with the deletion's resourceVersion.
        Ok(Deleted::Removed(present(
            def,
            &self.commit(def, Some(old.clone()), old, EventType::Deleted),
        )))
    }

    /// DELETE of a collection: deletes every matching object as a single DELETE would.
    pub fn delete_collection(
        &mut self,
        def: &ResourceDef,
        ns: Option<&str>,
        selectors: &Selectors,
        opts: WriteOptions<'_>,
    ) -> Result<Vec<Value>, ApiError> {
        let targets: Vec<(String, String)> = self
            .bucket(def)
            .into_iter()
            .flat_map(|b| b.iter())
            .filter(|((ons, _), o)| ns.is_none_or(|ns| ns == ons) && selectors.matches(o))
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for (ons, name) in targets {
            let ons = (!ons.is_empty()).then_some(ons);
            match self.delete(def, ons.as_deref(), &name, &Value::Null, opts)? {
                Deleted::Pending(o) | Deleted::Removed(o) => out.push(present_item(def, &o)),
            }
        }
        Ok(out)
    }
}

/// The body of a successful DELETE: custom resources return the object (their registry sets
/// `ReturnDeletedObject`), built-ins a `Status` once the object is gone.
pub(crate) fn delete_response(def: &ResourceDef, outcome: &Deleted) -> Value {
    match outcome {
        Deleted::Pending(o) => o.clone(),
        Deleted::Removed(o) if def.custom => o.clone(),
        Deleted::Removed(o) => status::delete_success(
            def,
            meta_str(o, "name").unwrap_or_default(),
            meta_str(o, "uid").unwrap_or_default(),
        ),
    }
}

/// What the real server's field manager refuses in an apply body before merging anything
/// (`versionCheckManager`, `managedFieldsUpdater`): a missing or different `apiVersion`/`kind`,
/// and `metadata.managedFields`.
fn check_apply_body(def: &ResourceDef, applied: &Value) -> Result<(), ApiError> {
    let api_version = applied
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = applied.get("kind").and_then(Value::as_str).unwrap_or("");
    if api_version != def.kind.api_version() || kind != def.kind.kind {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        return Err(ApiError::bad_request(format!(
            "invalid object type: {group}/{version}, Kind={kind}"
        )));
    }
    if applied
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .is_some_and(|m| !m.is_null())
    {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
    Ok(())
}

fn check_apply_name(applied: &Value, name: &str) -> Result<(), ApiError> {
    match meta_str(applied, "name") {
        Some(given) if given != name => Err(ApiError::bad_request(format!(
            "the name of the object ({given}) does not match the name on the URL ({name})"
        ))),
        _ => Ok(()),
    }
}

/// The 410 for a watch from a resourceVersion older than the history.
pub(crate) fn too_old(rv: u64, compacted: u64) -> ApiError {
    ApiError::expired(format!("too old resource version: {rv} ({compacted})"))
}

fn encode_continue(rv: u64, key: &(String, String)) -> String {
    let raw = json!({ "v": "emulator/v1", "rv": rv, "ns": key.0, "name": key.1 });
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.to_string())
}

fn decode_continue(token: &str) -> Result<(u64, (String, String)), ApiError> {
    let bad = || {
        ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion")
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v["rv"].as_u64().ok_or_else(bad)?;
    let ns = v["ns"].as_str().ok_or_else(bad)?.to_string();
    let name = v["name"].as_str().ok_or_else(bad)?.to_string();
    Ok((rv, (ns, name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Registry, ResourceKind};
    use crate::selectors::LabelSelector;

    const OPTS: WriteOptions<'static> = WriteOptions {
        now: "2024-01-01T00:00:00Z",
        dry_run: false,
        field_manager: None,
    };

    fn registry() -> Registry {
        Registry::new(&[ResourceKind {
            group: "example.com".into(),
            version: "v1".into(),
            plural: "widgets".into(),
            kind: "Widget".into(),
            namespaced: true,
            status_subresource: true,
        }])
    }

    #[test]
    fn resource_versions_are_global_and_monotonic() {
        let reg = registry();
        let secrets = reg.find("", "v1", "secrets").unwrap();
        let widgets = reg.find("example.com", "v1", "widgets").unwrap();
        let mut store = Store::new(10);
        let a = store
            .create(
                secrets,
                Some("ns"),
                json!({"metadata": {"name": "a"}}),
                OPTS,
            )
            .unwrap();
        let b = store
            .create(
                widgets,
                Some("ns"),
                json!({"metadata": {"name": "b"}}),
                OPTS,
            )
            .unwrap();
        assert_eq!(a["metadata"]["resourceVersion"], "1");
        assert_eq!(b["metadata"]["resourceVersion"], "2");
        assert_eq!(store.resource_version(), 2);
        let events: Vec<_> = store.events_after(1).unwrap().map(|e| e.rv).collect();
        assert_eq!(events, vec![2]);
    }

    #[test]
    fn history_window_expires_old_versions() {
        let reg = registry();
        let secrets = reg.find("", "v1", "secrets").unwrap();
        let mut store = Store::new(2);
        for n in ["a", "b", "c", "d"] {
            store
                .create(secrets, Some("ns"), json!({"metadata": {"name": n}}), OPTS)
                .unwrap();
        }
        assert_eq!(store.check_watch_start(1).unwrap_err().code, 410);
        assert_eq!(store.events_after(2).unwrap().count(), 2);
    }

    #[test]
    fn no_op_update_keeps_resource_version() {
        let reg = registry();
        let secrets = reg.find("", "v1", "secrets").unwrap();
        let mut store = Store::new(10);
        let a = store
            .create(
                secrets,
                Some("ns"),
                json!({"metadata": {"name": "a"}, "data": {}}),
                OPTS,
            )
            .unwrap();
        let Written::Updated(same) = store
            .update(secrets, Some("ns"), "a", a.clone(), Target::Main, OPTS)
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(same["metadata"]["resourceVersion"], "1");
        assert_eq!(store.resource_version(), 1);
        let Written::Updated(_) = store
            .patch(
                secrets,
                Some("ns"),
                "a",
                Patching {
                    kind: PatchKind::Merge,
                    body: br#"{"data":{"k":"dg=="}}"#,
                    target: Target::Main,
                },
                OPTS,
            )
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(store.resource_version(), 2);
    }

    #[test]
    fn pagination_and_selectors() {
        let reg = registry();
        let cms = reg.find("", "v1", "configmaps").unwrap();
        let mut store = Store::new(100);
        for (ns, n) in [("b", "x"), ("a", "y"), ("a", "x")] {
            store
                .create(
                    cms,
                    Some(ns),
                    json!({"metadata": {"name": n, "labels": {"ns": ns}}}),
                    OPTS,
                )
                .unwrap();
        }
        let page = store
            .list(
                cms,
                &ListOptions {
                    limit: Some(2),
                    ..Default::default()
                },
            )
            .unwrap();
        let names: Vec<_> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].clone())
            .collect();
        assert_eq!(names, vec![json!("x"), json!("y")]);
        assert!(page["items"][0].get("kind").is_none());
        assert_eq!(page["metadata"]["remainingItemCount"], 1);
        let token = page["metadata"]["continue"].as_str().unwrap().to_string();
        let page2 = store
            .list(
                cms,
                &ListOptions {
                    limit: Some(2),
                    continue_token: Some(token),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(page2["items"].as_array().unwrap().len(), 1);
        assert_eq!(page2["items"][0]["metadata"]["namespace"], "b");
        assert!(page2["metadata"].get("continue").is_none());
        let sel = Selectors {
            labels: LabelSelector::parse("ns=a").unwrap(),
            ..Default::default()
        };
        let filtered = store
            .list(
                cms,
                &ListOptions {
                    selectors: sel,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(filtered["items"].as_array().unwrap().len(), 2);
        assert_eq!(filtered["kind"], "ConfigMapList");
    }

    #[test]
    fn delete_with_and_without_finalizers() {
        let reg = registry();
        let widgets = reg.find("example.com", "v1", "widgets").unwrap();
        let mut store = Store::new(10);
        store
            .create(
                widgets,
                Some("ns"),
                json!({"metadata": {"name": "w", "finalizers": ["f"]}}),
                OPTS,
            )
            .unwrap();
        let Deleted::Pending(o) = store
            .delete(widgets, Some("ns"), "w", &Value::Null, OPTS)
            .unwrap()
        else {
            panic!()
        };
        assert!(o["metadata"]["deletionTimestamp"].is_string());
        assert_eq!(store.resource_version(), 2);
        let Deleted::Pending(_) = store
            .delete(widgets, Some("ns"), "w", &Value::Null, OPTS)
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(store.resource_version(), 2);
        let Written::Removed(_) = store
            .patch(
                widgets,
                Some("ns"),
                "w",
                Patching {
                    kind: PatchKind::Merge,
                    body: br#"{"metadata":{"finalizers":null}}"#,
                    target: Target::Main,
                },
                OPTS,
            )
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(store.get(widgets, Some("ns"), "w").unwrap_err().code, 404);
        let last = store.events_after(2).unwrap().last().unwrap();
        assert_eq!(last.event_type, EventType::Deleted);
    }

    #[test]
    fn strategic_merge_on_custom_resource_is_415() {
        let reg = registry();
        let widgets = reg.find("example.com", "v1", "widgets").unwrap();
        let mut store = Store::new(10);
        let err = store
            .patch(
                widgets,
                Some("ns"),
                "w",
                Patching {
                    kind: PatchKind::Strategic,
                    body: b"{}",
                    target: Target::Main,
                },
                OPTS,
            )
            .unwrap_err();
        assert_eq!(err.code, 415);
    }

    #[test]
    fn apply_creates_missing_object() {
        let reg = registry();
        let widgets = reg.find("example.com", "v1", "widgets").unwrap();
        let mut store = Store::new(10);
        let body = br#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"a":1}}"#;
        let Written::Created(o) = store
            .patch(
                widgets,
                Some("ns"),
                "w",
                Patching {
                    kind: PatchKind::Apply,
                    body,
                    target: Target::Main,
                },
                OPTS,
            )
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(o["spec"]["a"], 1);
        assert_eq!(o["metadata"]["generation"], 1);
    }
}
