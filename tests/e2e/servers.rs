//! Shared server definitions: `IdentityServer` (namespaced) and `ClusterIdentityServer`
//! (cluster-scoped), named by policies in `spec.serverRef`.

use std::collections::BTreeMap;
use std::time::Duration;

use identity_settings_operator::api::{
    AllowedNamespaces, ClusterIdentityServer, ClusterIdentityServerSpec, IdentityServer,
    IdentityServerSpec, IdentitySettingPolicy, ServerBudget, ServerKind, ServerRef,
};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(20);
/// The `IdentityServer`'s `requestsPerSecond` in the first scenario.
const RATE: u32 = 4;
/// Where the cluster server's Secret lives: a namespace no policy uses.
const SECRETS_NAMESPACE: &str = "team-c";
/// A namespace the cluster server does not allow at first.
const OUTSIDER: &str = "team-b";

/// A policy of `namespace` naming a server instead of writing one.
fn policy_using(
    world: &World,
    namespace: &str,
    name: &str,
    kind: ServerKind,
    server: &str,
    key: &str,
) -> IdentitySettingPolicy {
    let mut p = policy(world, name, "unused", vec![setting(key, "false")]);
    p.metadata.namespace = Some(namespace.into());
    p.spec.server = None;
    p.spec.server_ref = Some(Box::new(ServerRef {
        kind,
        name: server.into(),
    }));
    p
}

/// Waits until the policy `name` of `namespace` shows `reason`; returns it.
async fn wait_reason_in(
    world: &World,
    namespace: &str,
    name: &str,
    reason: &str,
) -> IdentitySettingPolicy {
    let api = world.policies_in(namespace);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let p = api.get(name).await.expect("get policy");
        if ready_reason(&p).as_deref() == Some(reason) {
            return p;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{namespace}/{name} never showed {reason}: {:?}\n{}",
            p.status,
            world.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates the `IdentityServer` "acme" (namespace `NS`) and the `ClusterIdentityServer`
/// "shared" (Secret in `NS`, allowing `NS`), both using the Secret `credentials`.
pub async fn create_both_kinds(
    world: &World,
    credentials: &str,
) -> (Api<IdentityServer>, Api<ClusterIdentityServer>) {
    let namespaced: Api<IdentityServer> = Api::namespaced(world.client.clone(), NS);
    let server = IdentityServer::new(
        "acme",
        IdentityServerSpec {
            connection: server_spec(world, credentials),
            budget: ServerBudget::default(),
        },
    );
    namespaced
        .create(&PostParams::default(), &server)
        .await
        .expect("create server");
    let cluster: Api<ClusterIdentityServer> = Api::all(world.client.clone());
    let server = ClusterIdentityServer::new(
        "shared",
        ClusterIdentityServerSpec {
            connection: server_spec(world, credentials),
            secret_namespace: NS.into(),
            allowed_namespaces: AllowedNamespaces {
                names: Some(vec![NS.into()]),
                selector: None,
            },
            allowed_partitions: vec![every_partition()],
            budget: ServerBudget::default(),
        },
    );
    cluster
        .create(&PostParams::default(), &server)
        .await
        .expect("create cluster server");
    (namespaced, cluster)
}

/// Waits until a server's `Ready` condition has `reason`; returns its status and message.
pub async fn wait_server<K>(
    world: &World,
    api: &Api<K>,
    name: &str,
    reason: &str,
) -> (String, String)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + serde::Serialize,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let server = serde_json::to_value(api.get(name).await.expect("get server")).expect("json");
        let ready = server["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Ready")
            .cloned()
            .unwrap_or_default();
        if ready["reason"] == reason {
            return (
                ready["status"].as_str().unwrap_or_default().to_owned(),
                ready["message"].as_str().unwrap_or_default().to_owned(),
            );
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "server {name} never showed {reason}: {}\n{}",
            server["status"],
            world.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sets a namespace's labels (creating the Namespace object where the backend lacks it).
async fn label_namespace(world: &World, name: &str, labels: &[(&str, &str)]) {
    let api: Api<Namespace> = Api::all(world.client.clone());
    if api.get_opt(name).await.expect("get namespace").is_none() {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        api.create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
    }
    let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": labels}})),
    )
    .await
    .expect("label namespace");
}

/// An `IdentityServer` is checked (its token endpoint answered), its policies write through
/// it, and changing it re-reconciles them at once: credentials that stop working show on the
/// server and on its policy, and a policy naming a server that does not exist says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_server_is_checked_serves_its_policies_and_a_change_reaches_them_at_once() {
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    world
        .put_secret(
            "revoked",
            &[("clientId", "operator"), ("clientSecret", "wrong")],
        )
        .await;
    let servers: Api<IdentityServer> = Api::namespaced(world.client.clone(), NS);
    let server = IdentityServer::new(
        "acme",
        IdentityServerSpec {
            connection: server_spec(&world, "admin"),
            // The server's own budget, in place of the operator's (no limit by default).
            budget: ServerBudget {
                requests_per_second: Some(RATE),
                max_in_flight: Some(1),
            },
        },
    );
    servers
        .create(&PostParams::default(), &server)
        .await
        .expect("create server");
    world.spawn_operator(&[]).await;

    let (status, _) = wait_server(&world, &servers, "acme", "TokenIssued").await;
    assert_eq!(status, "True");
    let tokens_after_check = world
        .sim
        .counters()
        .count(identity_simulator::Endpoint::Token, "POST");
    let p = policy_using(
        &world,
        NS,
        "lockout",
        ServerKind::IdentityServer,
        "acme",
        "Auth.UserLockOut.IsEnabled",
    );
    world.create_policy(&p).await;
    wait_reason_in(&world, NS, "lockout", "Applied").await;
    assert_eq!(
        world.stored_value("Auth.UserLockOut.IsEnabled").as_deref(),
        Some("false")
    );
    assert_eq!(
        world
            .sim
            .counters()
            .count(identity_simulator::Endpoint::Token, "POST"),
        tokens_after_check,
        "the policy used the token the server check got"
    );

    // Five more policies at once: the server's own budget paces them all.
    world.sim.load().reset();
    let keys = [
        "Auth.Password.DefaultExpirationDays",
        "Auth.Password.ShouldChangePasswordAfterFirstLogin",
        "Auth.Password.PasswordHistoryCount",
        "Auth.UserLockOut.DefaultLockoutTimeSpan",
        "Auth.UserLockOut.MaxFailedAccessAttemptsBeforeLockout",
    ];
    for (i, key) in keys.iter().enumerate() {
        let mut p = policy_using(
            &world,
            NS,
            &format!("paced-{i}"),
            ServerKind::IdentityServer,
            "acme",
            key,
        );
        p.spec.settings = vec![setting(key, "3")];
        world.create_policy(&p).await;
    }
    for i in 0..keys.len() {
        wait_reason_in(&world, NS, &format!("paced-{i}"), "Applied").await;
    }
    let load = world.sim.load().report();
    assert!(load.requests >= 10, "a GET and a PUT per policy: {load:?}");
    assert_eq!(load.peak_in_flight, 1, "maxInFlight 1: {load:?}");
    assert!(
        load.peak_per_second <= u64::from(RATE) + 1,
        "requestsPerSecond {RATE} (one more from arrival jitter): {load:?}"
    );

    // A policy naming a server that does not exist says which, and where.
    let orphan = policy_using(
        &world,
        NS,
        "orphan",
        ServerKind::IdentityServer,
        "nope",
        "Auth.Password.DefaultExpirationDays",
    );
    world.create_policy(&orphan).await;
    let orphan = wait_reason_in(&world, NS, "orphan", "ServerNotFound").await;
    assert!(
        ready_message(&orphan).contains("IdentityServer \"nope\" not found in namespace"),
        "{}",
        ready_message(&orphan)
    );

    // Credentials that stop working: the server says so, and so does its policy, without
    // waiting for the policy's resync (10 minutes by default).
    servers
        .patch(
            "acme",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"credentialsSecretRef": {"name": "revoked"}}})),
        )
        .await
        .expect("patch server");
    let (status, message) = wait_server(&world, &servers, "acme", "CredentialsRejected").await;
    assert_eq!(status, "False");
    wait_reason_in(&world, NS, "lockout", "CredentialsRejected").await;
    let logs = world.logs();
    for secret in ["operator-secret", "wrong"] {
        assert!(!message.contains(secret), "a secret in the server's status");
        assert!(
            !logs.contains(&format!("\"{secret}\"")) && !logs.contains(&format!("={secret}")),
            "a secret in the logs"
        );
    }
}

/// A `ClusterIdentityServer` reads its Secret from its own namespace and serves only the
/// namespaces it allows — by name, or by label — so a namespace cannot borrow another team's
/// credentials; allowing a namespace later takes effect at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_identity_server_serves_only_the_namespaces_it_allows() {
    let mut world = World::start().await;
    world
        .put_secret_in(
            SECRETS_NAMESPACE,
            "identity-admin",
            &[
                ("clientId", "operator"),
                ("clientSecret", "operator-secret"),
            ],
        )
        .await;
    label_namespace(&world, OUTSIDER, &[]).await;
    let servers: Api<ClusterIdentityServer> = Api::all(world.client.clone());
    let server = ClusterIdentityServer::new(
        "shared",
        ClusterIdentityServerSpec {
            connection: server_spec(&world, "identity-admin"),
            secret_namespace: SECRETS_NAMESPACE.into(),
            allowed_namespaces: AllowedNamespaces {
                names: Some(vec![NS.into()]),
                selector: Some(LabelSelector {
                    match_labels: Some(
                        [("identity.example/admins".to_owned(), "true".to_owned())].into(),
                    ),
                    match_expressions: None,
                }),
            },
            allowed_partitions: vec![every_partition()],
            budget: ServerBudget::default(),
        },
    );
    servers
        .create(&PostParams::default(), &server)
        .await
        .expect("create cluster server");
    // Watching the Secret's namespace too: its Secret is then read once per version.
    world
        .spawn_operator_watching(Some(&format!("{NS},{OUTSIDER},{SECRETS_NAMESPACE}")), &[])
        .await;
    let (status, _) = wait_server(&world, &servers, "shared", "TokenIssued").await;
    assert_eq!(status, "True");

    let allowed = policy_using(
        &world,
        NS,
        "lockout",
        ServerKind::ClusterIdentityServer,
        "shared",
        "Auth.UserLockOut.IsEnabled",
    );
    world.create_policy(&allowed).await;
    wait_reason_in(&world, NS, "lockout", "Applied").await;
    assert_eq!(
        world.stored_value("Auth.UserLockOut.IsEnabled").as_deref(),
        Some("false")
    );

    let mut borrower = policy_using(
        &world,
        OUTSIDER,
        "borrow",
        ServerKind::ClusterIdentityServer,
        "shared",
        "Auth.Password.DefaultExpirationDays",
    );
    borrower.spec.settings = vec![setting("Auth.Password.DefaultExpirationDays", "7")];
    world.create_policy(&borrower).await;
    let refused = wait_reason_in(&world, OUTSIDER, "borrow", "ServerNotAllowed").await;
    assert!(
        ready_message(&refused).contains(&format!(
            "ClusterIdentityServer \"shared\" does not allow namespace \"{OUTSIDER}\""
        )),
        "{}",
        ready_message(&refused)
    );
    assert_ne!(
        world
            .stored_value("Auth.Password.DefaultExpirationDays")
            .as_deref(),
        Some("7"),
        "a namespace that is not allowed wrote with the shared credentials"
    );

    // The namespace's owners get it labelled: the selector now allows it, at once.
    label_namespace(&world, OUTSIDER, &[("identity.example/admins", "true")]).await;
    wait_reason_in(&world, OUTSIDER, "borrow", "Applied").await;
    assert_eq!(
        world
            .stored_value("Auth.Password.DefaultExpirationDays")
            .as_deref(),
        Some("7")
    );
}

/// An `allowedPartitions` entry for the tests' partition, for every allowed namespace.
fn every_partition() -> identity_settings_operator::api::AllowedPartition {
    identity_settings_operator::api::AllowedPartition {
        partition_global_id: PARTITION.into(),
        namespaces: None,
        user_settings: None,
    }
}
