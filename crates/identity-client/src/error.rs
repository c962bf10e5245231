//! What can go wrong talking to the identity service, with enough context to act on and a
//! stable class that decides how the operator reacts.
//!
//! No variant ever holds a credential, a token or a response body that could contain one: URLs
//! (which carry no secrets; user info is refused up front), statuses, server error messages,
//! content types and, for non-JSON bodies only, a short sanitized prefix.

use std::time::Duration;

use super::body;
use super::observe::Endpoint;

/// The kind of failure, a small fixed set usable as a metric label or condition reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// 429, 5xx, timeouts, broken connections: trying again later may work.
    Transient,
    /// The credentials were rejected (401 after a refresh, `invalid_client`, ROPC login failed).
    Authentication,
    /// The credentials are valid but lack the scope or the role (403, `invalid_scope`).
    Forbidden,
    /// The server refused the request itself (400): a value in the policy is wrong.
    InvalidRequest,
    /// Nothing at the URL (404): the base URL or its prefix is wrong.
    NotFound,
    /// The answer is not the identity API's (an HTML login page, a redirect, malformed JSON).
    Protocol,
    /// The client was configured wrongly (bad URL, http without permission, bad CA, empty secret).
    Configuration,
}

impl ErrorClass {
    /// A stable name for metrics, logs and conditions.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "Transient",
            ErrorClass::Authentication => "Authentication",
            ErrorClass::Forbidden => "Forbidden",
            ErrorClass::InvalidRequest => "InvalidRequest",
            ErrorClass::NotFound => "NotFound",
            ErrorClass::Protocol => "Protocol",
            ErrorClass::Configuration => "Configuration",
        }
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed identity call. `Clone` so that callers waiting on one shared token refresh can all
/// receive its failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IdentityError {
    /// A configured URL cannot be used.
    #[error("invalid identity {what} {url:?}: {reason}")]
    InvalidUrl {
        /// Which URL ("base URL", "authenticate URL").
        what: &'static str,
        /// The URL as configured (password removed).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A configured URL is plain `http` and insecure HTTP was not allowed.
    #[error(
        "identity {what} {url} uses plain http, which would send credentials unencrypted; use https (plain http is allowed only to a loopback address such as 127.0.0.1, and only when the operator runs with --allow-insecure-http)"
    )]
    InsecureUrl {
        /// Which URL.
        what: &'static str,
        /// The URL as configured.
        url: String,
    },
    /// Other configuration problems: an unusable CA certificate, empty credentials, ...
    #[error("invalid identity client configuration: {0}")]
    Configuration(String),
    /// The credentials were rejected.
    #[error("the identity {endpoint} endpoint at {url} rejected the credentials (HTTP {status}){}{}",
        detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default(),
        hint.map(|h| format!("; {h}")).unwrap_or_default())]
    Unauthorized {
        /// Where.
        endpoint: Endpoint,
        /// The URL tried.
        url: String,
        /// The HTTP status (401, or 400 for OAuth `invalid_client` and ROPC login failures).
        status: u16,
        /// What the server said (an OAuth error code, a `WWW-Authenticate` error, ROPC message).
        detail: Option<String>,
        /// What the user can do about it.
        hint: Option<&'static str>,
    },
    /// The credentials are valid but not allowed to do this.
    #[error("the identity {endpoint} endpoint at {url} refused access (HTTP {status}){}; the credentials need scope PM.Setting (PM.Setting.Read for reading) and administrator rights",
        detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    Forbidden {
        /// Where.
        endpoint: Endpoint,
        /// The URL tried.
        url: String,
        /// 403, or 400 for OAuth `invalid_scope` / `unauthorized_client`.
        status: u16,
        /// What the server said.
        detail: Option<String>,
    },
    /// The server refused the request (400 and other client errors).
    #[error(
        "the identity {endpoint} endpoint at {url} rejected the request (HTTP {status}): {message}"
    )]
    Rejected {
        /// Where.
        endpoint: Endpoint,
        /// The URL tried.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The server's message (problem `detail`/`title`/`error`/`message`, else a text prefix).
        message: String,
    },
    /// Nothing at the URL.
    #[error(
        "nothing found at {url} (HTTP 404); check the identity base URL, including its path prefix such as /identity_"
    )]
    NotFound {
        /// The URL tried.
        url: String,
    },
    /// 429 or 5xx.
    #[error("the identity {endpoint} endpoint at {url} is unavailable (HTTP {status}){}{}",
        retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default(),
        message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Unavailable {
        /// Where.
        endpoint: Endpoint,
        /// The URL tried.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The server's `Retry-After`.
        retry_after: Option<Duration>,
        /// The server's message, if any.
        message: Option<String>,
    },
    /// The server's request budget did not allow the request in time: the server answered 429
    /// for this or another request of the same server (`server_asked`), or the configured rate
    /// or in-flight limit is used up. Nothing was sent.
    #[error("{}; not sent to the identity {endpoint} endpoint at {url}, next try in about {}s",
        if *server_asked { "the identity service asked every client to slow down (HTTP 429)" }
        else { "the request budget for this identity server is used up" },
        wait.as_secs().max(1))]
    Throttled {
        /// Where.
        endpoint: Endpoint,
        /// The URL not tried.
        url: String,
        /// How long until the budget allows a request.
        wait: Duration,
        /// Whether the server asked for the pause (429).
        server_asked: bool,
    },
    /// No answer in time.
    #[error("the request to the identity {endpoint} endpoint at {url} timed out")]
    Timeout {
        /// Where.
        endpoint: Endpoint,
        /// The URL tried.
        url: String,
    },
    /// The connection could not be made or broke.
    #[error("could not talk to the identity {endpoint} endpoint at {url}: {reason}")]
    Connection {
        /// Where.
        endpoint: Endpoint,
        /// The URL tried.
        url: String,
        /// The transport's description (no URL, no headers).
        reason: String,
    },
    /// The answer is not what the API sends.
    #[error(
        "unexpected answer from the identity {endpoint} endpoint at {url} (HTTP {status}, content type {content_type}): {detail}"
    )]
    Protocol {
        /// Where.
        endpoint: Endpoint,
        /// The URL tried.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The `Content-Type` received, or `none`.
        content_type: String,
        /// What was wrong, with a short sanitized body prefix for non-JSON bodies.
        detail: String,
    },
    /// Transient failures went on until the retry policy gave up. The message leaves out the
    /// time spent (it is in the fields and the log) so that the same failure reads the same each
    /// time and a status condition built from it does not change on every retry.
    #[error("{last} (gave up after {attempts} attempts)")]
    RetriesExhausted {
        /// HTTP attempts made.
        attempts: u32,
        /// Time spent.
        elapsed: Duration,
        /// The last failure.
        last: Box<IdentityError>,
    },
}

impl IdentityError {
    /// The failure's class.
    pub fn class(&self) -> ErrorClass {
        match self {
            IdentityError::InvalidUrl { .. }
            | IdentityError::InsecureUrl { .. }
            | IdentityError::Configuration(_) => ErrorClass::Configuration,
            IdentityError::Unauthorized { .. } => ErrorClass::Authentication,
            IdentityError::Forbidden { .. } => ErrorClass::Forbidden,
            IdentityError::Rejected { .. } => ErrorClass::InvalidRequest,
            IdentityError::NotFound { .. } => ErrorClass::NotFound,
            IdentityError::Unavailable { .. }
            | IdentityError::Throttled { .. }
            | IdentityError::Timeout { .. }
            | IdentityError::Connection { .. } => ErrorClass::Transient,
            IdentityError::Protocol { .. } => ErrorClass::Protocol,
            IdentityError::RetriesExhausted { last, .. } => last.class(),
        }
    }

    /// How long the server asked to wait (`Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            IdentityError::Unavailable { retry_after, .. } => *retry_after,
            IdentityError::Throttled { wait, .. } => Some(*wait),
            IdentityError::RetriesExhausted { last, .. } => last.retry_after(),
            _ => None,
        }
    }

    /// The HTTP status the server answered, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            IdentityError::Unauthorized { status, .. }
            | IdentityError::Forbidden { status, .. }
            | IdentityError::Rejected { status, .. }
            | IdentityError::Unavailable { status, .. }
            | IdentityError::Protocol { status, .. } => Some(*status),
            IdentityError::NotFound { .. } => Some(404),
            IdentityError::RetriesExhausted { last, .. } => last.status(),
            _ => None,
        }
    }

    /// Applies `f` to every text this error carries (URLs, messages, details, reasons, content
    /// types), the wrapped last failure included. Used to cut secrets out of server texts.
    pub fn map_text(&mut self, f: &mut dyn FnMut(&mut String)) {
        match self {
            IdentityError::InvalidUrl { url, reason, .. } => {
                f(url);
                f(reason);
            }
            IdentityError::InsecureUrl { url, .. } | IdentityError::NotFound { url } => f(url),
            IdentityError::Configuration(text) => f(text),
            IdentityError::Unauthorized { url, detail, .. }
            | IdentityError::Forbidden { url, detail, .. } => {
                f(url);
                if let Some(detail) = detail {
                    f(detail);
                }
            }
            IdentityError::Rejected { url, message, .. } => {
                f(url);
                f(message);
            }
            IdentityError::Unavailable { url, message, .. } => {
                f(url);
                if let Some(message) = message {
                    f(message);
                }
            }
            IdentityError::Timeout { url, .. } | IdentityError::Throttled { url, .. } => f(url),
            IdentityError::Connection { url, reason, .. } => {
                f(url);
                f(reason);
            }
            IdentityError::Protocol {
                url,
                content_type,
                detail,
                ..
            } => {
                f(url);
                f(content_type);
                f(detail);
            }
            IdentityError::RetriesExhausted { last, .. } => last.map_text(f),
        }
    }

    /// Whether the retry loop may try again (transient, and not already the loop's verdict).
    pub(crate) fn is_retryable(&self) -> bool {
        // A throttled call ends at once: waiting is the budget's job, and it had no time left.
        self.class() == ErrorClass::Transient
            && !matches!(
                self,
                IdentityError::RetriesExhausted { .. } | IdentityError::Throttled { .. }
            )
    }
}

/// The class a non-success HTTP status falls in, before endpoint-specific refinements.
pub fn class_for_status(status: u16) -> ErrorClass {
    match status {
        401 => ErrorClass::Authentication,
        403 => ErrorClass::Forbidden,
        404 | 410 => ErrorClass::NotFound,
        408 | 429 | 500..=599 => ErrorClass::Transient,
        400..=499 => ErrorClass::InvalidRequest,
        _ => ErrorClass::Protocol,
    }
}

/// A non-success answer, as the transport hands it over.
#[derive(Debug, Clone, Copy)]
pub struct FailedResponse<'a> {
    /// Which endpoint answered.
    pub endpoint: Endpoint,
    /// The URL tried.
    pub url: &'a str,
    /// The status.
    pub status: u16,
    /// `Retry-After`, parsed.
    pub retry_after: Option<Duration>,
    /// `Content-Type`, if any.
    pub content_type: Option<&'a str>,
    /// `WWW-Authenticate`, if any.
    pub www_authenticate: Option<&'a str>,
    /// `Location`, if any.
    pub location: Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
}

/// Turns a non-success answer into an error. Pure. Token-endpoint answers are read as OAuth 2.0
/// errors (`invalid_client` → Authentication, `invalid_scope` → Forbidden), ROPC 400s as login
/// failures. Bodies of the token endpoints are only mined for their JSON error fields
/// (`error_description`, `error`, ABP's `error.message`), never quoted: a gateway page could echo
/// the form with the client secret or the ROPC body with the password. Setting answers may be
/// quoted (a server message, or a sanitized prefix of a non-JSON body); the client cuts known
/// secrets out of the body before calling this.
pub fn error_for_response(r: FailedResponse<'_>) -> IdentityError {
    let url = r.url.to_owned();
    let endpoint = r.endpoint;
    let message = || match endpoint {
        Endpoint::Setting => body::server_message(r.body),
        Endpoint::Token | Endpoint::Authenticate => body::token_error_message(r.body),
    };
    if endpoint == Endpoint::Token && r.status == 400 {
        match body::oauth_error_code(r.body).as_deref() {
            Some(code @ ("invalid_client" | "invalid_grant")) => {
                return IdentityError::Unauthorized {
                    endpoint,
                    url,
                    status: r.status,
                    detail: Some(code.to_owned()),
                    hint: Some(HINT_CLIENT),
                };
            }
            Some(code @ ("invalid_scope" | "unauthorized_client")) => {
                return IdentityError::Forbidden {
                    endpoint,
                    url,
                    status: r.status,
                    detail: Some(code.to_owned()),
                };
            }
            _ => {}
        }
    }
    if endpoint == Endpoint::Authenticate && r.status == 400 {
        return IdentityError::Unauthorized {
            endpoint,
            url,
            status: r.status,
            detail: message(),
            hint: Some(HINT_PASSWORD),
        };
    }
    match class_for_status(r.status) {
        ErrorClass::Authentication => IdentityError::Unauthorized {
            endpoint,
            url,
            status: r.status,
            detail: match endpoint {
                Endpoint::Setting => r.www_authenticate.map(|h| body::sanitize_prefix(h, 200)),
                _ => message(),
            },
            hint: Some(match endpoint {
                Endpoint::Setting => HINT_TOKEN,
                Endpoint::Token => HINT_CLIENT,
                Endpoint::Authenticate => HINT_PASSWORD,
            }),
        },
        ErrorClass::Forbidden => IdentityError::Forbidden {
            endpoint,
            url,
            status: r.status,
            detail: message(),
        },
        ErrorClass::NotFound => IdentityError::NotFound { url },
        ErrorClass::Transient => IdentityError::Unavailable {
            endpoint,
            url,
            status: r.status,
            retry_after: r.retry_after,
            message: message(),
        },
        ErrorClass::InvalidRequest => IdentityError::Rejected {
            endpoint,
            url,
            status: r.status,
            message: message().unwrap_or_else(|| unquoted_body(&r)),
        },
        ErrorClass::Protocol | ErrorClass::Configuration => IdentityError::Protocol {
            endpoint,
            url,
            status: r.status,
            content_type: r.content_type.unwrap_or("none").to_owned(),
            detail: match r.location {
                Some(location) if (300..400).contains(&r.status) => format!(
                    "redirected to {} (a proxy or login page in front of the identity service?)",
                    body::sanitize_prefix(location, 200)
                ),
                _ => "unexpected status".to_owned(),
            },
        },
    }
}

/// What a refusal without a usable message says instead: the body's size and type, not its text.
fn unquoted_body(r: &FailedResponse<'_>) -> String {
    if r.body.is_empty() {
        "no message".to_owned()
    } else {
        format!(
            "no message ({} bytes of {}, not quoted)",
            r.body.len(),
            r.content_type.unwrap_or("unknown type")
        )
    }
}

/// Shown when a Setting call is refused with a token the client obtained or was given.
pub const HINT_TOKEN: &str =
    "the token is missing, expired or revoked; check the credentials in the Secret";
/// Shown when the token endpoint refuses the external application.
pub const HINT_CLIENT: &str = "check clientId and clientSecret in the Secret";
/// Shown when the ROPC endpoint refuses the user.
pub const HINT_PASSWORD: &str =
    "check tenancy name, username and password in the Secret and the authenticate URL";

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(endpoint: Endpoint, status: u16, body: &'static [u8]) -> FailedResponse<'static> {
        FailedResponse {
            endpoint,
            url: "https://h/identity_/api/Setting",
            status,
            retry_after: None,
            content_type: Some("application/json"),
            www_authenticate: None,
            location: None,
            body,
        }
    }

    #[test]
    fn status_classes() {
        assert_eq!(class_for_status(401), ErrorClass::Authentication);
        assert_eq!(class_for_status(403), ErrorClass::Forbidden);
        assert_eq!(class_for_status(404), ErrorClass::NotFound);
        assert_eq!(class_for_status(400), ErrorClass::InvalidRequest);
        assert_eq!(class_for_status(409), ErrorClass::InvalidRequest);
        for s in [408, 429, 500, 502, 503, 504, 599] {
            assert_eq!(class_for_status(s), ErrorClass::Transient, "{s}");
        }
        assert_eq!(class_for_status(302), ErrorClass::Protocol);
        assert_eq!(class_for_status(101), ErrorClass::Protocol);
    }

    #[test]
    fn class_names_are_stable_and_distinct() {
        let all = [
            ErrorClass::Transient,
            ErrorClass::Authentication,
            ErrorClass::Forbidden,
            ErrorClass::InvalidRequest,
            ErrorClass::NotFound,
            ErrorClass::Protocol,
            ErrorClass::Configuration,
        ];
        let names: std::collections::HashSet<_> = all.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), all.len());
        assert_eq!(ErrorClass::InvalidRequest.as_str(), "InvalidRequest");
    }

    #[test]
    fn responses_become_errors_of_the_right_class() {
        let e = error_for_response(failed(
            Endpoint::Setting,
            400,
            br#"{"title":"Bad","detail":"Length must be a number"}"#,
        ));
        assert_eq!(e.class(), ErrorClass::InvalidRequest);
        assert!(e.to_string().contains("Length must be a number"), "{e}");

        let e = error_for_response(failed(Endpoint::Setting, 404, b""));
        assert_eq!(e.class(), ErrorClass::NotFound);
        assert!(e.to_string().contains("https://h/identity_/api/Setting"));

        let mut r = failed(Endpoint::Setting, 429, b"");
        r.retry_after = Some(Duration::from_secs(7));
        let e = error_for_response(r);
        assert_eq!(e.class(), ErrorClass::Transient);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));

        let e = error_for_response(failed(
            Endpoint::Token,
            400,
            br#"{"error":"invalid_client"}"#,
        ));
        assert_eq!(e.class(), ErrorClass::Authentication);
        let e = error_for_response(failed(
            Endpoint::Token,
            401,
            br#"{"error":"invalid_client"}"#,
        ));
        assert_eq!(e.class(), ErrorClass::Authentication);
        let e = error_for_response(failed(
            Endpoint::Token,
            400,
            br#"{"error":"invalid_scope"}"#,
        ));
        assert_eq!(e.class(), ErrorClass::Forbidden);
        let e = error_for_response(failed(
            Endpoint::Token,
            400,
            br#"{"error":"unsupported_grant_type"}"#,
        ));
        assert_eq!(e.class(), ErrorClass::InvalidRequest);
        let e = error_for_response(failed(
            Endpoint::Authenticate,
            400,
            br#"{"success":false,"error":{"message":"Login failed!"}}"#,
        ));
        assert_eq!(e.class(), ErrorClass::Authentication);
        assert!(e.to_string().contains("Login failed!"));
        let e = error_for_response(failed(Endpoint::Setting, 403, b""));
        assert_eq!(e.class(), ErrorClass::Forbidden);

        let mut r = failed(Endpoint::Setting, 302, b"");
        r.location = Some("https://login.example/sso");
        let e = error_for_response(r);
        assert_eq!(e.class(), ErrorClass::Protocol);
        assert!(e.to_string().contains("login.example"));
    }

    #[test]
    fn exhausted_retries_keep_the_last_class_and_retry_after() {
        let last = IdentityError::Unavailable {
            endpoint: Endpoint::Setting,
            url: "u".into(),
            status: 503,
            retry_after: Some(Duration::from_secs(2)),
            message: None,
        };
        let e = IdentityError::RetriesExhausted {
            attempts: 5,
            elapsed: Duration::from_millis(1500),
            last: Box::new(last),
        };
        assert_eq!(e.class(), ErrorClass::Transient);
        assert!(!e.is_retryable());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        assert_eq!(e.status(), Some(503));
        assert!(e.to_string().ends_with("(gave up after 5 attempts)"), "{e}");
    }
}
