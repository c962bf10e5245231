//! The Kubernetes API emulator measured against the real apiserver: the same request sequence
//! goes to both, and each step's status code and the response fields the operator reads are
//! compared. Every difference must be a known deviation listed in [`KNOWN_DEVIATIONS`] with its
//! reason (and in the emulator's docs); a new difference, or a deviation that went away, fails.

use std::collections::BTreeMap;

use identity_settings_operator::api::IdentitySettingPolicy;
use identity_settings_operator::kube_emulator::{EmulatorConfig, KubeEmulator, ResourceKind};
use kube::client::Body;
use serde_json::{Value, json};

use crate::control_plane::{self, ControlPlane};

const NS: &str = "diff";
const POLICIES: &str =
    "/apis/identitysettings.dev/v1alpha1/namespaces/diff/identitysettingpolicies";
const SECRETS: &str = "/api/v1/namespaces/diff/secrets";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/diff/leases";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/diff/events";
const META_LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
const META_ONE: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
const MERGE: &str = "application/merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";
const APPLY: &str = "application/apply-patch+yaml";

/// Steps where the emulator knowingly answers otherwise, and why.
/// Each is also documented next to the emulator code that deviates (`src/kube_emulator/`).
const KNOWN_DEVIATIONS: &[(&str, &str)] = &[
    (
        "apply the status without the conditions it had",
        "no managedFields: server-side apply is a merge, so a field the manager stops sending \
         is kept (the operator always applies its whole status, so it never relies on the drop)",
    ),
    (
        "apply duplicate list-map keys",
        "no schema: the emulator does not know `settings` is a list-map, so it stores duplicate \
         keys the real server refuses (the operator never applies duplicates; admission refuses \
         them in a policy)",
    ),
    (
        "get a secret as PartialObjectMetadataList",
        "the emulator serves either metadata form for any request; the real server answers 406 \
         for a list type on a single object (the operator asks for the right form)",
    ),
];

/// What one step saw: the HTTP status and the chosen fields (`present` for values that differ
/// by nature between servers, such as resourceVersions and timestamps).
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    code: u16,
    fields: BTreeMap<String, String>,
}

/// One server, and the steps it answered.
struct Side {
    client: kube::Client,
    seen: Vec<(String, Seen)>,
}

fn field(value: &Value, pointer: &str) -> String {
    match value.pointer(pointer) {
        None => "absent".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

impl Side {
    /// Sends a request; the status and the body (one JSON value, or an array of the lines of
    /// a watch stream).
    async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        accept: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = http::Request::builder().method(method).uri(path);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        request = request.header("accept", accept.unwrap_or("application/json"));
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let request = request.body(Body::from(bytes)).expect("request");
        let response = self.client.send(request).await.expect("the server answers");
        let code = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect_bytes()
            .await
            .expect("the body arrives");
        let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            Value::Array(
                bytes
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(|l| serde_json::from_slice(l).unwrap_or(Value::Null))
                    .collect(),
            )
        });
        (code, value)
    }

    /// Records a step: its status, `pointers` as values, `present` as present/absent.
    fn record(&mut self, step: &str, code: u16, body: &Value, pointers: &[&str], present: &[&str]) {
        let mut fields = BTreeMap::new();
        for p in pointers {
            fields.insert((*p).to_owned(), field(body, p));
        }
        for p in present {
            let there = body.pointer(p).is_some_and(|v| !v.is_null());
            fields.insert(format!("{p}?"), there.to_string());
        }
        self.seen.push((step.to_owned(), Seen { code, fields }));
    }

    /// Records a step with derived facts instead of fields.
    fn record_facts(&mut self, step: &str, code: u16, facts: &[(&str, String)]) {
        let fields = facts
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        self.seen.push((step.to_owned(), Seen { code, fields }));
    }
}

fn policy(name: &str, value: &str) -> Value {
    json!({
        "apiVersion": "identitysettings.dev/v1alpha1",
        "kind": "IdentitySettingPolicy",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "server": {"url": "https://id.example.com/identity_", "credentialsSecretRef": {"name": "admin"}},
            "partitionGlobalId": "p-1",
            "settings": [{"key": "Auth.UserLockOut.IsEnabled", "value": value}]
        }
    })
}

fn secret(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS},
           "data": {"password": value}})
}

/// Event types of a watch stream, BOOKMARKs left out (their timing is the server's choice),
/// as `TYPE:name` or `ERROR:code`.
fn changes(events: &Value) -> String {
    let Some(lines) = events.as_array() else {
        return format!("not a stream: {events}");
    };
    lines
        .iter()
        .filter(|e| e["type"] != "BOOKMARK")
        .map(|e| match e["type"].as_str() {
            Some("ERROR") => format!("ERROR:{}", e["object"]["code"]),
            Some(t) => format!("{t}:{}", field(e, "/object/metadata/name")),
            None => format!("not an event: {e}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

const STATUS_FIELDS: [&str; 3] = ["/kind", "/reason", "/code"];

/// The request sequence: the operator's every kind of request, and the failures it handles.
async fn play(side: &mut Side) {
    // Create, and the errors around it.
    let (code, body) = side
        .send(
            "POST",
            POLICIES,
            Some("application/json"),
            None,
            Some(&policy("p", "true")),
        )
        .await;
    side.record(
        "create a policy",
        code,
        &body,
        &["/kind", "/metadata/generation", "/metadata/namespace"],
        &[
            "/metadata/resourceVersion",
            "/metadata/uid",
            "/metadata/creationTimestamp",
            "/status",
        ],
    );
    let created_rv = field(&body, "/metadata/resourceVersion");
    let (code, body) = side
        .send(
            "POST",
            POLICIES,
            Some("application/json"),
            None,
            Some(&policy("p", "true")),
        )
        .await;
    side.record(
        "create it again",
        code,
        &body,
        &[&STATUS_FIELDS[..], &["/details/name", "/details/kind"]].concat(),
        &[],
    );
    let (code, body) = side
        .send("GET", &format!("{POLICIES}/missing"), None, None, None)
        .await;
    side.record(
        "get a missing policy",
        code,
        &body,
        &[&STATUS_FIELDS[..], &["/details/name"]].concat(),
        &[],
    );

    // Spec changes bump the generation; a no-op write keeps the resourceVersion.
    let change =
        json!({"spec": {"settings": [{"key": "Auth.UserLockOut.IsEnabled", "value": "false"}]}});
    let (code, body) = side
        .send(
            "PATCH",
            &format!("{POLICIES}/p"),
            Some(MERGE),
            None,
            Some(&change),
        )
        .await;
    side.record(
        "merge-patch the spec",
        code,
        &body,
        &["/metadata/generation", "/spec/settings/0/value"],
        &[],
    );
    let changed_rv = field(&body, "/metadata/resourceVersion");
    let (code, body) = side
        .send(
            "PATCH",
            &format!("{POLICIES}/p"),
            Some(MERGE),
            None,
            Some(&change),
        )
        .await;
    side.record_facts(
        "merge-patch the same spec again",
        code,
        &[
            ("generation", field(&body, "/metadata/generation")),
            (
                "resourceVersion kept",
                (field(&body, "/metadata/resourceVersion") == changed_rv).to_string(),
            ),
        ],
    );
    let mut stale = policy("p", "true");
    stale["metadata"]["resourceVersion"] = json!(created_rv);
    let (code, body) = side
        .send(
            "PUT",
            &format!("{POLICIES}/p"),
            Some("application/json"),
            None,
            Some(&stale),
        )
        .await;
    side.record(
        "update with a stale resourceVersion",
        code,
        &body,
        &STATUS_FIELDS,
        &[],
    );

    // Status through the subresource with server-side apply, as the operator writes it.
    let status = |conditions: bool| {
        let mut s = json!({"apiVersion": "identitysettings.dev/v1alpha1", "kind": "IdentitySettingPolicy",
            "metadata": {"name": "p", "namespace": NS}, "status": {"observedGeneration": 2, "settingCount": 1}});
        if conditions {
            s["status"]["conditions"] = json!([{"type": "Ready", "status": "True", "reason": "Applied",
                "message": "wrote 1 of 1 settings", "lastTransitionTime": "2026-01-01T00:00:00Z"}]);
        }
        s
    };
    let apply = format!("{POLICIES}/p/status?fieldManager=identity-settings-operator&force=true");
    let (code, body) = side
        .send("PATCH", &apply, Some(APPLY), None, Some(&status(true)))
        .await;
    side.record(
        "apply the status",
        code,
        &body,
        &[
            "/metadata/generation",
            "/status/observedGeneration",
            "/status/conditions/0/reason",
            "/spec/settings/0/value",
        ],
        &[],
    );
    let (code, body) = side
        .send(
            "PATCH",
            &format!("{POLICIES}/p"),
            Some(MERGE),
            None,
            Some(&json!({"status": {"observedGeneration": 9}})),
        )
        .await;
    side.record(
        "merge-patch status through the main resource",
        code,
        &body,
        &["/metadata/generation", "/status/observedGeneration"],
        &[],
    );
    let (code, body) = side
        .send("PATCH", &apply, Some(APPLY), None, Some(&status(false)))
        .await;
    side.record(
        "apply the status without the conditions it had",
        code,
        &body,
        &["/status/observedGeneration"],
        &["/status/conditions"],
    );
    let no_type_meta = json!({"metadata": {"name": "p"}, "status": {"observedGeneration": 2}});
    let (code, body) = side
        .send("PATCH", &apply, Some(APPLY), None, Some(&no_type_meta))
        .await;
    side.record(
        "apply without apiVersion and kind",
        code,
        &body,
        &STATUS_FIELDS,
        &[],
    );
    // On an object of its own: the emulator stores what the real server refuses.
    let mut duplicate = policy("dup", "true");
    duplicate["spec"]["settings"] =
        json!([{"key": "A.B", "value": "1"}, {"key": "A.B", "value": "2"}]);
    let (code, body) = side
        .send(
            "PATCH",
            &format!("{POLICIES}/dup?fieldManager=test&force=true"),
            Some(APPLY),
            None,
            Some(&duplicate),
        )
        .await;
    side.record(
        "apply duplicate list-map keys",
        code,
        &body,
        &STATUS_FIELDS,
        &[],
    );
    // Not a step: only the emulator stored it, and the steps below must not see it.
    side.send("DELETE", &format!("{POLICIES}/dup"), None, None, None)
        .await;

    // JSON patch: the finalizer, and a failed test operation.
    let add = json!([{"op": "add", "path": "/metadata/finalizers", "value": ["identitysettings.dev/cleanup"]}]);
    let (code, body) = side
        .send(
            "PATCH",
            &format!("{POLICIES}/p"),
            Some(JSON_PATCH),
            None,
            Some(&add),
        )
        .await;
    side.record(
        "json-patch a finalizer in",
        code,
        &body,
        &["/metadata/finalizers/0", "/metadata/generation"],
        &[],
    );
    let test = json!([{"op": "test", "path": "/spec/partitionGlobalId", "value": "other"}]);
    let (code, body) = side
        .send(
            "PATCH",
            &format!("{POLICIES}/p"),
            Some(JSON_PATCH),
            None,
            Some(&test),
        )
        .await;
    side.record(
        "json-patch with a failing test",
        code,
        &body,
        &STATUS_FIELDS,
        &[],
    );

    // Lists, full and metadata-only.
    let (code, body) = side
        .send(
            "POST",
            SECRETS,
            Some("application/json"),
            None,
            Some(&secret("s1", "c2VjcmV0")),
        )
        .await;
    side.record(
        "create a secret",
        code,
        &body,
        &["/kind", "/data/password", "/type"],
        &[],
    );
    let (code, body) = side.send("GET", POLICIES, None, None, None).await;
    side.record(
        "list policies",
        code,
        &body,
        &["/kind", "/apiVersion", "/items/0/metadata/name", "/items/1"],
        &["/metadata/resourceVersion"],
    );
    let (code, body) = side.send("GET", SECRETS, None, Some(META_LIST), None).await;
    side.record(
        "list secrets as metadata",
        code,
        &body,
        &[
            "/kind",
            "/apiVersion",
            "/items/0/metadata/name",
            "/items/0/kind",
        ],
        &["/items/0/data", "/metadata/resourceVersion"],
    );
    let list_rv = field(&body, "/metadata/resourceVersion");
    let (code, body) = side
        .send("GET", &format!("{SECRETS}/s1"), None, Some(META_ONE), None)
        .await;
    side.record(
        "get a secret as metadata",
        code,
        &body,
        &["/kind", "/metadata/name"],
        &["/data"],
    );
    let (code, _) = side
        .send("GET", &format!("{SECRETS}/s1"), None, Some(META_LIST), None)
        .await;
    side.record_facts("get a secret as PartialObjectMetadataList", code, &[]);

    // Watches: resume from a list, metadata-only, watch-list streaming, too old.
    let (code, _) = side
        .send(
            "PUT",
            &format!("{SECRETS}/s1"),
            Some("application/json"),
            None,
            Some(&secret("s1", "b3RoZXI=")),
        )
        .await;
    side.record_facts("replace the secret without a resourceVersion", code, &[]);
    let (code, _) = side
        .send("DELETE", &format!("{SECRETS}/s1"), None, None, None)
        .await;
    side.record_facts("delete the secret", code, &[]);
    let watch = format!(
        "{SECRETS}?watch=1&resourceVersion={list_rv}&allowWatchBookmarks=true&timeoutSeconds=2"
    );
    let (code, body) = side.send("GET", &watch, None, None, None).await;
    side.record_facts(
        "watch secrets from the list's resourceVersion",
        code,
        &[("events", changes(&body))],
    );
    let (code, body) = side.send("GET", &watch, None, Some(META_ONE), None).await;
    let first = body.pointer("/0/object").cloned().unwrap_or(Value::Null);
    side.record_facts(
        "watch secrets as metadata",
        code,
        &[
            ("events", changes(&body)),
            ("object kind", field(&first, "/kind")),
            ("data?", first.get("data").is_some().to_string()),
        ],
    );
    let stream = format!(
        "{POLICIES}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=2"
    );
    let (code, body) = side.send("GET", &stream, None, None, None).await;
    let end_marked = body.as_array().is_some_and(|lines| {
        lines.iter().any(|e| {
            e["type"] == "BOOKMARK"
                && e.pointer("/object/metadata/annotations/k8s.io~1initial-events-end")
                    == Some(&json!("true"))
        })
    });
    side.record_facts(
        "watch-list streaming",
        code,
        &[
            ("events", changes(&body)),
            ("initial-events-end bookmark", end_marked.to_string()),
        ],
    );
    let (code, body) = side
        .send(
            "GET",
            &format!("{SECRETS}?watch=1&resourceVersion=1&timeoutSeconds=2"),
            None,
            None,
            None,
        )
        .await;
    side.record_facts(
        "watch from a resourceVersion long gone",
        code,
        &[
            ("events", changes(&body)),
            ("reason", field(&body, "/reason")),
        ],
    );

    // Deletion with a finalizer, then its removal.
    let (code, body) = side
        .send("DELETE", &format!("{POLICIES}/p"), None, None, None)
        .await;
    side.record(
        "delete the policy (finalizer set)",
        code,
        &body,
        &["/kind", "/metadata/finalizers/0", "/metadata/generation"],
        &["/metadata/deletionTimestamp"],
    );
    let remove = json!({"metadata": {"finalizers": null}});
    let (code, body) = side
        .send(
            "PATCH",
            &format!("{POLICIES}/p"),
            Some(MERGE),
            None,
            Some(&remove),
        )
        .await;
    side.record(
        "merge-patch the finalizer out",
        code,
        &body,
        &["/metadata/finalizers"],
        &[],
    );
    let (code, body) = side
        .send("GET", &format!("{POLICIES}/p"), None, None, None)
        .await;
    side.record("get the deleted policy", code, &body, &STATUS_FIELDS, &[]);

    // Events and Leases as the operator uses them.
    let event = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "p.1", "namespace": NS},
        "eventTime": "2026-01-01T00:00:00.000000Z", "regarding": {"kind": "IdentitySettingPolicy", "name": "p", "namespace": NS},
        "reportingController": "identitysettings.dev/operator", "reportingInstance": "op-1",
        "action": "Reconcile", "reason": "Applied", "type": "Normal", "note": "wrote 1 of 1 settings"});
    let (code, body) = side
        .send("POST", EVENTS, Some("application/json"), None, Some(&event))
        .await;
    side.record(
        "create an event",
        code,
        &body,
        &["/reason", "/note", "/regarding/name"],
        &["/eventTime"],
    );
    let series = json!({"series": {"count": 2, "lastObservedTime": "2026-01-01T00:01:00.000000Z"}});
    let (code, body) = side
        .send(
            "PATCH",
            &format!("{EVENTS}/p.1"),
            Some(MERGE),
            None,
            Some(&series),
        )
        .await;
    side.record(
        "patch the event's series",
        code,
        &body,
        &["/series/count"],
        &[],
    );
    let mut bad = event.clone();
    bad["metadata"]["name"] = json!("p.2");
    bad["type"] = json!("Info");
    let (code, body) = side
        .send("POST", EVENTS, Some("application/json"), None, Some(&bad))
        .await;
    side.record(
        "create an event of an unknown type",
        code,
        &body,
        &STATUS_FIELDS,
        &[],
    );
    let lease = |holder: &str, rv: Option<&str>| {
        let mut l = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "leader", "namespace": NS},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15}});
        if let Some(rv) = rv {
            l["metadata"]["resourceVersion"] = json!(rv);
        }
        l
    };
    let (code, body) = side
        .send(
            "POST",
            LEASES,
            Some("application/json"),
            None,
            Some(&lease("a", None)),
        )
        .await;
    side.record(
        "create a lease",
        code,
        &body,
        &["/spec/holderIdentity"],
        &[],
    );
    let first_rv = field(&body, "/metadata/resourceVersion");
    let (code, body) = side
        .send(
            "PUT",
            &format!("{LEASES}/leader"),
            Some("application/json"),
            None,
            Some(&lease("b", Some(&first_rv))),
        )
        .await;
    side.record(
        "take the lease",
        code,
        &body,
        &["/spec/holderIdentity"],
        &[],
    );
    let (code, body) = side
        .send(
            "PUT",
            &format!("{LEASES}/leader"),
            Some("application/json"),
            None,
            Some(&lease("a", Some(&first_rv))),
        )
        .await;
    side.record(
        "renew the lease with a stale resourceVersion",
        code,
        &body,
        &STATUS_FIELDS,
        &[],
    );
}

/// Both servers play the same sequence; every difference is a known deviation, and every
/// known deviation still shows.
pub async fn the_emulator_answers_like_the_real_apiserver() {
    let bin = control_plane::selected().expect("selected");
    let plane = ControlPlane::start(&bin, &[NS]).await;
    let mut real = Side {
        client: plane.admin_client().await,
        seen: Vec::new(),
    };
    let emulator = KubeEmulator::start(EmulatorConfig {
        custom_resources: vec![ResourceKind::of::<IdentitySettingPolicy>(true, true)],
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts");
    let mut emulated = Side {
        client: emulator.client(),
        seen: Vec::new(),
    };
    play(&mut real).await;
    play(&mut emulated).await;

    let mut report = Vec::new();
    let mut unexpected = Vec::new();
    let mut differing = Vec::new();
    for ((step, r), (_, e)) in real.seen.iter().zip(&emulated.seen) {
        let known = KNOWN_DEVIATIONS.iter().find(|(s, _)| s == step);
        if r == e {
            report.push(format!("  same     {step}: {} {:?}", r.code, r.fields));
            continue;
        }
        differing.push(step.as_str());
        let line = format!("{step}:\n      real:     {r:?}\n      emulator: {e:?}");
        match known {
            Some((_, why)) => report.push(format!("  known    {line}\n      because: {why}")),
            None => {
                report.push(format!("  DIFFERS  {line}"));
                unexpected.push(step.clone());
            }
        }
    }
    println!(
        "emulator vs real apiserver, {} steps:\n{}",
        real.seen.len(),
        report.join("\n")
    );
    let gone: Vec<_> = KNOWN_DEVIATIONS
        .iter()
        .filter(|(s, _)| !differing.contains(s))
        .map(|(s, _)| *s)
        .collect();
    assert!(
        unexpected.is_empty() && gone.is_empty(),
        "the emulator differs from the real apiserver where it should not: {unexpected:?}; \
         listed deviations that no longer show: {gone:?} (the report above has the details)"
    );
}
