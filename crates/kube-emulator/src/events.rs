//! Validation of `events.k8s.io/v1` Events, following kube-apiserver's `ValidateEventCreate` and
//! `ValidateEventUpdate` (`pkg/apis/core/validation/events.go`) for requests in that group, which
//! get the strict checks. Without it, an operator whose Events a real server refuses (a note over
//! 1024 bytes, a missing `action`, ...) would pass every test against the emulator.
//!
//! Field paths in the messages name the fields of the internal core type (`message` for `note`,
//! `involvedObject` for `regarding`, `firstTimestamp` for `deprecatedFirstTimestamp`, ...), as the
//! real server's messages do, because it validates after converting to that type.
//!
//! Deviations: core `v1` Events (`/api/v1/.../events`) are not validated at all (the real server
//! applies the lenient legacy rules there); the metadata update rules (`ValidateObjectMetaUpdate`)
//! are not checked here; values are compared as JSON, so a timestamp written in another but equal
//! form counts as a change (except `eventTime`, compared at microsecond precision as on the real
//! server).

use serde_json::Value;

use super::registry::ResourceDef;
use super::rules::{meta_str, qualified_name_errors, valid_name};
use super::status::{ApiError, FieldCause};

const REPORTING_INSTANCE_LENGTH_LIMIT: usize = 128;
const ACTION_LENGTH_LIMIT: usize = 128;
const REASON_LENGTH_LIMIT: usize = 128;
const NOTE_LENGTH_LIMIT: usize = 1024;

/// Whether `def` is the `events.k8s.io` Event resource (any version).
fn is_events_api(def: &ResourceDef) -> bool {
    !def.custom && def.kind.group == "events.k8s.io" && def.kind.plural == "events"
}

/// A string field (missing, `null` and non-strings read as empty).
fn text<'a>(obj: &'a Value, key: &str) -> &'a str {
    obj.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// Whether a field holds its zero value (missing, `null`, `""`, `0`, `{}`).
fn is_zero(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        Some(Value::Object(o)) => o.values().all(|v| is_zero(Some(v))),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Bool(b)) => !b,
    }
}

fn too_long(field: &str, limit: usize) -> FieldCause {
    FieldCause::invalid(
        field,
        &Value::from(""),
        &format!("can have at most {limit} characters"),
    )
}

/// `legacyValidateEvent`, which every Event write passes, for an `events.k8s.io` request.
fn legacy(obj: &Value) -> Vec<FieldCause> {
    let mut errs = Vec::new();
    let namespace = meta_str(obj, "namespace").unwrap_or_default();
    let regarding_ns = obj
        .get("regarding")
        .and_then(|r| r.get("namespace"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let ns_mismatch = || {
        FieldCause::invalid(
            "involvedObject.namespace",
            &Value::from(regarding_ns),
            "does not match event.namespace",
        )
    };
    if is_zero(obj.get("eventTime")) {
        // An "old" Event: only the namespaces must agree.
        if regarding_ns.is_empty() {
            if !namespace.is_empty() && namespace != "default" {
                errs.push(ns_mismatch());
            }
        } else if namespace != regarding_ns {
            errs.push(ns_mismatch());
        }
    } else {
        if regarding_ns.is_empty() && namespace != "default" && namespace != "kube-system" {
            errs.push(ns_mismatch());
        }
        let controller = text(obj, "reportingController");
        if controller.is_empty() {
            errs.push(FieldCause::required("reportingController"));
        }
        for msg in qualified_name_errors(controller) {
            errs.push(FieldCause::invalid(
                "reportingController",
                &Value::from(controller),
                &msg,
            ));
        }
        for (field, limit) in [
            ("reportingInstance", REPORTING_INSTANCE_LENGTH_LIMIT),
            ("action", ACTION_LENGTH_LIMIT),
            ("reason", REASON_LENGTH_LIMIT),
        ] {
            let value = text(obj, field);
            if value.is_empty() {
                errs.push(FieldCause::required(field));
            }
            if value.len() > limit {
                errs.push(too_long(field, limit));
            }
        }
        if text(obj, "note").len() > NOTE_LENGTH_LIMIT {
            errs.push(too_long("message", NOTE_LENGTH_LIMIT));
        }
    }
    if !namespace.is_empty() && !valid_name(namespace, false) {
        errs.push(FieldCause::invalid(
            "namespace",
            &Value::from(namespace),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        ));
    }
    errs
}

/// `validateV1EventSeries`.
fn series(obj: &Value) -> Vec<FieldCause> {
    let mut errs = Vec::new();
    if let Some(series) = obj.get("series").filter(|s| !s.is_null()) {
        if series.get("count").and_then(Value::as_i64).unwrap_or(0) < 2 {
            errs.push(FieldCause::invalid(
                "series.count",
                &Value::from(""),
                "should be at least 2",
            ));
        }
        if is_zero(series.get("lastObservedTime")) {
            errs.push(FieldCause::required("series.lastObservedTime"));
        }
    }
    errs
}

fn fail(obj: &Value, def: &ResourceDef, errs: &[FieldCause]) -> Result<(), ApiError> {
    if errs.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid_causes(
        def,
        meta_str(obj, "name").unwrap_or_default(),
        errs,
    ))
}

/// `ValidateEventCreate` for a prepared object; a no-op for other resources.
pub(crate) fn validate_create(def: &ResourceDef, obj: &Value) -> Result<(), ApiError> {
    if !is_events_api(def) {
        return Ok(());
    }
    let mut errs = legacy(obj);
    errs.extend(series(obj));
    if is_zero(obj.get("eventTime")) {
        errs.push(FieldCause::required("eventTime"));
    }
    let event_type = text(obj, "type");
    if event_type != "Normal" && event_type != "Warning" {
        errs.push(FieldCause::invalid(
            "type",
            &Value::from(""),
            &format!("has invalid value: {event_type}"),
        ));
    }
    for (key, field) in [
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
        ("deprecatedCount", "count"),
        ("deprecatedSource", "source"),
    ] {
        if !is_zero(obj.get(key)) {
            errs.push(FieldCause::invalid(
                field,
                &Value::from(""),
                "needs to be unset",
            ));
        }
    }
    fail(obj, def, &errs)
}

/// The instant of an `eventTime`, in microseconds, when it parses.
fn micros(v: Option<&Value>) -> Option<i64> {
    let ts: jiff::Timestamp = v?.as_str()?.parse().ok()?;
    Some(ts.as_microsecond())
}

/// `ValidateEventUpdate` for the object an update would store; a no-op for other resources.
pub(crate) fn validate_update(def: &ResourceDef, old: &Value, new: &Value) -> Result<(), ApiError> {
    if !is_events_api(def) {
        return Ok(());
    }
    let mut errs = legacy(new);
    if new.get("series") != old.get("series") {
        errs.extend(series(new));
    }
    for (key, field) in [
        ("regarding", "involvedObject"),
        ("reason", "reason"),
        ("note", "message"),
        ("deprecatedSource", "source"),
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
        ("deprecatedCount", "count"),
        ("type", "type"),
    ] {
        let (now, before) = (new.get(key), old.get(key));
        if now != before && !(is_zero(now) && is_zero(before)) {
            errs.push(FieldCause::invalid(
                field,
                now.unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
    }
    let (now, before) = (new.get("eventTime"), old.get("eventTime"));
    let same_time = now == before || micros(now).is_some_and(|n| Some(n) == micros(before));
    if !same_time {
        errs.push(FieldCause::invalid(
            "eventTime",
            now.unwrap_or(&Value::Null),
            "field is immutable",
        ));
    }
    fail(new, def, &errs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;

    fn valid() -> Value {
        json!({
            "metadata": {"name": "w.1", "namespace": "ns"},
            "eventTime": "2024-01-01T00:00:00.000001Z",
            "regarding": {"kind": "Widget", "name": "w", "namespace": "ns"},
            "reportingController": "example.com/widget-controller",
            "reportingInstance": "pod-1",
            "action": "Reconcile",
            "reason": "Failed",
            "type": "Warning",
            "note": "x",
        })
    }

    fn fields(err: &ApiError) -> Vec<String> {
        err.details.as_ref().unwrap()["causes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["field"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn strict_create_rules() {
        let reg = Registry::new(&[]);
        let def = reg.find("events.k8s.io", "v1", "events").unwrap();
        validate_create(def, &valid()).unwrap();

        let mut long = valid();
        long["note"] = json!("n".repeat(1025));
        let err = validate_create(def, &long).unwrap_err();
        assert_eq!((err.code, err.reason), (422, "Invalid"));
        assert_eq!(
            err.message,
            "Event.events.k8s.io \"w.1\" is invalid: message: Invalid value: \"\": can have at most 1024 characters"
        );
        long["note"] = json!("n".repeat(1024));
        validate_create(def, &long).unwrap();

        let mut missing = valid();
        for key in ["reportingInstance", "action", "reason"] {
            missing.as_object_mut().unwrap().remove(key);
        }
        missing["type"] = json!("Odd");
        missing["reportingController"] = json!("bad name!");
        missing["deprecatedCount"] = json!(3);
        let err = validate_create(def, &missing).unwrap_err();
        assert_eq!(
            fields(&err),
            vec![
                "reportingController",
                "reportingInstance",
                "action",
                "reason",
                "type",
                "count"
            ]
        );
        assert_eq!(
            err.details.as_ref().unwrap()["causes"][1]["reason"],
            "FieldValueRequired"
        );

        // Without eventTime only the namespaces are checked, plus the eventTime requirement.
        let old_style = json!({"metadata": {"name": "e", "namespace": "ns"}, "type": "Normal", "regarding": {"namespace": "other"}});
        let err = validate_create(def, &old_style).unwrap_err();
        assert_eq!(fields(&err), vec!["involvedObject.namespace", "eventTime"]);

        let core = reg.find("", "v1", "events").unwrap();
        validate_create(core, &json!({})).unwrap();
    }

    #[test]
    fn update_rules() {
        let reg = Registry::new(&[]);
        let def = reg.find("events.k8s.io", "v1", "events").unwrap();
        let old = valid();
        let mut next = valid();
        next["series"] = json!({"count": 2, "lastObservedTime": "2024-01-01T00:00:01.000000Z"});
        next["eventTime"] = json!("2024-01-01T00:00:00.000001000Z");
        validate_update(def, &old, &next).unwrap();

        next["note"] = json!("changed");
        next["series"]["count"] = json!(1);
        let err = validate_update(def, &old, &next).unwrap_err();
        assert_eq!(fields(&err), vec!["series.count", "message"]);

        let mut moved = valid();
        moved["eventTime"] = json!("2024-01-01T00:00:01Z");
        let err = validate_update(def, &old, &moved).unwrap_err();
        assert_eq!(fields(&err), vec!["eventTime"]);
    }
}
