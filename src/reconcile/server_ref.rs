//! Which server definition a policy's `spec.serverRef` stands for, and whether its namespace
//! may use it (pure). The controller looks the objects up; this module decides.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::api::{
    AllowedNamespaces, AllowedPartition, ClusterIdentityServer, IdentityServer, ServerKind,
    ServerRef,
};
use crate::identity::types::{SettingScope, guid_digits};
use crate::reconcile::validate::ReferencedServer;

/// Why a `serverRef` cannot be used. Both need the user: create the server, fix the
/// reference, or allow the namespace.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServerRefError {
    /// No server of that kind and name exists.
    #[error("{kind} {name:?} not found{}; create it or fix spec.serverRef", in_namespace(.namespace))]
    NotFound {
        /// `IdentityServer` or `ClusterIdentityServer`.
        kind: &'static str,
        /// The name looked for.
        name: String,
        /// Where an `IdentityServer` was looked for.
        namespace: Option<String>,
    },
    /// The server definitions of that kind could not be listed (yet): retried.
    #[error(
        "the {kind}s could not be listed yet: check that their CRD is installed (kubectl apply \
         -f crds/) and that the operator may list and watch them; retried"
    )]
    NotListed {
        /// `IdentityServer` or `ClusterIdentityServer`.
        kind: &'static str,
    },
    /// The `ClusterIdentityServer` allows the namespace, but not the organization (or its
    /// user-level settings) the policy manages.
    #[error(
        "ClusterIdentityServer {name:?} does not let namespace {namespace:?} manage {what} of \
         partition {partition:?}; add an entry for it to the server's spec.allowedPartitions \
         (userSettings: true for user-level settings), or use another server"
    )]
    ScopeNotAllowed {
        /// The server's name.
        name: String,
        /// The policy's namespace.
        namespace: String,
        /// The policy's partition.
        partition: String,
        /// "the organization settings" or "the user-level settings".
        what: &'static str,
    },
    /// The `ClusterIdentityServer` does not allow the policy's namespace.
    #[error(
        "ClusterIdentityServer {name:?} does not allow namespace {namespace:?}{detail}; add the \
         namespace to its spec.allowedNamespaces (names or selector), or use another server"
    )]
    NotAllowed {
        /// The server's name.
        name: String,
        /// The policy's namespace.
        namespace: String,
        /// More about why, when the selector itself is at fault.
        detail: String,
    },
}

/// Whether `allowed` (a `ClusterIdentityServer`'s `allowedPartitions`) lets a policy of
/// `namespace` manage `scope`: an entry for its partition (or `*`) that lists the namespace (or
/// no namespaces) and, for a user-level scope, allows user settings. Nothing listed: nothing.
pub fn scope_allowed(allowed: &[AllowedPartition], namespace: &str, scope: &SettingScope) -> bool {
    let same = |a: &str, b: &str| match (guid_digits(a), guid_digits(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a.eq_ignore_ascii_case(b),
    };
    let user_level = scope.user_id.as_deref().is_some_and(|u| !u.is_empty());
    allowed.iter().any(|entry| {
        (entry.partition_global_id == "*"
            || same(&entry.partition_global_id, &scope.partition_global_id))
            && entry
                .namespaces
                .as_ref()
                .is_none_or(|names| names.iter().any(|n| n == namespace))
            && (!user_level || entry.user_settings == Some(true))
    })
}

fn in_namespace(namespace: &Option<String>) -> String {
    namespace
        .as_ref()
        .map(|ns| format!(" in namespace {ns:?}"))
        .unwrap_or_default()
}

/// The server a reference found, of either kind.
#[derive(Clone, Copy, Debug)]
pub enum FoundServer<'a> {
    /// An `IdentityServer` in the policy's namespace.
    Namespaced(&'a IdentityServer),
    /// A `ClusterIdentityServer`.
    Cluster(&'a ClusterIdentityServer),
}

/// Turns what the lookup of `reference` found into the server the policy of `namespace` (with
/// `labels`, `None` when the namespace is not known) uses, or says why it cannot.
pub fn referenced<'a>(
    namespace: &str,
    scope: &SettingScope,
    reference: &'a ServerRef,
    found: Option<FoundServer<'a>>,
    labels: Option<&BTreeMap<String, String>>,
) -> Result<ReferencedServer<'a>, ServerRefError> {
    match found {
        Some(FoundServer::Namespaced(server)) if reference.kind == ServerKind::IdentityServer => {
            Ok(ReferencedServer {
                kind: ServerKind::IdentityServer,
                name: &reference.name,
                connection: &server.spec.connection,
                secrets_namespace: None,
                budget: server.spec.budget,
            })
        }
        Some(FoundServer::Cluster(server))
            if reference.kind == ServerKind::ClusterIdentityServer =>
        {
            match allows(&server.spec.allowed_namespaces, namespace, labels) {
                Ok(true) if !scope_allowed(&server.spec.allowed_partitions, namespace, scope) => {
                    Err(ServerRefError::ScopeNotAllowed {
                        name: reference.name.clone(),
                        namespace: namespace.to_owned(),
                        partition: scope.partition_global_id.clone(),
                        what: if scope.user_id.as_deref().is_some_and(|u| !u.is_empty()) {
                            "the user-level settings"
                        } else {
                            "the organization settings"
                        },
                    })
                }
                Ok(true) => Ok(ReferencedServer {
                    kind: ServerKind::ClusterIdentityServer,
                    name: &reference.name,
                    connection: &server.spec.connection,
                    secrets_namespace: Some(&server.spec.secret_namespace),
                    budget: server.spec.budget,
                }),
                Ok(false) => Err(ServerRefError::NotAllowed {
                    name: reference.name.clone(),
                    namespace: namespace.to_owned(),
                    detail: String::new(),
                }),
                Err(problem) => Err(ServerRefError::NotAllowed {
                    name: reference.name.clone(),
                    namespace: namespace.to_owned(),
                    detail: format!(" (its selector cannot be used: {problem})"),
                }),
            }
        }
        _ => Err(ServerRefError::NotFound {
            kind: reference.kind.as_str(),
            name: reference.name.clone(),
            namespace: (reference.kind == ServerKind::IdentityServer).then(|| namespace.to_owned()),
        }),
    }
}

/// Whether `allowed` lets namespace `namespace` (labelled `labels`) use the server; an error
/// when the selector is malformed (which allows nothing). A namespace whose labels are not
/// known (`None`: not, or no longer, in the operator's view) is allowed by name only: a
/// selector never matches it, not even one that matches an empty label set.
pub fn allows(
    allowed: &AllowedNamespaces,
    namespace: &str,
    labels: Option<&BTreeMap<String, String>>,
) -> Result<bool, String> {
    if allowed.names.iter().flatten().any(|n| n == namespace) {
        return Ok(true);
    }
    match (&allowed.selector, labels) {
        (Some(selector), Some(labels)) => selector_matches(selector, labels),
        (Some(_), None) => Err("the namespace's labels are not known to the operator".into()),
        (None, _) => Ok(false),
    }
}

/// Kubernetes label-selector semantics: every `matchLabels` pair and every `matchExpressions`
/// requirement must hold; an empty selector matches everything.
pub fn selector_matches(
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> Result<bool, String> {
    let pairs_hold = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let mut expressions_hold = true;
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        let holds = match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                return Err(format!("{} {} needs values", e.key, e.operator));
            }
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            other => {
                return Err(format!(
                    "operator {other:?} is not one of In, NotIn, Exists, DoesNotExist"
                ));
            }
        };
        expressions_hold &= holds;
    }
    Ok(pairs_hold && expressions_hold)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ClusterIdentityServerSpec, IdentityServerSpec, ServerBudget, ServerSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn cluster(allowed: AllowedNamespaces) -> ClusterIdentityServer {
        ClusterIdentityServer::new(
            "shared",
            ClusterIdentityServerSpec {
                connection: ServerSpec::for_tests("https://id.example/identity_", "admin"),
                secret_namespace: "identity-system".into(),
                allowed_namespaces: allowed,
                allowed_partitions: vec![AllowedPartition {
                    partition_global_id: "*".into(),
                    namespaces: None,
                    user_settings: None,
                }],
                budget: ServerBudget::default(),
            },
        )
    }

    /// The organization-level scope the tests' policies manage.
    fn org() -> SettingScope {
        SettingScope::organization("3fa85f64-5717-4562-b3fc-2c963f66afa6")
    }

    #[test]
    fn a_cluster_server_lets_namespaces_manage_only_the_partitions_it_lists() {
        let p1 = "3fa85f64-5717-4562-b3fc-2c963f66afa6";
        let allowed = vec![
            AllowedPartition {
                partition_global_id: p1.to_uppercase(),
                namespaces: Some(vec!["team-a".into()]),
                user_settings: None,
            },
            AllowedPartition {
                partition_global_id: "p2".into(),
                namespaces: None,
                user_settings: Some(true),
            },
        ];
        let org = |p: &str| SettingScope::organization(p);
        assert!(
            scope_allowed(&allowed, "team-a", &org(p1)),
            "GUIDs by value"
        );
        assert!(
            !scope_allowed(&allowed, "team-b", &org(p1)),
            "another namespace"
        );
        assert!(
            !scope_allowed(&allowed, "team-a", &SettingScope::user(p1, "u1")),
            "no user settings unless allowed"
        );
        assert!(scope_allowed(
            &allowed,
            "team-b",
            &SettingScope::user("P2", "u1")
        ));
        assert!(!scope_allowed(&allowed, "team-a", &org("p3")), "unlisted");
        assert!(
            !scope_allowed(&[], "team-a", &org(p1)),
            "nothing listed: nothing"
        );

        let mut server = cluster(AllowedNamespaces {
            names: Some(vec!["team-a".into()]),
            selector: None,
        });
        server.spec.allowed_partitions = allowed;
        let reference = cluster_ref();
        let refused = referenced(
            "team-a",
            &org("p3"),
            &reference,
            Some(FoundServer::Cluster(&server)),
            None,
        )
        .expect_err("p3 is not listed");
        assert!(
            refused.to_string().contains("spec.allowedPartitions"),
            "{refused}"
        );
    }

    fn cluster_ref() -> ServerRef {
        ServerRef {
            kind: ServerKind::ClusterIdentityServer,
            name: "shared".into(),
        }
    }

    #[test]
    fn a_cluster_server_serves_only_the_namespaces_it_names_or_selects() {
        let server = cluster(AllowedNamespaces {
            names: Some(vec!["team-a".into()]),
            selector: Some(LabelSelector {
                match_labels: Some(labels(&[("identity-admins", "true")]).into_iter().collect()),
                match_expressions: None,
            }),
        });
        let reference = cluster_ref();
        let found = Some(FoundServer::Cluster(&server));
        let by_name =
            referenced("team-a", &org(), &reference, found, Some(&labels(&[]))).expect("named");
        assert_eq!(by_name.secrets_namespace, Some("identity-system"));
        referenced(
            "team-b",
            &org(),
            &reference,
            found,
            Some(&labels(&[("identity-admins", "true")])),
        )
        .expect("selected by label");
        let refused = referenced(
            "team-c",
            &org(),
            &reference,
            found,
            Some(&labels(&[("identity-admins", "no")])),
        )
        .expect_err("neither named nor selected");
        assert_eq!(
            refused.to_string(),
            "ClusterIdentityServer \"shared\" does not allow namespace \"team-c\"; add the \
             namespace to its spec.allowedNamespaces (names or selector), or use another server"
        );
        let everyone = cluster(AllowedNamespaces {
            names: None,
            selector: Some(LabelSelector::default()),
        });
        referenced(
            "any",
            &org(),
            &reference,
            Some(FoundServer::Cluster(&everyone)),
            Some(&labels(&[])),
        )
        .expect("an empty selector allows every namespace");
        let unknown = referenced(
            "not-yet-seen",
            &org(),
            &reference,
            Some(FoundServer::Cluster(&everyone)),
            None,
        )
        .expect_err("a namespace the operator does not know is never selected");
        assert!(unknown.to_string().contains("not known"), "{unknown}");
        referenced("team-a", &org(), &reference, found, None)
            .expect("a namespace allowed by name needs no labels");
        let nobody = cluster(AllowedNamespaces::default());
        assert!(
            referenced(
                "any",
                &org(),
                &reference,
                Some(FoundServer::Cluster(&nobody)),
                Some(&labels(&[]))
            )
            .is_err(),
            "no names and no selector allow nothing"
        );
    }

    #[test]
    fn match_expressions_follow_kubernetes_and_a_bad_one_allows_nothing() {
        let expr = |op: &str, values: &[&str]| LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: op.into(),
                values: (!values.is_empty())
                    .then(|| values.iter().map(|v| (*v).to_owned()).collect()),
            }]),
        };
        let prod = labels(&[("tier", "prod")]);
        let none = labels(&[]);
        assert_eq!(
            selector_matches(&expr("In", &["prod", "stage"]), &prod),
            Ok(true)
        );
        assert_eq!(selector_matches(&expr("In", &["stage"]), &prod), Ok(false));
        assert_eq!(
            selector_matches(&expr("NotIn", &["stage"]), &none),
            Ok(true)
        );
        assert_eq!(selector_matches(&expr("Exists", &[]), &none), Ok(false));
        assert_eq!(
            selector_matches(&expr("DoesNotExist", &[]), &none),
            Ok(true)
        );
        assert!(selector_matches(&expr("In", &[]), &prod).is_err());
        assert!(selector_matches(&expr("Gt", &["1"]), &prod).is_err());
    }

    #[test]
    fn a_missing_server_or_one_of_the_other_kind_is_not_found_and_says_where() {
        let namespaced = IdentityServer::new(
            "shared",
            IdentityServerSpec {
                connection: ServerSpec::for_tests("https://id.example/identity_", "admin"),
                budget: ServerBudget::default(),
            },
        );
        let wanted = ServerRef {
            kind: ServerKind::IdentityServer,
            name: "shared".into(),
        };
        let found = referenced(
            "team-a",
            &org(),
            &wanted,
            Some(FoundServer::Namespaced(&namespaced)),
            Some(&labels(&[])),
        )
        .expect("found");
        assert_eq!(
            found.secrets_namespace, None,
            "its Secrets are the policy's namespace's"
        );
        let missing =
            referenced("team-a", &org(), &wanted, None, Some(&labels(&[]))).expect_err("missing");
        assert_eq!(
            missing.to_string(),
            "IdentityServer \"shared\" not found in namespace \"team-a\"; create it or fix spec.serverRef"
        );
        let server = cluster(AllowedNamespaces::default());
        assert!(matches!(
            referenced(
                "team-a",
                &org(),
                &wanted,
                Some(FoundServer::Cluster(&server)),
                Some(&labels(&[]))
            ),
            Err(ServerRefError::NotFound { .. })
        ));
    }
}
