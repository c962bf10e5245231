//! Pure helpers for response bodies: is it JSON, what did the server say, and a short printable
//! prefix for error messages.

use serde_json::Value;

/// Longest body prefix an error message quotes.
pub const PREFIX_CHARS: usize = 120;
/// Longest server message an error carries.
pub const MESSAGE_CHARS: usize = 400;

/// True for `application/json`, `application/problem+json` and other `+json` types.
pub fn is_json_content_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json") || essence == "text/json"
}

/// At most `max` characters of `text`, single-line and printable: control characters and runs
/// of whitespace become one space; `…` marks a cut.
pub fn sanitize_prefix(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    let mut last_space = true;
    for c in text.chars() {
        let c = if c.is_whitespace() || c.is_control() {
            ' '
        } else {
            c
        };
        if c == ' ' && last_space {
            continue;
        }
        if count == max {
            return format!("{}…", out.trim_end());
        }
        last_space = c == ' ';
        out.push(c);
        count += 1;
    }
    out.trim_end().to_owned()
}

/// What a failed response says, for the error message: from a JSON body the first of `detail`,
/// `title`, `error_description`, `error`, `message` (also nested `error.message` as ABP sends)
/// plus ASP.NET's `errors` map; from anything else a sanitized prefix. `None` for an empty body.
pub fn server_message(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    if text.trim().is_empty() {
        return None;
    }
    let message = match serde_json::from_slice::<Value>(body) {
        Ok(value) => json_message(&value).unwrap_or_else(|| text.into_owned()),
        Err(_) => text.into_owned(),
    };
    Some(sanitize_prefix(&message, MESSAGE_CHARS))
}

/// The message of an already parsed JSON error body (see [`server_message`]), bounded.
pub fn value_message(value: &Value) -> Option<String> {
    json_message(value).map(|m| sanitize_prefix(&m, MESSAGE_CHARS))
}

fn json_message(value: &Value) -> Option<String> {
    let object = value.as_object()?;
    let field = |name: &str| -> Option<String> {
        match object.get(name)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
            Value::Object(inner) => {
                let msg = inner.get("message").and_then(Value::as_str)?;
                match inner.get("details").and_then(Value::as_str) {
                    Some(d) if !d.is_empty() => Some(format!("{msg} {d}")),
                    _ => Some(msg.to_owned()),
                }
            }
            _ => None,
        }
    };
    let main = ["detail", "error_description", "message", "error", "title"]
        .iter()
        .find_map(|name| field(name));
    let errors: Vec<(String, Vec<String>)> = object
        .get("errors")
        .and_then(Value::as_object)
        .map(|errors| {
            errors
                .iter()
                .map(|(field, messages)| {
                    let list = match messages {
                        Value::Array(items) => items
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect(),
                        Value::String(s) => vec![s.clone()],
                        _ => Vec::new(),
                    };
                    (field.clone(), list)
                })
                .collect()
        })
        .unwrap_or_default();
    // ASP.NET repeats the detail in `errors`; add only what the main message does not say.
    let extra = errors
        .iter()
        .filter(|(_, list)| {
            main.as_ref()
                .is_none_or(|m| list.iter().any(|item| !m.contains(item.as_str())))
        })
        .map(|(field, list)| format!("{field}: {}", list.join("; ")))
        .collect::<Vec<_>>()
        .join(", ");
    match (main, extra.is_empty()) {
        (Some(m), true) => Some(m),
        (Some(m), false) => Some(format!("{m} ({extra})")),
        (None, false) => Some(extra),
        (None, true) => None,
    }
}

/// What a token endpoint's (OAuth 2.0 or ABP) error body says, from its JSON error fields only:
/// `error_description`, else `error` (a code, or ABP's `{message, details}` object). `None` for
/// anything that is not such JSON; a raw body is never quoted, as it may echo a credential.
pub fn token_error_message(body: &[u8]) -> Option<String> {
    let value = serde_json::from_slice::<Value>(body).ok()?;
    let object = value.as_object()?;
    let text = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let message =
        text(object.get("error_description")).or_else(|| match object.get("error")? {
            Value::Object(inner) => {
                let msg = text(inner.get("message"))?;
                Some(match text(inner.get("details")) {
                    Some(d) => format!("{msg} {d}"),
                    None => msg,
                })
            }
            other => text(Some(other)),
        })?;
    Some(sanitize_prefix(&message, MESSAGE_CHARS))
}

/// The OAuth 2.0 `error` code of a token endpoint's answer (`invalid_client`, ...), if any.
pub fn oauth_error_code(body: &[u8]) -> Option<String> {
    let value = serde_json::from_slice::<Value>(body).ok()?;
    let code = value.get("error")?.as_str()?;
    code.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
        .then(|| code.to_owned())
}

/// A description of a JSON body that did not have the expected shape, without quoting it
/// (it may hold tokens or secret setting values): the kind of top-level value and where parsing
/// stopped.
pub fn describe_json_mismatch(body: &[u8], error: &serde_json::Error) -> String {
    let kind = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Null) => "null",
        Ok(Value::Bool(_)) => "a boolean",
        Ok(Value::Number(_)) => "a number",
        Ok(Value::String(_)) => "a string",
        Ok(Value::Array(_)) => "an array",
        Ok(Value::Object(_)) => "an object",
        Err(_) => "not valid JSON",
    };
    let category = match error.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected structure",
        serde_json::error::Category::Eof => "unexpected end",
    };
    format!(
        "{kind} of {} bytes ({category} at line {}, column {})",
        body.len(),
        error.line(),
        error.column()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        assert!(is_json_content_type("application/json; charset=utf-8"));
        assert!(is_json_content_type("Application/Problem+JSON"));
        assert!(!is_json_content_type("text/html; charset=utf-8"));
        assert!(!is_json_content_type(""));
    }

    #[test]
    fn prefix_is_bounded_single_line_and_marks_cuts() {
        assert_eq!(sanitize_prefix("a\n\n b\t\u{7}c  ", 120), "a b c");
        let long = "x".repeat(500);
        let p = sanitize_prefix(&long, 120);
        assert_eq!(p.chars().count(), 121);
        assert!(p.ends_with('…'));
        assert_eq!(sanitize_prefix("héllo wörld", 5), "héllo…");
        assert_eq!(sanitize_prefix("", 5), "");
    }

    #[test]
    fn server_message_prefers_problem_fields() {
        let problem = br#"{"title":"One or more validation errors occurred.","detail":"Length must be a number","errors":{"value":["Length must be a number"]}}"#;
        assert_eq!(server_message(problem).unwrap(), "Length must be a number");
        let more = br#"{"detail":"Invalid","errors":{"a":["Invalid"],"b":["too long","Invalid"]}}"#;
        assert_eq!(
            server_message(more).unwrap(),
            "Invalid (b: too long; Invalid)"
        );
        let only_errors = br#"{"title":"","errors":{"settings[0].key":["required"]}}"#;
        assert_eq!(
            server_message(only_errors).unwrap(),
            "settings[0].key: required"
        );
        let abp = br#"{"success":false,"error":{"code":0,"message":"Login failed!","details":"Invalid user name or password"}}"#;
        assert_eq!(
            server_message(abp).unwrap(),
            "Login failed! Invalid user name or password"
        );
        assert_eq!(
            server_message(br#"{"error":"invalid_client"}"#).unwrap(),
            "invalid_client"
        );
        assert_eq!(
            server_message(b"<html>\n<b>Bad</b></html>").unwrap(),
            "<html> <b>Bad</b></html>"
        );
        assert_eq!(server_message(b"  "), None);
        assert!(server_message(&[b'x'; 2000]).unwrap().chars().count() <= MESSAGE_CHARS + 1);
    }

    #[test]
    fn token_error_messages_come_from_json_error_fields_only() {
        assert_eq!(
            token_error_message(br#"{"error":"invalid_client","error_description":"bad"}"#)
                .as_deref(),
            Some("bad")
        );
        assert_eq!(
            token_error_message(br#"{"error":"invalid_client"}"#).as_deref(),
            Some("invalid_client")
        );
        let abp = br#"{"success":false,"error":{"message":"Login failed!","details":"Invalid"}}"#;
        assert_eq!(
            token_error_message(abp).as_deref(),
            Some("Login failed! Invalid")
        );
        assert_eq!(
            token_error_message(b"<html>client_secret=s3cret</html>"),
            None
        );
        assert_eq!(token_error_message(br#"{"detail":"echo s3cret"}"#), None);
        assert_eq!(token_error_message(b""), None);
    }

    #[test]
    fn oauth_codes_are_plain_identifiers() {
        assert_eq!(
            oauth_error_code(br#"{"error":"invalid_scope"}"#).as_deref(),
            Some("invalid_scope")
        );
        assert_eq!(oauth_error_code(br#"{"error":"has space"}"#), None);
        assert_eq!(oauth_error_code(b"nope"), None);
    }

    #[test]
    fn mismatch_description_never_quotes_the_body() {
        let body = br#"[{"id":"hunter2-secret"}]"#;
        let err =
            serde_json::from_slice::<Vec<super::super::types::StoredSetting>>(body).unwrap_err();
        let text = describe_json_mismatch(body, &err);
        assert!(text.starts_with("an array of"), "{text}");
        assert!(!text.contains("hunter2"));
    }
}
