//! A policy as the watches show it: the type that keeps one that does not deserialize, the
//! names it goes by, and the Secrets its spec names.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::error_boundary::InvalidObject;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde::de::{Deserialize, Deserializer, Error as _};
use serde_json::Value;

use crate::api::{IdentitySettingPolicy, IdentitySettingPolicySpec};
use crate::reconcile::claims::{PolicyName, policy_name};

/// kubectl's copy of the last applied manifest, an annotation as large as the policy itself.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A policy as watched: one that does not deserialize is kept as an error (with its metadata)
/// instead of stopping the watch for every other policy.
///
/// kube's `DeserializeGuard` does the same by parsing each object into a tree, cloning the
/// tree and building the policy from the clone, managed fields included, which the cache then
/// drops: at thousands of policies a sixth of the operator's CPU went there. This parses each
/// object once into a tree, takes out what the operator never reads (managed fields, kubectl's
/// copy of the manifest: most of an object's size) and moves the rest into the policy.
#[derive(Clone, Debug)]
pub struct Guarded(pub Result<IdentitySettingPolicy, InvalidObject>);

impl Resource for Guarded {
    type DynamicType = ();
    type Scope = <IdentitySettingPolicy as Resource>::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        IdentitySettingPolicy::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        IdentitySettingPolicy::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        IdentitySettingPolicy::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        IdentitySettingPolicy::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        self.0
            .as_ref()
            .map_or_else(|e| &e.metadata, |p| &p.metadata)
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        self.0
            .as_mut()
            .map_or_else(|e| &mut e.metadata, |p| &mut p.metadata)
    }
}

impl<'de> Deserialize<'de> for Guarded {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut object = Value::deserialize(deserializer)?;
        // The metadata on its own first: an object whose metadata does not parse is an error
        // of the whole list or event, as with kube's guard; one whose spec does not is kept.
        let mut meta = object
            .get_mut("metadata")
            .map(|m| std::mem::replace(m, Value::Object(Default::default())))
            .unwrap_or(Value::Null);
        if let Some(fields) = meta.as_object_mut() {
            fields.remove("managedFields");
            if let Some(annotations) = fields.get_mut("annotations").and_then(Value::as_object_mut)
            {
                annotations.remove(LAST_APPLIED);
            }
        }
        let metadata = if meta.is_null() {
            ObjectMeta::default()
        } else {
            ObjectMeta::deserialize(meta).map_err(D::Error::custom)?
        };
        Ok(Self(match IdentitySettingPolicy::deserialize(object) {
            Ok(mut policy) => {
                policy.metadata = metadata;
                Ok(policy)
            }
            Err(error) => Err(InvalidObject {
                error: error.to_string(),
                metadata,
            }),
        }))
    }
}

/// The policy's reference as the context keys it.
pub fn policy_ref(guard: &Guarded) -> ObjectRef<IdentitySettingPolicy> {
    ObjectRef::new(&guard.name_any()).within(&guard.namespace().unwrap_or_default())
}

/// The controller's reference to the policy the index calls `namespace/name` (what its
/// wake-ups and nudges send).
pub fn controller_ref(name: &str) -> ObjectRef<Guarded> {
    let (namespace, name) = name.split_once('/').unwrap_or(("", name));
    ObjectRef::new(name).within(namespace)
}

/// The policy's `namespace/name`, as the index and the claims key it.
pub fn name_of(guard: &Guarded) -> PolicyName {
    policy_name(&guard.namespace().unwrap_or_default(), &guard.name_any())
}

/// Every Secret name a spec mentions, valid or not (those of a referenced server are the
/// server's: see [`super::servers::ServerCatalog::using_secret`]).
pub fn secret_names(spec: &IdentitySettingPolicySpec) -> impl Iterator<Item = &str> {
    let server = spec.server.as_ref();
    server
        .map(|s| s.credentials_secret_ref.name.as_str())
        .into_iter()
        .chain(
            server
                .and_then(|s| s.ca_secret_ref.as_ref())
                .map(|r| r.name.as_str()),
        )
        .chain(
            spec.settings
                .iter()
                .filter_map(|s| s.value_from.as_ref())
                .map(|v| v.secret_key_ref.name.as_str()),
        )
}

/// A policy for unit tests: namespace `ns`, inline server `https://x/identity_` with the
/// credentials Secret `creds`, a literal setting `A`, and `Email.Smtp.Password` from the Secret
/// `value_secret` when given.
#[cfg(test)]
pub(crate) fn test_policy(
    ns: &str,
    name: &str,
    creds: &str,
    value_secret: Option<&str>,
) -> IdentitySettingPolicy {
    use crate::api::{SecretKeyRef, SettingSpec, ValueSource};
    let mut settings = vec![SettingSpec {
        key: "A".into(),
        value: Some("1".into()),
        value_from: None,
    }];
    if let Some(secret) = value_secret {
        settings.push(SettingSpec {
            key: "Email.Smtp.Password".into(),
            value: None,
            value_from: Some(Box::new(ValueSource {
                secret_key_ref: SecretKeyRef {
                    name: secret.into(),
                    key: "pw".into(),
                },
            })),
        });
    }
    let spec = IdentitySettingPolicySpec::for_tests("https://x/identity_", creds, settings);
    let mut p = IdentitySettingPolicy::new(name, spec);
    p.metadata.namespace = Some(ns.into());
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::WatchEvent;
    use serde_json::json;

    fn object(settings: Value) -> Value {
        json!({
            "apiVersion": "identitysettings.dev/v1alpha1",
            "kind": "IdentitySettingPolicy",
            "metadata": {
                "name": "p",
                "namespace": "team-a",
                "resourceVersion": "7",
                "generation": 2,
                "annotations": {LAST_APPLIED: "{\"a\": \"copy\"}", "team": "identity"},
                "managedFields": [{
                    "manager": "kubectl", "operation": "Apply", "apiVersion": "v1",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:settings": {}}}
                }],
            },
            "spec": {
                "server": {"url": "https://id.example/identity_",
                           "credentialsSecretRef": {"name": "creds"}},
                "partitionGlobalId": "00000000-0000-0000-0000-000000000001",
                "settings": settings,
            },
            "status": {"observedGeneration": 1, "settingIds": {"A": 10}},
        })
    }

    #[test]
    fn a_watched_policy_keeps_what_the_operator_reads_and_drops_the_rest() {
        let line =
            json!({"type": "MODIFIED", "object": object(json!([{"key": "A", "value": "1"}]))});
        let event: WatchEvent<Guarded> = serde_json::from_str(&line.to_string()).expect("an event");
        let WatchEvent::Modified(guard) = event else {
            panic!("not a modification")
        };
        let policy = guard.0.expect("a valid policy");
        assert_eq!(policy.metadata.name.as_deref(), Some("p"));
        assert_eq!(policy.metadata.namespace.as_deref(), Some("team-a"));
        assert_eq!(policy.metadata.generation, Some(2));
        assert_eq!(policy.metadata.managed_fields, None);
        let annotations = policy.metadata.annotations.expect("annotations");
        assert_eq!(annotations.keys().collect::<Vec<_>>(), ["team"]);
        assert_eq!(policy.spec.settings[0].key, "A");
        let status = policy.status.expect("status");
        assert_eq!(status.observed_generation, Some(1));
    }

    #[test]
    fn a_policy_that_does_not_match_the_schema_is_kept_with_its_name() {
        // Also with the event's fields in the other order, where serde buffers the object.
        let line = json!({"object": object(json!("not-a-list")), "type": "ADDED"});
        let text = serde_json::to_string(&line).expect("json");
        let event: WatchEvent<Guarded> = serde_json::from_str(&text).expect("an event");
        let WatchEvent::Added(guard) = event else {
            panic!("not an addition")
        };
        assert_eq!(guard.name_any(), "p");
        assert_eq!(guard.namespace().as_deref(), Some("team-a"));
        let invalid = guard.0.expect_err("invalid");
        assert!(invalid.error.contains("invalid type"), "{}", invalid.error);
        assert_eq!(invalid.metadata.managed_fields, None);
    }

    #[test]
    fn one_invalid_policy_does_not_fail_the_list() {
        let list = json!({
            "apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "9"},
            "items": [object(json!([{"key": "A", "value": "1"}])), object(json!(3))],
        });
        let listed: kube::core::ObjectList<Guarded> = serde_json::from_value(list).expect("a list");
        let valid: Vec<bool> = listed.items.iter().map(|g| g.0.is_ok()).collect();
        assert_eq!(valid, [true, false]);
    }

    /// The policy cache holds one allocation of this struct per policy (in kube's `Arc`). With
    /// the parts of a policy that are often absent boxed (the inline server or the reference,
    /// the restore point) it fits jemalloc's 768-byte size class, where it took the 1 024-byte
    /// one: 2.5 MB less at 10 000 policies.
    #[test]
    fn the_cached_policy_fits_a_small_allocation() {
        let guard = std::mem::size_of::<Guarded>();
        let arc_counts = 2 * std::mem::size_of::<usize>();
        assert!(guard + arc_counts <= 768, "{guard} + {arc_counts} bytes");
    }

    #[test]
    fn metadata_that_does_not_parse_fails_the_object() {
        let mut broken = object(json!([]));
        broken["metadata"]["name"] = json!(5);
        assert!(serde_json::from_value::<Guarded>(broken).is_err());
    }
}
