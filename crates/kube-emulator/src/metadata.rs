//! Metadata-only reads: a client that sends
//! `Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1` (lists) or
//! `…;as=PartialObjectMetadata;…` (get, watch) receives only each object's `metadata`, as
//! kube-rs' `metadata_watcher` and `Api::list_metadata` ask. An operator that only needs to know
//! *that* a Secret changed watches this way and never holds Secret data.
//!
//! Deviations: the real server answers 406 when a list asks for `as=PartialObjectMetadata`
//! (not `…List`) or names an unknown version; the emulator accepts either form for any request.
//! Table output (`as=Table`) is not served.

use serde_json::{Value, json};

/// Whether an `Accept` header asks for metadata only.
pub(crate) fn requested(accept: &str) -> bool {
    accept.split(',').any(|media| {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        params
            .iter()
            .any(|p| p.starts_with("as=PartialObjectMetadata"))
            && params.contains(&"g=meta.k8s.io")
    })
}

/// An object as `PartialObjectMetadata`.
pub(crate) fn partial(object: &Value) -> Value {
    json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A list as `PartialObjectMetadataList`.
pub(crate) fn partial_list(list: &Value) -> Value {
    let items: Vec<Value> = list["items"]
        .as_array()
        .map(|items| items.iter().map(partial).collect())
        .unwrap_or_default();
    json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadataList",
        "metadata": list["metadata"].clone(),
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_rs_accept_headers_are_recognised_and_plain_json_is_not() {
        assert!(requested(
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
        ));
        assert!(requested(
            "application/json; as=PartialObjectMetadata; g=meta.k8s.io; v=v1, application/json"
        ));
        assert!(!requested("application/json"));
        assert!(!requested("application/json;as=Table;g=meta.k8s.io;v=v1"));
    }

    #[test]
    fn only_metadata_survives() {
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "resourceVersion": "7"}, "data": {"k": "c2VjcmV0"}});
        let list = partial_list(&json!({"metadata": {"resourceVersion": "9"}, "items": [secret]}));
        assert_eq!(list["kind"], "PartialObjectMetadataList");
        assert_eq!(list["metadata"]["resourceVersion"], "9");
        assert_eq!(
            list["items"][0],
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                   "metadata": {"name": "s", "resourceVersion": "7"}})
        );
    }
}
