//! Cutting known secrets (client secret, password, token, secret setting values) out of text the
//! server wrote: a server message or a proxy page may echo what the client sent. The one
//! redactor of the project: the operator hands it every secret value of a policy (see
//! [`crate::client::IdentityClient::redacting`]) and uses it again on its own messages.
//!
//! Each secret is searched in the forms it can take in an echo: as sent, JSON-escaped (an echoed
//! JSON body), HTML-escaped (an error page), form-encoded (an echoed token request) and folded
//! like [`super::body::sanitize_prefix`] folds whitespace. Bodies are scrubbed before a message
//! is extracted or a prefix is cut, so folding or truncation cannot hide a secret from the scrub.

use super::body;
use super::error::IdentityError;
use crate::secret::REDACTED;

/// Secrets shorter than this are not searched for: replacing every `a` or `12` in a message
/// would make it unreadable, and such a value hides nothing worth hiding.
const MIN_SECRET_CHARS: usize = 3;

/// The forms of a set of secrets to cut out of text. Its Debug output shows how many forms it
/// holds, never one of them.
#[derive(Default, Clone)]
pub struct Redactor {
    needles: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} forms)", self.needles.len())
    }
}

impl Redactor {
    /// A redactor for `secrets`.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut redactor = Self::default();
        for secret in secrets {
            redactor.add(secret);
        }
        redactor
    }

    /// Whether it cuts nothing.
    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// Adds every secret of `other`.
    pub fn extend(&mut self, other: &Redactor) {
        for needle in &other.needles {
            if !self.needles.contains(needle) {
                self.needles.push(needle.clone());
            }
        }
        self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    }

    /// `text` with every secret form replaced by the redaction marker.
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        self.scrub(&mut text);
        text
    }

    /// Adds one more secret (and its echo forms).
    pub fn add(&mut self, secret: &str) {
        if secret.chars().count() < MIN_SECRET_CHARS {
            return;
        }
        let json = serde_json::to_string(secret).unwrap_or_default();
        let json = json
            .strip_prefix('"')
            .and_then(|j| j.strip_suffix('"'))
            .unwrap_or(secret)
            .to_owned();
        let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        let folded = body::sanitize_prefix(secret, usize::MAX);
        // An error page HTML-escapes what it echoes: the value itself, or the JSON body it came in.
        let html = html_escaped(secret);
        let html_json = html_escaped(&json);
        for needle in [secret.to_owned(), json, html, html_json, form, folded] {
            if needle.chars().count() >= MIN_SECRET_CHARS && !self.needles.contains(&needle) {
                self.needles.push(needle);
            }
        }
        // Longest first, so a secret that contains another is cut whole.
        self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    }

    /// Replaces every secret form in `text` by the redaction marker.
    pub fn scrub(&self, text: &mut String) {
        for needle in &self.needles {
            if text.contains(needle.as_str()) {
                *text = text.replace(needle.as_str(), REDACTED);
            }
        }
    }

    /// A body with the secrets cut out (lossy UTF-8: the result is only read for messages).
    pub(crate) fn scrub_body(&self, body: &[u8]) -> Vec<u8> {
        let mut text = String::from_utf8_lossy(body).into_owned();
        self.scrub(&mut text);
        text.into_bytes()
    }

    /// Cuts the secrets out of every text of `error`.
    pub(crate) fn scrub_error(&self, mut error: IdentityError) -> IdentityError {
        if !self.needles.is_empty() {
            error.map_text(&mut |text| self.scrub(text));
        }
        error
    }
}

/// `text` as an HTML page escapes it.
fn html_escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::Endpoint;

    #[test]
    fn every_echo_form_is_cut() {
        let r = Redactor::new(["two  spaces\tand\"quote", "a+b&c=d", "xy"]);
        let mut raw = "raw two  spaces\tand\"quote end".to_owned();
        r.scrub(&mut raw);
        assert_eq!(raw, "raw <redacted> end");
        let mut json = r#"{"value":"two  spaces\tand\"quote"}"#.to_owned();
        r.scrub(&mut json);
        assert_eq!(json, r#"{"value":"<redacted>"}"#);
        let mut folded = "said: two spaces and\"quote".to_owned();
        r.scrub(&mut folded);
        assert_eq!(folded, "said: <redacted>");
        let mut form = "client_secret=a%2Bb%26c%3Dd&x=1".to_owned();
        r.scrub(&mut form);
        assert_eq!(form, "client_secret=<redacted>&x=1");
        let mut short = "xy stays".to_owned();
        r.scrub(&mut short);
        assert_eq!(short, "xy stays");
    }

    #[test]
    fn every_text_of_every_variant_is_scrubbed() {
        let r = Redactor::new(["hunter2"]);
        let text = || "saw hunter2 here".to_owned();
        let errors = vec![
            IdentityError::Configuration(text()),
            IdentityError::Unauthorized {
                endpoint: Endpoint::Setting,
                url: "u".into(),
                status: 401,
                detail: Some(text()),
                hint: None,
            },
            IdentityError::Forbidden {
                endpoint: Endpoint::Setting,
                url: "u".into(),
                status: 403,
                detail: Some(text()),
            },
            IdentityError::Protocol {
                endpoint: Endpoint::Setting,
                url: "u".into(),
                status: 200,
                content_type: "text/html".into(),
                detail: text(),
            },
            IdentityError::Connection {
                endpoint: Endpoint::Setting,
                url: "u".into(),
                reason: text(),
            },
            IdentityError::RetriesExhausted {
                attempts: 2,
                elapsed: std::time::Duration::ZERO,
                last: Box::new(IdentityError::Unavailable {
                    endpoint: Endpoint::Setting,
                    url: "u".into(),
                    status: 503,
                    retry_after: None,
                    message: Some(text()),
                }),
            },
        ];
        for error in errors {
            let error = r.scrub_error(error);
            assert!(!error.to_string().contains("hunter2"), "{error}");
            assert!(!format!("{error:?}").contains("hunter2"), "{error:?}");
        }
    }
}
