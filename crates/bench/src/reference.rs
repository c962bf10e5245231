//! The reference client: the least any controller must do to apply N new policies, and so the
//! floor the operator's cold start is measured against on a real API server. One LIST of the
//! policies, one token, then per policy one GET and one PUT of its settings, one status write
//! and one Event — no finalizer, no cache, no comparison, no retry. It writes as the operator's
//! ServiceAccount, so its requests are counted and authorized as the operator's are.
//!
//! Its status write comes in two sizes ([`StatusShape`]): a bare `Ready` condition, and the
//! status the operator writes for a newly applied policy (the ids per key, the times, the
//! inputs' digest), which costs the API server more per write. The second
//! separates what the operator's pipeline costs from what its status costs.

use futures::{StreamExt, TryStreamExt};
use reqwest::{Client, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

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

/// What the reference client writes to status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusShape {
    /// `observedGeneration` and a `Ready` condition.
    Minimal,
    /// The fields the operator writes for a newly applied policy (see the operator's
    /// `reconcile::status::next_status`); [`status_paths`] checks it against the operator's.
    AsTheOperator,
}

/// Applies every policy of the benchmark namespace to the identity service at `identity` and
/// records it, through `kube` (authenticated as the operator's user).
pub async fn apply_all(kube: &Kube, identity: &str, shape: StatusShape) -> Result<usize> {
    let what = "reference client: list policies";
    let body = send(kube.http().get(kube.policies_url()), StatusCode::OK, what).await?;
    let listed: Listed = http::json(&body, what)?;
    let client = http::client()?;
    let token = token(&client, identity).await?;
    let count = listed.items.len();
    futures::stream::iter(listed.items)
        .map(|item| apply_one(kube, &client, identity, &token, item, shape))
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
    shape: StatusShape,
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
    let status = json!({ "status": status(&item, shape, now) });
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

/// The status written for `item`, applied at `now`, in `shape`.
fn status(item: &Item, shape: StatusShape, now: jiff::Timestamp) -> Value {
    let generation = item.metadata.generation;
    let time = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let count = item.spec.settings.len();
    let ready = json!({
        "type": "Ready",
        "status": "True",
        "reason": "Applied",
        "message": format!("{count} settings applied"),
        "lastTransitionTime": time,
        "observedGeneration": generation,
    });
    if shape == StatusShape::Minimal {
        return json!({"observedGeneration": generation, "conditions": [ready]});
    }
    let ids: serde_json::Map<String, Value> = item
        .spec
        .settings
        .iter()
        .enumerate()
        .map(|(i, s)| (s.key.clone(), json!(1000 + i)))
        .collect();
    json!({
        "observedGeneration": generation,
        "conditions": [ready],
        "settingIds": ids,
        "settingCount": count,
        "lastSyncTime": time,
        "lastAppliedTime": time,
        "inputs": {"digest": format!("{:064x}", item.metadata.generation)},
    })
}

/// The status fields that are maps with user-chosen keys: their entries are one path, `.*`.
const MAP_FIELDS: &[&str] = &["settingIds"];

/// The field paths of a status, sorted: list items merged (`a.b[].c`) unless they have a `type`
/// (conditions: `conditions[Ready].reason`), map entries merged (`settingIds.*`). To check that
/// the status [`StatusShape::AsTheOperator`] writes has the fields the operator's has.
pub fn status_paths(status: &Value) -> Vec<String> {
    fn walk(value: &Value, path: &str, out: &mut std::collections::BTreeSet<String>) {
        match value {
            Value::Object(fields) if MAP_FIELDS.contains(&path) => {
                for value in fields.values() {
                    walk(value, &format!("{path}.*"), out);
                }
            }
            Value::Object(fields) => {
                for (key, value) in fields {
                    let path = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    walk(value, &path, out);
                }
            }
            Value::Array(items) => {
                for item in items {
                    let tag = item["type"].as_str().unwrap_or_default();
                    walk(item, &format!("{path}[{tag}]"), out);
                }
            }
            _ => {
                out.insert(path.to_owned());
            }
        }
    }
    let mut out = std::collections::BTreeSet::new();
    walk(status, "", &mut out);
    out.into_iter().collect()
}

/// The status paths the reference client writes in `shape`.
pub fn written_paths(shape: StatusShape) -> Vec<String> {
    let item = Item {
        metadata: Meta {
            name: "p".into(),
            uid: String::new(),
            generation: 1,
        },
        spec: Spec {
            partition_global_id: String::new(),
            settings: vec![Setting {
                key: "K".into(),
                value: "v".into(),
            }],
        },
    };
    status_paths(&status(&item, shape, jiff::Timestamp::now()))
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
    fn status_paths_merge_list_items() {
        let status = json!({
            "a": 1,
            "l": [{"k": 1}, {"k": 2, "m": 3}],
            "o": {"p": "x"},
            "conditions": [{"type": "Ready", "reason": "R"}, {"type": "Drifted"}],
            "settingIds": {"A.b": 1, "C": 2},
        });
        assert_eq!(
            status_paths(&status),
            [
                "a",
                "conditions[Drifted].type",
                "conditions[Ready].reason",
                "conditions[Ready].type",
                "l[].k",
                "l[].m",
                "o.p",
                "settingIds.*"
            ]
        );
        assert!(
            written_paths(StatusShape::AsTheOperator).len()
                > written_paths(StatusShape::Minimal).len()
        );
    }

    #[test]
    fn the_token_is_read_from_the_kubeconfig() {
        let yaml = "users:\n- name: user\n  user:\n    token: abc123\n";
        assert_eq!(kubeconfig_token(yaml).expect("found"), "abc123");
        assert!(kubeconfig_token("users: []").is_err());
    }
}
