//! The benchmark's own calls to the Kubernetes API — the emulator (plain HTTP, no
//! authentication) or a real API server (as its admin): creating the objects, listing and
//! reading policies, editing one, and the request counters (the emulator's, or the operator's
//! requests in the real server's audit log).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use reqwest::{Client, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{BenchError, Result};
use crate::http::{self, send};
use crate::manifests::{self, NAMESPACE};
use crate::policy::{Policy, PolicyList, WatchEvent};

/// How many objects are created at once during setup.
const CREATE_CONCURRENCY: usize = 32;

/// The emulator's request counters, as the operator's load on the API server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiCalls {
    /// `get` and `list` requests.
    pub reads: u64,
    /// `create`, `update`, `patch`, `delete` and `deletecollection` requests.
    pub writes: u64,
    /// Every counter by resource and verb, as text for the progress log.
    pub by_resource: String,
}

/// The admin route's answer (only what is used).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Counters {
    #[serde(default)]
    by_verb: BTreeMap<String, u64>,
    #[serde(default)]
    by_resource: BTreeMap<String, u64>,
}

/// Where the request counts come from.
#[derive(Clone)]
enum Counting {
    /// The emulator's admin route: every client's requests.
    Emulator,
    /// A real API server's audit log: the requests of `user` after byte `from`.
    Audit {
        log: PathBuf,
        user: String,
        from: Arc<AtomicU64>,
    },
}

/// How long one watch request lasts before the server ends it (and the waiter watches again).
const WATCH_SECONDS: u64 = 60;

/// An open watch of policies: one JSON event per line.
pub struct PolicyWatch {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl PolicyWatch {
    /// The next event; `None` when the server ended the watch.
    pub async fn next(&mut self) -> Result<Option<WatchEvent>> {
        let what = "watch policies";
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return http::json(&line, what).map(Some);
            }
            match self
                .response
                .chunk()
                .await
                .map_err(|e| BenchError::http(what, e))?
            {
                Some(chunk) => self.buffer.extend_from_slice(&chunk),
                None => return Ok(None),
            }
        }
    }
}

/// A client of one emulator or API server.
#[derive(Clone)]
pub struct Kube {
    http: Client,
    base: String,
    counting: Counting,
}

impl Kube {
    /// A client of the emulator at `base` (e.g. `http://127.0.0.1:PORT`).
    pub fn new(base: &str) -> Result<Self> {
        Ok(Self {
            http: http::client()?,
            base: base.trim_end_matches('/').to_owned(),
            counting: Counting::Emulator,
        })
    }

    /// A client of the real API server at `base`, trusting `ca_pem` and authenticating with
    /// `token`; its counts are `user`'s requests in the audit log `log`.
    pub fn of_api_server(
        base: &str,
        ca_pem: &[u8],
        token: &str,
        log: PathBuf,
        user: &str,
    ) -> Result<Self> {
        Ok(Self {
            http: http::client_of_api_server(ca_pem, token)?,
            base: base.trim_end_matches('/').to_owned(),
            counting: Counting::Audit {
                from: Arc::new(AtomicU64::new(crate::audit::end_of(&log))),
                log,
                user: user.to_owned(),
            },
        })
    }

    /// The same server, with `token` instead of this client's credentials (the reference
    /// client writes as the operator's user).
    pub fn as_user(&self, ca_pem: &[u8], token: &str) -> Result<Self> {
        Ok(Self {
            http: http::client_of_api_server(ca_pem, token)?,
            ..self.clone()
        })
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The HTTP client, authenticated as this client's user.
    pub fn http(&self) -> &Client {
        &self.http
    }

    /// The URL of the benchmark namespace's policies.
    pub fn policies_url(&self) -> String {
        format!(
            "{}/apis/identitysettings.dev/v1alpha1/namespaces/{NAMESPACE}/identitysettingpolicies",
            self.base
        )
    }

    fn counters_url(&self) -> String {
        format!("{}/_emulator/counters", self.base)
    }

    async fn create(&self, url: String, body: &Value, what: &str) -> Result<()> {
        send(self.http.post(url).json(body), StatusCode::CREATED, what)
            .await
            .map(drop)
    }

    /// Creates the namespace (unless it exists), the Secret and `count` policies pointed at
    /// `server`.
    pub async fn set_up(&self, count: usize, server: &str, resync: Duration) -> Result<()> {
        let namespace = format!("{}/api/v1/namespaces/{NAMESPACE}", self.base);
        let exists = self
            .http
            .get(namespace)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if !exists {
            let namespaces = format!("{}/api/v1/namespaces", self.base);
            self.create(namespaces, &manifests::namespace(), "create namespace")
                .await?;
        }
        let secrets = format!("{}/api/v1/namespaces/{NAMESPACE}/secrets", self.base);
        self.create(secrets, &manifests::secret(), "create Secret")
            .await?;
        futures::stream::iter(0..count)
            .map(|i| {
                let body = manifests::policy(i, server, resync);
                async move {
                    self.create(self.policies_url(), &body, "create policy")
                        .await
                }
            })
            .buffer_unordered(CREATE_CONCURRENCY)
            .try_collect::<()>()
            .await
    }

    /// Every policy of the namespace, and the list's resource version.
    pub async fn list_policies(&self) -> Result<PolicyList> {
        let what = "list policies";
        let body = send(self.http.get(self.policies_url()), StatusCode::OK, what).await?;
        http::json::<PolicyList>(&body, what)
    }

    /// Watches the namespace's policies from `resource_version` on (with bookmarks), for at most
    /// `WATCH_SECONDS`; read its events with [`PolicyWatch::next`].
    pub async fn watch_policies(&self, resource_version: &str) -> Result<PolicyWatch> {
        let what = "watch policies";
        let url = format!(
            "{}?watch=true&allowWatchBookmarks=true&timeoutSeconds={WATCH_SECONDS}&resourceVersion={resource_version}",
            self.policies_url()
        );
        let response = self
            .http
            .get(url)
            .timeout(Duration::from_secs(WATCH_SECONDS + 30))
            .send()
            .await
            .map_err(|e| BenchError::http(what, e))?;
        if response.status() != StatusCode::OK {
            return Err(BenchError::http(
                what,
                format!("answered {}", response.status()),
            ));
        }
        Ok(PolicyWatch {
            response,
            buffer: Vec::new(),
        })
    }

    /// One policy.
    pub async fn get_policy(&self, name: &str) -> Result<Policy> {
        let what = "get policy";
        let url = format!("{}/{name}", self.policies_url());
        let body = send(self.http.get(url), StatusCode::OK, what).await?;
        http::json(&body, what)
    }

    /// Merge-patches a policy; returns its new generation.
    pub async fn patch_policy(&self, name: &str, patch: &Value) -> Result<i64> {
        let what = "patch policy";
        let request = self
            .http
            .patch(format!("{}/{name}", self.policies_url()))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/merge-patch+json",
            )
            .body(patch.to_string());
        let body = send(request, StatusCode::OK, what).await?;
        http::json::<Policy>(&body, what)?
            .metadata
            .generation
            .ok_or_else(|| BenchError::http(what, "the patched policy has no generation"))
    }

    /// Reads and writes counted since the last reset (watches excluded).
    pub async fn api_calls(&self) -> Result<ApiCalls> {
        if let Counting::Audit { log, user, from } = &self.counting {
            return Ok(crate::audit::count(log, from.load(Ordering::SeqCst), user)?.0);
        }
        let what = "emulator counters";
        let body = send(self.http.get(self.counters_url()), StatusCode::OK, what).await?;
        let counters: Counters = http::json(&body, what)?;
        let sum = |verbs: &[&str]| -> u64 {
            verbs
                .iter()
                .map(|v| counters.by_verb.get(*v).copied().unwrap_or(0))
                .sum()
        };
        Ok(ApiCalls {
            reads: sum(&["get", "list"]),
            writes: sum(&["create", "update", "patch", "delete", "deletecollection"]),
            by_resource: counters
                .by_resource
                .iter()
                .map(|(key, n)| format!("{key}={n}"))
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// Sets the emulator's counters back to zero.
    pub async fn reset_counters(&self) -> Result<()> {
        if let Counting::Audit { log, from, .. } = &self.counting {
            from.store(crate::audit::end_of(log), Ordering::SeqCst);
            return Ok(());
        }
        let what = "reset emulator counters";
        send(
            self.http.delete(self.counters_url()),
            StatusCode::NO_CONTENT,
            what,
        )
        .await
        .map(drop)
    }
}
