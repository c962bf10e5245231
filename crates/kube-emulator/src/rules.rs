//! Object-level write rules of kube-apiserver (`BeforeCreate`, `BeforeUpdate`, the CR strategy,
//! `markAsDeleting`), as pure functions from old/new JSON objects to the object to store.

use serde_json::{Map, Value, json};

use super::registry::ResourceDef;
use super::status::ApiError;

/// Which part of an object a write addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// The object itself (`status` ignored when the status subresource is enabled).
    Main,
    /// The `/status` subresource (only `status` changes).
    Status,
}

/// Whether a missing `metadata.resourceVersion` is checked against the strategy (PUT) or means
/// "the current version" (PATCH, which always applies to the live object).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UpdateMode {
    Put,
    Patch,
}

/// The string at `metadata.<key>`, if any.
pub(crate) fn meta_str<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(key)?.as_str()
}

/// `metadata` as a mutable map, created if missing or not an object.
pub(crate) fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

/// `metadata.finalizers` as strings.
pub(crate) fn finalizers(obj: &Value) -> Vec<&str> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Whether `metadata.deletionTimestamp` is set.
pub(crate) fn is_deleting(obj: &Value) -> bool {
    meta_str(obj, "deletionTimestamp").is_some()
}

/// Rejects `apiVersion`/`kind` that do not belong to the addressed resource, then sets both.
pub(crate) fn check_type_meta(def: &ResourceDef, obj: &mut Value) -> Result<(), ApiError> {
    let expected_version = def.kind.api_version();
    if let Some(v) = obj.get("apiVersion").and_then(Value::as_str)
        && v != expected_version
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({v}) does not match the expected API version ({expected_version})"
        )));
    }
    if let Some(k) = obj.get("kind").and_then(Value::as_str)
        && k != def.kind.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            def.kind.kind
        )));
    }
    let Value::Object(map) = obj else {
        return Err(ApiError::bad_request("the object must be a JSON object"));
    };
    map.insert("apiVersion".into(), json!(expected_version));
    map.insert("kind".into(), json!(def.kind.kind));
    Ok(())
}

/// Sets `metadata.namespace` from the path, refusing a different one in the body.
pub(crate) fn check_namespace(
    def: &ResourceDef,
    obj: &mut Value,
    ns: Option<&str>,
) -> Result<(), ApiError> {
    let meta = meta_mut(obj);
    match ns {
        Some(ns) if def.kind.namespaced => {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(given) if !given.is_empty() && given != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {}
            }
            meta.insert("namespace".into(), json!(ns));
        }
        _ => {
            meta.remove("namespace");
        }
    }
    Ok(())
}

/// RFC 1123 subdomain (most object names) or label (namespace names).
pub(crate) fn valid_name(name: &str, label: bool) -> bool {
    let max = if label { 63 } else { 253 };
    let ok_char =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (!label && c == '.');
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    !name.is_empty()
        && name.len() <= max
        && name.chars().all(ok_char)
        && edge(name.chars().next())
        && edge(name.chars().last())
}

/// What decoding into typed objects does on a real server: empty `metadata` fields are dropped
/// (every `ObjectMeta` field is `omitempty`, for custom resources too), top-level `null`s of
/// built-ins vanish, and Secrets get `stringData` merged into `data` (base64) and `type`
/// defaulted to `Opaque`.
///
/// Deviation: other defaulting of built-in types, `immutable` Secrets/ConfigMaps, and CRD schema
/// defaulting, pruning and validation are not implemented. Secret `data` values are not checked
/// as base64 (a real server answers 400 when it cannot decode them), so a fixture with bad
/// base64 passes here only. Without pruning, a field missing from a CRD schema is kept here and
/// silently dropped by a real server.
pub(crate) fn normalize(def: &ResourceDef, obj: &mut Value) {
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    };
    meta_mut(obj).retain(|_, v| !empty(v));
    if def.custom {
        return;
    }
    let Value::Object(map) = obj else { return };
    map.retain(|_, v| !v.is_null());
    if def.kind.group.is_empty() && def.kind.plural == "secrets" {
        if let Some(Value::Object(string_data)) = map.remove("stringData") {
            use base64::Engine as _;
            let data = map.entry("data").or_insert_with(|| json!({}));
            if let Value::Object(data) = data {
                for (k, v) in string_data {
                    let text = v.as_str().unwrap_or_default().to_string();
                    data.insert(
                        k,
                        json!(base64::engine::general_purpose::STANDARD.encode(text)),
                    );
                }
            }
        }
        map.entry("type").or_insert_with(|| json!("Opaque"));
    }
}

const QUALIFIED_NAME_MAX_LENGTH: usize = 63;
const QUALIFIED_NAME_REGEX_ERROR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// apimachinery's `IsQualifiedName` (`[prefix/]name`).
pub(crate) fn qualified_name_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else if !valid_name(prefix, false) {
                errs.push("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character".to_string());
            }
            *name
        }
        _ => {
            return vec![format!(
                "a qualified name {QUALIFIED_NAME_REGEX_ERROR} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )];
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > QUALIFIED_NAME_MAX_LENGTH {
        errs.push(format!(
            "name part must be no more than {QUALIFIED_NAME_MAX_LENGTH} characters"
        ));
    }
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let inner = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if !(edge(name.chars().next()) && edge(name.chars().last()) && name.chars().all(inner)) {
        errs.push(format!("name part {QUALIFIED_NAME_REGEX_ERROR}"));
    }
    errs
}

/// Random suffix alphabet of `generateName` (no vowels, as in apimachinery).
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `prefix` plus five random characters.
pub(crate) fn generate_name(prefix: &str) -> String {
    let suffix: String = (0..5)
        .map(|_| char::from(NAME_ALPHABET[rand::random_range(0..NAME_ALPHABET.len())]))
        .collect();
    format!("{prefix}{suffix}")
}

/// A random version-4 UUID string.
pub(crate) fn new_uid() -> String {
    let mut bits: u128 = rand::random();
    bits = (bits & !(0xF << 76)) | (0x4 << 76);
    bits = (bits & !(0x3 << 62)) | (0x2 << 62);
    let h = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Prepares a body for creation (`BeforeCreate` + strategy `PrepareForCreate`): type meta,
/// namespace, name (or `generateName`, using `taken` to avoid collisions), system metadata.
///
/// Deviation: names are validated as RFC 1123 subdomains (labels for namespaces) only; other
/// field validation of the real types is not done. No `managedFields` are written.
pub(crate) fn prepare_create(
    def: &ResourceDef,
    ns: Option<&str>,
    mut obj: Value,
    now: &str,
    taken: impl Fn(&str) -> bool,
) -> Result<Value, ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request("request body must be a JSON object"));
    }
    check_type_meta(def, &mut obj)?;
    check_namespace(def, &mut obj, ns)?;
    if meta_str(&obj, "resourceVersion").is_some_and(|rv| !rv.is_empty()) {
        // etcd3 storage refuses this with a plain error, which surfaces as a 500.
        return Err(ApiError::internal(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    let name = match meta_str(&obj, "name").filter(|n| !n.is_empty()) {
        Some(name) => name.to_string(),
        None => match meta_str(&obj, "generateName").filter(|g| !g.is_empty()) {
            // Deviation: the real server generates once and answers a collision with a 409 that
            // clients retry; the emulator retries internally.
            Some(prefix) => {
                let mut name = generate_name(prefix);
                for _ in 0..16 {
                    if !taken(&name) {
                        break;
                    }
                    name = generate_name(prefix);
                }
                name
            }
            None => {
                return Err(ApiError::invalid(
                    def,
                    "",
                    "metadata.name",
                    "Required value: name or generateName is required",
                ));
            }
        },
    };
    let is_namespace = !def.custom && def.kind.group.is_empty() && def.kind.plural == "namespaces";
    if !valid_name(&name, is_namespace) {
        return Err(ApiError::invalid(
            def,
            &name,
            "metadata.name",
            &format!(
                "Invalid value: {name:?}: a lowercase RFC 1123 {} must consist of lower case alphanumeric characters, '-' or '.'",
                if is_namespace { "label" } else { "subdomain" }
            ),
        ));
    }
    if taken(&name) {
        return Err(ApiError::already_exists(def, &name));
    }
    let meta = meta_mut(&mut obj);
    meta.insert("name".into(), json!(name));
    meta.insert("uid".into(), json!(new_uid()));
    meta.insert("creationTimestamp".into(), json!(now));
    for key in [
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
    ] {
        meta.remove(key);
    }
    if def.tracks_generation() {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    normalize(def, &mut obj);
    if let Value::Object(map) = &mut obj {
        if is_namespace {
            map.insert("status".into(), json!({ "phase": "Active" }));
        } else if def.custom && def.kind.status_subresource {
            map.remove("status");
        }
    }
    Ok(obj)
}

/// Everything except `metadata` (what generation tracks).
fn non_metadata(obj: &Value) -> Value {
    let mut copy = obj.clone();
    if let Value::Object(m) = &mut copy {
        m.remove("metadata");
    }
    copy
}

/// Copies `key` of `from` into `to`, or removes it from `to` when `from` lacks it.
fn copy_key(to: &mut Value, from: &Value, key: &str) {
    if let Value::Object(map) = to {
        match from.get(key) {
            Some(v) => {
                map.insert(key.into(), v.clone());
            }
            None => {
                map.remove(key);
            }
        }
    }
}

/// What an update does to the stored object.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum UpdateEffect {
    /// Nothing changed: no new resourceVersion, no watch event.
    Unchanged,
    /// Store this object.
    Store(Value),
    /// The last finalizer of a deleting object is gone: remove this (final) object.
    ///
    /// Deviation: the DELETED watch event carries this object (finalizers already removed) with
    /// the deletion's resourceVersion; a real server deletes through `deleteWithoutFinalizers`
    /// and its watch sends the previously stored object, still listing the finalizer.
    Remove(Value),
}

fn immutable(def: &ResourceDef, name: &str, field: &str, value: &Value) -> ApiError {
    ApiError::invalid(
        def,
        name,
        field,
        &format!("Invalid value: {value}: field is immutable"),
    )
}

/// Checks the resourceVersion precondition of an update.
fn check_resource_version(
    def: &ResourceDef,
    old: &Value,
    new: &Value,
    mode: UpdateMode,
) -> Result<(), ApiError> {
    let name = meta_str(old, "name").unwrap_or_default();
    match meta_str(new, "resourceVersion").filter(|rv| !rv.is_empty()) {
        Some(rv) if Some(rv) != meta_str(old, "resourceVersion") => {
            Err(ApiError::conflict(def, name))
        }
        Some(_) => Ok(()),
        None if mode == UpdateMode::Put && !def.allow_unconditional_update() => {
            Err(ApiError::invalid(
                def,
                name,
                "metadata.resourceVersion",
                "Invalid value: 0x0: must be specified for an update",
            ))
        }
        None => Ok(()),
    }
}

/// Applies the update rules to a candidate object (already type- and namespace-checked and
/// carrying the right name) and decides what to store.
pub(crate) fn prepare_update(
    def: &ResourceDef,
    old: &Value,
    new: Value,
    target: Target,
    mode: UpdateMode,
) -> Result<UpdateEffect, ApiError> {
    check_resource_version(def, old, &new, mode)?;
    let name = meta_str(old, "name").unwrap_or_default().to_string();
    let mut result = match target {
        Target::Status => {
            let mut r = old.clone();
            copy_key(&mut r, &new, "status");
            r
        }
        Target::Main => {
            let mut r = new;
            normalize(def, &mut r);
            if def.kind.status_subresource {
                copy_key(&mut r, old, "status");
            }
            let old_meta = &old["metadata"];
            let meta = meta_mut(&mut r);
            match meta
                .get("uid")
                .and_then(Value::as_str)
                .filter(|u| !u.is_empty())
            {
                None => {
                    meta.insert("uid".into(), old_meta["uid"].clone());
                }
                // Deviation: a real server treats a `uid` in a PATCH body as a precondition and
                // answers 409 "Precondition failed: UID in precondition: ..."; the emulator
                // answers 422 "field is immutable" for both PUT and PATCH.
                Some(uid) if Some(uid) != old_meta["uid"].as_str() => {
                    return Err(immutable(def, &name, "metadata.uid", &json!(uid)));
                }
                Some(_) => {}
            }
            meta.insert(
                "creationTimestamp".into(),
                old_meta["creationTimestamp"].clone(),
            );
            if old_meta.get("deletionTimestamp").is_some() {
                meta.insert(
                    "deletionTimestamp".into(),
                    old_meta["deletionTimestamp"].clone(),
                );
                if meta.get("deletionGracePeriodSeconds").is_none() {
                    meta.insert(
                        "deletionGracePeriodSeconds".into(),
                        old_meta["deletionGracePeriodSeconds"].clone(),
                    );
                }
            } else if let Some(ts) = meta.get("deletionTimestamp").filter(|v| !v.is_null()) {
                return Err(immutable(def, &name, "metadata.deletionTimestamp", ts));
            } else {
                meta.remove("deletionTimestamp");
            }
            match old_meta.get("generation") {
                Some(g) => meta.insert("generation".into(), g.clone()),
                None => meta.remove("generation"),
            };
            meta.remove("managedFields");
            meta.remove("selfLink");
            if is_deleting(old) {
                let before = finalizers(old);
                let added: Vec<&str> = finalizers(&r)
                    .into_iter()
                    .filter(|f| !before.contains(f))
                    .collect();
                if !added.is_empty() {
                    return Err(ApiError::invalid(
                        def,
                        &name,
                        "metadata.finalizers",
                        &format!(
                            "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                        ),
                    ));
                }
            }
            if def.tracks_generation() && non_metadata(&r) != non_metadata(old) {
                let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
                meta_mut(&mut r).insert("generation".into(), json!(generation));
            }
            r
        }
    };
    meta_mut(&mut result).insert(
        "resourceVersion".into(),
        old["metadata"]["resourceVersion"].clone(),
    );
    if &result == old {
        return Ok(UpdateEffect::Unchanged);
    }
    if is_deleting(&result) && finalizers(&result).is_empty() {
        return Ok(UpdateEffect::Remove(result));
    }
    Ok(UpdateEffect::Store(result))
}

/// `markAsDeleting`: the object a DELETE leaves behind while finalizers are pending, or `None`
/// if it is already marked (a repeated DELETE changes nothing).
pub(crate) fn mark_deleting(old: &Value, now: &str) -> Option<Value> {
    if is_deleting(old) {
        return None;
    }
    let mut r = old.clone();
    let meta = meta_mut(&mut r);
    if let Some(generation) = meta
        .get("generation")
        .and_then(Value::as_i64)
        .filter(|g| *g > 0)
    {
        meta.insert("generation".into(), json!(generation + 1));
    }
    meta.insert("deletionTimestamp".into(), json!(now));
    meta.insert("deletionGracePeriodSeconds".into(), json!(0));
    Some(r)
}

/// Checks DELETE preconditions (`DeleteOptions.preconditions`).
pub(crate) fn check_delete_preconditions(
    def: &ResourceDef,
    old: &Value,
    options: &Value,
) -> Result<(), ApiError> {
    let name = meta_str(old, "name").unwrap_or_default();
    let pre = &options["preconditions"];
    for (key, label) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
        if let Some(want) = pre[key].as_str() {
            let have = meta_str(old, key).unwrap_or_default();
            if want != have {
                return Err(ApiError::conflict_with(
                    def,
                    name,
                    &format!(
                        "Precondition failed: {label} in precondition: {want}, {label} in object meta: {have}"
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Registry, ResourceKind};

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

    fn stored(reg: &Registry) -> Value {
        let def = reg.find("example.com", "v1", "widgets").unwrap();
        let mut obj = prepare_create(
            def,
            Some("ns"),
            json!({"metadata": {"name": "w"}, "spec": {"a": 1}, "status": {"s": 1}}),
            "2024-01-01T00:00:00Z",
            |_| false,
        )
        .unwrap();
        meta_mut(&mut obj).insert("resourceVersion".into(), json!("5"));
        obj
    }

    #[test]
    fn create_sets_system_fields_and_strips_status() {
        let reg = registry();
        let obj = stored(&reg);
        assert_eq!(obj["metadata"]["generation"], 1);
        assert_eq!(obj["metadata"]["namespace"], "ns");
        assert_eq!(obj["kind"], "Widget");
        assert_eq!(obj["apiVersion"], "example.com/v1");
        assert_eq!(obj["metadata"]["uid"].as_str().unwrap().len(), 36);
        assert!(obj.get("status").is_none());
    }

    #[test]
    fn create_validation() {
        let reg = registry();
        let def = reg.find("example.com", "v1", "widgets").unwrap();
        let err =
            prepare_create(def, Some("ns"), json!({"metadata": {}}), "t", |_| false).unwrap_err();
        assert_eq!(err.code, 422);
        let err = prepare_create(
            def,
            Some("ns"),
            json!({"metadata": {"name": "w", "namespace": "other"}}),
            "t",
            |_| false,
        )
        .unwrap_err();
        assert_eq!(err.code, 400);
        let err = prepare_create(
            def,
            Some("ns"),
            json!({"metadata": {"name": "Bad_Name"}}),
            "t",
            |_| false,
        )
        .unwrap_err();
        assert_eq!(err.code, 422);
        let err = prepare_create(
            def,
            Some("ns"),
            json!({"metadata": {"name": "w"}}),
            "t",
            |n| n == "w",
        )
        .unwrap_err();
        assert_eq!(err.code, 409);
        let obj = prepare_create(
            def,
            Some("ns"),
            json!({"metadata": {"generateName": "w-"}}),
            "t",
            |_| false,
        )
        .unwrap();
        let name = obj["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with("w-") && name.len() == 7, "{name}");
    }

    #[test]
    fn generation_bumps_only_on_spec_change() {
        let reg = registry();
        let def = reg.find("example.com", "v1", "widgets").unwrap();
        let old = stored(&reg);
        let mut relabel = old.clone();
        relabel["metadata"]["labels"] = json!({"x": "y"});
        let UpdateEffect::Store(r) =
            prepare_update(def, &old, relabel, Target::Main, UpdateMode::Put).unwrap()
        else {
            panic!()
        };
        assert_eq!(r["metadata"]["generation"], 1);
        let mut respec = old.clone();
        respec["spec"]["a"] = json!(2);
        let UpdateEffect::Store(r) =
            prepare_update(def, &old, respec, Target::Main, UpdateMode::Put).unwrap()
        else {
            panic!()
        };
        assert_eq!(r["metadata"]["generation"], 2);
    }

    #[test]
    fn status_isolation_both_ways() {
        let reg = registry();
        let def = reg.find("example.com", "v1", "widgets").unwrap();
        let old = stored(&reg);
        let mut new = old.clone();
        new["status"] = json!({"s": 2});
        assert_eq!(
            prepare_update(def, &old, new.clone(), Target::Main, UpdateMode::Put).unwrap(),
            UpdateEffect::Unchanged
        );
        new["spec"]["a"] = json!(9);
        let UpdateEffect::Store(r) =
            prepare_update(def, &old, new, Target::Status, UpdateMode::Put).unwrap()
        else {
            panic!()
        };
        assert_eq!(r["spec"]["a"], 1);
        assert_eq!(r["status"]["s"], 2);
        assert_eq!(r["metadata"]["generation"], 1);
    }

    #[test]
    fn resource_version_rules() {
        let reg = registry();
        let def = reg.find("example.com", "v1", "widgets").unwrap();
        let old = stored(&reg);
        let mut stale = old.clone();
        stale["metadata"]["resourceVersion"] = json!("4");
        stale["spec"]["a"] = json!(2);
        assert_eq!(
            prepare_update(def, &old, stale, Target::Main, UpdateMode::Put)
                .unwrap_err()
                .code,
            409
        );
        let mut unconditional = old.clone();
        meta_mut(&mut unconditional).remove("resourceVersion");
        assert_eq!(
            prepare_update(
                def,
                &old,
                unconditional.clone(),
                Target::Main,
                UpdateMode::Put
            )
            .unwrap_err()
            .code,
            422
        );
        assert_eq!(
            prepare_update(def, &old, unconditional, Target::Main, UpdateMode::Patch).unwrap(),
            UpdateEffect::Unchanged
        );
    }

    #[test]
    fn finalizers_and_deletion() {
        let reg = registry();
        let def = reg.find("example.com", "v1", "widgets").unwrap();
        let mut old = stored(&reg);
        old["metadata"]["finalizers"] = json!(["a"]);
        let deleting = mark_deleting(&old, "2024-01-02T00:00:00Z").unwrap();
        assert_eq!(deleting["metadata"]["generation"], 2);
        assert!(mark_deleting(&deleting, "later").is_none());
        let mut add = deleting.clone();
        add["metadata"]["finalizers"] = json!(["a", "b"]);
        assert_eq!(
            prepare_update(def, &deleting, add, Target::Main, UpdateMode::Patch)
                .unwrap_err()
                .code,
            422
        );
        let mut clear = deleting.clone();
        clear["metadata"]["finalizers"] = json!([]);
        assert!(matches!(
            prepare_update(def, &deleting, clear, Target::Main, UpdateMode::Patch).unwrap(),
            UpdateEffect::Remove(_)
        ));
    }

    #[test]
    fn delete_preconditions() {
        let reg = registry();
        let def = reg.find("example.com", "v1", "widgets").unwrap();
        let old = stored(&reg);
        assert!(check_delete_preconditions(def, &old, &json!({})).is_ok());
        let err = check_delete_preconditions(
            def,
            &old,
            &json!({"preconditions": {"resourceVersion": "1"}}),
        )
        .unwrap_err();
        assert_eq!(err.code, 409);
    }

    #[test]
    fn secrets_merge_string_data_and_drop_empty_metadata() {
        let reg = registry();
        let def = reg.find("", "v1", "secrets").unwrap();
        let obj = prepare_create(
            def,
            Some("ns"),
            json!({"metadata": {"name": "s", "labels": {}, "finalizers": []}, "stringData": {"k": "v"}, "data": null}),
            "t",
            |_| false,
        )
        .unwrap();
        assert_eq!(obj["data"], json!({"k": "dg=="}));
        assert_eq!(obj["type"], "Opaque");
        assert!(obj.get("stringData").is_none());
        assert!(obj["metadata"].get("labels").is_none());
        assert!(obj["metadata"].get("finalizers").is_none());
    }

    #[test]
    fn uid_format() {
        let uid = new_uid();
        assert_eq!(uid.len(), 36);
        assert_eq!(&uid[14..15], "4");
    }

    #[test]
    fn qualified_names() {
        assert!(qualified_name_errors("widget-controller").is_empty());
        assert!(qualified_name_errors("example.com/Widget_1").is_empty());
        assert_eq!(qualified_name_errors("").len(), 2);
        assert_eq!(qualified_name_errors("/x").len(), 1);
        assert_eq!(qualified_name_errors("a/b/c").len(), 1);
        assert_eq!(qualified_name_errors(&"a".repeat(64)).len(), 1);
    }
}
