//! Publishes Kubernetes Events (`events.k8s.io/v1`) about policies, folding a repeat of the same
//! Event within a few minutes into a series on the first one, as kube's `Recorder` does.
//!
//! kube's `Recorder` remembers every Event it published, whole, for six minutes, in a hash table
//! that it also sweeps on every publish: with 10 000 policies applied at start that table held
//! tens of MiB (half the operator's memory) and each publish walked all of it. This publisher
//! keeps, per recent Event, only what a series needs — its name, namespace, count and when it
//! was last seen — under a digest of what makes two Events the same, and sweeps at most once a
//! minute.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
pub use kube::runtime::events::{Event, EventType};
use serde_json::json;

/// How long a published Event can be continued as a series (kube's `Recorder` uses the same).
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// How often, at most, Events older than the window are forgotten.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Publishes Events as `controller` (instance `instance`).
pub struct EventPublisher {
    client: kube::Client,
    controller: String,
    instance: String,
    recent: Mutex<Recent>,
}

struct Recent {
    /// Keyed by a digest of (type, reason, action, regarding, related); with the random
    /// per-process key two different Events share a digest with a chance of about n²/2⁶⁵.
    series: HashMap<u64, Series>,
    digest_key: RandomState,
    swept: Instant,
}

#[derive(Clone)]
struct Series {
    /// The Event the series continues, as `namespace/name` (neither holds a `/`): one small
    /// allocation per remembered Event (tens of thousands after a drift of every policy).
    event: Box<str>,
    count: i32,
    last: Instant,
}

impl Series {
    /// The Event's namespace and name.
    fn namespace_and_name(&self) -> (&str, &str) {
        self.event
            .split_once('/')
            .unwrap_or(("default", &self.event))
    }
}

impl EventPublisher {
    /// A publisher reporting as `controller`; `instance` names the replica (defaults to the
    /// controller's name).
    pub fn new(client: kube::Client, controller: &str, instance: Option<String>) -> Self {
        Self {
            client,
            controller: controller.to_owned(),
            instance: instance.unwrap_or_else(|| controller.to_owned()),
            recent: Mutex::new(Recent {
                series: HashMap::new(),
                digest_key: RandomState::new(),
                swept: Instant::now(),
            }),
        }
    }

    fn recent(&self) -> MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates the Event, or — when the same Event was published within [`SERIES_WINDOW`] —
    /// counts it on that one (`series.count`, `series.lastObservedTime`).
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Instant::now();
        let (digest, earlier) = {
            let mut recent = self.recent();
            if now.duration_since(recent.swept) >= SWEEP_INTERVAL {
                recent
                    .series
                    .retain(|_, s| now.duration_since(s.last) < SERIES_WINDOW);
                recent.swept = now;
            }
            let digest = recent.digest_key.hash_one((
                matches!(event.type_, EventType::Warning),
                &event.reason,
                &event.action,
                reference_key(regarding),
                event.secondary.as_ref().map(reference_key),
            ));
            let earlier = recent
                .series
                .get(&digest)
                .filter(|s| now.duration_since(s.last) < SERIES_WINDOW)
                .cloned();
            (digest, earlier)
        };
        let published = match earlier {
            Some(series) => match self.continue_series(&series).await {
                Ok(()) => Series {
                    count: series.count + 1,
                    last: now,
                    ..series
                },
                // Gone (expired or deleted): start over.
                Err(kube::Error::Api(e)) if e.code == 404 => self.create(event, regarding).await?,
                Err(e) => return Err(e),
            },
            None => self.create(event, regarding).await?,
        };
        self.recent().series.insert(digest, published);
        Ok(())
    }

    async fn create(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<Series, kube::Error> {
        let now = jiff::Timestamp::now();
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = event_name(
            regarding.name.as_deref().unwrap_or(&self.controller),
            now.as_nanosecond(),
        );
        let body = K8sEvent {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: event.note.clone(),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..K8sEvent::default()
        };
        Api::<K8sEvent>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &body)
            .await?;
        Ok(Series {
            event: format!("{namespace}/{name}").into(),
            count: 1,
            last: Instant::now(),
        })
    }

    async fn continue_series(&self, series: &Series) -> Result<(), kube::Error> {
        // A series starts at 2: the first occurrence is the Event itself.
        let patch = json!({
            "series": EventSeries {
                count: series.count + 1,
                last_observed_time: MicroTime(jiff::Timestamp::now()),
            }
        });
        let (namespace, name) = series.namespace_and_name();
        Api::<K8sEvent>::namespaced(self.client.clone(), namespace)
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop)
    }

    /// How many recent Events are remembered for series.
    pub fn remembered(&self) -> usize {
        self.recent().series.len()
    }
}

/// The longest object name Kubernetes accepts (a DNS subdomain).
const MAX_OBJECT_NAME: usize = 253;

/// A new Event's name: the object's name, then `.` and the time in hex (unique per Event). The
/// object's name is cut so the whole fits [`MAX_OBJECT_NAME`], and the cut ends on a letter or
/// digit, as a DNS subdomain must: a policy with a 253-character name still gets its Events.
pub fn event_name(object: &str, nanos: i128) -> String {
    let suffix = format!(".{nanos:x}");
    let room = MAX_OBJECT_NAME.saturating_sub(suffix.len());
    let mut cut = object.len().min(room);
    while !object.is_char_boundary(cut) {
        cut -= 1;
    }
    let prefix = object[..cut].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    let prefix = if prefix.is_empty() { "event" } else { prefix };
    format!("{prefix}{suffix}")
}

/// What identifies the object an Event is about: API version, kind, namespace, name, uid.
type ReferenceKey<'a> = [Option<&'a str>; 5];

/// The [`ReferenceKey`] of `r`.
fn reference_key(r: &ObjectReference) -> ReferenceKey<'_> {
    [
        r.api_version.as_deref(),
        r.kind.as_deref(),
        r.namespace.as_deref(),
        r.name.as_deref(),
        r.uid.as_deref(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ListParams;
    use kube_emulator::{EmulatorConfig, KubeEmulator};

    fn regarding(name: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("identitysettings.dev/v1alpha1".into()),
            kind: Some("IdentitySettingPolicy".into()),
            namespace: Some("ns".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..ObjectReference::default()
        }
    }

    fn event(action: &str) -> Event {
        Event {
            type_: EventType::Warning,
            reason: "ServerUnreachable".into(),
            note: Some("the identity service did not answer".into()),
            action: action.into(),
            secondary: None,
        }
    }

    #[test]
    fn event_names_fit_whatever_the_object_name() {
        let label = "a".repeat(62);
        let longest = [label.as_str(); 4].join(".") + "-x";
        for object in [
            longest.as_str(),
            "p",
            &"b".repeat(253),
            &format!("{}.-{}", "c".repeat(230), "d".repeat(20)),
        ] {
            let name = event_name(object, i128::MAX);
            assert!(name.len() <= 253, "{} characters", name.len());
            let last_before_suffix = name.rsplit_once('.').map(|(p, _)| p).unwrap_or_default();
            assert!(
                last_before_suffix.ends_with(|c: char| c.is_ascii_alphanumeric()),
                "{name}"
            );
        }
        assert_eq!(event_name("short", 255), "short.ff");
    }

    #[tokio::test]
    async fn a_repeat_is_counted_on_the_first_event_and_anything_else_is_a_new_one() {
        let emulator = KubeEmulator::start(EmulatorConfig::default())
            .await
            .expect("emulator");
        let publisher = EventPublisher::new(emulator.client(), "op", Some("op-1".into()));
        for _ in 0..3 {
            publisher
                .publish(&event("Sync-1"), &regarding("a"))
                .await
                .expect("publish");
        }
        publisher
            .publish(&event("Sync-2"), &regarding("a"))
            .await
            .expect("publish");
        publisher
            .publish(&event("Sync-1"), &regarding("b"))
            .await
            .expect("publish");
        let events: Vec<K8sEvent> = Api::<K8sEvent>::namespaced(emulator.client(), "ns")
            .list(&ListParams::default())
            .await
            .expect("list")
            .items;
        let mut seen: Vec<(String, String, Option<i32>)> = events
            .iter()
            .map(|e| {
                (
                    e.regarding
                        .as_ref()
                        .and_then(|r| r.name.clone())
                        .unwrap_or_default(),
                    e.action.clone().unwrap_or_default(),
                    e.series.as_ref().map(|s| s.count),
                )
            })
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                ("a".into(), "Sync-1".into(), Some(3)),
                ("a".into(), "Sync-2".into(), None),
                ("b".into(), "Sync-1".into(), None),
            ]
        );
        let first = events
            .iter()
            .find(|e| e.series.is_some())
            .expect("the series");
        assert_eq!(first.reporting_controller.as_deref(), Some("op"));
        assert_eq!(first.reporting_instance.as_deref(), Some("op-1"));
        assert_eq!(first.type_.as_deref(), Some("Warning"));
        assert_eq!(publisher.remembered(), 3);
        emulator.shutdown().await;
    }

    #[tokio::test]
    async fn a_series_whose_event_is_gone_starts_a_new_event() {
        let emulator = KubeEmulator::start(EmulatorConfig::default())
            .await
            .expect("emulator");
        let publisher = EventPublisher::new(emulator.client(), "op", None);
        publisher
            .publish(&event("Sync-1"), &regarding("a"))
            .await
            .expect("publish");
        let api = Api::<K8sEvent>::namespaced(emulator.client(), "ns");
        api.delete_collection(&Default::default(), &ListParams::default())
            .await
            .expect("delete");
        publisher
            .publish(&event("Sync-1"), &regarding("a"))
            .await
            .expect("publish after the Event expired");
        let events = api.list(&ListParams::default()).await.expect("list").items;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].series, None);
    }
}
