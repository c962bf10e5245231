//! The hostile suite (issue 19): what a tenant who can create policies in one namespace, or an
//! identity service that misbehaves, tries — and what the operator must still do. Each test
//! names the item it guards; each runs on the emulator (`cargo test`) and, through the same
//! harness, on the real API server (`tests/control-plane/test`).

use std::time::Duration;

use crate::harness::*;
use identity_settings_operator::api::{DeletionPolicy, IdentitySettingPolicy, SyncMode};
use identity_settings_operator::identity::types::SettingScope;
use identity_simulator::Endpoint;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

const SECS_20: Duration = Duration::from_secs(20);

/// Item 1: a 429 whose `Retry-After` is the largest number a header can carry does not end the
/// process; the policy says it is throttled, and the operator keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_retry_after_is_clamped_and_the_operator_lives_on() {
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    world
        .create_policy(&policy(
            &world,
            "tarpit",
            "admin",
            vec![setting("Custom.Hostile.RetryAfter", "1")],
        ))
        .await;
    world
        .sim
        .faults()
        .fail_next(3, 429, Some(Duration::from_secs(u64::MAX)));
    let operator = world.spawn_operator(&[]).await;
    let throttled = world.wait_reason("tarpit", "Throttled", SECS_20).await;
    assert!(
        ready_message(&throttled).contains("429"),
        "{}",
        ready_message(&throttled)
    );
    // Past the moment the pause was computed and a requeue scheduled: still running.
    assert_eq!(
        world
            .operator(operator)
            .wait_exit(Duration::from_secs(3))
            .await,
        None,
        "the operator exited after Retry-After: u64::MAX:\n{}",
        world.logs()
    );
    // And it still answers: a change to the policy is seen (the pause is on the server's
    // budget, not on the process).
    world
        .policies()
        .patch(
            "tarpit",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"settings": [{"key": "Custom.Hostile.RetryAfter", "value": "2"}]}})),
        )
        .await
        .expect("patch");
    world
        .wait_policy("tarpit", "the new generation observed", SECS_20, |p| {
            p.status.as_ref().and_then(|s| s.observed_generation) == p.metadata.generation
        })
        .await;
    let (status, _) = world.operator(operator).http_get("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(
        world.sim.counters().count(Endpoint::Setting, "PUT"),
        0,
        "nothing written while the server asked to wait"
    );
}

/// Item 2: a policy stored past the schema's bounds (a 300 000-character partition and 256
/// long keys, as a server without the bounds, or an older CRD, would hold it) is refused with
/// `InvalidSpec` naming the field, and costs the operator no memory in proportion to its size.
/// (On the real API server the bounds themselves are tested in `real_apiserver/admission.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_policy_is_refused_without_exhausting_memory() {
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    world
        .create_policy(&policy(
            &world,
            "small",
            "admin",
            vec![setting("Custom.Hostile.Small", "1")],
        ))
        .await;
    let operator = world.spawn_operator(&[]).await;
    world.wait_reason("small", "Applied", SECS_20).await;
    let before = world.operator(operator).peak_rss_kib();
    let settings: Vec<_> = (0..256)
        .map(|i| json!({"key": format!("Custom.{}.K{i}", "Long".repeat(30)), "value": "1"}))
        .collect();
    let mut huge = serde_json::to_value(policy(&world, "huge", "admin", vec![])).expect("json");
    huge["spec"]["partitionGlobalId"] = json!("p".repeat(300_000));
    huge["spec"]["settings"] = json!(settings);
    world.store_unvalidated(&huge).await;
    const TOO_LONG: &str = "spec.partitionGlobalId: 300000 characters, at most 128";
    let message = if on_real_apiserver() {
        // The object is stored with the schema loosened for a moment; once it is back, the real
        // server refuses the policy's status write (its key-uniqueness rule runs over its cost
        // limit on these keys, and that is not ratcheted), so the Event is what tells.
        world
            .wait_event("InvalidSpec", TOO_LONG, Duration::from_secs(60))
            .await
    } else {
        let refused = world.wait_reason("huge", "InvalidSpec", SECS_20).await;
        ready_message(&refused)
    };
    assert!(message.contains(TOO_LONG), "{message}");
    assert!(message.len() < 2048, "a {}-byte message", message.len());
    let grown_mib = world
        .operator(operator)
        .peak_rss_kib()
        .saturating_sub(before)
        / 1024;
    assert!(
        grown_mib < 16,
        "the operator's peak RSS grew by {grown_mib} MiB for one refused policy"
    );
}

/// Item 4: policies sharing a wrong password do not each ask for a token at every resync (with
/// the Password flow that locks the admin account out): one failure per credential set is
/// remembered, with backoff, until the Secret changes — and then the new credentials are tried
/// at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_shared_by_many_policies_cause_no_login_storm() {
    let mut world = World::start().await;
    world
        .put_secret(
            "admin",
            &[("clientId", "operator"), ("clientSecret", "wrong-secret")],
        )
        .await;
    let names: Vec<String> = (0..6).map(|i| format!("storm-{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        world
            .create_policy(&policy(
                &world,
                name,
                "admin",
                vec![setting(&format!("Custom.Hostile.Storm{i}"), "1")],
            ))
            .await;
    }
    world.spawn_operator(&[]).await;
    for name in &names {
        world
            .wait_reason(name, "CredentialsRejected", SECS_20)
            .await;
    }
    let tokens = || world.sim.counters().count(Endpoint::Token, "POST");
    let at_start = tokens();
    // Two resync intervals (10 s) of six policies.
    tokio::time::sleep(Duration::from_secs(22)).await;
    let during = tokens() - at_start;
    assert!(
        at_start <= 2 && during == 0,
        "{at_start} token requests to report the failure, then {during} in two resyncs \
         of six policies sharing rejected credentials"
    );
    // Fixing the Secret is a new credential set: tried at once.
    world.put_good_credentials("admin").await;
    for name in &names {
        world.wait_reason(name, "Applied", SECS_20).await;
    }
}

/// Item 6: a policy that can never write — its Secret does not exist, or it only observes —
/// owns no key, however old it is: a valid newer policy in another namespace writes its value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_that_cannot_write_squats_no_key() {
    const ATTACKER: &str = "team-b";
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    let key = "Custom.Hostile.Squatted";
    let in_attacker = |name: &str, credentials: &str, mode: Option<SyncMode>| {
        let mut p = policy(&world, name, credentials, vec![setting(key, "attacker")]);
        p.metadata.namespace = Some(ATTACKER.into());
        p.spec.mode = mode;
        p
    };
    world
        .put_secret_in(
            ATTACKER,
            "admin",
            &[
                ("clientId", "operator"),
                ("clientSecret", "operator-secret"),
            ],
        )
        .await;
    world
        .create_policy(&in_attacker("no-secret", "does-not-exist", None))
        .await;
    world
        .create_policy(&in_attacker("observer", "admin", Some(SyncMode::Observe)))
        .await;
    world
        .create_policy(&in_attacker("planner", "admin", Some(SyncMode::Plan)))
        .await;
    world
        .spawn_operator_watching(Some(&format!("{NS},{ATTACKER}")), &[])
        .await;
    let squatters = world.policies_in(ATTACKER);
    for (name, reason) in [
        ("no-secret", "SecretNotFound"),
        ("observer", "Drifted"),
        ("planner", "ChangesPlanned"),
    ] {
        wait_reason_in(&squatters, name, reason).await;
    }
    // Created after every squatter, so younger than all of them.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    world
        .create_policy(&policy(
            &world,
            "victim",
            "admin",
            vec![setting(key, "victim")],
        ))
        .await;
    let victim = world.wait_reason("victim", "Applied", SECS_20).await;
    assert!(ready_message(&victim).len() < 1024);
    assert_eq!(world.stored_value(key).as_deref(), Some("victim"));
}

/// Waits up to 20 s for a policy of `api`'s namespace to show `reason`.
async fn wait_reason_in(api: &kube::Api<IdentitySettingPolicy>, name: &str, reason: &str) {
    let deadline = tokio::time::Instant::now() + SECS_20;
    loop {
        let found = api.get_opt(name).await.ok().flatten();
        if found.as_ref().and_then(ready_reason).as_deref() == Some(reason) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}: waited for {reason}, status: {:?}",
            found.and_then(|p| p.status)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Item 12: a policy with the longest name Kubernetes allows still gets its Events (an Event's
/// name is built from the policy's and must fit 253 characters too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_with_the_longest_name_gets_its_events() {
    let mut world = World::start().await;
    let label = "l".repeat(62);
    let name = [label.as_str(); 4].join(".") + "-x";
    assert_eq!(name.len(), 253);
    world
        .create_policy(&policy(
            &world,
            &name,
            "no-such-secret",
            vec![setting("Custom.Hostile.LongName", "1")],
        ))
        .await;
    world.spawn_operator(&[]).await;
    world.wait_reason(&name, "SecretNotFound", SECS_20).await;
    let events: kube::Api<k8s_openapi::api::events::v1::Event> =
        kube::Api::namespaced(world.client.clone(), NS);
    let deadline = tokio::time::Instant::now() + SECS_20;
    loop {
        let listed = events
            .list(&Default::default())
            .await
            .expect("events")
            .items;
        if listed.iter().any(|e| {
            e.reason.as_deref() == Some("SecretNotFound")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name.as_str())
        }) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no Event for the policy; the operator said:\n{}",
            world.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Item 13: `--allow-insecure-http` lets plain http reach loopback servers only; a policy
/// naming any other http URL is refused, and no credentials are sent to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_allowed_to_loopback_only() {
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    let mut remote = policy(
        &world,
        "remote-http",
        "admin",
        vec![setting("Custom.Hostile.Http", "1")],
    );
    if let Some(server) = remote.spec.server.as_mut() {
        server.url = "http://192.0.2.10/identity_".into();
    }
    world.create_policy(&remote).await;
    world
        .create_policy(&policy(
            &world,
            "loopback-http",
            "admin",
            vec![setting("Custom.Hostile.Loopback", "1")],
        ))
        .await;
    world.spawn_operator(&[]).await;
    world.wait_reason("loopback-http", "Applied", SECS_20).await;
    let refused = world
        .wait_reason("remote-http", "InvalidSpec", SECS_20)
        .await;
    assert!(
        ready_message(&refused).contains("plain http is allowed only to a loopback address"),
        "{}",
        ready_message(&refused)
    );
}

/// A policy of `deletionPolicy: Restore` keeping `key` at `value`.
fn restore_policy(world: &World, name: &str, key: &str, value: &str) -> IdentitySettingPolicy {
    let mut p = policy(world, name, "admin", vec![setting(key, value)]);
    p.spec.deletion_policy = Some(DeletionPolicy::Restore);
    p
}

fn value_in(world: &World, partition: &str, key: &str) -> Option<String> {
    world
        .sim
        .stored(&SettingScope::organization(partition))
        .into_iter()
        .find(|s| s.key == key)
        .map(|s| s.value)
}

async fn wait_gone_policy(world: &World, name: &str) {
    world
        .wait_gone(
            &world.policies(),
            name,
            SECS_20,
            &format!("{name} is still there"),
        )
        .await;
}

/// Item 8: a Restore policy moved from organization P1 to P2 restores each one's own values
/// on deletion: P1 gets P1's back, P2 gets P2's — never P1's written into P2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_restore_policy_restores_each_organization_its_own_values() {
    const P2: &str = "9d3b1c7e-0000-4000-8000-00000000e0b2";
    let key = "Custom.Hostile.Moved";
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    world
        .sim
        .set_directly(&SettingScope::organization(PARTITION), key, "p1-before");
    world
        .sim
        .set_directly(&SettingScope::organization(P2), key, "p2-before");
    world
        .create_policy(&restore_policy(&world, "moved", key, "policy"))
        .await;
    world.spawn_operator(&[]).await;
    world.wait_reason("moved", "Applied", SECS_20).await;
    world
        .policies()
        .patch(
            "moved",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"partitionGlobalId": P2}})),
        )
        .await
        .expect("move to P2");
    world
        .wait_policy("moved", "written in P2", SECS_20, |_| {
            value_in(&world, P2, key).as_deref() == Some("policy")
        })
        .await;
    world
        .policies()
        .delete("moved", &DeleteParams::default())
        .await
        .expect("delete");
    wait_gone_policy(&world, "moved").await;
    assert_eq!(
        value_in(&world, PARTITION, key).as_deref(),
        Some("p1-before")
    );
    assert_eq!(value_in(&world, P2, key).as_deref(), Some("p2-before"));
}

/// Item 9: the garbage collector deletes a policy's dependents first in a foreground (or
/// namespace) deletion; the restore point outlives that (the operator's finalizer holds it)
/// and is used. One that is really gone is reported as `RestorePointUnusable`, and the policy
/// waits for a decision instead of finishing silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_point_deleted_before_its_policy_is_used_or_reported() {
    let key = "Custom.Hostile.Collected";
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    world.sim.set_directly(&world.scope(), key, "before");
    for name in ["collected", "lost"] {
        world
            .create_policy(&restore_policy(
                &world,
                name,
                &format!("{key}.{name}"),
                "policy",
            ))
            .await;
        world
            .sim
            .set_directly(&world.scope(), &format!("{key}.{name}"), "before");
    }
    world.spawn_operator(&[]).await;
    for name in ["collected", "lost"] {
        world.wait_reason(name, "Applied", SECS_20).await;
        // What the garbage collector does first in a foreground deletion.
        world
            .secrets()
            .delete(&format!("{name}-restore"), &DeleteParams::default())
            .await
            .expect("delete the restore point");
    }
    // "lost": its Secret really goes (someone removed every finalizer).
    world
        .secrets()
        .patch(
            "lost-restore",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("remove finalizers");
    for name in ["collected", "lost"] {
        world
            .policies()
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }
    wait_gone_policy(&world, "collected").await;
    assert_eq!(
        world.stored_value(&format!("{key}.collected")).as_deref(),
        Some("before"),
        "restored from the Secret the garbage collector could not take"
    );
    assert!(
        world
            .secrets()
            .get_opt("collected-restore")
            .await
            .expect("get")
            .is_none(),
        "the restore point goes with its policy"
    );
    let waiting = world
        .wait_reason("lost", "RestorePointUnusable", SECS_20)
        .await;
    assert!(
        ready_message(&waiting).contains("is gone although values were saved in it"),
        "{}",
        ready_message(&waiting)
    );
    world
        .policies()
        .patch(
            "lost",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": {"identitysettings.dev/skip-restore": "true"}}})),
        )
        .await
        .expect("annotate");
    wait_gone_policy(&world, "lost").await;
}

/// Item 10: a restore point that anyone who may create Secrets in the namespace pre-created
/// (owner reference to the policy's uid, arbitrary keys) is never used: the policy says so and
/// writes nothing; after a real save, a tampered restore point is refused at deletion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_restore_point_is_never_written() {
    let key = "Custom.Hostile.Forged";
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    let mut p = restore_policy(&world, "forged", key, "policy");
    p.spec.suspend = Some(true);
    world.create_policy(&p).await;
    world.spawn_operator(&[]).await;
    let suspended = world.wait_reason("forged", "Suspended", SECS_20).await;
    let uid = suspended.metadata.uid.clone().expect("uid");
    let forged = |values: &str| {
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "forged-restore", "namespace": NS, "ownerReferences": [{
                "apiVersion": "identitysettings.dev/v1alpha1", "kind": "IdentitySettingPolicy",
                "name": "forged", "uid": uid, "controller": true}]},
            "stringData": {"values.json": values}
        })
    };
    let evil = r#"{"Auth.Password.DefaultExpirationDays":{"value":"9999"}}"#;
    let secret: k8s_openapi::api::core::v1::Secret =
        serde_json::from_value(forged(evil)).expect("secret");
    world
        .secrets()
        .create(&Default::default(), &secret)
        .await
        .expect("forge");
    world
        .policies()
        .patch(
            "forged",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"suspend": false}})),
        )
        .await
        .expect("resume");
    let refused = world
        .wait_reason("forged", "RestorePointUnusable", SECS_20)
        .await;
    assert!(
        ready_message(&refused).contains("was not written by the operator"),
        "{}",
        ready_message(&refused)
    );
    assert_eq!(world.stored_value(key), None, "nothing written");
    // The owner deletes the forged Secret: a real restore point is saved and the value written.
    world
        .secrets()
        .delete("forged-restore", &DeleteParams::default())
        .await
        .expect("delete the forgery");
    world.wait_reason("forged", "Applied", SECS_20).await;
    // Tampered afterwards (the keys changed): refused at deletion, nothing forged written.
    world
        .secrets()
        .patch(
            "forged-restore",
            &PatchParams::default(),
            &Patch::Merge(&json!({"stringData": {"values.json": evil}})),
        )
        .await
        .expect("tamper");
    world
        .policies()
        .delete("forged", &DeleteParams::default())
        .await
        .expect("delete");
    let waiting = world
        .wait_reason("forged", "RestorePointUnusable", SECS_20)
        .await;
    assert!(
        ready_message(&waiting).contains("was not written by the operator"),
        "{}",
        ready_message(&waiting)
    );
    assert_eq!(
        world.stored_value("Auth.Password.DefaultExpirationDays"),
        None
    );
}

/// Item 7: a namespace a `ClusterIdentityServer` allows may manage only the organizations its
/// `allowedPartitions` lists for it, and user-level settings only where that says so; anything
/// else is `ServerNotAllowed`, with nothing read or written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_server_is_bounded_by_partition_and_user_level() {
    use identity_settings_operator::api::{
        AllowedNamespaces, AllowedPartition, ClusterIdentityServer, ClusterIdentityServerSpec,
        ServerBudget, ServerKind, ServerRef,
    };
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    let servers: kube::Api<ClusterIdentityServer> = kube::Api::all(world.client.clone());
    let server = ClusterIdentityServer::new(
        "shared",
        ClusterIdentityServerSpec {
            connection: server_spec(&world, "admin"),
            secret_namespace: NS.into(),
            allowed_namespaces: AllowedNamespaces {
                names: Some(vec![NS.into()]),
                selector: None,
            },
            allowed_partitions: vec![AllowedPartition {
                partition_global_id: PARTITION.to_uppercase(),
                namespaces: Some(vec![NS.into()]),
                user_settings: None,
            }],
            budget: ServerBudget::default(),
        },
    );
    servers
        .create(&Default::default(), &server)
        .await
        .expect("create the shared server");
    let shared = |name: &str, partition: &str, user: Option<&str>| {
        let mut p = policy(
            &world,
            name,
            "admin",
            vec![setting(&format!("Custom.Hostile.{name}"), "1")],
        );
        p.spec.server = None;
        p.spec.server_ref = Some(Box::new(ServerRef {
            kind: ServerKind::ClusterIdentityServer,
            name: "shared".into(),
        }));
        p.spec.partition_global_id = partition.into();
        p.spec.user_id = user.map(str::to_owned);
        p
    };
    world
        .create_policy(&shared("listed", PARTITION, None))
        .await;
    world
        .create_policy(&shared(
            "other-org",
            "7c9e6679-7425-40de-944b-e07fc1f90ae7",
            None,
        ))
        .await;
    world
        .create_policy(&shared("user-level", PARTITION, Some("u-1")))
        .await;
    world.spawn_operator(&[]).await;
    world.wait_reason("listed", "Applied", SECS_20).await;
    let gets_before = world.sim.counters().count(Endpoint::Setting, "GET");
    for (name, what) in [
        ("other-org", "the organization settings"),
        ("user-level", "the user-level settings"),
    ] {
        let refused = world.wait_reason(name, "ServerNotAllowed", SECS_20).await;
        assert!(
            ready_message(&refused).contains(what)
                && ready_message(&refused).contains("spec.allowedPartitions"),
            "{}",
            ready_message(&refused)
        );
    }
    assert_eq!(
        world.sim.counters().count(Endpoint::Setting, "GET"),
        gets_before,
        "nothing read for a refused scope"
    );
}

/// Item 5: the namespace watch survives an API server restart. A namespace allowed to use a
/// `ClusterIdentityServer` by a label loses that right as soon as the label goes, also after
/// the API server restarted (before, the watch had ended at the restart and the old labels
/// kept allowing it until the operator restarted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_namespace_label_after_an_api_server_restart_revokes_a_shared_server() {
    use identity_settings_operator::api::{
        AllowedNamespaces, AllowedPartition, ClusterIdentityServer, ClusterIdentityServerSpec,
        ServerBudget, ServerKind, ServerRef,
    };
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    const LABEL: &str = "identity.example/shared-admins";
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    let namespaces: kube::Api<Namespace> = kube::Api::all(world.client.clone());
    let label = |value: Option<&str>| {
        let namespaces = namespaces.clone();
        let value = value.map(str::to_owned);
        async move {
            namespaces
                .patch(
                    NS,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"metadata": {"labels": {LABEL: value}}})),
                )
                .await
                .expect("label the namespace");
        }
    };
    if namespaces.get_opt(NS).await.expect("get").is_none() {
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": NS}})).expect("namespace");
        namespaces
            .create(&Default::default(), &ns)
            .await
            .expect("create the namespace");
    }
    label(Some("true")).await;
    let servers: kube::Api<ClusterIdentityServer> = kube::Api::all(world.client.clone());
    let server = ClusterIdentityServer::new(
        "by-label",
        ClusterIdentityServerSpec {
            connection: server_spec(&world, "admin"),
            secret_namespace: NS.into(),
            allowed_namespaces: AllowedNamespaces {
                names: None,
                selector: Some(LabelSelector {
                    match_labels: Some([(LABEL.to_owned(), "true".to_owned())].into()),
                    match_expressions: None,
                }),
            },
            allowed_partitions: vec![AllowedPartition {
                partition_global_id: "*".into(),
                namespaces: None,
                user_settings: None,
            }],
            budget: ServerBudget::default(),
        },
    );
    servers
        .create(&Default::default(), &server)
        .await
        .expect("create the shared server");
    let mut p = policy(
        &world,
        "by-label",
        "admin",
        vec![setting("Custom.Hostile.ByLabel", "1")],
    );
    p.spec.server = None;
    p.spec.server_ref = Some(Box::new(ServerRef {
        kind: ServerKind::ClusterIdentityServer,
        name: "by-label".into(),
    }));
    world.create_policy(&p).await;
    world.spawn_operator(&[]).await;
    world.wait_reason("by-label", "Applied", SECS_20).await;

    world.restart_api_server().await;
    // Let the operator's watches see the restart (they reconnect with backoff).
    tokio::time::sleep(Duration::from_secs(3)).await;
    label(None).await;
    let refused = world
        .wait_reason("by-label", "ServerNotAllowed", Duration::from_secs(60))
        .await;
    assert!(
        ready_message(&refused).contains("does not allow namespace"),
        "{}",
        ready_message(&refused)
    );
}

/// Item 9 with the real garbage collector (kube-controller-manager, real API server only; the
/// emulator variant above plays the collector's part by hand): `kubectl delete
/// --cascade=foreground` deletes the restore point first, yet the saved values are written
/// back, and then both objects go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreground_deletion_still_restores() {
    let key = "Custom.Hostile.Foreground";
    let mut world = World::start().await;
    if !world.start_garbage_collector().await {
        println!(
            "SKIPPED on the emulator: a_foreground_deletion_still_restores needs kube-controller-manager's garbage collector"
        );
        return;
    }
    world.put_good_credentials("admin").await;
    world.sim.set_directly(&world.scope(), key, "before");
    world
        .create_policy(&restore_policy(&world, "foreground", key, "policy"))
        .await;
    world.spawn_operator(&[]).await;
    world.wait_reason("foreground", "Applied", SECS_20).await;
    assert_eq!(world.stored_value(key).as_deref(), Some("policy"));
    world
        .policies()
        .delete("foreground", &DeleteParams::foreground())
        .await
        .expect("delete --cascade=foreground");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !matches!(world.policies().get_opt("foreground").await, Ok(None)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the policy is still there:\n{}",
            world.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        world.stored_value(key).as_deref(),
        Some("before"),
        "restored although the garbage collector deleted the restore point first"
    );
    world
        .wait_gone(
            &world.secrets(),
            "foreground-restore",
            Duration::from_secs(30),
            "the restore point stayed",
        )
        .await;
}

/// Item 3: a tarpit server that answers each request just inside the request timeout cannot
/// hold a reconcile (and its server's share of reconcile slots) for minutes: the reconcile's
/// identity calls share one deadline, past which the policy says so and backs off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tarpit_server_meets_the_reconcile_deadline() {
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    // Long keys: the GET is cut into several requests of at most 2 KB each.
    let settings: Vec<_> = (0..60)
        .map(|i| setting(&format!("Custom.Tarpit.{}.K{i}", "Slow".repeat(20)), "1"))
        .collect();
    world
        .create_policy(&policy(&world, "tarpit", "admin", settings))
        .await;
    world.sim.faults().set_latency(Duration::from_millis(1500));
    world
        .spawn_operator(&["--identity-timeout", "2s", "--reconcile-timeout", "3s"])
        .await;
    let started = tokio::time::Instant::now();
    let held = world
        .wait_reason("tarpit", "ServerUnreachable", SECS_20)
        .await;
    assert!(
        ready_message(&held).contains("within the reconcile deadline of 3s"),
        "{}",
        ready_message(&held)
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the reconcile was held for {:?}",
        started.elapsed()
    );
}

/// Item 9, namespace deletion (real API server, with kube-controller-manager's namespace
/// controller): deleting the namespace of a `Restore` policy takes its credentials and its
/// restore point with it; the operator restores when it still can and otherwise lets the
/// policy go with a `RestoreSkipped` Event, so the namespace is deleted instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_namespace_of_a_restore_policy_does_not_hang() {
    let key = "Custom.Hostile.NamespaceGone";
    let mut world = World::start().await;
    if !world.start_garbage_collector().await {
        println!(
            "SKIPPED on the emulator: deleting_the_namespace_of_a_restore_policy_does_not_hang needs kube-controller-manager's namespace controller"
        );
        return;
    }
    world.put_good_credentials("admin").await;
    world.sim.set_directly(&world.scope(), key, "before");
    world
        .create_policy(&restore_policy(&world, "doomed", key, "policy"))
        .await;
    // Cluster-wide RBAC (the chart's default): a Role in the namespace is deleted with it, and
    // then nothing could finish the deletion (docs/operations.md, "Deleting a namespace").
    let operator = world.spawn_operator_watching(None, &[]).await;
    world.wait_reason("doomed", "Applied", SECS_20).await;
    // The worst order: the namespace controller deletes the credentials before the operator
    // sees the policy's deletion (here: while it is stopped).
    world.operator(operator).kill();
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(world.client.clone());
    namespaces
        .delete(NS, &DeleteParams::default())
        .await
        .expect("delete the namespace");
    world
        .wait_gone(
            &world.secrets(),
            "admin",
            Duration::from_secs(60),
            "the namespace controller did not delete the credentials",
        )
        .await;
    world.spawn_operator_watching(None, &[]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while namespaces
        .get_opt(NS)
        .await
        .expect("get namespace")
        .is_some()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the namespace is still being deleted after 120 s:\n{}",
            world.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let logs = world.logs();
    assert!(
        logs.contains("restore skipped") && logs.contains("Secret \"admin\" not found"),
        "not reported as skipped, with why:\n{logs}"
    );
}
