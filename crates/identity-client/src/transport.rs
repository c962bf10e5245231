//! One HTTP attempt: send, read a bounded body, report it to the observer and to tracing, and
//! turn transport failures into [`IdentityError`]s. Headers and bodies are never logged.

use std::error::Error as _;
use std::fmt;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE};
use tracing::Instrument;

use super::error::{FailedResponse, IdentityError, error_for_response};
use super::observe::{Endpoint, RequestObserver, RequestOutcome};
use super::redact::Redactor;
use super::retry::parse_retry_after;

/// Largest body the client reads (1 MiB): a GET for the most keys one URL carries, with values
/// at the CRD's 4 096-character limit, needs well under half of it. With every reconcile slot
/// reading such an answer at once the operator stays within its memory limit.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A complete answer. `Debug` shows the body's length only: a token answer's body holds the token.
pub struct Answer {
    /// The status.
    pub status: u16,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    retry_after: Option<Duration>,
    www_authenticate: Option<String>,
    location: Option<String>,
    /// The body.
    pub body: Bytes,
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Answer")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("retry_after", &self.retry_after)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl Answer {
    /// The server's `Retry-After`, if it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The error this (non-success) answer means, with `secrets` cut out of the body before any
    /// of it is read and out of the resulting texts.
    pub(crate) fn into_error(
        self,
        endpoint: Endpoint,
        url: &str,
        secrets: &Redactor,
    ) -> IdentityError {
        let body = secrets.scrub_body(&self.body);
        let www_authenticate = self.www_authenticate.map(|mut h| {
            secrets.scrub(&mut h);
            h
        });
        secrets.scrub_error(error_for_response(FailedResponse {
            endpoint,
            url,
            status: self.status,
            retry_after: self.retry_after,
            content_type: self.content_type.as_deref(),
            www_authenticate: www_authenticate.as_deref(),
            location: self.location.as_deref(),
            body: &body,
        }))
    }
}

/// What one attempt is, for logs and metrics.
#[derive(Clone, Copy)]
pub struct AttemptInfo<'a> {
    /// `GET`, `PUT`, `POST`.
    pub method: &'a str,
    /// Which endpoint.
    pub endpoint: Endpoint,
    /// The URL (no secrets).
    pub url: &'a str,
    /// 1 for the first attempt of a call.
    pub attempt: u32,
    /// Timeout for the whole attempt, body included.
    pub timeout: Duration,
}

/// Sends `request` and reads the answer. Every call reports exactly one outcome to `observer`.
pub async fn send(
    request: reqwest::RequestBuilder,
    info: AttemptInfo<'_>,
    observer: Option<&dyn RequestObserver>,
) -> Result<Answer, IdentityError> {
    let span = tracing::debug_span!(
        "identity_request",
        method = info.method,
        endpoint = info.endpoint.as_str(),
        attempt = info.attempt,
    );
    let result = tokio::time::timeout(info.timeout, exchange(request, info))
        .instrument(span.clone())
        .await
        .unwrap_or_else(|_| Err(timeout(info)));
    let outcome = match &result {
        Ok(answer) => RequestOutcome::Status(answer.status),
        Err(IdentityError::Timeout { .. }) => RequestOutcome::Timeout,
        Err(IdentityError::Connection { .. }) => RequestOutcome::ConnectionError,
        Err(_) => RequestOutcome::Other,
    };
    span.in_scope(|| match &result {
        Ok(answer) => tracing::debug!(status = answer.status, "identity answer"),
        Err(e) => tracing::debug!(class = e.class().as_str(), "identity request failed"),
    });
    if let Some(observer) = observer {
        observer.observe(info.method, info.endpoint, outcome);
    }
    result
}

async fn exchange(
    request: reqwest::RequestBuilder,
    info: AttemptInfo<'_>,
) -> Result<Answer, IdentityError> {
    let mut response = request
        .timeout(info.timeout)
        .send()
        .await
        .map_err(|e| transport_error(&e, info))?;
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header(CONTENT_TYPE);
    let retry_after = header(RETRY_AFTER).as_deref().and_then(parse_retry_after);
    let www_authenticate = header(WWW_AUTHENTICATE);
    let location = header(LOCATION);
    let status = response.status().as_u16();
    let mut body = BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(&e, info))?
    {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(IdentityError::Protocol {
                endpoint: info.endpoint,
                url: info.url.to_owned(),
                status,
                content_type: content_type.unwrap_or_else(|| "none".into()),
                detail: format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer {
        status,
        content_type,
        retry_after,
        www_authenticate,
        location,
        body: body.freeze(),
    })
}

fn timeout(info: AttemptInfo<'_>) -> IdentityError {
    IdentityError::Timeout {
        endpoint: info.endpoint,
        url: info.url.to_owned(),
    }
}

/// A reqwest error as Timeout or Connection. The description comes from the error's sources,
/// which name the failure (refused, reset, incomplete message) without URL or headers.
fn transport_error(error: &reqwest::Error, info: AttemptInfo<'_>) -> IdentityError {
    if error.is_timeout() {
        return timeout(info);
    }
    if error.is_builder() {
        return IdentityError::Configuration(format!(
            "could not build the request to the identity {} endpoint",
            info.endpoint
        ));
    }
    let mut reason = String::new();
    let mut source = error.source();
    while let Some(s) = source {
        if !reason.is_empty() {
            reason.push_str(": ");
        }
        reason.push_str(&s.to_string());
        source = s.source();
    }
    if reason.is_empty() {
        reason = if error.is_connect() {
            "connection failed".into()
        } else if error.is_body() {
            "the response body broke off".into()
        } else {
            "request failed".into()
        };
    }
    IdentityError::Connection {
        endpoint: info.endpoint,
        url: info.url.to_owned(),
        reason: super::body::sanitize_prefix(&reason, 300),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_body() {
        let answer = Answer {
            status: 200,
            content_type: Some("application/json".into()),
            retry_after: None,
            www_authenticate: None,
            location: None,
            body: Bytes::from_static(br#"{"access_token":"tok-secret-value"}"#),
        };
        let shown = format!("{answer:?}");
        assert!(!shown.contains("tok-secret-value"), "{shown}");
        assert!(shown.contains("body_len"), "{shown}");
    }
}
