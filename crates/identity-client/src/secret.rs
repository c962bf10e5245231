//! A string that must never be shown: credentials, tokens and secret-valued settings.
//!
//! `Debug` and `Display` print a fixed placeholder, so a secret that ends up in a log line, an
//! error message or a panic is redacted by construction. The only way to read it is
//! [`SecretString::expose`], which makes every use greppable.

use std::fmt;

/// A secret value. Cloning is allowed (the token cache and the client both need it); showing is not.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct SecretString(String);

/// What `Debug` and `Display` print instead of the value.
pub const REDACTED: &str = "<redacted>";

impl SecretString {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself: only for putting it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no value was given (an empty key in a Secret, say).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = SecretString::new("hunter2");
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(format!("{s}"), REDACTED);
        assert_eq!(
            format!("{:?}", Some(s.clone())),
            format!("Some({REDACTED})")
        );
        assert_eq!(s.expose(), "hunter2");
    }
}
