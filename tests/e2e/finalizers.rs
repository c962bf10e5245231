//! Finalizers only where deletion has something to do (issue 21, item 1): a `Retain` policy
//! has none, so deleting it never waits for the operator; a `Restore` policy has one from
//! before its first write until its saved values are back.

use std::time::Duration;

use crate::harness::*;
use identity_settings_operator::api::{DeletionPolicy, FINALIZER, IdentitySettingPolicy};
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

const SECS_20: Duration = Duration::from_secs(20);

fn finalized(p: &IdentitySettingPolicy) -> bool {
    p.metadata
        .finalizers
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|f| f == FINALIZER)
}

fn one_key(world: &World, name: &str, key: &str) -> IdentitySettingPolicy {
    policy(world, name, "admin", vec![setting(key, "policy")])
}

async fn set_deletion_policy(world: &World, name: &str, deletion: &str) {
    world
        .policies()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"deletionPolicy": deletion}})),
        )
        .await
        .expect("patch deletionPolicy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retain_policy_has_no_finalizer_and_a_restore_policy_has_one_both_ways() {
    let key = "Custom.Finalizer.Switch";
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    world.sim.set_directly(&world.scope(), key, "before");
    world.create_policy(&one_key(&world, "switch", key)).await;
    world.spawn_operator(&[]).await;
    let applied = world.wait_reason("switch", "Applied", SECS_20).await;
    assert!(!finalized(&applied), "a Retain policy got a finalizer");

    set_deletion_policy(&world, "switch", "Restore").await;
    world
        .wait_policy(
            "switch",
            "the finalizer of a Restore policy",
            SECS_20,
            |p| {
                finalized(p)
                    && p.status.as_ref().and_then(|s| s.observed_generation)
                        == p.metadata.generation
            },
        )
        .await;

    set_deletion_policy(&world, "switch", "Retain").await;
    world
        .wait_policy("switch", "the finalizer gone with Retain", SECS_20, |p| {
            !finalized(p)
                && p.status.as_ref().and_then(|s| s.observed_generation) == p.metadata.generation
        })
        .await;
    assert_eq!(world.stored_value(key).as_deref(), Some("policy"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_retain_policy_while_the_operator_is_stopped_does_not_hang() {
    let key = "Custom.Finalizer.Stopped";
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    world.create_policy(&one_key(&world, "stopped", key)).await;
    let operator = world.spawn_operator(&[]).await;
    world.wait_reason("stopped", "Applied", SECS_20).await;
    world.operator(operator).kill();
    world
        .policies()
        .delete("stopped", &DeleteParams::default())
        .await
        .expect("delete");
    world
        .wait_gone(
            &world.policies(),
            "stopped",
            Duration::from_secs(5),
            "a Retain policy waits for a stopped operator to be deleted",
        )
        .await;
    assert_eq!(
        world.stored_value(key).as_deref(),
        Some("policy"),
        "Retain keeps the settings"
    );
}

/// Policies created by an earlier version carry the finalizer whatever their deletion policy:
/// a `Retain` one loses it on its next reconcile, and stays in sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_retain_policy_loses_its_finalizer_on_its_next_reconcile() {
    let key = "Custom.Finalizer.Migrated";
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    let mut old = one_key(&world, "old", key);
    old.metadata.finalizers = Some(vec![FINALIZER.into(), "example.com/keep".into()]);
    world.create_policy(&old).await;
    world.spawn_operator(&[]).await;
    let migrated = world
        .wait_policy("old", "the finalizer gone", SECS_20, |p| {
            !finalized(p) && ready_reason(p).as_deref() == Some("Applied")
        })
        .await;
    assert_eq!(
        migrated.metadata.finalizers.as_deref().unwrap_or_default(),
        ["example.com/keep".to_owned()],
        "someone else's finalizer is kept"
    );
    // A Restore policy keeps (or gets) it.
    let mut restore = one_key(&world, "restore", "Custom.Finalizer.Kept");
    restore.spec.deletion_policy = Some(DeletionPolicy::Restore);
    world.create_policy(&restore).await;
    let kept = world.wait_reason("restore", "Applied", SECS_20).await;
    assert!(finalized(&kept));
}
