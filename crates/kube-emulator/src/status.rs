//! Kubernetes `Status` error bodies, shaped like the ones kube-apiserver sends.
//!
//! The wording of messages follows `k8s.io/apimachinery/pkg/api/errors` so that clients that match on
//! `reason`/`code` (kube-rs does) behave exactly as against a real cluster.

use serde_json::{Value, json};

use super::registry::ResourceDef;

/// An API error: an HTTP status code plus the `Status` body the real server would send.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub(crate) struct ApiError {
    /// HTTP status code, also the `code` field of the body.
    pub code: u16,
    /// The machine-readable `reason` (`NotFound`, `Conflict`, ...).
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
    /// The `details` object, if the real server sends one for this error.
    pub details: Option<Value>,
}

/// `secrets` or `leases.coordination.k8s.io`, as the apiserver names a resource in messages.
fn qualified_resource(def: &ResourceDef) -> String {
    if def.kind.group.is_empty() {
        def.kind.plural.clone()
    } else {
        format!("{}.{}", def.kind.plural, def.kind.group)
    }
}

/// `Secret` or `Lease.coordination.k8s.io`, as the apiserver names a kind in `Invalid` messages.
fn qualified_kind(def: &ResourceDef) -> String {
    if def.kind.group.is_empty() {
        def.kind.kind.clone()
    } else {
        format!("{}.{}", def.kind.kind, def.kind.group)
    }
}

/// `details` naming a resource (NotFound, AlreadyExists, Conflict use the plural as `kind`).
fn resource_details(def: &ResourceDef, name: &str) -> Value {
    let mut details = json!({ "name": name, "kind": def.kind.plural });
    if !def.kind.group.is_empty() {
        details["group"] = json!(def.kind.group);
    }
    details
}

/// One field error of an `Invalid` answer, as apimachinery's `field.Error` renders it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldCause {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueForbidden`, ...
    pub reason: &'static str,
    /// The field path, e.g. `reportingController`.
    pub field: String,
    /// The message without the field, e.g. `Required value`.
    pub message: String,
}

impl FieldCause {
    /// `field.Required(path, "")`.
    pub fn required(field: &str) -> Self {
        Self {
            reason: "FieldValueRequired",
            field: field.into(),
            message: "Required value".into(),
        }
    }

    /// `field.Invalid(path, value, detail)`.
    pub fn invalid(field: &str, value: &Value, detail: &str) -> Self {
        Self {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {value}: {detail}"),
        }
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// 404 for a missing object.
    pub fn not_found(def: &ResourceDef, name: &str) -> Self {
        Self {
            details: Some(resource_details(def, name)),
            ..Self::new(
                404,
                "NotFound",
                format!("{} \"{name}\" not found", qualified_resource(def)),
            )
        }
    }

    /// 404 for a path that names no known resource.
    ///
    /// Deviation: the real server answers unknown paths with a plain-text `404 page not found`;
    /// the emulator always sends a `Status` body, which kube-rs handles the same way.
    pub fn unknown_path(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// 409 when creating an object that exists.
    pub fn already_exists(def: &ResourceDef, name: &str) -> Self {
        Self {
            details: Some(resource_details(def, name)),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", qualified_resource(def)),
            )
        }
    }

    /// 409 for a stale `resourceVersion` (optimistic concurrency).
    pub fn conflict(def: &ResourceDef, name: &str) -> Self {
        Self::conflict_with(
            def,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 409 with a specific cause (failed delete preconditions).
    pub fn conflict_with(def: &ResourceDef, name: &str, cause: &str) -> Self {
        Self {
            details: Some(resource_details(def, name)),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": {cause}",
                    qualified_resource(def)
                ),
            )
        }
    }

    /// 422 field validation failure (`NewInvalid`).
    pub fn invalid(def: &ResourceDef, name: &str, field: &str, problem: &str) -> Self {
        Self::invalid_kind(
            &qualified_kind(def),
            &def.kind.group,
            &def.kind.kind,
            name,
            field,
            problem,
        )
    }

    /// 422 with several field errors (`NewInvalid` with an aggregate), each cause carrying its
    /// own `reason` (`FieldValueRequired`, `FieldValueInvalid`, ...).
    pub fn invalid_causes(def: &ResourceDef, name: &str, causes: &[FieldCause]) -> Self {
        let rendered: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let summary = match rendered.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        let mut details = json!({
            "name": name,
            "kind": def.kind.kind,
            "causes": causes
                .iter()
                .map(|c| json!({ "reason": c.reason, "message": c.message, "field": c.field }))
                .collect::<Vec<_>>(),
        });
        if !def.kind.group.is_empty() {
            details["group"] = json!(def.kind.group);
        }
        Self {
            details: Some(details),
            ..Self::new(
                422,
                "Invalid",
                format!("{} \"{name}\" is invalid: {summary}", qualified_kind(def)),
            )
        }
    }

    /// 422 for an arbitrary kind (used for `PatchOptions`).
    ///
    /// Deviation: the single cause always has `reason: FieldValueInvalid`, where the real server
    /// uses `FieldValueRequired`, `FieldValueForbidden`, ... as fits (see [`Self::invalid_causes`]
    /// for the exact form); this matters only to clients that match on causes.
    pub fn invalid_kind(
        qualified: &str,
        group: &str,
        kind: &str,
        name: &str,
        field: &str,
        problem: &str,
    ) -> Self {
        let mut details = json!({
            "name": name,
            "kind": kind,
            "causes": [{ "reason": "FieldValueInvalid", "message": problem, "field": field }],
        });
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        Self {
            details: Some(details),
            ..Self::new(
                422,
                "Invalid",
                format!("{qualified} \"{name}\" is invalid: {field}: {problem}"),
            )
        }
    }

    /// 422 without details, as sent for a JSON patch that cannot be applied.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(422, "Invalid", message)
    }

    /// 400 malformed request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 405 verb not supported on this path.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// 415 patch type not accepted for this resource.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format ({content_type}) - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
            ),
        )
    }

    /// 410 for a resourceVersion or continue token that is no longer in the kept history.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// An error injected by [`super::EmulatorFaults::fail_next`], with the reason the real server
    /// uses for that code.
    pub fn injected(code: u16) -> Self {
        let reason = match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            409 => "Conflict",
            410 => "Expired",
            415 => "UnsupportedMediaType",
            422 => "Invalid",
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "Unknown",
        };
        Self::new(code, reason, format!("injected fault: {reason} ({code})"))
    }

    /// The JSON `Status` body.
    pub fn to_status(&self) -> Value {
        let mut body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            body["details"] = details.clone();
        }
        body
    }
}

/// The `Status` with `status: Success` that built-in resources return from a DELETE that removed
/// the object right away (their registries do not set `ReturnDeletedObject`).
pub(crate) fn delete_success(def: &ResourceDef, name: &str, uid: &str) -> Value {
    let mut details = json!({ "name": name, "kind": def.kind.plural, "uid": uid });
    if !def.kind.group.is_empty() {
        details["group"] = json!(def.kind.group);
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    #[test]
    fn not_found_names_the_qualified_resource() {
        let registry = Registry::new(&[]);
        let lease = registry
            .find("coordination.k8s.io", "v1", "leases")
            .unwrap();
        let err = ApiError::not_found(lease, "l1");
        let body = err.to_status();
        assert_eq!(body["code"], 404);
        assert_eq!(body["reason"], "NotFound");
        assert_eq!(
            body["message"],
            "leases.coordination.k8s.io \"l1\" not found"
        );
        assert_eq!(body["details"]["kind"], "leases");
        assert_eq!(body["details"]["group"], "coordination.k8s.io");
    }

    #[test]
    fn injected_429_is_too_many_requests() {
        assert_eq!(ApiError::injected(429).reason, "TooManyRequests");
        assert_eq!(ApiError::injected(500).reason, "InternalError");
    }
}
