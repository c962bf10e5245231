//! The setting keys the operator knows, as plain data: the identity service's GET answers only
//! the keys it is asked for, so `identity-settings-operator export` asks for these (and any
//! `--key` given). Taken from the API contract (`docs/identity-api.md`, "Known setting keys");
//! the list is open — the service has other keys, and an unknown key is never refused.
//!
//! [`reference`] renders the list as `docs/reference/setting-keys.md` (a test keeps the committed
//! file current). Bump [`VERSION`] whenever an entry is added, removed or changed.

/// The catalog's version, written into every exported policy's annotation so an export can be
/// traced to the key list it asked for.
pub const VERSION: &str = "1";

/// Which kind of setting a key is: how `export --split` groups keys into policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    /// `Auth.Password.*`: password rules and expiry.
    PasswordPolicy,
    /// `Auth.UserLockOut.*`: account lockout after failed logins.
    Lockout,
    /// `Email.*`: the SMTP server the service sends mail through.
    Email,
    /// Any key the catalog does not list.
    Other,
}

impl Group {
    /// Every group, in the order exported policies are written.
    pub const ALL: [Group; 4] = [
        Group::PasswordPolicy,
        Group::Lockout,
        Group::Email,
        Group::Other,
    ];

    /// The group's name in resource names (`<name>-password-policy`) and in the docs.
    pub fn slug(self) -> &'static str {
        match self {
            Group::PasswordPolicy => "password-policy",
            Group::Lockout => "lockout",
            Group::Email => "email",
            Group::Other => "other",
        }
    }
}

/// The form of a key's value. Every value travels as a string; this says what the string holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueFormat {
    /// A whole number written as text (`"90"`).
    Integer,
    /// `"true"` or `"false"` (compared case-insensitively).
    Boolean,
    /// A JSON object written as text; the server normalises it.
    Json,
    /// Free text.
    Text,
}

impl ValueFormat {
    /// How the docs name the format.
    pub fn describe(self) -> &'static str {
        match self {
            ValueFormat::Integer => "integer",
            ValueFormat::Boolean => "boolean",
            ValueFormat::Json => "JSON object",
            ValueFormat::Text => "text",
        }
    }
}

/// One known key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownKey {
    /// The key, spelled as the contract spells it.
    pub key: &'static str,
    /// Its group.
    pub group: Group,
    /// What its value holds.
    pub format: ValueFormat,
    /// Whether its value is a secret: taken from a Secret, never written in a policy or shown.
    pub secret: bool,
    /// What it means, for the docs.
    pub meaning: &'static str,
}

const fn known(
    key: &'static str,
    group: Group,
    format: ValueFormat,
    meaning: &'static str,
) -> KnownKey {
    KnownKey {
        key,
        group,
        format,
        secret: false,
        meaning,
    }
}

/// Every known key, sorted by key.
pub const KEYS: &[KnownKey] = &[
    known(
        "Auth.Password.DefaultExpirationDays",
        Group::PasswordPolicy,
        ValueFormat::Integer,
        "days until a password expires",
    ),
    known(
        "Auth.Password.PasswordComplexity",
        Group::PasswordPolicy,
        ValueFormat::Json,
        "the rules a password must meet, e.g. `{\"hasDigit\":true,\"hasLowercase\":true,\"Length\":\"10\"}`; \
         the server stores it normalised (PascalCase names, `Length` a number, a derived \
         `RegexComplexity`), which is the same value",
    ),
    known(
        "Auth.Password.PreviousUseLimit",
        Group::PasswordPolicy,
        ValueFormat::Integer,
        "how many previous passwords may not be used again",
    ),
    known(
        "Auth.Password.ShouldChangePasswordAfterFirstLogin",
        Group::PasswordPolicy,
        ValueFormat::Boolean,
        "whether users must change their password after the first login",
    ),
    known(
        "Auth.UserLockOut.DefaultAccountLockoutSeconds",
        Group::Lockout,
        ValueFormat::Integer,
        "how long an account stays locked, in seconds",
    ),
    known(
        "Auth.UserLockOut.IsEnabled",
        Group::Lockout,
        ValueFormat::Boolean,
        "whether failed logins lock an account",
    ),
    known(
        "Auth.UserLockOut.MaxFailedAccessAttemptsBeforeLockout",
        Group::Lockout,
        ValueFormat::Integer,
        "failed logins before the account is locked",
    ),
    known(
        "Email.Smtp.Domain",
        Group::Email,
        ValueFormat::Text,
        "the SMTP login's domain",
    ),
    known(
        "Email.Smtp.EnableSsl",
        Group::Email,
        ValueFormat::Boolean,
        "whether the SMTP connection uses TLS",
    ),
    known(
        "Email.Smtp.FromDisplayName",
        Group::Email,
        ValueFormat::Text,
        "the sender's display name",
    ),
    known(
        "Email.Smtp.FromEmail",
        Group::Email,
        ValueFormat::Text,
        "the sender's address",
    ),
    known(
        "Email.Smtp.Host",
        Group::Email,
        ValueFormat::Text,
        "the SMTP server's host name",
    ),
    KnownKey {
        secret: true,
        ..known(
            "Email.Smtp.Password",
            Group::Email,
            ValueFormat::Text,
            "the SMTP login's password",
        )
    },
    known(
        "Email.Smtp.Port",
        Group::Email,
        ValueFormat::Integer,
        "the SMTP server's port",
    ),
    known(
        "Email.Smtp.UseDefaultCredentials",
        Group::Email,
        ValueFormat::Boolean,
        "whether the service logs in with its own default credentials instead of the user name \
         and password",
    ),
    known(
        "Email.Smtp.UserName",
        Group::Email,
        ValueFormat::Text,
        "the SMTP login's user name",
    ),
];

/// The catalog's entry for `key`, compared case-insensitively (as the identity service does).
pub fn lookup(key: &str) -> Option<&'static KnownKey> {
    KEYS.iter().find(|k| k.key.eq_ignore_ascii_case(key))
}

/// The group of `key`: the catalog's, or [`Group::Other`] for a key it does not list.
pub fn group_of(key: &str) -> Group {
    lookup(key).map_or(Group::Other, |k| k.group)
}

/// Whether the catalog lists `key` as secret-valued.
pub fn is_secret(key: &str) -> bool {
    lookup(key).is_some_and(|k| k.secret)
}

/// The catalog as Markdown: `docs/reference/setting-keys.md`.
pub fn reference() -> String {
    let mut out = format!(
        "<!-- Generated by `identity-settings-operator keys-docs > docs/reference/setting-keys.md`; do not edit. -->\n\n\
         # Known setting keys (catalog version {VERSION})\n\n\
         The keys the operator knows, from the API contract ([identity-api.md](../identity-api.md)). \
         `identity-settings-operator export` reads these (and each `--key` given) from a live \
         server — the service answers only the keys it is asked for — and `--split` makes one \
         policy per group. A policy may hold any other key too: the list is open.\n\n\
         Every value is a string; the format says what the string holds. A secret key's value \
         must come from a Secret (`valueFrom.secretKeyRef`) and is never shown. The contract \
         names the keys only: the meanings below are read from the names and the guide's \
         examples.\n\n\
         | key | group | format | secret | meaning |\n\
         | --- | --- | --- | --- | --- |\n"
    );
    for k in KEYS {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            k.key,
            k.group.slug(),
            k.format.describe(),
            if k.secret { "yes" } else { "no" },
            k.meaning.replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_holds_the_contracts_sixteen_keys_sorted_and_once_each() {
        assert_eq!(KEYS.len(), 16);
        for pair in KEYS.windows(2) {
            assert!(
                pair[0].key.to_ascii_lowercase() < pair[1].key.to_ascii_lowercase(),
                "{} and {} are not sorted or repeat",
                pair[0].key,
                pair[1].key
            );
        }
        let secret: Vec<&str> = KEYS.iter().filter(|k| k.secret).map(|k| k.key).collect();
        assert_eq!(secret, ["Email.Smtp.Password"]);
    }

    #[test]
    fn keys_are_grouped_by_their_prefix_and_unknown_keys_are_other() {
        for k in KEYS {
            let expected = if k.key.starts_with("Auth.Password.") {
                Group::PasswordPolicy
            } else if k.key.starts_with("Auth.UserLockOut.") {
                Group::Lockout
            } else {
                Group::Email
            };
            assert_eq!(k.group, expected, "{}", k.key);
        }
        assert_eq!(group_of("auth.userlockout.isenabled"), Group::Lockout);
        assert_eq!(group_of("Custom.Feature.Flag"), Group::Other);
        assert!(is_secret("EMAIL.SMTP.PASSWORD") && !is_secret("Email.Smtp.UserName"));
    }

    #[test]
    fn the_reference_has_one_row_per_key_and_the_version() {
        let text = reference();
        assert!(text.contains(&format!("catalog version {VERSION}")));
        assert_eq!(
            text.lines().filter(|l| l.starts_with("| `")).count(),
            KEYS.len()
        );
        assert!(text.contains("| `Email.Smtp.Password` | email | text | yes |"));
    }
}
