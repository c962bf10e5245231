//! The Kubernetes API emulator measured against the real apiserver: the same request sequence
//! goes to both, and each step's status code and the response fields the operator reads are
//! compared. Every difference must be a known deviation listed in [`KNOWN_DEVIATIONS`] with its
//! reason (and in the emulator's docs); a new difference, or a deviation that went away, fails.

use std::collections::BTreeMap;

use identity_settings_operator::api::IdentitySettingPolicy;
use kube::client::Body;
use kube_emulator::{EmulatorConfig, KubeEmulator, ResourceKind};
use serde_json::{Value, json};

use control_plane::{self, ControlPlane};

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

/// One request of the sequence.
struct Req {
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    accept: &'static str,
    body: Option<Value>,
}

impl Req {
    fn new(method: &'static str, path: impl Into<String>) -> Req {
        Req {
            method,
            path: path.into(),
            content_type: None,
            accept: "application/json",
            body: None,
        }
    }
    fn get(path: impl Into<String>) -> Req {
        Req::new("GET", path)
    }
    fn delete(path: impl Into<String>) -> Req {
        Req::new("DELETE", path)
    }
    /// A POST or PUT of a JSON object.
    fn write(method: &'static str, path: impl Into<String>, body: Value) -> Req {
        Req::patch(path, "application/json", body).method(method)
    }
    /// A PATCH of `content_type`.
    fn patch(path: impl Into<String>, content_type: &'static str, body: Value) -> Req {
        Req {
            content_type: Some(content_type),
            body: Some(body),
            ..Req::new("PATCH", path)
        }
    }
    fn method(self, method: &'static str) -> Req {
        Req { method, ..self }
    }
    fn accept(self, accept: &'static str) -> Req {
        Req { accept, ..self }
    }
}

impl Side {
    /// Sends a request; the status and the body (one JSON value, or an array of the lines of
    /// a watch stream).
    async fn send(&self, req: Req) -> (u16, Value) {
        let mut request = http::Request::builder()
            .method(req.method)
            .uri(&req.path)
            .header("accept", req.accept);
        if let Some(ct) = req.content_type {
            request = request.header("content-type", ct);
        }
        let bytes = req
            .body
            .map(|b| b.to_string().into_bytes())
            .unwrap_or_default();
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

    /// Sends `req` and records it as `step`: its status, `pointers` as values, `present` as
    /// present or absent. Returns the body for later steps.
    async fn step(&mut self, step: &str, req: Req, pointers: &[&str], present: &[&str]) -> Value {
        let (code, body) = self.send(req).await;
        let mut fields = BTreeMap::new();
        for p in pointers {
            fields.insert((*p).to_owned(), field(&body, p));
        }
        for p in present {
            let there = body.pointer(p).is_some_and(|v| !v.is_null());
            fields.insert(format!("{p}?"), there.to_string());
        }
        self.seen.push((step.to_owned(), Seen { code, fields }));
        body
    }

    /// Sends `req` and records it as `step` with facts derived from the body by `facts`.
    async fn step_with(
        &mut self,
        step: &str,
        req: Req,
        facts: impl Fn(&Value) -> Vec<(&'static str, String)>,
    ) -> Value {
        let (code, body) = self.send(req).await;
        let fields = facts(&body)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        self.seen.push((step.to_owned(), Seen { code, fields }));
        body
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
    let p = format!("{POLICIES}/p");
    let none: [&str; 0] = [];

    // Create, and the errors around it.
    let created = side
        .step(
            "create a policy",
            Req::write("POST", POLICIES, policy("p", "true")),
            &["/kind", "/metadata/generation", "/metadata/namespace"],
            &[
                "/metadata/resourceVersion",
                "/metadata/uid",
                "/metadata/creationTimestamp",
                "/status",
            ],
        )
        .await;
    let created_rv = field(&created, "/metadata/resourceVersion");
    let again = [&STATUS_FIELDS[..], &["/details/name", "/details/kind"]].concat();
    side.step(
        "create it again",
        Req::write("POST", POLICIES, policy("p", "true")),
        &again,
        &none,
    )
    .await;
    let missing = [&STATUS_FIELDS[..], &["/details/name"]].concat();
    side.step(
        "get a missing policy",
        Req::get(format!("{POLICIES}/missing")),
        &missing,
        &none,
    )
    .await;

    // Spec changes bump the generation; a no-op write keeps the resourceVersion.
    let change =
        json!({"spec": {"settings": [{"key": "Auth.UserLockOut.IsEnabled", "value": "false"}]}});
    let changed = side
        .step(
            "merge-patch the spec",
            Req::patch(&p, MERGE, change.clone()),
            &["/metadata/generation", "/spec/settings/0/value"],
            &none,
        )
        .await;
    let changed_rv = field(&changed, "/metadata/resourceVersion");
    side.step_with(
        "merge-patch the same spec again",
        Req::patch(&p, MERGE, change),
        |body| {
            vec![
                ("generation", field(body, "/metadata/generation")),
                (
                    "resourceVersion kept",
                    (field(body, "/metadata/resourceVersion") == changed_rv).to_string(),
                ),
            ]
        },
    )
    .await;
    let mut stale = policy("p", "true");
    stale["metadata"]["resourceVersion"] = json!(created_rv);
    side.step(
        "update with a stale resourceVersion",
        Req::write("PUT", &p, stale),
        &STATUS_FIELDS,
        &none,
    )
    .await;

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
    let apply = format!("{p}/status?fieldManager=identity-settings-operator&force=true");
    side.step(
        "apply the status",
        Req::patch(&apply, APPLY, status(true)),
        &[
            "/metadata/generation",
            "/status/observedGeneration",
            "/status/conditions/0/reason",
            "/spec/settings/0/value",
        ],
        &none,
    )
    .await;
    side.step(
        "merge-patch status through the main resource",
        Req::patch(&p, MERGE, json!({"status": {"observedGeneration": 9}})),
        &["/metadata/generation", "/status/observedGeneration"],
        &none,
    )
    .await;
    side.step(
        "apply the status without the conditions it had",
        Req::patch(&apply, APPLY, status(false)),
        &["/status/observedGeneration"],
        &["/status/conditions"],
    )
    .await;
    let no_type_meta = json!({"metadata": {"name": "p"}, "status": {"observedGeneration": 2}});
    side.step(
        "apply without apiVersion and kind",
        Req::patch(&apply, APPLY, no_type_meta),
        &STATUS_FIELDS,
        &none,
    )
    .await;
    // On an object of its own: the emulator stores what the real server refuses.
    let mut duplicate = policy("dup", "true");
    duplicate["spec"]["settings"] =
        json!([{"key": "A.B", "value": "1"}, {"key": "A.B", "value": "2"}]);
    let dup = format!("{POLICIES}/dup");
    side.step(
        "apply duplicate list-map keys",
        Req::patch(
            format!("{dup}?fieldManager=test&force=true"),
            APPLY,
            duplicate,
        ),
        &STATUS_FIELDS,
        &none,
    )
    .await;
    // Not a step: only the emulator stored it, and the steps below must not see it.
    side.send(Req::delete(dup)).await;

    // JSON patch: the finalizer, and a failed test operation.
    let add = json!([{"op": "add", "path": "/metadata/finalizers", "value": ["identitysettings.dev/cleanup"]}]);
    side.step(
        "json-patch a finalizer in",
        Req::patch(&p, JSON_PATCH, add),
        &["/metadata/finalizers/0", "/metadata/generation"],
        &none,
    )
    .await;
    let test = json!([{"op": "test", "path": "/spec/partitionGlobalId", "value": "other"}]);
    side.step(
        "json-patch with a failing test",
        Req::patch(&p, JSON_PATCH, test),
        &STATUS_FIELDS,
        &none,
    )
    .await;

    // Lists, full and metadata-only.
    let s1 = format!("{SECRETS}/s1");
    side.step(
        "create a secret",
        Req::write("POST", SECRETS, secret("s1", "c2VjcmV0")),
        &["/kind", "/data/password", "/type"],
        &none,
    )
    .await;
    side.step(
        "list policies",
        Req::get(POLICIES),
        &["/kind", "/apiVersion", "/items/0/metadata/name", "/items/1"],
        &["/metadata/resourceVersion"],
    )
    .await;
    let listed = side
        .step(
            "list secrets as metadata",
            Req::get(SECRETS).accept(META_LIST),
            &[
                "/kind",
                "/apiVersion",
                "/items/0/metadata/name",
                "/items/0/kind",
            ],
            &["/items/0/data", "/metadata/resourceVersion"],
        )
        .await;
    let list_rv = field(&listed, "/metadata/resourceVersion");
    side.step(
        "get a secret as metadata",
        Req::get(&s1).accept(META_ONE),
        &["/kind", "/metadata/name"],
        &["/data"],
    )
    .await;
    side.step(
        "get a secret as PartialObjectMetadataList",
        Req::get(&s1).accept(META_LIST),
        &none,
        &none,
    )
    .await;

    // Watches: resume from a list, metadata-only, watch-list streaming, too old.
    side.step(
        "replace the secret without a resourceVersion",
        Req::write("PUT", &s1, secret("s1", "b3RoZXI=")),
        &none,
        &none,
    )
    .await;
    side.step("delete the secret", Req::delete(&s1), &none, &none)
        .await;
    let watch = format!(
        "{SECRETS}?watch=1&resourceVersion={list_rv}&allowWatchBookmarks=true&timeoutSeconds=2"
    );
    side.step_with(
        "watch secrets from the list's resourceVersion",
        Req::get(&watch),
        |body| vec![("events", changes(body))],
    )
    .await;
    side.step_with(
        "watch secrets as metadata",
        Req::get(&watch).accept(META_ONE),
        |body| {
            let first = body.pointer("/0/object").cloned().unwrap_or(Value::Null);
            vec![
                ("events", changes(body)),
                ("object kind", field(&first, "/kind")),
                ("data?", first.get("data").is_some().to_string()),
            ]
        },
    )
    .await;
    let stream = format!(
        "{POLICIES}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=2"
    );
    side.step_with("watch-list streaming", Req::get(stream), |body| {
        let end_marked = body.as_array().is_some_and(|lines| {
            lines.iter().any(|e| {
                e["type"] == "BOOKMARK"
                    && e.pointer("/object/metadata/annotations/k8s.io~1initial-events-end")
                        == Some(&json!("true"))
            })
        });
        vec![
            ("events", changes(body)),
            ("initial-events-end bookmark", end_marked.to_string()),
        ]
    })
    .await;
    side.step_with(
        "watch from a resourceVersion long gone",
        Req::get(format!(
            "{SECRETS}?watch=1&resourceVersion=1&timeoutSeconds=2"
        )),
        |body| {
            vec![
                ("events", changes(body)),
                ("reason", field(body, "/reason")),
            ]
        },
    )
    .await;

    // Deletion with a finalizer, then its removal.
    side.step(
        "delete the policy (finalizer set)",
        Req::delete(&p),
        &["/kind", "/metadata/finalizers/0", "/metadata/generation"],
        &["/metadata/deletionTimestamp"],
    )
    .await;
    let remove = json!({"metadata": {"finalizers": null}});
    side.step(
        "merge-patch the finalizer out",
        Req::patch(&p, MERGE, remove),
        &["/metadata/finalizers"],
        &none,
    )
    .await;
    side.step(
        "get the deleted policy",
        Req::get(&p),
        &STATUS_FIELDS,
        &none,
    )
    .await;

    // Events and Leases as the operator uses them.
    let event = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "p.1", "namespace": NS},
        "eventTime": "2026-01-01T00:00:00.000000Z", "regarding": {"kind": "IdentitySettingPolicy", "name": "p", "namespace": NS},
        "reportingController": "identitysettings.dev/operator", "reportingInstance": "op-1",
        "action": "Reconcile", "reason": "Applied", "type": "Normal", "note": "wrote 1 of 1 settings"});
    side.step(
        "create an event",
        Req::write("POST", EVENTS, event.clone()),
        &["/reason", "/note", "/regarding/name"],
        &["/eventTime"],
    )
    .await;
    let series = json!({"series": {"count": 2, "lastObservedTime": "2026-01-01T00:01:00.000000Z"}});
    side.step(
        "patch the event's series",
        Req::patch(format!("{EVENTS}/p.1"), MERGE, series),
        &["/series/count"],
        &none,
    )
    .await;
    let mut bad = event;
    bad["metadata"]["name"] = json!("p.2");
    bad["type"] = json!("Info");
    side.step(
        "create an event of an unknown type",
        Req::write("POST", EVENTS, bad),
        &STATUS_FIELDS,
        &none,
    )
    .await;
    let lease = |holder: &str, rv: Option<&str>| {
        let mut l = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "leader", "namespace": NS},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15}});
        if let Some(rv) = rv {
            l["metadata"]["resourceVersion"] = json!(rv);
        }
        l
    };
    let leader = format!("{LEASES}/leader");
    let created = side
        .step(
            "create a lease",
            Req::write("POST", LEASES, lease("a", None)),
            &["/spec/holderIdentity"],
            &none,
        )
        .await;
    let first_rv = field(&created, "/metadata/resourceVersion");
    side.step(
        "take the lease",
        Req::write("PUT", &leader, lease("b", Some(&first_rv))),
        &["/spec/holderIdentity"],
        &none,
    )
    .await;
    side.step(
        "renew the lease with a stale resourceVersion",
        Req::write("PUT", &leader, lease("a", Some(&first_rv))),
        &STATUS_FIELDS,
        &none,
    )
    .await;
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
        custom_resources: vec![
            ResourceKind::of::<IdentitySettingPolicy>(true, true),
            ResourceKind::of::<identity_settings_operator::api::IdentityServer>(true, true),
            ResourceKind::of::<identity_settings_operator::api::ClusterIdentityServer>(false, true),
        ],
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
