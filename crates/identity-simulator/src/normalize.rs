//! The storage normalisation the identity service applies to setting values.
//!
//! Only `Auth.Password.PasswordComplexity` is rewritten (the contract's example shows how); every
//! other key is stored exactly as sent. The module is pure so it can be unit-tested and reused by
//! [`super::Simulator::set_directly`].
//!
//! Two entry points:
//! - [`try_normalize_value`] / [`validate_value`]: what a PUT does — an invalid
//!   `PasswordComplexity` is an error (the server answers 400);
//! - [`normalize_value`]: infallible, returns an invalid value unchanged (used for out-of-band
//!   changes, which may store anything).
//!
//! Where the vendor documentation is silent the simulator is strict (the contract's
//! "conservative thing"), so the operator cannot come to depend on leniency:
//! - all five rules (`HasDigit`, `HasLowercase`, `HasSpecialCharacter`, `HasUppercase`, `Length`)
//!   must be present; the real server (ASP.NET model binding) may default missing ones;
//! - the four `Has…` rules must be JSON booleans (the real server may also accept `"true"`);
//! - `Length` is a non-negative integer, given as a number or a string of digits (the example
//!   sends `"10"`);
//! - property names are matched case-insensitively; a name given twice (in any casing) or an
//!   unknown name is rejected;
//! - a `RegexComplexity` object in the input is accepted and ignored: it is derived by the server,
//!   so sending back a value read from the server works.

use serde::Serialize;
use serde_json::Value;

/// The one key whose value the server rewrites.
pub const PASSWORD_COMPLEXITY_KEY: &str = "Auth.Password.PasswordComplexity";

/// Lookahead for a digit, as the server renders it.
const DIGIT_REGEX: &str = r"(?=.*\d)";
/// Lookahead for a lowercase letter.
const LOWERCASE_REGEX: &str = r"(?=.*[a-z])";
/// Lookahead for a character that is neither a letter nor a digit.
const SPECIAL_REGEX: &str = r"(?=.*[^a-zA-Z\d])";
/// Lookahead for an uppercase letter.
const UPPERCASE_REGEX: &str = r"(?=.*[A-Z])";

/// Why a value cannot be stored; the message is safe to show (it never contains the value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

/// The value as the server would store it; an invalid `PasswordComplexity` is returned unchanged.
///
/// Use [`validate_value`] (or [`try_normalize_value`]) first when the caller must be told about
/// invalid input, as a PUT is.
pub fn normalize_value(key: &str, value: &str) -> String {
    try_normalize_value(key, value).unwrap_or_else(|_| value.to_owned())
}

/// Checks a value the way a PUT does: `Err` carries the message the 400 response shows.
pub fn validate_value(key: &str, value: &str) -> Result<(), String> {
    try_normalize_value(key, value).map(|_| ()).map_err(|e| e.0)
}

/// The value as the server would store it, or why the server would reject it.
pub fn try_normalize_value(key: &str, value: &str) -> Result<String, InvalidValue> {
    if key == PASSWORD_COMPLEXITY_KEY {
        normalize_password_complexity(value)
    } else {
        Ok(value.to_owned())
    }
}

/// The password rules after parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PasswordRules {
    has_digit: bool,
    has_lowercase: bool,
    has_special_character: bool,
    has_uppercase: bool,
    length: u32,
}

/// The stored form; field order is the sorted PascalCase order the server returns.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct StoredComplexity {
    has_digit: bool,
    has_lowercase: bool,
    has_special_character: bool,
    has_uppercase: bool,
    length: u32,
    regex_complexity: RegexComplexity,
}

/// The derived regular expressions the server adds.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RegexComplexity {
    has_digit_regex: &'static str,
    has_lowercase_regex: &'static str,
    has_special_character_regex: &'static str,
    has_uppercase_regex: &'static str,
    length_regex: String,
    regex: String,
}

fn normalize_password_complexity(value: &str) -> Result<String, InvalidValue> {
    let rules = parse_rules(value)?;
    render(rules)
}

fn parse_rules(value: &str) -> Result<PasswordRules, InvalidValue> {
    let invalid = |msg: String| InvalidValue(format!("{PASSWORD_COMPLEXITY_KEY}: {msg}"));
    let parsed: Value = serde_json::from_str(value)
        .map_err(|e| invalid(format!("the value is not valid JSON ({e})")))?;
    let Value::Object(map) = parsed else {
        return Err(invalid("the value must be a JSON object".into()));
    };
    let mut has_digit = None;
    let mut has_lowercase = None;
    let mut has_special = None;
    let mut has_uppercase = None;
    let mut length = None;
    let mut seen_regex = false;
    for (name, v) in &map {
        let slot = match name.to_ascii_lowercase().as_str() {
            "hasdigit" => &mut has_digit,
            "haslowercase" => &mut has_lowercase,
            "hasspecialcharacter" => &mut has_special,
            "hasuppercase" => &mut has_uppercase,
            "length" => {
                if length.is_some() {
                    return Err(invalid("property Length is given more than once".into()));
                }
                length = Some(parse_length(v).map_err(invalid)?);
                continue;
            }
            "regexcomplexity" => {
                if seen_regex {
                    return Err(invalid(
                        "property RegexComplexity is given more than once".into(),
                    ));
                }
                seen_regex = true;
                continue;
            }
            _ => return Err(invalid(format!("unknown property {name:?}"))),
        };
        if slot.is_some() {
            return Err(invalid(format!(
                "property {name:?} is given more than once"
            )));
        }
        let Value::Bool(b) = v else {
            return Err(invalid(format!("property {name:?} must be a boolean")));
        };
        *slot = Some(*b);
    }
    let require = |v: Option<bool>, name: &str| {
        v.ok_or_else(|| invalid(format!("property {name} is required")))
    };
    Ok(PasswordRules {
        has_digit: require(has_digit, "HasDigit")?,
        has_lowercase: require(has_lowercase, "HasLowercase")?,
        has_special_character: require(has_special, "HasSpecialCharacter")?,
        has_uppercase: require(has_uppercase, "HasUppercase")?,
        length: length.ok_or_else(|| invalid("property Length is required".into()))?,
    })
}

/// `Length` as a number or a string of digits (the contract's example sends `"10"`).
fn parse_length(v: &Value) -> Result<u32, String> {
    const MSG: &str = "property Length must be a non-negative integer (number or string of digits)";
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse::<u64>().ok()
        }
        _ => None,
    };
    // .NET `int` range: the server stores Length as an int.
    n.and_then(|n| u32::try_from(n).ok())
        .filter(|n| i32::try_from(*n).is_ok())
        .ok_or_else(|| MSG.to_owned())
}

fn render(rules: PasswordRules) -> Result<String, InvalidValue> {
    let length_regex = format!("{{{},}}", rules.length);
    // Enabled lookaheads in the properties' alphabetical order: digit, lowercase, special,
    // uppercase. The example only shows digit and lowercase; the place of the other two is an
    // assumption recorded in the contract.
    let mut regex = String::new();
    for (enabled, lookahead) in [
        (rules.has_digit, DIGIT_REGEX),
        (rules.has_lowercase, LOWERCASE_REGEX),
        (rules.has_special_character, SPECIAL_REGEX),
        (rules.has_uppercase, UPPERCASE_REGEX),
    ] {
        if enabled {
            regex.push_str(lookahead);
        }
    }
    regex.push('.');
    regex.push_str(&length_regex);
    let stored = StoredComplexity {
        has_digit: rules.has_digit,
        has_lowercase: rules.has_lowercase,
        has_special_character: rules.has_special_character,
        has_uppercase: rules.has_uppercase,
        length: rules.length,
        regex_complexity: RegexComplexity {
            has_digit_regex: DIGIT_REGEX,
            has_lowercase_regex: LOWERCASE_REGEX,
            has_special_character_regex: SPECIAL_REGEX,
            has_uppercase_regex: UPPERCASE_REGEX,
            length_regex,
            regex,
        },
    };
    serde_json::to_string(&stored)
        .map_err(|e| InvalidValue(format!("{PASSWORD_COMPLEXITY_KEY}: cannot render ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENT: &str = r#"{"hasSpecialCharacter":false,"hasLowercase":true,"hasUppercase":false,"hasDigit":true,"Length":"10"}"#;
    const STORED: &str = r#"{"HasDigit":true,"HasLowercase":true,"HasSpecialCharacter":false,"HasUppercase":false,"Length":10,"RegexComplexity":{"HasDigitRegex":"(?=.*\\d)","HasLowercaseRegex":"(?=.*[a-z])","HasSpecialCharacterRegex":"(?=.*[^a-zA-Z\\d])","HasUppercaseRegex":"(?=.*[A-Z])","LengthRegex":"{10,}","Regex":"(?=.*\\d)(?=.*[a-z]).{10,}"}}"#;

    fn regex_of(stored: &str) -> String {
        let v: Value = serde_json::from_str(stored).unwrap();
        v["RegexComplexity"]["Regex"].as_str().unwrap().to_owned()
    }

    #[test]
    fn example_value_is_normalised_byte_for_byte() {
        assert_eq!(normalize_value(PASSWORD_COMPLEXITY_KEY, SENT), STORED);
    }

    #[test]
    fn normalising_is_idempotent() {
        assert_eq!(normalize_value(PASSWORD_COMPLEXITY_KEY, STORED), STORED);
    }

    #[test]
    fn other_keys_are_unchanged() {
        assert_eq!(
            normalize_value("Auth.Password.PreviousUseLimit", " 010 "),
            " 010 "
        );
        assert_eq!(normalize_value("Email.Smtp.Password", SENT), SENT);
        assert_eq!(validate_value("Some.Unknown.Key", "{not json"), Ok(()));
    }

    #[test]
    fn regex_order_is_digit_lowercase_special_uppercase() {
        let all = r#"{"HASUPPERCASE":true,"hasspecialcharacter":true,"HasLowercase":true,"hasDigit":true,"length":12}"#;
        assert_eq!(
            regex_of(&normalize_value(PASSWORD_COMPLEXITY_KEY, all)),
            r"(?=.*\d)(?=.*[a-z])(?=.*[^a-zA-Z\d])(?=.*[A-Z]).{12,}"
        );
        let special_upper = r#"{"hasUppercase":true,"hasSpecialCharacter":true,"hasLowercase":false,"hasDigit":false,"Length":8}"#;
        assert_eq!(
            regex_of(&normalize_value(PASSWORD_COMPLEXITY_KEY, special_upper)),
            r"(?=.*[^a-zA-Z\d])(?=.*[A-Z]).{8,}"
        );
        let none = r#"{"hasUppercase":false,"hasSpecialCharacter":false,"hasLowercase":false,"hasDigit":false,"Length":"0"}"#;
        assert_eq!(
            regex_of(&normalize_value(PASSWORD_COMPLEXITY_KEY, none)),
            ".{0,}"
        );
    }

    #[test]
    fn invalid_values_are_rejected_with_a_message() {
        let cases = [
            ("not json", "not valid JSON"),
            ("[1]", "JSON object"),
            (r#"{"hasDigit":true}"#, "HasLowercase is required"),
            (
                r#"{"hasDigit":"yes","hasLowercase":true,"hasUppercase":false,"hasSpecialCharacter":false,"Length":8}"#,
                "must be a boolean",
            ),
            (
                r#"{"hasDigit":true,"hasLowercase":true,"hasUppercase":false,"hasSpecialCharacter":false,"Length":-1}"#,
                "Length must be",
            ),
            (
                r#"{"hasDigit":true,"hasLowercase":true,"hasUppercase":false,"hasSpecialCharacter":false,"Length":"ten"}"#,
                "Length must be",
            ),
            (
                r#"{"hasDigit":true,"hasLowercase":true,"hasUppercase":false,"hasSpecialCharacter":false,"Length":8.5}"#,
                "Length must be",
            ),
            (
                r#"{"hasDigit":true,"HasDigit":true,"hasLowercase":true,"hasUppercase":false,"hasSpecialCharacter":false,"Length":8}"#,
                "more than once",
            ),
            (
                r#"{"hasDigit":true,"hasLowercase":true,"hasUppercase":false,"hasSpecialCharacter":false,"Length":8,"Colour":1}"#,
                "unknown property",
            ),
        ];
        for (value, expected) in cases {
            let err = validate_value(PASSWORD_COMPLEXITY_KEY, value).unwrap_err();
            assert!(err.contains(expected), "{value}: {err}");
            assert!(err.starts_with(PASSWORD_COMPLEXITY_KEY), "{err}");
            // Invalid input is stored unchanged by the infallible variant.
            assert_eq!(normalize_value(PASSWORD_COMPLEXITY_KEY, value), value);
        }
    }

    #[test]
    fn length_out_of_int_range_is_rejected() {
        let v = r#"{"hasDigit":true,"hasLowercase":true,"hasUppercase":false,"hasSpecialCharacter":false,"Length":2147483648}"#;
        assert!(validate_value(PASSWORD_COMPLEXITY_KEY, v).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_valid_rules_round_trip(d: bool, l: bool, s: bool, u: bool, len in 0u32..10_000) {
            let sent = format!(
                r#"{{"hasDigit":{d},"hasLowercase":{l},"hasSpecialCharacter":{s},"hasUppercase":{u},"Length":"{len}"}}"#
            );
            let stored = try_normalize_value(PASSWORD_COMPLEXITY_KEY, &sent).unwrap();
            let v: Value = serde_json::from_str(&stored).unwrap();
            proptest::prop_assert_eq!(v["Length"].as_u64(), Some(u64::from(len)));
            proptest::prop_assert_eq!(v["HasDigit"].as_bool(), Some(d));
            let regex = v["RegexComplexity"]["Regex"].as_str().unwrap().to_owned();
            let expected_suffix = format!(".{{{len},}}");
            proptest::prop_assert!(regex.ends_with(&expected_suffix));
            proptest::prop_assert_eq!(regex.contains(UPPERCASE_REGEX), u);
            proptest::prop_assert_eq!(normalize_value(PASSWORD_COMPLEXITY_KEY, &stored), stored);
        }
    }
}
