//! The reference client: the least any controller must do to apply N new policies, and so the
//! floor the operator's cold start is measured against on a real API server. One LIST of the
//! policies, one token, then per policy one GET and one PUT of its settings, one status write
//! and one Event — no finalizer, no cache, no comparison, no retry. It writes as the operator's
//! ServiceAccount, so its requests are counted and authorized as the operator's are.

use futures::{StreamExt, TryStreamExt};
use reqwest::{Client, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::error::{BenchError, Result};
use crate::http::{self, send};
use crate::kube::Kube;
use crate::manifests::NAMESPACE;

/// Policies handled at once: the operator's default `--concurrency`.
pub const CONCURRENCY: usize = 32;
/// The simulator's default client, as the benchmark's credentials Secret holds it.
const CLIENT_ID: &str = "operator";
const CLIENT_SECRET: &str = "operator-secret";

/// What the client reads of a policy.
#[derive(Deserialize)]
struct Listed {
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    metadata: Meta,
    spec: Spec,
}

#[derive(Deserialize)]
struct Meta {
    name: String,
    #[serde(default)]
    uid: String,
    #[serde(default)]
    generation: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    partition_global_id: String,
    settings: Vec<Setting>,
}

#[derive(Deserialize, serde::Serialize)]
struct Setting {
    key: String,
    value: String,
}

/// The identity service's token answer (only what is used).
#[derive(Deserialize)]
struct Token {
    access_token: String,
}

/// Applies every policy of the benchmark namespace to the identity service at `identity` and
/// records it, through `kube` (authenticated as the operator's user).
pub async fn apply_all(kube: &Kube, identity: &str) -> Result<usize> {
    let what = "reference client: list policies";
    let body = send(kube.http().get(kube.policies_url()), StatusCode::OK, what).await?;
    let listed: Listed = http::json(&body, what)?;
    let client = http::client()?;
    let token = token(&client, identity).await?;
    let count = listed.items.len();
    futures::stream::iter(listed.items)
        .map(|item| apply_one(kube, &client, identity, &token, item))
        .buffer_unordered(CONCURRENCY)
        .try_collect::<()>()
        .await?;
    Ok(count)
}

/// One client-credentials token.
async fn token(client: &Client, identity: &str) -> Result<String> {
    let what = "reference client: token";
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("scope", "PM.Setting"),
    ];
    let request = client.post(format!("{identity}/connect/token")).form(&form);
    let body = send(request, StatusCode::OK, what).await?;
    Ok(http::json::<Token>(&body, what)?.access_token)
}

/// GET, PUT, status, Event: one policy.
async fn apply_one(
    kube: &Kube,
    client: &Client,
    identity: &str,
    token: &str,
    item: Item,
) -> Result<()> {
    let settings = format!("{identity}/api/Setting");
    let partition = &item.spec.partition_global_id;
    let mut query: Vec<(&str, &str)> = vec![("partitionGlobalId", partition)];
    query.extend(item.spec.settings.iter().map(|s| ("key", s.key.as_str())));
    let url = reqwest::Url::parse_with_params(&settings, &query)
        .map_err(|e| BenchError::http("reference client: GET settings", e))?;
    let get = client.get(url).bearer_auth(token);
    send(get, StatusCode::OK, "reference client: GET settings").await?;
    let body = json!({"settings": item.spec.settings, "partitionGlobalId": partition});
    let put = client.put(&settings).bearer_auth(token).json(&body);
    send(put, StatusCode::OK, "reference client: PUT settings").await?;

    let now = jiff::Timestamp::now();
    let generation = item.metadata.generation;
    let status = json!({"status": {
        "observedGeneration": generation,
        "conditions": [{
            "type": "Ready",
            "status": "True",
            "reason": "Applied",
            "message": format!("{} settings applied", item.spec.settings.len()),
            "lastTransitionTime": now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "observedGeneration": generation,
        }],
    }});
    let patch = kube
        .http()
        .patch(format!(
            "{}/{}/status",
            kube.policies_url(),
            item.metadata.name
        ))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/merge-patch+json",
        )
        .body(status.to_string());
    send(patch, StatusCode::OK, "reference client: status").await?;

    let event = json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"generateName": format!("{}-", item.metadata.name), "namespace": NAMESPACE},
        "eventTime": now.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        "reportingController": "identitysettings.dev/reference-client",
        "reportingInstance": "reference-client",
        "action": "Apply",
        "reason": "Applied",
        "note": "settings applied",
        "type": "Normal",
        "regarding": {
            "apiVersion": "identitysettings.dev/v1alpha1",
            "kind": "IdentitySettingPolicy",
            "name": item.metadata.name,
            "namespace": NAMESPACE,
            "uid": item.metadata.uid,
        },
    });
    let events = format!(
        "{}/apis/events.k8s.io/v1/namespaces/{NAMESPACE}/events",
        kube.base()
    );
    send(
        kube.http().post(events).json(&event),
        StatusCode::CREATED,
        "reference client: Event",
    )
    .await
    .map(drop)
}

/// The bearer token of a kubeconfig written by the control plane (`token: ...`).
pub fn kubeconfig_token(kubeconfig: &str) -> Result<String> {
    kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("token:"))
        .map(|t| t.trim().to_owned())
        .ok_or_else(|| BenchError::process("reference client", "the kubeconfig has no token"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_read_from_the_kubeconfig() {
        let yaml = "users:\n- name: user\n  user:\n    token: abc123\n";
        assert_eq!(kubeconfig_token(yaml).expect("found"), "abc123");
        assert!(kubeconfig_token("users: []").is_err());
    }
}
