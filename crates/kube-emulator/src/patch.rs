//! The PATCH body types and how each one changes a stored object. Pure.

use serde_json::Value;

use super::status::ApiError;

/// The patch types kube-apiserver accepts, by `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PatchKind {
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
    /// `application/strategic-merge-patch+json`.
    Strategic,
}

impl PatchKind {
    /// The patch type for a `Content-Type` header value (parameters ignored).
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/json-patch+json" => Some(Self::Json),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            _ => None,
        }
    }

    /// The short name recorded in [`super::RecordedRequest::patch_type`].
    pub fn short_name(self) -> &'static str {
        match self {
            Self::Merge => "merge",
            Self::Json => "json",
            Self::Apply => "apply",
            Self::Strategic => "strategic",
        }
    }
}

/// Parses a JSON body that must be an object.
pub(crate) fn parse_json_object(body: &[u8]) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request("request body must be a JSON object"));
    }
    Ok(value)
}

/// Parses a server-side apply body: YAML (of which JSON is a subset) describing one object.
pub(crate) fn parse_apply_body(body: &[u8]) -> Result<Value, ApiError> {
    if let Ok(v @ Value::Object(_)) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    let value: Value = serde_norway::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request("apply body must describe an object"));
    }
    Ok(value)
}

/// Applies a patch body of the given kind to `doc`.
///
/// Strategic merge patches are applied as JSON merge patches. Deviation: the real server honours
/// `patchMergeKey`/`patchStrategy` (e.g. merges lists of containers by name); none of the built-ins
/// served here have such lists except in places operators rarely patch. Custom resources refuse
/// strategic merge patches before this is reached, as on a real server.
pub(crate) fn apply_patch(doc: &mut Value, kind: PatchKind, body: &[u8]) -> Result<(), ApiError> {
    match kind {
        PatchKind::Merge | PatchKind::Strategic => {
            let patch = parse_json_object(body)?;
            json_patch::merge(doc, &patch);
        }
        PatchKind::Json => {
            let patch: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding JSON patch: {e}")))?;
            // The real server answers failed operations (including a failing `test`) with 422.
            apply_json_patch(doc, &patch.0)?;
        }
        PatchKind::Apply => {
            let applied = parse_apply_body(body)?;
            apply_merge(doc, &applied);
        }
    }
    Ok(())
}

/// Applies RFC 6902 operations the way kube-apiserver's JSON patch library does.
///
/// One difference from the `json-patch` crate is kept on purpose: a `test` for `null` at a missing
/// key passes when the parent exists (kube-rs's finalizer helper relies on this when it adds the
/// first finalizer). The caller patches a copy, so a failure part-way changes nothing stored.
fn apply_json_patch(doc: &mut Value, ops: &[json_patch::PatchOperation]) -> Result<(), ApiError> {
    for op in ops {
        if let json_patch::PatchOperation::Test(t) = op
            && t.value.is_null()
            && doc.pointer(t.path.as_str()).is_none()
        {
            let parent = t.path.as_str().rsplit_once('/').map_or("", |(p, _)| p);
            if doc.pointer(parent).is_some() {
                continue;
            }
        }
        json_patch::patch(doc, std::slice::from_ref(op))
            .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    }
    Ok(())
}

/// Simplified server-side apply: merges the applied configuration into the live object.
///
/// Maps merge key by key; lists and scalars from the applied configuration replace the live
/// value (like the `atomic` list type, which is the default for custom resources without
/// `x-kubernetes-list-type` markers; this also replaces `conditions` lists wholesale); an explicit
/// `null` removes the field.
///
/// Fields a manager stops applying are removed ([`remove_unapplied`], with what the store keeps
/// per manager in [`AppliedFields`]).
///
/// Deviation: no `managedFields` are shown, a field another manager also set is removed all
/// the same, conflicts between managers are never reported (`force` has no effect), and keyed lists
/// (`listType=map`) are replaced rather than merged per key, so duplicate keys are stored where
/// the real server refuses them (500). Both are measured against the real apiserver in
/// `tests/real_apiserver/differential.rs`.
pub(crate) fn apply_merge(live: &mut Value, applied: &Value) {
    match (live, applied) {
        (Value::Object(live), Value::Object(applied)) => {
            for (k, v) in applied {
                if v.is_null() {
                    live.remove(k);
                } else if let Some(existing) = live.get_mut(k) {
                    apply_merge(existing, v);
                } else {
                    let mut fresh = Value::Object(serde_json::Map::new());
                    if v.is_object() {
                        apply_merge(&mut fresh, v);
                    } else {
                        fresh = v.clone();
                    }
                    live.insert(k.clone(), fresh);
                }
            }
        }
        (live, applied) => *live = applied.clone(),
    }
}

/// The field paths each manager last applied: (object uid, whether the status subresource,
/// manager) → paths.
pub(crate) type AppliedFields =
    std::collections::HashMap<(String, bool, String), std::collections::BTreeSet<Vec<String>>>;

/// The paths of the fields an apply configuration sets: every map key down to a list or scalar
/// (lists count whole, as the emulator replaces them whole), under `status` for the status
/// subresource, else under everything but `apiVersion`, `kind`, `status` and the object's
/// identity in `metadata`.
pub(crate) fn owned_paths(
    applied: &Value,
    status: bool,
) -> std::collections::BTreeSet<Vec<String>> {
    fn walk(v: &Value, path: &mut Vec<String>, out: &mut std::collections::BTreeSet<Vec<String>>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, child) in m {
                    path.push(k.clone());
                    walk(child, path, out);
                    path.pop();
                }
            }
            _ => {
                out.insert(path.clone());
            }
        }
    }
    let mut out = std::collections::BTreeSet::new();
    let Value::Object(top) = applied else {
        return out;
    };
    for (k, v) in top {
        let wanted = match k.as_str() {
            "status" => status,
            "apiVersion" | "kind" => false,
            _ => !status,
        };
        if !wanted {
            continue;
        }
        let mut path = vec![k.clone()];
        if k == "metadata" {
            for (mk, mv) in v.as_object().into_iter().flatten() {
                if ["labels", "annotations"].contains(&mk.as_str()) {
                    path.push(mk.clone());
                    walk(mv, &mut path, &mut out);
                    path.pop();
                }
            }
        } else {
            walk(v, &mut path, &mut out);
        }
    }
    out
}

/// Removes from `live` each path the manager applied `before` and no longer applies (`now`).
pub(crate) fn remove_unapplied(
    live: &mut Value,
    before: Option<&std::collections::BTreeSet<Vec<String>>>,
    now: &std::collections::BTreeSet<Vec<String>>,
) {
    for path in before.into_iter().flatten() {
        // Still applied, or now applied deeper (a scalar that became a map): keep.
        if now
            .iter()
            .any(|p| p.starts_with(path) || path.starts_with(p))
        {
            continue;
        }
        let Some((last, parents)) = path.split_last() else {
            continue;
        };
        let pointer: String = parents
            .iter()
            .map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1")))
            .collect();
        if let Some(Value::Object(m)) = live.pointer_mut(&pointer) {
            m.remove(last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_types() {
        assert_eq!(
            PatchKind::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchKind::Merge)
        );
        assert_eq!(
            PatchKind::from_content_type("application/apply-patch+yaml"),
            Some(PatchKind::Apply)
        );
        assert_eq!(PatchKind::from_content_type("application/json"), None);
    }

    #[test]
    fn merge_patch_removes_nulls() {
        let mut doc = json!({"a": 1, "b": {"c": 2, "d": 3}});
        apply_patch(&mut doc, PatchKind::Merge, br#"{"b": {"c": null, "e": 4}}"#).unwrap();
        assert_eq!(doc, json!({"a": 1, "b": {"d": 3, "e": 4}}));
    }

    #[test]
    fn json_patch_test_failure_is_422() {
        let mut doc = json!({"metadata": {"finalizers": ["a"]}});
        let body = br#"[{"op":"test","path":"/metadata/finalizers/0","value":"b"},{"op":"remove","path":"/metadata/finalizers/0"}]"#;
        let err = apply_patch(&mut doc, PatchKind::Json, body).unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(doc, json!({"metadata": {"finalizers": ["a"]}}));
        let ok = br#"[{"op":"test","path":"/metadata/finalizers/0","value":"a"},{"op":"remove","path":"/metadata/finalizers/0"}]"#;
        apply_patch(&mut doc, PatchKind::Json, ok).unwrap();
        assert_eq!(doc, json!({"metadata": {"finalizers": []}}));
    }

    #[test]
    fn json_patch_test_null_matches_missing_key() {
        let mut doc = json!({"metadata": {"name": "x"}});
        let body = br#"[{"op":"test","path":"/metadata/finalizers","value":null},{"op":"add","path":"/metadata/finalizers","value":["f"]}]"#;
        apply_patch(&mut doc, PatchKind::Json, body).unwrap();
        assert_eq!(doc["metadata"]["finalizers"], json!(["f"]));
        let missing_parent = br#"[{"op":"test","path":"/nope/finalizers","value":null}]"#;
        assert_eq!(
            apply_patch(&mut doc, PatchKind::Json, missing_parent)
                .unwrap_err()
                .code,
            422
        );
        let not_null = br#"[{"op":"test","path":"/metadata/finalizers","value":null}]"#;
        assert_eq!(
            apply_patch(&mut doc, PatchKind::Json, not_null)
                .unwrap_err()
                .code,
            422
        );
    }

    #[test]
    fn apply_merges_maps_and_replaces_lists() {
        let mut live = json!({"spec": {"a": 1, "list": [1, 2]}, "status": {"conditions": [{"type": "A"}, {"type": "B"}]}});
        let applied = json!({"spec": {"b": 2, "list": [3]}, "status": {"conditions": [{"type": "B", "status": "True"}]}});
        apply_merge(&mut live, &applied);
        assert_eq!(
            live,
            json!({"spec": {"a": 1, "b": 2, "list": [3]}, "status": {"conditions": [{"type": "B", "status": "True"}]}})
        );
    }

    #[test]
    fn fields_a_manager_stops_applying_are_removed() {
        let first =
            json!({"apiVersion": "v", "kind": "K", "status": {"a": 1, "b": [1], "c": {"d": 1}}});
        let second = json!({"apiVersion": "v", "kind": "K", "status": {"a": 2}});
        let mut live = json!({"spec": {"x": 1}, "status": {"other": 1}});
        apply_merge(&mut live, &first);
        let before = owned_paths(&first, true);
        apply_merge(&mut live, &second);
        remove_unapplied(&mut live, Some(&before), &owned_paths(&second, true));
        assert_eq!(
            live,
            json!({"apiVersion": "v", "kind": "K", "spec": {"x": 1}, "status": {"a": 2, "c": {}, "other": 1}})
        );
        assert!(
            owned_paths(&first, false).is_empty(),
            "status is not the main resource's"
        );
    }

    #[test]
    fn apply_body_accepts_yaml_and_json() {
        assert_eq!(
            parse_apply_body(b"a: 1\nb: [x]\n").unwrap(),
            json!({"a": 1, "b": ["x"]})
        );
        assert_eq!(parse_apply_body(br#"{"a": 1}"#).unwrap(), json!({"a": 1}));
        assert!(parse_apply_body(b"- 1\n- 2\n").is_err());
    }
}
