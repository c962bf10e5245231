//! The hostile suite (issue 19): what a tenant who can create policies in one namespace, or an
//! identity service that misbehaves, tries — and what the operator must still do. Each test
//! names the item it guards; each runs on the emulator (`cargo test`) and, through the same
//! harness, on the real API server (`tests/control-plane/test`).

use std::time::Duration;

use crate::harness::*;
use identity_simulator::Endpoint;
use kube::api::{Patch, PatchParams};
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
