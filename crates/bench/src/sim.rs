//! The benchmark's calls to the identity simulator's admin API: request counters, checks per
//! partition, and drift made by hand.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use reqwest::{Client, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::error::Result;
use crate::http::{self, send};
use crate::manifests;

/// How many drift writes are sent at once.
const DRIFT_CONCURRENCY: usize = 32;

/// Identity requests counted since the last reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdentityCalls {
    /// Token requests (`connect/token`).
    pub token: u64,
    /// Setting GETs.
    pub get: u64,
    /// Setting PUTs.
    pub put: u64,
}

/// One endpoint in `GET /_simulator/counters`.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Endpoint {
    #[serde(default)]
    total: u64,
    #[serde(default)]
    by_method: BTreeMap<String, u64>,
}

/// `GET /_simulator/counters` (only what is used).
#[derive(Deserialize)]
struct Counters {
    #[serde(default)]
    setting: Endpoint,
    #[serde(default)]
    token: Endpoint,
}

/// `GET /_simulator/load`: what the identity service saw.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Load {
    /// Identity requests.
    pub requests: u64,
    /// The most in flight at once.
    pub peak_in_flight: u64,
    /// The most arriving within any one second.
    pub peak_per_second: u64,
}

/// `GET /_simulator/checks`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checks {
    /// Milliseconds since the window started (the last counter reset).
    pub window_ms: u64,
    /// Every partition checked in the window.
    pub scopes: Vec<ScopeChecks>,
}

/// One partition's checks, in milliseconds since the window started.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScopeChecks {
    /// Answered Setting GETs.
    pub gets: u64,
    /// When the first came.
    pub first_get_ms: u64,
    /// When the last came.
    pub last_get_ms: u64,
    /// The longest time between two consecutive GETs.
    pub longest_gap_ms: u64,
}

/// A client of one simulator's admin API.
#[derive(Clone)]
pub struct Sim {
    http: Client,
    /// `http://127.0.0.1:PORT/_simulator`.
    admin: String,
}

impl Sim {
    /// A client of the admin API at `admin` (as the simulator's banner prints it).
    pub fn new(admin: &str) -> Result<Self> {
        Ok(Self {
            http: http::client()?,
            admin: admin.trim_end_matches('/').to_owned(),
        })
    }

    /// Identity requests since the last reset.
    pub async fn calls(&self) -> Result<IdentityCalls> {
        let what = "simulator counters";
        let url = format!("{}/counters", self.admin);
        let body = send(self.http.get(url), StatusCode::OK, what).await?;
        let counters: Counters = http::json(&body, what)?;
        let method = |m: &str| counters.setting.by_method.get(m).copied().unwrap_or(0);
        Ok(IdentityCalls {
            token: counters.token.total,
            get: method("GET"),
            put: method("PUT"),
        })
    }

    /// Resets the counters and starts a new checks window.
    pub async fn reset(&self) -> Result<()> {
        let url = format!("{}/counters", self.admin);
        send(
            self.http.delete(url),
            StatusCode::NO_CONTENT,
            "reset simulator counters",
        )
        .await
        .map(drop)
    }

    /// The peak load since the last reset.
    pub async fn load(&self) -> Result<Load> {
        let what = "simulator load";
        let url = format!("{}/load", self.admin);
        let body = send(self.http.get(url), StatusCode::OK, what).await?;
        http::json(&body, what)
    }

    /// The checks per partition since the last reset.
    pub async fn checks(&self) -> Result<Checks> {
        let what = "simulator checks";
        let url = format!("{}/checks", self.admin);
        let body = send(self.http.get(url), StatusCode::OK, what).await?;
        http::json(&body, what)
    }

    /// Changes [`manifests::DRIFT_KEY`] of policies `0..count`'s partitions behind the
    /// operator's back.
    pub async fn drift(&self, count: usize) -> Result<()> {
        let url = format!("{}/settings", self.admin);
        futures::stream::iter(0..count)
            .map(|i| {
                let body = json!({
                    "partitionGlobalId": manifests::partition(i),
                    "key": manifests::DRIFT_KEY,
                    "value": manifests::DRIFT_VALUE,
                });
                let request = self.http.post(&url).json(&body);
                async move {
                    send(request, StatusCode::OK, "drift a setting")
                        .await
                        .map(drop)
                }
            })
            .buffer_unordered(DRIFT_CONCURRENCY)
            .try_collect::<()>()
            .await
    }
}
