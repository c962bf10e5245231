//! The one HTTP helper both stand-in clients use: send, insist on one status, return the body,
//! and name the request in every error.

use std::time::Duration;

use bytes::Bytes;
use reqwest::{Client, RequestBuilder, StatusCode};

use crate::error::{BenchError, Result};

/// A client with a generous per-request timeout (a list of 10 000 policies is large), so no
/// request hangs forever.
pub fn client() -> Result<Client> {
    builder()
        .build()
        .map_err(|e| BenchError::http("HTTP client", e))
}

/// A client of a real API server: trusting its serving certificate (`ca_pem`) and sending
/// `token` as the bearer on every request.
pub fn client_of_api_server(ca_pem: &[u8], token: &str) -> Result<Client> {
    let ca = reqwest::Certificate::from_pem(ca_pem)
        .map_err(|e| BenchError::http("API server certificate", e))?;
    let mut bearer = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|e| BenchError::http("API server token", e))?;
    bearer.set_sensitive(true);
    let headers = reqwest::header::HeaderMap::from_iter([(reqwest::header::AUTHORIZATION, bearer)]);
    builder()
        .add_root_certificate(ca)
        .default_headers(headers)
        .build()
        .map_err(|e| BenchError::http("HTTP client", e))
}

fn builder() -> reqwest::ClientBuilder {
    identity_client::http_client_builder().timeout(Duration::from_secs(120))
}

/// Sends `request`; its body when answered `wanted`, else an error naming `what`, the status
/// and the start of the body.
pub async fn send(request: RequestBuilder, wanted: StatusCode, what: &str) -> Result<Bytes> {
    let response = request
        .send()
        .await
        .map_err(|e| BenchError::http(what, e))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| BenchError::http(what, e))?;
    if status == wanted {
        Ok(body)
    } else {
        let start = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        Err(BenchError::http(
            what,
            format!("answered {status}: {start}"),
        ))
    }
}

/// Parses a JSON body, naming `what` in the error.
pub fn json<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| BenchError::http(what, format!("bad JSON: {e}")))
}
