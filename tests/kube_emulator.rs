//! End-to-end tests of the Kubernetes API emulator through a real `kube::Client`.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{CustomResource, ResourceExt};
use kube_emulator::{EmulatorConfig, KubeEmulator, RecordedRequest, ResourceKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

const NS: &str = "test-ns";

/// A small custom resource with a status subresource.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "test.example.com",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    derive = "PartialEq"
)]
pub struct WidgetSpec {
    size: u32,
}

/// Status of [`Widget`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
pub struct WidgetStatus {
    ready: bool,
}

async fn emulator_with(config: EmulatorConfig) -> KubeEmulator {
    KubeEmulator::start(EmulatorConfig {
        custom_resources: vec![ResourceKind::of::<Widget>(true, true)],
        ..config
    })
    .await
    .unwrap()
}

async fn emulator() -> KubeEmulator {
    emulator_with(EmulatorConfig::default()).await
}

fn widget(name: &str, size: u32) -> Widget {
    Widget::new(name, WidgetSpec { size })
}

fn secret(name: &str, labels: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        string_data: None,
        data: Some(BTreeMap::new()),
        ..Default::default()
    }
}

fn api_code(err: kube::Error) -> u16 {
    match err {
        kube::Error::Api(status) => status.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn rv<K: kube::Resource>(obj: &K) -> u64 {
    obj.meta()
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn secrets_create_get_list_update_and_conflict() {
    let emu = emulator().await;
    let secrets: Api<Secret> = Api::namespaced(emu.client(), NS);
    let pp = PostParams::default();
    let a = secrets
        .create(&pp, &secret("a", &[("app", "x")]))
        .await
        .unwrap();
    secrets
        .create(&pp, &secret("b", &[("app", "y")]))
        .await
        .unwrap();
    assert!(a.metadata.uid.is_some());
    assert!(a.metadata.creation_timestamp.is_some());
    assert_eq!(a.metadata.namespace.as_deref(), Some(NS));
    assert_eq!(a.metadata.generation, None, "built-ins carry no generation");
    assert_eq!(
        api_code(secrets.create(&pp, &secret("a", &[])).await.unwrap_err()),
        409
    );
    assert_eq!(api_code(secrets.get("missing").await.unwrap_err()), 404);
    assert_eq!(secrets.get("a").await.unwrap(), a);

    let list = secrets
        .list(&ListParams::default().labels("app=x"))
        .await
        .unwrap();
    assert_eq!(
        list.items.iter().map(|s| s.name_any()).collect::<Vec<_>>(),
        vec!["a"]
    );
    let list = secrets
        .list(&ListParams::default().labels("app!=x"))
        .await
        .unwrap();
    assert_eq!(
        list.items.iter().map(|s| s.name_any()).collect::<Vec<_>>(),
        vec!["b"]
    );
    let list = secrets
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    assert!(
        list.metadata
            .resource_version
            .as_deref()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 2
    );
    let all: Api<Secret> = Api::all(emu.client());
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );
    let other: Api<Secret> = Api::namespaced(emu.client(), "other");
    assert!(
        other
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let mut changed = a.clone();
    changed.data = Some(BTreeMap::from([(
        "k".to_string(),
        k8s_openapi::ByteString(b"v".to_vec()),
    )]));
    let updated = secrets.replace("a", &pp, &changed).await.unwrap();
    assert!(rv(&updated) > rv(&a));
    assert_eq!(updated.metadata.uid, a.metadata.uid);
    // `changed` still carries the old resourceVersion.
    assert_eq!(
        api_code(secrets.replace("a", &pp, &changed).await.unwrap_err()),
        409
    );
    // Built-ins allow an unconditional update (no resourceVersion).
    changed.metadata.resource_version = None;
    changed.data = None;
    secrets.replace("a", &pp, &changed).await.unwrap();
}

#[tokio::test]
async fn list_pagination_with_limit_and_continue() {
    let emu = emulator().await;
    let secrets: Api<Secret> = Api::namespaced(emu.client(), NS);
    for n in ["s1", "s2", "s3", "s4", "s5"] {
        secrets
            .create(&PostParams::default(), &secret(n, &[]))
            .await
            .unwrap();
    }
    let first = secrets.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(first.items.len(), 2);
    let token = first.metadata.continue_.clone().unwrap();
    let second = secrets
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(
        second
            .items
            .iter()
            .map(|s| s.name_any())
            .collect::<Vec<_>>(),
        vec!["s3", "s4"]
    );
    assert_eq!(
        first.metadata.resource_version,
        second.metadata.resource_version
    );
    let third = secrets
        .list(
            &ListParams::default()
                .limit(2)
                .continue_token(second.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(third.items.len(), 1);
    assert!(third.metadata.continue_.is_none());
}

#[tokio::test]
async fn generation_and_status_subresource_isolation() {
    let emu = emulator().await;
    let widgets: Api<Widget> = Api::namespaced(emu.client(), NS);
    let pp = PostParams::default();
    let mut w = widget("w", 1);
    w.status = Some(WidgetStatus { ready: true });
    let created = widgets.create(&pp, &w).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(
        created.status, None,
        "status is dropped on create with a status subresource"
    );

    // Metadata-only change: no generation bump.
    let mut relabeled = created.clone();
    relabeled.metadata.labels = Some(BTreeMap::from([("a".into(), "b".into())]));
    let relabeled = widgets.replace("w", &pp, &relabeled).await.unwrap();
    assert_eq!(relabeled.metadata.generation, Some(1));
    assert!(rv(&relabeled) > rv(&created));

    // Status write through the main resource is ignored.
    let mut with_status = relabeled.clone();
    with_status.status = Some(WidgetStatus { ready: true });
    let same = widgets.replace("w", &pp, &with_status).await.unwrap();
    assert_eq!(same.status, None);
    assert_eq!(
        rv(&same),
        rv(&relabeled),
        "ignored status change is a no-op"
    );

    // Status write changes only status.
    let mut status_write = same.clone();
    status_write.spec.size = 99;
    status_write.status = Some(WidgetStatus { ready: true });
    let after_status = widgets
        .replace_status("w", &pp, &status_write)
        .await
        .unwrap();
    assert_eq!(after_status.spec.size, 1);
    assert_eq!(after_status.status, Some(WidgetStatus { ready: true }));
    assert_eq!(after_status.metadata.generation, Some(1));

    // Spec change bumps generation and keeps status.
    let mut respec = after_status.clone();
    respec.spec.size = 2;
    respec.status = None;
    let respec = widgets.replace("w", &pp, &respec).await.unwrap();
    assert_eq!(respec.metadata.generation, Some(2));
    assert_eq!(respec.status, Some(WidgetStatus { ready: true }));

    // Custom resources refuse an update without resourceVersion.
    let mut unconditional = respec.clone();
    unconditional.metadata.resource_version = None;
    unconditional.spec.size = 3;
    assert_eq!(
        api_code(widgets.replace("w", &pp, &unconditional).await.unwrap_err()),
        422
    );
}

#[tokio::test]
async fn merge_json_and_apply_patches() {
    let emu = emulator().await;
    let widgets: Api<Widget> = Api::namespaced(emu.client(), NS);
    widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();

    let merged = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 5}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.spec.size, 5);
    assert_eq!(merged.metadata.generation, Some(2));

    let json_patched = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::<()>::Json(
                serde_json::from_value(json!([
                    {"op": "test", "path": "/spec/size", "value": 5},
                    {"op": "replace", "path": "/spec/size", "value": 6}
                ]))
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(json_patched.spec.size, 6);

    let failing = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::<()>::Json(
                serde_json::from_value(json!([
                    {"op": "test", "path": "/spec/size", "value": 1},
                    {"op": "replace", "path": "/spec/size", "value": 7}
                ]))
                .unwrap(),
            ),
        )
        .await
        .unwrap_err();
    match failing {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 422);
            assert_eq!(status.reason, "Invalid");
        }
        other => panic!("{other:?}"),
    }

    let applied = widgets
        .patch_status(
            "w",
            &PatchParams::apply("widget-controller").force(),
            &Patch::Apply(json!({
                "apiVersion": "test.example.com/v1",
                "kind": "Widget",
                "status": {"ready": true}
            })),
        )
        .await
        .unwrap();
    assert_eq!(applied.status, Some(WidgetStatus { ready: true }));
    assert_eq!(applied.spec.size, 6);
    assert_eq!(applied.metadata.generation, Some(3));

    // Server-side apply creates missing objects.
    let created = widgets
        .patch(
            "fresh",
            &PatchParams::apply("widget-controller"),
            &Patch::Apply(json!({
                "apiVersion": "test.example.com/v1",
                "kind": "Widget",
                "metadata": {"name": "fresh"},
                "spec": {"size": 4}
            })),
        )
        .await
        .unwrap();
    assert_eq!(created.spec.size, 4);

    // A merge patch carrying a stale resourceVersion is a precondition failure.
    let stale = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"resourceVersion": "1"}, "spec": {"size": 9}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(stale), 409);

    // Strategic merge patch is not supported for custom resources.
    let strategic = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"size": 1}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(strategic), 415);

    let requests = emu.requests();
    let types: Vec<_> = requests
        .iter()
        .filter_map(|r| r.patch_type.clone())
        .collect();
    assert_eq!(
        types,
        vec![
            "merge",
            "json",
            "json",
            "apply",
            "apply",
            "merge",
            "strategic"
        ]
    );
    let status_apply = requests
        .iter()
        .find(|r| r.subresource.as_deref() == Some("status"))
        .unwrap();
    assert_eq!(
        status_apply.field_manager.as_deref(),
        Some("widget-controller")
    );
}

#[tokio::test]
async fn no_op_writes_keep_resource_version() {
    let emu = emulator().await;
    let widgets: Api<Widget> = Api::namespaced(emu.client(), NS);
    let created = widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let same = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(
        same.metadata.resource_version,
        created.metadata.resource_version
    );
    let replaced = widgets
        .replace("w", &PostParams::default(), &created)
        .await
        .unwrap();
    assert_eq!(
        replaced.metadata.resource_version,
        created.metadata.resource_version
    );
    let status = widgets
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": false}})),
        )
        .await
        .unwrap();
    assert!(rv(&status) > rv(&created));
    let again = widgets
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": false}})),
        )
        .await
        .unwrap();
    assert_eq!(rv(&again), rv(&status));
}

#[tokio::test]
async fn finalizers_delay_deletion_until_removed() {
    let emu = emulator().await;
    let widgets: Api<Widget> = Api::namespaced(emu.client(), NS);
    let mut w = widget("w", 1);
    w.metadata.finalizers = Some(vec!["example.com/cleanup".into()]);
    widgets.create(&PostParams::default(), &w).await.unwrap();

    let deleting = widgets
        .delete("w", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("object is returned while finalizers are pending");
    assert!(deleting.metadata.deletion_timestamp.is_some());
    assert_eq!(deleting.metadata.generation, Some(2));
    let still = widgets.get("w").await.unwrap();
    assert_eq!(
        still.metadata.deletion_timestamp,
        deleting.metadata.deletion_timestamp
    );

    // A second delete changes nothing.
    let again = widgets
        .delete("w", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        deleting.metadata.resource_version
    );

    // No new finalizers on a deleting object.
    let add = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/cleanup", "other"]}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(add), 422);

    // kube-rs's finalizer helper removes its finalizer with a guarded JSON patch.
    widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::<()>::Json(serde_json::from_value(json!([
                {"op": "test", "path": "/metadata/finalizers/0", "value": "example.com/cleanup"},
                {"op": "remove", "path": "/metadata/finalizers/0"}
            ]))
            .unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(api_code(widgets.get("w").await.unwrap_err()), 404);

    // Without finalizers, custom resources return the deleted object, built-ins a Status.
    widgets
        .create(&PostParams::default(), &widget("plain", 1))
        .await
        .unwrap();
    assert!(
        widgets
            .delete("plain", &DeleteParams::default())
            .await
            .unwrap()
            .is_left()
    );
    let secrets: Api<Secret> = Api::namespaced(emu.client(), NS);
    secrets
        .create(&PostParams::default(), &secret("s", &[]))
        .await
        .unwrap();
    let status = secrets
        .delete("s", &DeleteParams::default())
        .await
        .unwrap()
        .right()
        .unwrap();
    assert!(status.is_success());
    assert_eq!(
        api_code(
            secrets
                .delete("s", &DeleteParams::default())
                .await
                .unwrap_err()
        ),
        404
    );
}

/// Collects watcher events (as "Apply:name", "Delete:name", "InitDone", ...) until `until` holds.
async fn watch_until<S>(stream: &mut S, mut until: impl FnMut(&[String]) -> bool) -> Vec<String>
where
    S: futures::Stream<Item = Result<watcher::Event<Widget>, watcher::Error>> + Unpin,
{
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while !until(&seen) {
            match stream.next().await {
                Some(Ok(watcher::Event::Apply(w))) => {
                    seen.push(format!("Apply:{}:{}", w.name_any(), w.spec.size))
                }
                Some(Ok(watcher::Event::Delete(w))) => {
                    seen.push(format!("Delete:{}", w.name_any()))
                }
                Some(Ok(watcher::Event::InitApply(w))) => {
                    seen.push(format!("InitApply:{}", w.name_any()))
                }
                Some(Ok(watcher::Event::Init)) => seen.push("Init".into()),
                Some(Ok(watcher::Event::InitDone)) => seen.push("InitDone".into()),
                Some(Err(e)) => seen.push(format!("Err:{e}")),
                None => break,
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out; seen so far: {seen:?}"));
    seen
}

fn widget_watcher(
    emu: &KubeEmulator,
) -> impl futures::Stream<Item = Result<watcher::Event<Widget>, watcher::Error>> + Unpin + use<> {
    let widgets: Api<Widget> = Api::namespaced(emu.client(), NS);
    watcher(widgets, watcher::Config::default().timeout(30)).boxed()
}

#[tokio::test]
async fn watcher_sees_added_modified_deleted_in_order() {
    let emu = emulator().await;
    let widgets: Api<Widget> = Api::namespaced(emu.client(), NS);
    widgets
        .create(&PostParams::default(), &widget("existing", 1))
        .await
        .unwrap();
    let mut stream = widget_watcher(&emu);
    let init = watch_until(&mut stream, |s| s.last().is_some_and(|e| e == "InitDone")).await;
    assert_eq!(init, vec!["Init", "InitApply:existing", "InitDone"]);

    widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap();
    widgets.delete("w", &DeleteParams::default()).await.unwrap();
    // Another namespace is not seen.
    let other: Api<Widget> = Api::namespaced(emu.client(), "elsewhere");
    other
        .create(&PostParams::default(), &widget("x", 1))
        .await
        .unwrap();
    let seen = watch_until(&mut stream, |s| s.len() == 3).await;
    assert_eq!(seen, vec!["Apply:w:1", "Apply:w:2", "Delete:w"]);

    let watch = emu
        .requests()
        .into_iter()
        .find(|r| r.verb == "watch")
        .unwrap();
    assert_eq!(watch.resource, "widgets");
    assert_eq!(watch.status, 200);
}

#[tokio::test]
async fn raw_watch_resumes_from_resource_version_and_sends_bookmarks() {
    let emu = emulator_with(EmulatorConfig {
        bookmark_interval: Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    let widgets: Api<Widget> = Api::namespaced(emu.client(), NS);
    let first = widgets
        .create(&PostParams::default(), &widget("a", 1))
        .await
        .unwrap();
    widgets
        .create(&PostParams::default(), &widget("b", 1))
        .await
        .unwrap();
    let stream = widgets
        .watch(
            &WatchParams::default().timeout(5),
            first.metadata.resource_version.as_deref().unwrap(),
        )
        .await
        .unwrap();
    let mut stream = stream.boxed();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match stream.try_next().await.unwrap().unwrap() {
            WatchEvent::Added(w) => seen.push(format!("ADDED:{}", w.name_any())),
            WatchEvent::Bookmark(b) => {
                assert!(b.metadata.resource_version.parse::<u64>().unwrap() >= 2);
                seen.push("BOOKMARK".into());
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        seen,
        vec!["ADDED:b", "BOOKMARK"],
        "only events after the given version"
    );

    // resourceVersion "0": synthetic ADDED for existing objects.
    let stream = widgets
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .unwrap();
    let events: Vec<_> = stream.try_collect().await.unwrap();
    let added: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            WatchEvent::Added(w) => Some(w.name_any()),
            _ => None,
        })
        .collect();
    assert_eq!(added, vec!["a", "b"]);
}

#[tokio::test]
async fn too_old_resource_version_gets_410_and_watcher_relists() {
    let emu = emulator_with(EmulatorConfig {
        watch_history: 3,
        ..Default::default()
    })
    .await;
    let widgets: Api<Widget> = Api::namespaced(emu.client(), NS);
    widgets
        .create(&PostParams::default(), &widget("a", 1))
        .await
        .unwrap();
    let mut stream = widget_watcher(&emu);
    watch_until(&mut stream, |s| s.last().is_some_and(|e| e == "InitDone")).await;

    // End the watch while the watcher is not polled, then write more than the history keeps.
    emu.faults().drop_watches();
    for size in 2..8 {
        widgets
            .patch(
                "a",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"size": size}})),
            )
            .await
            .unwrap();
    }

    let raw = widgets.watch(&WatchParams::default(), "1").await.unwrap();
    let events: Vec<_> = raw.try_collect().await.unwrap();
    match events.as_slice() {
        [WatchEvent::Error(e)] => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
        }
        other => panic!("{other:?}"),
    }

    let seen = watch_until(&mut stream, |s| s.last().is_some_and(|e| e == "InitDone")).await;
    assert!(seen.iter().any(|e| e.starts_with("Err:")), "{seen:?}");
    assert!(seen.contains(&"InitApply:a".to_string()), "{seen:?}");
    let lists = emu.requests().iter().filter(|r| r.verb == "list").count();
    assert_eq!(lists, 2, "the watcher relisted");
}

#[tokio::test]
async fn watcher_recovers_from_dropped_watches() {
    let emu = emulator().await;
    let widgets: Api<Widget> = Api::namespaced(emu.client(), NS);
    let mut stream = widget_watcher(&emu);
    watch_until(&mut stream, |s| s.last().is_some_and(|e| e == "InitDone")).await;
    widgets
        .create(&PostParams::default(), &widget("before", 1))
        .await
        .unwrap();
    watch_until(&mut stream, |s| s.len() == 1).await;

    emu.faults().drop_watches();
    widgets
        .create(&PostParams::default(), &widget("after", 1))
        .await
        .unwrap();
    let seen = watch_until(&mut stream, |s| s.iter().any(|e| e == "Apply:after:1")).await;
    assert!(
        !seen.iter().any(|e| e.contains("before")),
        "resumed, not relisted: {seen:?}"
    );
    let watches = emu.requests().iter().filter(|r| r.verb == "watch").count();
    assert_eq!(watches, 2);
}

#[tokio::test]
async fn injected_failures_reach_the_client() {
    let emu = emulator().await;
    let secrets: Api<Secret> = Api::namespaced(emu.client(), NS);
    secrets
        .create(&PostParams::default(), &secret("s", &[]))
        .await
        .unwrap();

    emu.faults().fail_next(1, 500);
    let err = secrets.get("s").await.unwrap_err();
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 500);
            assert_eq!(status.reason, "InternalError");
        }
        other => panic!("{other:?}"),
    }
    secrets.get("s").await.unwrap();

    // kube's default client retries 429 after Retry-After; a client without retries sees it.
    emu.clear_requests();
    emu.faults().fail_next(1, 429);
    secrets.get("s").await.unwrap();
    let statuses: Vec<u16> = emu.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![429, 200]);

    let mut config = kube::Config::new(emu.url().parse().unwrap());
    config.default_retry = false;
    let no_retry: Api<Secret> = Api::namespaced(kube::Client::try_from(config).unwrap(), NS);
    emu.faults().fail_next(1, 429);
    assert_eq!(api_code(no_retry.get("s").await.unwrap_err()), 429);

    emu.faults().fail_next(3, 500);
    emu.faults().clear();
    secrets.get("s").await.unwrap();
}

#[tokio::test]
async fn restart_keeps_objects_and_resource_versions() {
    let mut emu = emulator().await;
    let url = emu.url();
    let widgets: Api<Widget> = Api::namespaced(emu.client(), NS);
    let a = widgets
        .create(&PostParams::default(), &widget("a", 1))
        .await
        .unwrap();
    let mut stream = widget_watcher(&emu);
    watch_until(&mut stream, |s| s.last().is_some_and(|e| e == "InitDone")).await;

    emu.restart().await.unwrap();
    assert_eq!(emu.url(), url);
    let fresh: Api<Widget> = Api::namespaced(emu.client(), NS);
    let got = fresh.get("a").await.unwrap();
    assert_eq!(
        (got.metadata, got.spec),
        (a.metadata.clone(), a.spec.clone())
    );
    let b = fresh
        .create(&PostParams::default(), &widget("b", 1))
        .await
        .unwrap();
    assert!(rv(&b) > rv(&a));
    let seen = watch_until(&mut stream, |s| s.iter().any(|e| e == "Apply:b:1")).await;
    assert!(seen.iter().all(|e| !e.contains(":a")), "{seen:?}");
    emu.shutdown().await;
}

#[tokio::test]
async fn recorder_creates_then_patches_event_series() {
    let emu = emulator().await;
    let reporter = Reporter {
        controller: "widget-controller".into(),
        instance: None,
    };
    let recorder = Recorder::new(emu.client(), reporter);
    let reference = ObjectReference {
        api_version: Some("test.example.com/v1".into()),
        kind: Some("Widget".into()),
        name: Some("w".into()),
        namespace: Some(NS.into()),
        ..Default::default()
    };
    let event = Event {
        type_: EventType::Warning,
        reason: "Failed".into(),
        note: Some("could not reach identity".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    recorder.publish(&event, &reference).await.unwrap();
    recorder.publish(&event, &reference).await.unwrap();

    let events: Api<K8sEvent> = Api::namespaced(emu.client(), NS);
    let list = events.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let stored = &list.items[0];
    assert_eq!(stored.reason.as_deref(), Some("Failed"));
    assert_eq!(stored.series.as_ref().map(|s| s.count), Some(2));
    let verbs: Vec<_> = emu
        .requests()
        .into_iter()
        .filter(|r| r.group == "events.k8s.io")
        .map(|r| (r.verb, r.patch_type, r.status))
        .collect();
    assert_eq!(
        verbs,
        vec![
            ("create".to_string(), None, 201),
            ("patch".to_string(), Some("merge".to_string()), 200),
            ("list".to_string(), None, 200),
        ]
    );
}

#[tokio::test]
async fn leases_allow_unconditional_update_and_create_on_update() {
    let emu = emulator().await;
    let leases: Api<Lease> = Api::namespaced(emu.client(), NS);
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some("leader".into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("pod-a".into()),
            lease_duration_seconds: Some(15),
            ..Default::default()
        }),
    };
    // PUT of a missing lease creates it.
    let created = leases
        .replace("leader", &PostParams::default(), &lease)
        .await
        .unwrap();
    assert_eq!(
        created.spec.as_ref().unwrap().holder_identity.as_deref(),
        Some("pod-a")
    );
    let mut next = created.clone();
    next.spec.as_mut().unwrap().holder_identity = Some("pod-b".into());
    let taken = leases
        .replace("leader", &PostParams::default(), &next)
        .await
        .unwrap();
    assert!(rv(&taken) > rv(&created));
    // The loser's stale write conflicts.
    assert_eq!(
        api_code(
            leases
                .replace("leader", &PostParams::default(), &created)
                .await
                .unwrap_err()
        ),
        409
    );
}

#[tokio::test]
async fn records_every_request_and_serves_discovery() {
    let emu = emulator().await;
    let client = emu.client();
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.major, "1");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    secrets
        .create(&PostParams::default(), &secret("s", &[]))
        .await
        .unwrap();
    secrets
        .patch("s", &PatchParams::apply("mgr"), &Patch::Apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "labels": {"a": "b"}}})))
        .await
        .unwrap();
    let _ = secrets.get("nope").await;
    let unknown: Api<Widget> = Api::namespaced(client.clone(), NS);
    let _ = unknown.delete("w", &DeleteParams::default()).await;
    let recorded: Vec<RecordedRequest> = emu
        .requests()
        .into_iter()
        .filter(|r| !r.resource.is_empty())
        .collect();
    let summary: Vec<_> = recorded
        .iter()
        .map(|r| {
            (
                r.verb.as_str(),
                r.resource.as_str(),
                r.name.as_deref(),
                r.status,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("create", "secrets", None, 201),
            ("patch", "secrets", Some("s"), 200),
            ("get", "secrets", Some("nope"), 404),
            ("delete", "widgets", Some("w"), 404),
        ]
    );
    assert_eq!(recorded[1].patch_type.as_deref(), Some("apply"));
    assert_eq!(recorded[1].field_manager.as_deref(), Some("mgr"));
    assert_eq!(recorded[0].namespace.as_deref(), Some(NS));
    emu.clear_requests();
    assert!(emu.requests().is_empty());

    let kubeconfig = emu.kubeconfig_yaml("demo");
    let parsed: kube::config::Kubeconfig = serde_norway::from_str(&kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(parsed, &Default::default())
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "demo");
    assert_eq!(
        config.cluster_url.to_string().trim_end_matches('/'),
        emu.url()
    );
}

#[tokio::test]
async fn kube_finalizer_helper_runs_apply_and_cleanup() {
    use kube::runtime::controller::Action;
    use kube::runtime::finalizer::{Event as Fin, finalizer};
    use std::sync::{Arc, Mutex};

    const FIN: &str = "example.com/cleanup";
    let emu = emulator().await;
    let widgets: Api<Widget> = Api::namespaced(emu.client(), NS);
    widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let run = |obj: Widget| {
        let calls = calls.clone();
        let widgets = widgets.clone();
        async move {
            finalizer(&widgets, FIN, Arc::new(obj), |event| async move {
                calls.lock().unwrap().push(match event {
                    Fin::Apply(_) => "apply",
                    Fin::Cleanup(_) => "cleanup",
                });
                Ok::<_, std::io::Error>(Action::await_change())
            })
            .await
            .unwrap()
        }
    };
    // First pass adds the finalizer (JSON patch testing for a null `finalizers`).
    run(widgets.get("w").await.unwrap()).await;
    assert_eq!(
        widgets.get("w").await.unwrap().finalizers(),
        &[FIN.to_string()]
    );
    run(widgets.get("w").await.unwrap()).await;
    widgets.delete("w", &DeleteParams::default()).await.unwrap();
    run(widgets.get("w").await.unwrap()).await;
    assert_eq!(*calls.lock().unwrap(), vec!["apply", "cleanup"]);
    assert_eq!(api_code(widgets.get("w").await.unwrap_err()), 404);
}

#[tokio::test]
async fn secret_string_data_is_stored_as_data() {
    let emu = emulator().await;
    let secrets: Api<Secret> = Api::namespaced(emu.client(), NS);
    let mut s = secret("creds", &[]);
    s.data = None;
    s.string_data = Some(BTreeMap::from([(
        "clientSecret".to_string(),
        "hunter2".to_string(),
    )]));
    let created = secrets.create(&PostParams::default(), &s).await.unwrap();
    assert_eq!(created.string_data, None);
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    assert_eq!(created.data.unwrap()["clientSecret"].0, b"hunter2".to_vec());
}

#[tokio::test]
async fn all_namespaces_watch_with_label_selector_transitions() {
    let emu = emulator().await;
    let all: Api<Widget> = Api::all(emu.client());
    let stream = all
        .watch(&WatchParams::default().labels("team=a").timeout(2), "0")
        .await
        .unwrap();
    let a: Api<Widget> = Api::namespaced(emu.client(), "ns-a");
    let mut w = widget("w", 1);
    w.metadata.labels = Some(BTreeMap::from([("team".into(), "b".into())]));
    a.create(&PostParams::default(), &w).await.unwrap();
    a.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}})),
    )
    .await
    .unwrap();
    a.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"team": "c"}}})),
    )
    .await
    .unwrap();
    let events: Vec<_> = stream.try_collect().await.unwrap();
    let kinds: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            WatchEvent::Added(w) => Some(format!("ADDED:{}", w.labels()["team"])),
            WatchEvent::Modified(w) => Some(format!("MODIFIED:{}", w.labels()["team"])),
            WatchEvent::Deleted(w) => Some(format!("DELETED:{}", w.labels()["team"])),
            _ => None,
        })
        .collect();
    // Starts matching -> ADDED; stops matching -> DELETED with the last matching content.
    assert_eq!(kinds, vec!["ADDED:a", "DELETED:a"]);
}

/// Sends one raw request and returns the status code and the body parsed as JSON (`Null` if it
/// is not JSON).
async fn raw(
    emu: &KubeEmulator,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    let client = identity_client::http_client_builder().build().unwrap();
    let mut req = client.request(
        reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
        format!("{}{path}", emu.url()),
    );
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = req.body(body.to_string()).send().await.unwrap();
    let code = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    (
        code,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// Opens a raw watch and returns a function reading the next event line (or `None` when the
/// stream ended or nothing arrived within `wait`).
struct RawWatch {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl RawWatch {
    async fn open(emu: &KubeEmulator, path_and_query: &str) -> RawWatch {
        let resp = identity_client::http_client_builder()
            .build()
            .unwrap()
            .get(format!("{}{path_and_query}", emu.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        RawWatch {
            resp,
            buf: Vec::new(),
        }
    }

    /// The next event, `Err(())` on timeout, `Ok(None)` at the end of the stream.
    async fn next(&mut self, wait: Duration) -> Result<Option<serde_json::Value>, ()> {
        tokio::time::timeout(wait, async {
            loop {
                if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = self.buf.drain(..=pos).collect();
                    return Some(serde_json::from_slice(&line).unwrap());
                }
                match self.resp.chunk().await.unwrap() {
                    Some(chunk) => self.buf.extend_from_slice(&chunk),
                    None => return None,
                }
            }
        })
        .await
        .map_err(|_| ())
    }

    /// The next non-BOOKMARK event as `TYPE:name`.
    async fn next_change(&mut self, wait: Duration) -> Option<String> {
        loop {
            let ev = self.next(wait).await.ok()??;
            if ev["type"] != "BOOKMARK" {
                return Some(format!(
                    "{}:{}",
                    ev["type"].as_str().unwrap(),
                    ev["object"]["metadata"]["name"].as_str().unwrap_or("")
                ));
            }
        }
    }
}

const WIDGETS: &str = "/apis/test.example.com/v1/namespaces/test-ns/widgets";

/// Bookmarks effectively off: nothing but the watch itself may deliver the backlog.
fn no_bookmarks() -> EmulatorConfig {
    EmulatorConfig {
        bookmark_interval: Duration::from_secs(24 * 3600),
        ..Default::default()
    }
}

#[tokio::test]
async fn resumed_watch_sends_the_backlog_at_once() {
    let emu = emulator_with(no_bookmarks()).await;
    let widgets: Api<Widget> = Api::namespaced(emu.client(), NS);
    widgets
        .create(&PostParams::default(), &widget("a", 1))
        .await
        .unwrap();
    let list = widgets.list(&ListParams::default()).await.unwrap();
    let list_rv = list.metadata.resource_version.unwrap();
    widgets
        .create(&PostParams::default(), &widget("b", 1))
        .await
        .unwrap();
    widgets.delete("a", &DeleteParams::default()).await.unwrap();

    // Through kube-rs (bookmarks requested, but none will come for a day).
    let started = std::time::Instant::now();
    let mut stream = widgets
        .watch(&WatchParams::default().timeout(60), &list_rv)
        .await
        .unwrap()
        .boxed();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match tokio::time::timeout(Duration::from_millis(500), stream.try_next()).await {
            Ok(Ok(Some(WatchEvent::Added(w)))) => seen.push(format!("ADDED:{}", w.name_any())),
            Ok(Ok(Some(WatchEvent::Deleted(w)))) => seen.push(format!("DELETED:{}", w.name_any())),
            other => panic!("after {seen:?}: {other:?}"),
        }
    }
    assert_eq!(seen, vec!["ADDED:b", "DELETED:a"]);
    assert!(started.elapsed() < Duration::from_secs(1));

    // Raw, without allowWatchBookmarks.
    let mut watch = RawWatch::open(
        &emu,
        &format!("{WIDGETS}?watch=true&resourceVersion={list_rv}&timeoutSeconds=60"),
    )
    .await;
    let wait = Duration::from_millis(500);
    assert_eq!(watch.next_change(wait).await.as_deref(), Some("ADDED:b"));
    assert_eq!(watch.next_change(wait).await.as_deref(), Some("DELETED:a"));
}

#[tokio::test]
async fn watch_timeouts_and_zero_bookmark_interval_do_not_break_watches() {
    let emu = emulator_with(EmulatorConfig {
        bookmark_interval: Duration::ZERO,
        ..Default::default()
    })
    .await;
    let widgets: Api<Widget> = Api::namespaced(emu.client(), NS);
    widgets
        .create(&PostParams::default(), &widget("a", 1))
        .await
        .unwrap();
    let wait = Duration::from_secs(2);
    // A timeout too large for the clock, with bookmarks allowed but disabled by the config.
    let mut huge = RawWatch::open(
        &emu,
        &format!(
            "{WIDGETS}?watch=true&allowWatchBookmarks=true&timeoutSeconds={}",
            u64::MAX
        ),
    )
    .await;
    assert_eq!(huge.next_change(wait).await.as_deref(), Some("ADDED:a"));
    // timeoutSeconds=0 means the server default: the watch stays open.
    let mut zero = RawWatch::open(&emu, &format!("{WIDGETS}?watch=true&timeoutSeconds=0")).await;
    assert_eq!(zero.next_change(wait).await.as_deref(), Some("ADDED:a"));
    assert_eq!(
        zero.next(Duration::from_millis(1500)).await,
        Err(()),
        "the watch with timeoutSeconds=0 must stay open"
    );
    widgets
        .create(&PostParams::default(), &widget("b", 1))
        .await
        .unwrap();
    assert_eq!(huge.next_change(wait).await.as_deref(), Some("ADDED:b"));
    assert_eq!(zero.next_change(wait).await.as_deref(), Some("ADDED:b"));
    assert_eq!(
        huge.next(Duration::from_millis(300)).await,
        Err(()),
        "no bookmarks with a zero interval"
    );
    let watches: Vec<u16> = emu
        .requests()
        .iter()
        .filter(|r| r.verb == "watch")
        .map(|r| r.status)
        .collect();
    assert_eq!(watches, vec![200, 200]);
}

#[tokio::test]
async fn malformed_input_gets_status_errors_and_is_recorded() {
    let emu = emulator().await;
    let widgets: Api<Widget> = Api::namespaced(emu.client(), NS);
    widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    emu.clear_requests();
    let json_patch = Some("application/json-patch+json");
    let merge = Some("application/merge-patch+json");
    let apply = Some("application/apply-patch+yaml");
    let json = Some("application/json");
    let w = format!("{WIDGETS}/w");
    let w_applied = format!("{w}?fieldManager=m");
    let cases: Vec<(&str, String, Option<&str>, &str, u16)> = vec![
        // A JSON patch replacing the whole document.
        (
            "PATCH",
            w.clone(),
            json_patch,
            r#"[{"op":"replace","path":"","value":[1]}]"#,
            422,
        ),
        (
            "PATCH",
            w.clone(),
            json_patch,
            r#"[{"op":"add","path":"","value":"x"}]"#,
            422,
        ),
        ("PATCH", w.clone(), json_patch, r#"{"op":"add"}"#, 400),
        (
            "PATCH",
            w.clone(),
            json_patch,
            r#"[{"op":"remove","path":"/nope/0"}]"#,
            422,
        ),
        ("PATCH", w.clone(), merge, "[1]", 400),
        ("PATCH", w.clone(), merge, r#"{"metadata": 5}"#, 400),
        ("PATCH", w_applied.clone(), apply, "- a\n- b\n", 400),
        ("PATCH", w_applied.clone(), apply, ": : :\n\t", 400),
        ("PATCH", w.clone(), Some("text/plain"), "x", 415),
        ("POST", WIDGETS.to_string(), json, "not json", 400),
        ("POST", WIDGETS.to_string(), json, "[1, 2]", 400),
        (
            "POST",
            WIDGETS.to_string(),
            json,
            r#"{"metadata": []}"#,
            422,
        ),
        ("PUT", w.clone(), json, "{", 400),
        ("PUT", w.clone(), json, "null", 400),
        ("DELETE", w.clone(), json, "{oops", 400),
        ("GET", format!("{WIDGETS}?limit=abc"), None, "", 400),
        (
            "GET",
            format!("{WIDGETS}?watch=true&timeoutSeconds=abc"),
            None,
            "",
            400,
        ),
        (
            "GET",
            format!("{WIDGETS}?watch=true&resourceVersion=x1"),
            None,
            "",
            400,
        ),
        (
            "GET",
            format!("{WIDGETS}?labelSelector=%%%(("),
            None,
            "",
            400,
        ),
        (
            "GET",
            format!("{WIDGETS}?watch=true&sendInitialEvents=true"),
            None,
            "",
            422,
        ),
        ("GET", format!("{WIDGETS}?continue=%FF%FE"), None, "", 400),
        (
            "GET",
            "/apis/test.example.com/v1/namespaces/%ZZ/widgets/%00/x/y".to_string(),
            None,
            "",
            404,
        ),
        (
            "GET",
            "/api/v1/namespaces/a/b/c/d/e/f".to_string(),
            None,
            "",
            404,
        ),
        ("POST", "/version".to_string(), json, "", 405),
    ];
    for (method, path, ct, body, want) in &cases {
        let (code, status) = raw(&emu, method, path, *ct, body).await;
        assert_eq!(code, *want, "{method} {path} {body}: {status}");
        assert_eq!(status["kind"], "Status", "{method} {path} {body}: {status}");
        assert_eq!(status["code"], *want);
        assert_eq!(status["status"], "Failure");
    }
    let recorded: Vec<u16> = emu.requests().iter().map(|r| r.status).collect();
    let expected: Vec<u16> = cases.iter().map(|c| c.4).collect();
    assert_eq!(recorded, expected, "every request is recorded");
    // The object is untouched and the server still serves.
    assert_eq!(widgets.get("w").await.unwrap().spec.size, 1);
}

#[tokio::test]
async fn events_api_refuses_what_a_real_server_refuses() {
    let emu = emulator().await;
    let events: Api<K8sEvent> = Api::namespaced(emu.client(), NS);
    let valid = json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "w.1"},
        "eventTime": "2024-01-01T00:00:00.000000Z",
        "regarding": {"kind": "Widget", "name": "w", "namespace": NS},
        "reportingController": "widget-controller",
        "reportingInstance": "pod-1",
        "action": "Reconcile",
        "reason": "Failed",
        "type": "Warning",
        "note": "n".repeat(1024),
    });
    let mut long = valid.clone();
    long["note"] = json!("n".repeat(1025));
    let err = events
        .create(
            &PostParams::default(),
            &serde_json::from_value(long).unwrap(),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err:?}")
    };
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status.message.ends_with("can have at most 1024 characters"),
        "{}",
        status.message
    );

    let mut missing = valid.clone();
    for key in ["action", "reportingController"] {
        missing.as_object_mut().unwrap().remove(key);
    }
    let (code, body) = raw(
        &emu,
        "POST",
        &format!("/apis/events.k8s.io/v1/namespaces/{NS}/events"),
        Some("application/json"),
        &missing.to_string(),
    )
    .await;
    assert_eq!(code, 422);
    let fields: Vec<&str> = body["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["reason"] == "FieldValueRequired")
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["reportingController", "action"], "{body}");

    let created = events
        .create(
            &PostParams::default(),
            &serde_json::from_value(valid).unwrap(),
        )
        .await
        .unwrap();
    // The note is immutable; a series update is fine.
    let err = events
        .patch(
            "w.1",
            &PatchParams::default(),
            &Patch::Merge(json!({"note": "other"})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(err), 422);
    let series = events
        .patch(
            "w.1",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"series": {"count": 2, "lastObservedTime": "2024-01-01T00:00:01.000000Z"}}),
            ),
        )
        .await
        .unwrap();
    assert!(rv(&series) > rv(&created));

    // kube-rs's Recorder sees the refusal of a long note.
    let recorder = Recorder::new(
        emu.client(),
        Reporter {
            controller: "widget-controller".into(),
            instance: None,
        },
    );
    let reference = ObjectReference {
        api_version: Some("test.example.com/v1".into()),
        kind: Some("Widget".into()),
        name: Some("w".into()),
        namespace: Some(NS.into()),
        ..Default::default()
    };
    let event = Event {
        type_: EventType::Warning,
        reason: "Failed".into(),
        note: Some("x".repeat(1025)),
        action: "Reconcile".into(),
        secondary: None,
    };
    assert_eq!(
        api_code(recorder.publish(&event, &reference).await.unwrap_err()),
        422
    );
}

#[tokio::test]
async fn apply_requires_type_meta_and_refuses_managed_fields() {
    let emu = emulator().await;
    let widgets: Api<Widget> = Api::namespaced(emu.client(), NS);
    widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let pp = PatchParams::apply("mgr").force();
    let bad = [
        json!({"status": {"ready": true}}),
        json!({"apiVersion": "test.example.com/v1", "status": {"ready": true}}),
        json!({"kind": "Widget", "status": {"ready": true}}),
        json!({"apiVersion": "test.example.com/v1", "kind": "Widget",
               "metadata": {"managedFields": [{"manager": "x"}]}, "status": {"ready": true}}),
    ];
    for body in &bad {
        let err = widgets
            .patch_status("w", &pp, &Patch::Apply(body))
            .await
            .unwrap_err();
        assert_eq!(api_code(err), 400, "{body}");
        let err = widgets
            .patch("fresh", &pp, &Patch::Apply(body))
            .await
            .unwrap_err();
        assert_eq!(api_code(err), 400, "{body}");
    }
    let (_, status) = raw(
        &emu,
        "PATCH",
        &format!("{WIDGETS}/w/status?fieldManager=mgr"),
        Some("application/apply-patch+yaml"),
        r#"{"status": {"ready": true}}"#,
    )
    .await;
    assert_eq!(status["message"], "invalid object type: /, Kind=");
    assert_eq!(widgets.get_status("w").await.unwrap().status, None);
    assert_eq!(api_code(widgets.get("fresh").await.unwrap_err()), 404);
}

#[tokio::test]
async fn restart_expires_watch_history_and_watcher_relists() {
    let mut emu = emulator_with(no_bookmarks()).await;
    let widgets: Api<Widget> = Api::namespaced(emu.client(), NS);
    let a = widgets
        .create(&PostParams::default(), &widget("a", 1))
        .await
        .unwrap();
    let mut stream = widget_watcher(&emu);
    watch_until(&mut stream, |s| s.last().is_some_and(|e| e == "InitDone")).await;

    // A change the watcher has not seen when the server restarts.
    emu.faults().drop_watches();
    widgets
        .create(&PostParams::default(), &widget("b", 1))
        .await
        .unwrap();
    emu.restart().await.unwrap();

    let raw_watch = widgets
        .watch(&WatchParams::default(), &rv(&a).to_string())
        .await
        .unwrap();
    let events: Vec<_> = raw_watch.try_collect().await.unwrap();
    match events.as_slice() {
        [WatchEvent::Error(e)] => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("{other:?}"),
    }
    let seen = watch_until(&mut stream, |s| s.last().is_some_and(|e| e == "InitDone")).await;
    assert!(seen.iter().any(|e| e.starts_with("Err:")), "{seen:?}");
    assert!(seen.contains(&"InitApply:b".to_string()), "{seen:?}");
    widgets
        .create(&PostParams::default(), &widget("c", 1))
        .await
        .unwrap();
    watch_until(&mut stream, |s| s.iter().any(|e| e == "Apply:c:1")).await;
    let lists = emu.requests().iter().filter(|r| r.verb == "list").count();
    assert_eq!(lists, 2, "the watcher relisted");

    // The option that keeps the history lets the same kind of client resume.
    emu.faults().drop_watches();
    let before = widgets
        .create(&PostParams::default(), &widget("d", 1))
        .await
        .unwrap();
    emu.restart_keeping_watch_cache().await.unwrap();
    let resumed = widgets
        .watch(
            &WatchParams::default().timeout(1),
            &(rv(&before) - 1).to_string(),
        )
        .await
        .unwrap();
    let events: Vec<_> = resumed.try_collect().await.unwrap();
    assert!(
        matches!(events.first(), Some(WatchEvent::Added(w)) if w.name_any() == "d"),
        "{events:?}"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn forced_apply_of_an_unchanged_status_is_a_no_op() {
    let emu = emulator_with(no_bookmarks()).await;
    let widgets: Api<Widget> = Api::namespaced(emu.client(), NS);
    widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let pp = PatchParams::apply("mgr").force();
    let body =
        json!({"apiVersion": "test.example.com/v1", "kind": "Widget", "status": {"ready": true}});
    let first = widgets
        .patch_status("w", &pp, &Patch::Apply(&body))
        .await
        .unwrap();
    let mut watch = RawWatch::open(
        &emu,
        &format!("{WIDGETS}?watch=true&resourceVersion={}", rv(&first)),
    )
    .await;
    let again = widgets
        .patch_status("w", &pp, &Patch::Apply(&body))
        .await
        .unwrap();
    assert_eq!(rv(&again), rv(&first));
    assert_eq!(again, first);
    assert_eq!(
        watch.next(Duration::from_millis(300)).await,
        Err(()),
        "no watch event for a no-op apply"
    );
    widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap();
    let ev = watch.next(Duration::from_secs(2)).await.unwrap().unwrap();
    assert_eq!(ev["type"], "MODIFIED");
    assert_eq!(ev["object"]["spec"]["size"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_and_one_watcher_keep_order() {
    const WRITERS: u32 = 6;
    const WRITES: u32 = 40;
    let emu = emulator_with(no_bookmarks()).await;
    let widgets: Api<Widget> = Api::namespaced(emu.client(), NS);
    let list = widgets.list(&ListParams::default()).await.unwrap();
    let mut stream = widgets
        .watch(
            &WatchParams::default().timeout(60),
            &list.metadata.resource_version.unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    let writers: Vec<_> = (0..WRITERS)
        .map(|n| {
            let widgets = widgets.clone();
            tokio::spawn(async move {
                let name = format!("w{n}");
                widgets
                    .create(&PostParams::default(), &widget(&name, 0))
                    .await
                    .unwrap();
                for size in 1..WRITES {
                    widgets
                        .patch(
                            &name,
                            &PatchParams::default(),
                            &Patch::Merge(json!({"spec": {"size": size}})),
                        )
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let mut rvs = Vec::new();
    let mut last_size = BTreeMap::new();
    while rvs.len() < (WRITERS * WRITES) as usize {
        match tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            WatchEvent::Added(w) | WatchEvent::Modified(w) => {
                let previous = last_size.insert(w.name_any(), w.spec.size);
                assert_eq!(
                    previous.map_or(0, |p| p + 1),
                    w.spec.size,
                    "per-object order"
                );
                rvs.push(rv(&w));
            }
            WatchEvent::Bookmark(_) => {}
            other => panic!("{other:?}"),
        }
    }
    let expected: Vec<u64> = (1..=u64::from(WRITERS * WRITES)).collect();
    assert_eq!(rvs, expected, "every write once, in resourceVersion order");
}

#[tokio::test]
async fn conflict_and_not_found_bodies_over_http() {
    let emu = emulator().await;
    let widgets: Api<Widget> = Api::namespaced(emu.client(), NS);
    let w = widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap();
    // The operator's finalizer patch with a resourceVersion precondition, now stale.
    let (code, body) = raw(
        &emu,
        "PATCH",
        &format!("{WIDGETS}/w"),
        Some("application/merge-patch+json"),
        &json!({"metadata": {"finalizers": ["f"], "resourceVersion": rv(&w).to_string()}})
            .to_string(),
    )
    .await;
    assert_eq!(code, 409);
    assert_eq!(
        body,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Operation cannot be fulfilled on widgets.test.example.com \"w\": the object has been modified; please apply your changes to the latest version and try again",
            "reason": "Conflict",
            "details": {"name": "w", "group": "test.example.com", "kind": "widgets"},
            "code": 409,
        })
    );
    let (code, body) = raw(
        &emu,
        "GET",
        &format!("/api/v1/namespaces/{NS}/secrets/admin"),
        None,
        "",
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(
        body,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "secrets \"admin\" not found",
            "reason": "NotFound",
            "details": {"name": "admin", "kind": "secrets"},
            "code": 404,
        })
    );
}

#[tokio::test]
async fn deletion_bumps_generation_seen_by_a_watcher() {
    let emu = emulator_with(no_bookmarks()).await;
    let widgets: Api<Widget> = Api::namespaced(emu.client(), NS);
    let mut w = widget("w", 1);
    w.metadata.finalizers = Some(vec!["example.com/cleanup".into()]);
    let created = widgets.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let mut stream = widget_watcher(&emu);
    watch_until(&mut stream, |s| s.last().is_some_and(|e| e == "InitDone")).await;
    widgets.delete("w", &DeleteParams::default()).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(2), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let watcher::Event::Apply(seen) = event else {
        panic!("{event:?}")
    };
    assert_eq!(seen.metadata.generation, Some(2));
    assert!(seen.metadata.deletion_timestamp.is_some());
    assert_eq!(seen.spec, created.spec);
}

#[tokio::test]
async fn request_log_keeps_the_latest_requests() {
    let emu = emulator_with(EmulatorConfig {
        request_log: 3,
        ..Default::default()
    })
    .await;
    let secrets: Api<Secret> = Api::namespaced(emu.client(), NS);
    for name in ["a", "b", "c", "d", "e"] {
        let _ = secrets.get(name).await;
    }
    let names: Vec<_> = emu.requests().into_iter().filter_map(|r| r.name).collect();
    assert_eq!(names, vec!["c", "d", "e"]);
}

#[tokio::test]
async fn metadata_only_lists_and_watches_carry_no_secret_data() {
    let emu = emulator().await;
    let client = emu.client();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let mut data = BTreeMap::new();
    data.insert(
        "password".to_owned(),
        k8s_openapi::ByteString(b"hunter2".to_vec()),
    );
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("s".into()),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..Secret::default()
    };
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create");

    // What kube-rs sends for Api<PartialObjectMeta<_>>, seen on the wire.
    let url = format!("{}/api/v1/namespaces/{NS}/secrets", emu.url());
    let raw: serde_json::Value = identity_client::http_client_builder()
        .build()
        .unwrap()
        .get(&url)
        .header(
            "Accept",
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
        )
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(raw["kind"], "PartialObjectMetadataList");
    assert_eq!(raw["items"][0]["metadata"]["name"], "s");
    assert!(raw["items"][0].get("data").is_none(), "{raw}");
    assert!(!raw.to_string().contains("aHVudGVyMg"), "{raw}");

    // A kube-rs watcher over metadata sees the Secret and its later change.
    let meta: Api<PartialObjectMeta<Secret>> = Api::namespaced(client, NS);
    let mut events = watcher(meta, watcher::Config::default()).boxed();
    let first = next_matching(&mut events, |e| match e {
        watcher::Event::InitApply(o) => Some(o),
        _ => None,
    })
    .await
    .expect("initial object");
    assert_eq!(first.name_any(), "s");
    assert_eq!(
        first.types.as_ref().map(|t| t.kind.as_str()),
        Some("PartialObjectMetadata")
    );
    secrets
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"password": "new"}})),
        )
        .await
        .expect("patch");
    let changed = next_matching(&mut events, |e| match e {
        watcher::Event::Apply(o) => Some(o),
        _ => None,
    })
    .await
    .expect("the change arrives");
    assert_ne!(changed.resource_version(), first.resource_version());
}

/// The first watcher event `pick` accepts within 5 s, if any.
async fn next_matching<T>(
    events: &mut (impl futures::Stream<Item = Result<watcher::Event<T>, watcher::Error>> + Unpin),
    pick: impl Fn(watcher::Event<T>) -> Option<T>,
) -> Option<T> {
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(event) = events.next().await {
            if let Some(found) = event.ok().and_then(&pick) {
                return Some(found);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}
