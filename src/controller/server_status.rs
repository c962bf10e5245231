//! Checks each `IdentityServer` and `ClusterIdentityServer`: can its credentials get a token?
//! The answer goes to the server's `Ready` condition, so a broken server shows on the server
//! itself, not only on each policy that uses it.
//!
//! A check uses the token cache the policies share, so it costs at most one token request per
//! token lifetime, and none while policies keep a fresh token; it runs again when the token is
//! due for refresh.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::{debug, info, warn};

use super::context::Context;
use super::error::{ReconcileError, Recovery};
use super::gather::fetch_secrets;
use crate::api::FIELD_MANAGER;
use crate::api::{
    ClusterIdentityServer, IdentityServer, IdentityServerStatus, ServerBudget, ServerSpec,
};
use crate::identity::redact::Redactor;
use crate::reconcile::resolve::{resolve_from, server_secrets};
use crate::reconcile::status::{READY, truncate};
use crate::reconcile::validate::validate_server;

/// Reasons of a server's `Ready` condition besides the policies' failure reasons.
pub mod reason {
    /// The token endpoint issued a token for the credentials.
    pub const TOKEN_ISSUED: &str = "TokenIssued";
    /// A `BearerToken` cannot be checked without a settings call.
    pub const NOT_CHECKABLE: &str = "NotCheckable";
    /// `RequestBudget`: every organization's policies fit its per-organization budget.
    pub const WITHIN_BUDGET: &str = "WithinBudget";
    /// `RequestBudget`: some organization has more policies than its budget can check within
    /// their `resyncInterval`.
    pub const OVER_BUDGET: &str = "OverBudget";
}

/// The condition saying whether the server's per-organization request budget (Automation
/// Cloud's published limits) can check all of its policies within their `resyncInterval`.
pub const REQUEST_BUDGET: &str = "RequestBudget";

/// The `RequestBudget` condition of a server at `url`: `None` when the server has no
/// per-organization limits.
fn budget_check(ctx: &Context, url: &str) -> Option<CheckResult> {
    let limits = ctx.settings.organization_limits.for_url(url)?;
    let server = crate::identity::urls::server_identity(url);
    let over: Vec<_> = ctx
        .index
        .shortfalls(|s| (s == server).then_some(limits))
        .into_iter()
        .filter(|s| s.server == server)
        .collect();
    let per = |n: u32| {
        let every = limits.window.as_secs_f64() / f64::from(n.max(1));
        format!(
            "{n} per {}s (one every {every:.2}s)",
            limits.window.as_secs()
        )
    };
    Some(match over.as_slice() {
        [] => CheckResult {
            status: "True",
            reason: reason::WITHIN_BUDGET,
            message: format!(
                "the per-organization budget of {} Setting reads checks every policy within its \
                 resyncInterval",
                per(limits.reads)
            ),
        },
        [worst, ..] => CheckResult {
            status: "False",
            reason: reason::OVER_BUDGET,
            message: format!(
                "{} organization(s) have more policies than the per-organization budget of {} \
                 Setting reads can check within their resyncInterval; the furthest over, {}, \
                 has {} policies: a resyncInterval of at least {}s for them would fit (or raise \
                 --automation-cloud-share)",
                over.len(),
                per(limits.reads),
                worst.organization,
                worst.policies,
                worst.fits.as_secs()
            ),
        },
    })
}

/// The shortest time between two checks of a server whose token is fine.
const MIN_CHECK_INTERVAL: Duration = Duration::from_secs(60);
/// The time between checks of a `BearerToken` server (only its Secret can change).
const UNCHECKABLE_INTERVAL: Duration = Duration::from_secs(3600);
/// After a failure that needs a fix (credentials refused, Secret missing).
const NEEDS_USER_INTERVAL: Duration = Duration::from_secs(120);
/// After a transient failure (server unreachable).
const TRANSIENT_INTERVAL: Duration = Duration::from_secs(30);
/// How often, at most, a server with per-organization limits is checked again, so that its
/// `RequestBudget` condition follows its policies (a check while the shared token is fresh
/// sends no request).
const BUDGET_INTERVAL: Duration = Duration::from_secs(60);

/// What the two server kinds have in common for a check.
pub trait ServerDefinition:
    Resource<DynamicType = ()>
    + Clone
    + std::fmt::Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    /// URL, credentials and CA.
    fn connection(&self) -> &ServerSpec;
    /// Where its Secrets are.
    fn secrets_namespace(&self) -> String;
    /// Its request budget.
    fn budget(&self) -> ServerBudget;
    /// Its status.
    fn status(&self) -> Option<&IdentityServerStatus>;
    /// The API to write its status with.
    fn api(client: kube::Client, namespace: Option<&str>) -> Api<Self>;
}

impl ServerDefinition for IdentityServer {
    fn connection(&self) -> &ServerSpec {
        &self.spec.connection
    }
    fn secrets_namespace(&self) -> String {
        self.namespace().unwrap_or_default()
    }
    fn budget(&self) -> ServerBudget {
        self.spec.budget
    }
    fn status(&self) -> Option<&IdentityServerStatus> {
        self.status.as_ref()
    }
    fn api(client: kube::Client, namespace: Option<&str>) -> Api<Self> {
        Api::namespaced(client, namespace.unwrap_or_default())
    }
}

impl ServerDefinition for ClusterIdentityServer {
    fn connection(&self) -> &ServerSpec {
        &self.spec.connection
    }
    fn secrets_namespace(&self) -> String {
        self.spec.secret_namespace.clone()
    }
    fn budget(&self) -> ServerBudget {
        self.spec.budget
    }
    fn status(&self) -> Option<&IdentityServerStatus> {
        self.status.as_ref()
    }
    fn api(client: kube::Client, _: Option<&str>) -> Api<Self> {
        Api::all(client)
    }
}

/// What a check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResult {
    /// `True`, `False` or `Unknown`.
    pub status: &'static str,
    /// The condition's reason.
    pub reason: &'static str,
    /// What it means, and what to fix.
    pub message: String,
}

/// Checks one server and writes its status; the next check is due when its token is.
pub async fn check<S: ServerDefinition>(
    server: Arc<S>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    if !ctx.leading() {
        return Err(ReconcileError::NotLeading);
    }
    let mut redactor = Redactor::default();
    let (result, next) = match token_check(&*server, &ctx, &mut redactor).await {
        Ok(Some(refresh_in)) => (
            CheckResult {
                status: "True",
                reason: reason::TOKEN_ISSUED,
                message: "the token endpoint issued a token for the credentials".to_owned(),
            },
            refresh_in.max(MIN_CHECK_INTERVAL),
        ),
        Ok(None) => (
            CheckResult {
                status: "Unknown",
                reason: reason::NOT_CHECKABLE,
                message: "a BearerToken is used as given; only a policy's settings call shows \
                          whether the server accepts it"
                    .to_owned(),
            },
            UNCHECKABLE_INTERVAL,
        ),
        Err(error) => {
            let message = redactor.redact(&error.to_string());
            warn!(server = %server.name_any(), reason = error.reason(), %message, "server check failed");
            let next = match error.recovery() {
                Recovery::Backoff => TRANSIENT_INTERVAL,
                Recovery::NeedsUser => NEEDS_USER_INTERVAL,
            };
            (
                CheckResult {
                    status: "False",
                    reason: error.reason(),
                    message,
                },
                next,
            )
        }
    };
    let now = jiff::Timestamp::now();
    let budget = budget_check(&ctx, &server.connection().url);
    let status = next_server_status(
        server.status(),
        server.meta().generation,
        &result,
        budget.as_ref(),
        now,
    );
    if server.status() != Some(&status) {
        let api = S::api(ctx.client.clone(), server.namespace().as_deref());
        let body = json!({
            "apiVersion": S::api_version(&()),
            "kind": S::kind(&()),
            "status": status,
        });
        api.patch_status(
            &server.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
        info!(server = %server.name_any(), reason = result.reason, "server checked");
    } else {
        debug!(server = %server.name_any(), reason = result.reason, "server checked; no change");
    }
    let next = if budget.is_some() {
        next.min(BUDGET_INTERVAL)
    } else {
        next
    };
    Ok(Action::requeue(next))
}

/// After a failed status write: try again soon.
pub fn retry_check<S: ServerDefinition>(
    server: Arc<S>,
    error: &ReconcileError,
    _: Arc<Context>,
) -> Action {
    warn!(server = %server.name_any(), %error, "server status not written; retrying");
    Action::requeue(TRANSIENT_INTERVAL)
}

/// Gets a token for the server's credentials (from the shared cache when fresh); how long
/// until it is due for refresh, or `None` for a bearer token.
async fn token_check<S: ServerDefinition>(
    server: &S,
    ctx: &Context,
    redactor: &mut Redactor,
) -> Result<Option<Duration>, ReconcileError> {
    let namespace = server.secrets_namespace();
    let valid = validate_server(server.connection(), Some(&namespace), server.budget())
        .map_err(ReconcileError::InvalidSpec)?;
    let secrets = fetch_secrets(ctx, &valid, &namespace, server_secrets(&valid)).await?;
    let resolved = resolve_from(&valid, &secrets, &BTreeMap::new())?;
    let client = ctx.clients.client_for(&valid, &resolved, redactor).await?;
    Ok(client.check_token().await?)
}

/// The server's status after a check: each condition keeps its transition time while its
/// status stays the same (and stays as it was when nothing about it changed);
/// `lastCheckedTime` is the check's time when the check reached the server. `budget` is the
/// `RequestBudget` condition, for a server with per-organization limits.
pub fn next_server_status(
    old: Option<&IdentityServerStatus>,
    generation: Option<i64>,
    result: &CheckResult,
    budget: Option<&CheckResult>,
    now: jiff::Timestamp,
) -> IdentityServerStatus {
    let old_conditions = old.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let mut conditions = vec![condition(old_conditions, READY, result, generation, now)];
    if let Some(budget) = budget {
        conditions.push(condition(
            old_conditions,
            REQUEST_BUDGET,
            budget,
            generation,
            now,
        ));
    }
    let checked = result.reason == reason::TOKEN_ISSUED;
    IdentityServerStatus {
        observed_generation: generation,
        conditions,
        last_checked_time: if checked {
            Some(Time(now))
        } else {
            old.and_then(|s| s.last_checked_time.clone())
        },
    }
}

/// The condition `type_` says `result`: the old one when nothing about it changed, else a new
/// one whose transition time moves only when its status does.
fn condition(
    old: &[Condition],
    type_: &str,
    result: &CheckResult,
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> Condition {
    let previous = old.iter().find(|c| c.type_ == type_);
    let message = truncate(result.message.clone(), 1024);
    let last_transition_time = match previous {
        Some(c) if c.status == result.status => c.last_transition_time.clone(),
        _ => Time(now),
    };
    let next = Condition {
        type_: type_.to_owned(),
        status: result.status.to_owned(),
        reason: result.reason.to_owned(),
        message,
        observed_generation: generation,
        last_transition_time,
    };
    match previous {
        Some(c)
            if (&c.status, &c.reason, &c.message, c.observed_generation)
                == (
                    &next.status,
                    &next.reason,
                    &next.message,
                    next.observed_generation,
                ) =>
        {
            c.clone()
        }
        _ => next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().expect("time")
    }

    #[test]
    fn ready_keeps_its_transition_time_until_its_status_changes() {
        let ok = CheckResult {
            status: "True",
            reason: reason::TOKEN_ISSUED,
            message: "fine".into(),
        };
        let first = next_server_status(None, Some(1), &ok, None, at("2026-11-28T05:00:00Z"));
        let ready = &first.conditions[0];
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "TokenIssued")
        );
        let again =
            next_server_status(Some(&first), Some(1), &ok, None, at("2026-11-28T06:00:00Z"));
        assert_eq!(
            again.conditions[0].last_transition_time,
            ready.last_transition_time
        );
        assert_eq!(
            again.last_checked_time,
            Some(Time(at("2026-11-28T06:00:00Z")))
        );
        let refused = CheckResult {
            status: "False",
            reason: "CredentialsRejected",
            message: "401".into(),
        };
        let failed = next_server_status(
            Some(&again),
            Some(2),
            &refused,
            None,
            at("2026-11-28T06:01:00Z"),
        );
        assert_eq!(failed.conditions[0].status, "False");
        assert_eq!(failed.observed_generation, Some(2));
        assert_eq!(
            failed.conditions[0].last_transition_time,
            Time(at("2026-11-28T06:01:00Z"))
        );
        assert_eq!(
            failed.last_checked_time, again.last_checked_time,
            "a failed check keeps the time of the last good one"
        );
    }

    #[test]
    fn the_budget_condition_sits_beside_ready_and_moves_on_its_own() {
        let ok = CheckResult {
            status: "True",
            reason: reason::TOKEN_ISSUED,
            message: "fine".into(),
        };
        let within = CheckResult {
            status: "True",
            reason: reason::WITHIN_BUDGET,
            message: "fits".into(),
        };
        let first = next_server_status(
            None,
            Some(1),
            &ok,
            Some(&within),
            at("2026-11-28T05:00:00Z"),
        );
        let types: Vec<&str> = first.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [READY, REQUEST_BUDGET]);
        let over = CheckResult {
            status: "False",
            reason: reason::OVER_BUDGET,
            message: "a resyncInterval of at least 1000s would fit".into(),
        };
        let later = next_server_status(
            Some(&first),
            Some(1),
            &ok,
            Some(&over),
            at("2026-11-28T06:00:00Z"),
        );
        assert_eq!(later.conditions[0], first.conditions[0], "Ready unchanged");
        assert_eq!(later.conditions[1].reason, "OverBudget");
        assert_eq!(
            later.conditions[1].last_transition_time,
            Time(at("2026-11-28T06:00:00Z"))
        );
        let no_limits =
            next_server_status(Some(&later), Some(1), &ok, None, at("2026-11-28T07:00:00Z"));
        assert_eq!(
            no_limits.conditions.len(),
            1,
            "no limits, no budget condition"
        );
    }
}
