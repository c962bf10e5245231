//! The response shapes the simulator answers with, modelled on what ASP.NET Core, IdentityServer
//! and ABP send.
//!
//! Deviations: 401 and 403 have an empty body and a `WWW-Authenticate` header (401), as ASP.NET's
//! JWT bearer handler sends; the real service's exact headers may differ. Problem bodies carry a
//! `detail` (ASP.NET's automatic validation answer has only `errors`; the simulator sends both so
//! the operator can report a message either way).

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::auth::TokenRejection;

/// The `Content-Type` of problem bodies.
const PROBLEM_JSON: &str = "application/problem+json; charset=utf-8";

/// The RFC 9110 section ASP.NET links to for a status, or `about:blank`.
fn problem_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "https://tools.ietf.org/html/rfc9110#section-15.5.1",
        404 => "https://tools.ietf.org/html/rfc9110#section-15.5.5",
        405 => "https://tools.ietf.org/html/rfc9110#section-15.5.6",
        409 => "https://tools.ietf.org/html/rfc9110#section-15.5.10",
        415 => "https://tools.ietf.org/html/rfc9110#section-15.5.16",
        429 => "https://tools.ietf.org/html/rfc6585#section-4",
        500 => "https://tools.ietf.org/html/rfc9110#section-15.6.1",
        502 => "https://tools.ietf.org/html/rfc9110#section-15.6.3",
        503 => "https://tools.ietf.org/html/rfc9110#section-15.6.4",
        504 => "https://tools.ietf.org/html/rfc9110#section-15.6.5",
        _ => "about:blank",
    }
}

/// An RFC 7807 problem body with `status` and `detail`.
pub(crate) fn problem(status: StatusCode, detail: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = json!({
        "type": problem_type(status),
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
        "traceId": trace_id(),
    });
    with_content_type(status, body.to_string(), PROBLEM_JSON)
}

/// A 400 validation problem naming the offending field.
pub(crate) fn validation_problem(field: &str, detail: &str) -> Response {
    let status = StatusCode::BAD_REQUEST;
    let body = json!({
        "type": problem_type(status),
        "title": "One or more validation errors occurred.",
        "status": 400,
        "detail": detail,
        "errors": { field: [detail] },
        "traceId": trace_id(),
    });
    with_content_type(status, body.to_string(), PROBLEM_JSON)
}

/// An injected failure: `status` (500 if not a valid status) with a problem body and an optional
/// `Retry-After` in whole seconds, rounded up.
pub(crate) fn injected_failure(status: u16, retry_after: Option<Duration>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = problem(
        status,
        "simulated failure injected by the simulator's faults",
    );
    if let Some(after) = retry_after {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// 401 for a missing, unknown or expired token.
pub(crate) fn unauthorized(reason: TokenRejection) -> Response {
    let challenge = match reason {
        TokenRejection::Missing => "Bearer".to_owned(),
        other => format!("Bearer error=\"invalid_token\", error_description=\"{other}\""),
    };
    let mut response = StatusCode::UNAUTHORIZED.into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

/// 403 for a token without the needed scope.
pub(crate) fn forbidden() -> Response {
    StatusCode::FORBIDDEN.into_response()
}

/// 405 with the methods the endpoint allows.
pub(crate) fn method_not_allowed(allow: &'static str) -> Response {
    let mut response = StatusCode::METHOD_NOT_ALLOWED.into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// An OAuth 2.0 error response (`{"error": …}`), as IdentityServer sends from `/connect/token`.
pub(crate) fn oauth_error(status: StatusCode, error: &str, description: Option<&str>) -> Response {
    let body = match description {
        Some(d) => json!({ "error": error, "error_description": d }),
        None => json!({ "error": error }),
    };
    let mut response = (status, Json(body)).into_response();
    no_store(&mut response);
    response
}

/// The ABP envelope for a failed call: `success` false and an error object.
pub(crate) fn abp_error(status: StatusCode, message: &str, details: &str) -> Response {
    let body = json!({
        "result": null,
        "targetUrl": null,
        "success": false,
        "error": { "code": 0, "message": message, "details": details, "validationErrors": null },
        "unAuthorizedRequest": false,
        "__abp": true,
    });
    (status, Json(body)).into_response()
}

/// The ABP envelope for a successful authentication, `result` being the token.
pub(crate) fn abp_token(token: &str) -> Response {
    let body = json!({
        "result": token,
        "targetUrl": null,
        "success": true,
        "error": null,
        "unAuthorizedRequest": false,
        "__abp": true,
    });
    let mut response = Json(body).into_response();
    no_store(&mut response);
    response
}

/// What a proxy's login redirect ends in: 200 with an HTML page.
pub(crate) fn html_login_page() -> Response {
    const PAGE: &str = "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Sign in</title></head>\n<body>\n<h1>Sign in to continue</h1>\n<form method=\"post\" action=\"/identity_/Account/Login\">\n<input name=\"Username\"><input name=\"Password\" type=\"password\">\n<button type=\"submit\">Sign in</button>\n</form>\n</body>\n</html>\n";
    with_content_type(StatusCode::OK, PAGE.to_owned(), "text/html; charset=utf-8")
}

/// A JSON body with the status given.
pub(crate) fn json_ok<T: serde::Serialize>(value: &T) -> Response {
    Json(value).into_response()
}

fn with_content_type(status: StatusCode, body: String, content_type: &'static str) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn no_store(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// A W3C trace id like the one ASP.NET puts in problem bodies.
fn trace_id() -> String {
    let mut bytes = [0u8; 24];
    rand::fill(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("00-{}-{}-00", &hex[..32], &hex[32..])
}
