//! A policy as the watches show it: the type that keeps one that does not deserialize, the
//! names it goes by, and the Secrets its spec names.

use kube::ResourceExt;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::ObjectRef;

use crate::api::{IdentitySettingPolicy, IdentitySettingPolicySpec};
use crate::reconcile::claims::{PolicyName, policy_name};

/// A policy as watched: one that does not deserialize is kept as an error instead of stopping
/// the watch for every other policy.
pub type Guarded = DeserializeGuard<IdentitySettingPolicy>;

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
