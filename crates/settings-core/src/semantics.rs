//! Whether a desired setting value and the value the server stored mean the same.
//!
//! The identity service normalises what it stores (see `Auth.Password.PasswordComplexity` in the
//! contract): property names come back PascalCase and sorted, `"10"` comes back as `10`, and a
//! derived `RegexComplexity` object is added. Comparing strings would report drift forever and
//! make the operator PUT on every resync, so values are compared by meaning:
//!
//! - **Structured values** (text that parses as a JSON object or array) are compared as JSON:
//!   property names case-insensitively; a string of decimal digits equals that number (`"10"`,
//!   and `"010"` too: the server parses it and stores `10`), and `"true"`/`"False"` equal the
//!   booleans; numbers by value (`10` equals `10.0`); properties the
//!   server derives for that key (`RegexComplexity` for the password complexity) are ignored.
//! - **A missing property equals an explicit `false` or `null`.** The server binds these objects
//!   to typed records in which an absent rule is off, so `{"Length":10}` and
//!   `{"HasDigit":false,"Length":10}` describe the same policy. The opposite choice would make an
//!   omitted rule differ from every server answer (the server always returns every rule) and so
//!   PUT forever. A missing number or string is *not* equal to `0` or `""`.
//! - **Booleans** (`true`/`false` in any case) compare case-insensitively.
//! - **Every other plain value** is compared as an exact string: the contract does not say
//!   whether a plain `"010"` is `"10"` (only structured values are shown normalised), so we do
//!   not guess.
//!
//! The relation is an equivalence (each value maps to one canonical form and forms are
//! compared), so it is symmetric and transitive by construction.

use std::collections::BTreeMap;

use serde_json::Value;

/// The setting whose stored value the server normalises (contract: "Normalisation").
pub const PASSWORD_COMPLEXITY_KEY: &str = "Auth.Password.PasswordComplexity";

/// True when `desired` and `actual` mean the same value of the setting `key`.
pub fn same_meaning(key: &str, desired: &str, actual: &str) -> bool {
    desired == actual || canonical(key, desired) == canonical(key, actual)
}

/// `value` as a client would send it: a structured value without the properties the server
/// derives for `key` (`RegexComplexity` of the password complexity), which the server adds on
/// its own. Any other value, or one that is not a JSON object, is returned as it is. The result
/// has the same meaning as `value` (see [`same_meaning`]).
pub fn without_derived(key: &str, value: &str) -> String {
    let derived = derived_properties(key);
    if derived.is_empty() {
        return value.to_owned();
    }
    match serde_json::from_str::<Value>(value) {
        Ok(Value::Object(mut map)) => {
            map.retain(|name, _| !derived.contains(&name.to_ascii_lowercase().as_str()));
            Value::Object(map).to_string()
        }
        _ => value.to_owned(),
    }
}

/// Property names (lower-case) that the server derives for a key and a client never sets.
fn derived_properties(key: &str) -> &'static [&'static str] {
    if key.eq_ignore_ascii_case(PASSWORD_COMPLEXITY_KEY) {
        &["regexcomplexity"]
    } else {
        &[]
    }
}

/// A value reduced to its meaning.
#[derive(Debug, PartialEq)]
enum Canonical {
    /// A JSON object or array, canonicalised.
    Structured(Node),
    /// `true` or `false`, from any casing.
    Bool(bool),
    /// Any other plain string, kept exactly.
    Text(String),
}

/// A canonical JSON node: names lower-cased, number-like strings turned into numbers.
#[derive(Debug, PartialEq)]
enum Node {
    Null,
    Bool(bool),
    /// Numbers compare by value; `f64` is exact for every integer the settings use.
    Number(f64),
    Text(String),
    List(Vec<Node>),
    Object(BTreeMap<String, Node>),
}

fn canonical(key: &str, value: &str) -> Canonical {
    if let Ok(json @ (Value::Object(_) | Value::Array(_))) = serde_json::from_str::<Value>(value) {
        return Canonical::Structured(canonical_node(&json, derived_properties(key)));
    }
    match parse_bool(value) {
        Some(b) => Canonical::Bool(b),
        None => Canonical::Text(value.to_owned()),
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    if value.eq_ignore_ascii_case("true") {
        Some(true)
    } else if value.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Canonicalises one JSON node; `derived` applies to the top-level object only.
fn canonical_node(value: &Value, derived: &[&str]) -> Node {
    match value {
        Value::Null => Node::Null,
        Value::Bool(b) => Node::Bool(*b),
        Value::Number(n) => n.as_f64().map_or(Node::Null, Node::Number),
        Value::String(s) => canonical_string(s),
        Value::Array(items) => Node::List(items.iter().map(|v| canonical_node(v, &[])).collect()),
        Value::Object(map) => {
            let mut out = BTreeMap::new();
            for (name, v) in map {
                let name = name.to_ascii_lowercase();
                if derived.contains(&name.as_str()) {
                    continue;
                }
                let node = canonical_node(v, &[]);
                // An absent property means false/null: drop those so both spellings agree.
                if matches!(node, Node::Null | Node::Bool(false)) {
                    out.remove(&name);
                    continue;
                }
                out.insert(name, node);
            }
            Node::Object(out)
        }
    }
}

/// A string inside a structured value: a decimal number or a boolean spelled as text is that
/// number or boolean (the server stores `"10"` and `"010"` as `10`); anything else stays text.
fn canonical_string(s: &str) -> Node {
    if let Some(b) = parse_bool(s) {
        return Node::Bool(b);
    }
    if is_decimal(s)
        && let Ok(n) = s.parse::<f64>()
    {
        return Node::Number(n);
    }
    Node::Text(s.to_owned())
}

/// `-?digits(.digits)?`: what a .NET number binder reads as a number (no exponent, no spaces).
fn is_decimal(s: &str) -> bool {
    let unsigned = s.strip_prefix('-').unwrap_or(s);
    let mut parts = unsigned.splitn(2, '.');
    let whole = parts.next().unwrap_or_default();
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && parts.next().is_none_or(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_derived_drops_only_what_the_server_derives_and_keeps_the_meaning() {
        let stored =
            r#"{"HasDigit":true,"Length":10,"RegexComplexity":{"Regex":"(?=.*\\d).{10,}"}}"#;
        let sent = without_derived(PASSWORD_COMPLEXITY_KEY, stored);
        assert_eq!(sent, r#"{"HasDigit":true,"Length":10}"#);
        assert!(same_meaning(PASSWORD_COMPLEXITY_KEY, &sent, stored));
        assert_eq!(without_derived("Other.Key", stored), stored);
        assert_eq!(
            without_derived(PASSWORD_COMPLEXITY_KEY, "not json"),
            "not json"
        );
    }

    const PC: &str = PASSWORD_COMPLEXITY_KEY;

    #[test]
    fn the_contract_example_password_complexity_matches_the_server_answer() {
        let sent = r#"{"hasSpecialCharacter":false,"hasLowercase":true,"hasUppercase":false,"hasDigit":true,"Length":"10"}"#;
        let stored = r#"{"HasDigit":true,"HasLowercase":true,"HasSpecialCharacter":false,"HasUppercase":false,"Length":10,"RegexComplexity":{"HasDigitRegex":"(?=.*\\d)","HasLowercaseRegex":"(?=.*[a-z])","HasSpecialCharacterRegex":"(?=.*[^a-zA-Z\\d])","HasUppercaseRegex":"(?=.*[A-Z])","LengthRegex":"{10,}","Regex":"(?=.*\\d)(?=.*[a-z]).{10,}"}}"#;
        assert!(same_meaning(PC, sent, stored));
        assert!(same_meaning(PC, stored, sent));
    }

    #[test]
    fn different_rules_differ() {
        let base = r#"{"hasDigit":true,"hasLowercase":true,"Length":10}"#;
        assert!(!same_meaning(
            PC,
            base,
            r#"{"HasDigit":true,"HasLowercase":true,"Length":12}"#
        ));
        assert!(!same_meaning(
            PC,
            base,
            r#"{"HasDigit":false,"HasLowercase":true,"Length":10}"#
        ));
        assert!(!same_meaning(
            PC,
            base,
            r#"{"HasDigit":true,"HasLowercase":true}"#
        ));
        assert!(!same_meaning(
            PC,
            base,
            r#"{"HasDigit":true,"HasLowercase":true,"Length":"012"}"#
        ));
        assert!(!same_meaning(
            PC,
            base,
            r#"{"HasDigit":true,"HasLowercase":true,"Length":"1e1"}"#
        ));
    }

    #[test]
    fn digits_inside_structured_values_are_numbers_leading_zeros_too() {
        let stored = r#"{"HasDigit":true,"Length":10}"#;
        assert!(same_meaning(
            PC,
            r#"{"hasDigit":true,"Length":"010"}"#,
            stored
        ));
        assert!(same_meaning(
            PC,
            r#"{"hasDigit":true,"Length":"10.0"}"#,
            stored
        ));
        assert!(!same_meaning(
            PC,
            r#"{"hasDigit":true,"Length":" 10"}"#,
            stored
        ));
        assert!(is_decimal("-1.5") && !is_decimal("1.") && !is_decimal("") && !is_decimal("+1"));
    }

    #[test]
    fn a_missing_rule_equals_an_explicit_false_but_not_a_true() {
        let without = r#"{"hasDigit":true,"Length":10}"#;
        assert!(same_meaning(
            PC,
            without,
            r#"{"HasDigit":true,"HasUppercase":false,"Length":10}"#
        ));
        assert!(!same_meaning(
            PC,
            without,
            r#"{"HasDigit":true,"HasUppercase":true,"Length":10}"#
        ));
    }

    #[test]
    fn derived_properties_are_ignored_only_for_their_key() {
        let a = r#"{"Length":10}"#;
        let b = r#"{"Length":10,"RegexComplexity":{"Regex":".{10,}"}}"#;
        assert!(same_meaning(PC, a, b));
        assert!(!same_meaning("Some.Other.Json", a, b));
    }

    #[test]
    fn booleans_ignore_case_and_other_plain_values_are_exact() {
        assert!(same_meaning("Auth.UserLockOut.IsEnabled", "true", "True"));
        assert!(same_meaning("Auth.UserLockOut.IsEnabled", "FALSE", "false"));
        assert!(!same_meaning("Auth.UserLockOut.IsEnabled", "true", "false"));
        assert!(!same_meaning("Email.Smtp.Port", "010", "10"));
        assert!(!same_meaning("Email.Smtp.Port", "10", "10.0"));
        assert!(!same_meaning(
            "Email.Smtp.Host",
            "smtp.example.com",
            "SMTP.example.com"
        ));
        assert!(same_meaning(
            "Email.Smtp.Host",
            "smtp.example.com",
            "smtp.example.com"
        ));
    }

    #[test]
    fn structured_and_plain_never_mix() {
        assert!(!same_meaning("k", r#"{"a":1}"#, "a"));
        assert!(!same_meaning("k", "[1]", "1"));
        assert!(same_meaning("k", "[1, 2]", "[1,2]"));
        assert!(!same_meaning("k", "[1,2]", "[2,1]"));
    }
}
