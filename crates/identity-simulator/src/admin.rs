//! The admin HTTP API, so faults and data are controllable on a running `simulate` binary.
//!
//! Routes (outside the identity prefix, no authentication — the simulator binds to loopback by
//! default; do not expose it):
//! - `POST /_simulator/faults` — a JSON object with any of `failNext`
//!   (`{"count":2,"status":503,"retryAfterSeconds":1}`), `failNextToken`
//!   (`{"count":1,"status":500}`), `latencyMs`, `htmlNext`, `dropNext`, `expireTokens` (`true`),
//!   `clear` (`true`, applied before the others). Answers 204; 400 on an unknown field or an
//!   invalid status.
//! - `GET /_simulator/counters` — `{"setting":{"total":n,"byMethod":{"GET":n,…}},"token":…,
//!   "authenticate":…}`; `DELETE /_simulator/counters` resets them and the checks below (204).
//! - `GET /_simulator/checks` — answered Setting GETs per scope since the last reset (or start):
//!   `{"windowMs":n,"scopes":[{"partitionGlobalId","userId"?,"gets","firstGetMs","lastGetMs",
//!   "longestGapMs"}]}`, times in ms since the window started; a scope never checked is absent
//!   ([`crate::checks`]). For a benchmark: the longest wait between two checks of a policy, and
//!   the policies never checked.
//! - `GET /_simulator/load` — `{"requests":n,"peakInFlight":n,"peakPerSecond":n}`: identity
//!   requests (Setting and token) since the last reset, the most in flight at once and the most
//!   arriving within any one second ([`crate::load`]); reset with the counters.
//! - `GET /_simulator/settings?partitionGlobalId=…[&userId=…]` — every row of that scope, ordered
//!   by id (values included: this is test data).
//! - `POST /_simulator/settings` — `{"partitionGlobalId","userId"?,"key","value"}`: an out-of-band
//!   change ("drift made by hand"), normalised like a PUT; answers the stored row.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::responses::{json_ok, problem};
use super::server::Shared;
use identity_client::types::SettingScope;

/// The admin routes, to merge into the simulator's router.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_simulator/faults", post(set_faults))
        .route("/_simulator/counters", get(counters).delete(reset_counters))
        .route("/_simulator/checks", get(checks))
        .route("/_simulator/load", get(load))
        .route("/_simulator/settings", get(settings).post(set_setting))
}

/// The body of `POST /_simulator/faults`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FaultRequest {
    #[serde(default)]
    clear: bool,
    fail_next: Option<FailNext>,
    fail_next_token: Option<FailNext>,
    latency_ms: Option<u64>,
    html_next: Option<u32>,
    drop_next: Option<u32>,
    #[serde(default)]
    expire_tokens: bool,
}

/// A failure status to answer for the next `count` requests.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FailNext {
    count: u32,
    status: u16,
    retry_after_seconds: Option<u64>,
}

async fn set_faults(State(app): State<Arc<Shared>>, body: Bytes) -> Response {
    let request: FaultRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                &format!("invalid fault request: {e}"),
            );
        }
    };
    for fail in [&request.fail_next, &request.fail_next_token]
        .into_iter()
        .flatten()
    {
        if StatusCode::from_u16(fail.status).is_err() {
            return problem(
                StatusCode::BAD_REQUEST,
                &format!("invalid status {}", fail.status),
            );
        }
    }
    let faults = &app.faults;
    if request.clear {
        faults.clear();
    }
    if let Some(f) = request.fail_next {
        faults.fail_next(
            f.count,
            f.status,
            f.retry_after_seconds.map(Duration::from_secs),
        );
    }
    if let Some(f) = request.fail_next_token {
        faults.fail_next_token(f.count, f.status);
    }
    if let Some(ms) = request.latency_ms {
        faults.set_latency(Duration::from_millis(ms));
    }
    if let Some(n) = request.html_next {
        faults.html_next(n);
    }
    if let Some(n) = request.drop_next {
        faults.drop_next(n);
    }
    if request.expire_tokens {
        faults.expire_all_tokens();
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn counters(State(app): State<Arc<Shared>>) -> Response {
    json_ok(&app.counters.snapshot())
}

async fn reset_counters(State(app): State<Arc<Shared>>) -> Response {
    app.counters.reset();
    app.checks.reset();
    app.load.reset();
    StatusCode::NO_CONTENT.into_response()
}

async fn load(State(app): State<Arc<Shared>>) -> Response {
    json_ok(&app.load.report())
}

async fn checks(State(app): State<Arc<Shared>>) -> Response {
    json_ok(&app.checks.report())
}

/// The query of `GET /_simulator/settings`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScopeQuery {
    partition_global_id: String,
    user_id: Option<String>,
}

async fn settings(State(app): State<Arc<Shared>>, Query(q): Query<ScopeQuery>) -> Response {
    let scope = SettingScope {
        partition_global_id: q.partition_global_id,
        user_id: q.user_id.filter(|u| !u.is_empty()),
    };
    json_ok(&app.stored(&scope))
}

/// The body of `POST /_simulator/settings`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DirectSet {
    partition_global_id: String,
    user_id: Option<String>,
    key: String,
    value: String,
}

async fn set_setting(State(app): State<Arc<Shared>>, body: Bytes) -> Response {
    let request: DirectSet = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return problem(StatusCode::BAD_REQUEST, &format!("invalid setting: {e}")),
    };
    if request.partition_global_id.is_empty() || request.key.is_empty() {
        return problem(
            StatusCode::BAD_REQUEST,
            "partitionGlobalId and key must not be empty",
        );
    }
    let scope = SettingScope {
        partition_global_id: request.partition_global_id,
        user_id: request.user_id.filter(|u| !u.is_empty()),
    };
    json_ok(&app.set_directly(&scope, &request.key, &request.value))
}
