//! The Helm chart's RBAC, checked against what the operator really asked of the Kubernetes API.
//!
//! The rules live in `charts/identity-settings-operator/files/rbac-rules.yaml`, the one file
//! the chart's ClusterRole, Roles and leader-election Role are rendered from. Every end-to-end
//! world checks, when it ends, that each request the operator made (told apart by its
//! User-Agent) is allowed by those rules in the namespace it was made in; the test here runs the
//! operator through everything it does and checks that every verb granted was used.

use std::collections::BTreeSet;
use std::time::Duration;

use identity_settings_operator::operator::USER_AGENT;
use kube_emulator::RecordedRequest;
use serde::Deserialize;

use crate::harness::*;

/// One RBAC PolicyRule, as far as the chart uses them (no resourceNames, no nonResourceURLs).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub verbs: Vec<String>,
}

/// The chart's rules file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChartRules {
    /// Granted in every watched namespace (cluster-wide when all are watched).
    pub watched: Vec<Rule>,
    /// Granted cluster-wide always (cluster-scoped resources).
    pub cluster: Vec<Rule>,
    /// Granted in the operator's own namespace, where its Lease lives.
    pub leader_election: Vec<Rule>,
}

/// Reads the chart's rules file.
pub fn chart_rules() -> ChartRules {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/charts/identity-settings-operator/files/rbac-rules.yaml"
    );
    let text = std::fs::read_to_string(path).expect("the chart's RBAC rules file exists");
    serde_norway::from_str(&text).expect("the chart's RBAC rules file parses")
}

/// `resource` or `resource/subresource`, as RBAC names it.
fn rbac_resource(r: &RecordedRequest) -> String {
    match &r.subresource {
        Some(sub) => format!("{}/{sub}", r.resource),
        None => r.resource.clone(),
    }
}

fn allows(rules: &[Rule], r: &RecordedRequest) -> bool {
    let resource = rbac_resource(r);
    rules.iter().any(|rule| {
        rule.api_groups.contains(&r.group)
            && rule.resources.contains(&resource)
            && rule.verbs.contains(&r.verb)
    })
}

/// The requests the operator made (not the test's own set-up requests).
pub fn operator_requests(requests: Vec<RecordedRequest>) -> Vec<RecordedRequest> {
    requests
        .into_iter()
        .filter(|r| r.user_agent.as_deref() == Some(USER_AGENT))
        .collect()
}

/// Why `r` would be forbidden by the chart's RBAC, if it would.
///
/// `watched`: the namespaces the operators were told to watch (`None`: all, so the chart grants
/// the `watched` rules cluster-wide); `lease_namespace`: where the leader-election Role is.
pub fn forbidden(
    rules: &ChartRules,
    r: &RecordedRequest,
    watched: Option<&BTreeSet<String>>,
    lease_namespace: &str,
) -> Option<String> {
    if r.resource.is_empty() {
        // Discovery paths are allowed to every authenticated user by the built-in
        // system:discovery ClusterRole; nothing for the chart to grant.
        return None;
    }
    let what = format!(
        "{} {}/{} in namespace {:?}",
        r.verb,
        if r.group.is_empty() { "core" } else { &r.group },
        rbac_resource(r),
        r.namespace
    );
    if allows(&rules.leader_election, r) {
        return (r.namespace.as_deref() != Some(lease_namespace))
            .then(|| format!("{what}: the leader-election Role is only in {lease_namespace}"));
    }
    if allows(&rules.cluster, r) {
        return r.namespace.as_ref().map(|ns| {
            format!("{what}: the cluster rules are for cluster-scoped requests, not namespace {ns}")
        });
    }
    if !allows(&rules.watched, r) {
        return Some(format!("{what}: no rule grants it"));
    }
    match (watched, r.namespace.as_deref()) {
        (None, _) => None,
        (Some(set), Some(ns)) if set.contains(ns) => None,
        (Some(set), _) => Some(format!(
            "{what}: with watchNamespaces {set:?} the chart grants it only in those namespaces"
        )),
    }
}

/// The (group, resource, verb) triples the rules grant.
fn granted(rules: &ChartRules) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in rules
        .watched
        .iter()
        .chain(&rules.cluster)
        .chain(&rules.leader_election)
    {
        for group in &rule.api_groups {
            for resource in &rule.resources {
                for verb in &rule.verbs {
                    out.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    out
}

/// Runs the operator through all it does — leader election, a new policy, a Secret turned bad
/// twice (so a Warning repeats and its Event is patched), recovery, deletion, a clean shutdown —
/// then checks that the chart's rules allowed every request and that each grant was used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charts_rbac_allows_every_request_and_grants_nothing_unused() {
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    // Restore on deletion: the restore point is saved (a Secret patch) and written back.
    let mut p = policy(
        &world,
        "password",
        "admin",
        vec![setting("Auth.UserLockOut.IsEnabled", "false")],
    );
    p.spec.deletion_policy = Some(identity_settings_operator::api::DeletionPolicy::Restore);
    world.create_policy(&p).await;
    // Server definitions of both kinds: watched, and their status written by the check.
    let (namespaced, cluster) = crate::servers::create_both_kinds(&world, "admin").await;
    world.spawn_operator(&["--leader-election"]).await;
    wait_ready(&world).await;
    crate::servers::wait_server(&world, &namespaced, "acme", "TokenIssued").await;
    crate::servers::wait_server(&world, &cluster, "shared", "TokenIssued").await;
    // A second key: its value is added to the existing restore point (a Secret patch).
    let two_keys = serde_json::json!({"spec": {"settings": [
        {"key": "Auth.UserLockOut.IsEnabled", "value": "false"},
        {"key": "Email.Smtp.Port", "value": "2525"},
    ]}});
    world
        .policies()
        .patch(
            "password",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&two_keys),
        )
        .await
        .expect("add a key");
    world
        .wait_policy(
            "password",
            "the second key applied",
            Duration::from_secs(20),
            |p| {
                p.status.as_ref().and_then(|s| s.observed_generation) == p.metadata.generation
                    && ready_condition(p).is_some_and(|c| c.status == "True")
            },
        )
        .await;
    for _ in 0..2 {
        world
            .put_secret(
                "admin",
                &[("clientId", "operator"), ("clientSecret", "not-it")],
            )
            .await;
        world
            .wait_reason("password", "CredentialsRejected", Duration::from_secs(20))
            .await;
        world.put_good_credentials("admin").await;
        wait_ready(&world).await;
    }
    world
        .policies()
        .delete("password", &Default::default())
        .await
        .expect("delete policy");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !matches!(world.policies().get_opt("password").await, Ok(None)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the finalizer was never removed\n{}",
            world.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    world.operator(0).terminate();

    // On the real API server its authorizer allowed every request the scenario needed; which
    // grants went unused only the emulator's request log can tell.
    let crate::harness::Backend::Emulator(kube) = &world.kube else {
        return;
    };
    let rules = chart_rules();
    let requests = operator_requests(kube.requests());
    let used: BTreeSet<(String, String, String)> = requests
        .iter()
        .filter(|r| !r.resource.is_empty())
        .map(|r| (r.group.clone(), rbac_resource(r), r.verb.clone()))
        .collect();
    let unused: Vec<_> = granted(&rules).difference(&used).cloned().collect();
    assert!(
        unused.is_empty(),
        "the chart grants {unused:?} but the operator never used them; used: {used:?}"
    );
    // The world's own end-of-test check asserts that each request was allowed.
}

async fn wait_ready(world: &World) {
    world
        .wait_policy("password", "Ready=True", Duration::from_secs(20), |p| {
            ready_condition(p).is_some_and(|c| c.status == "True")
        })
        .await;
}
