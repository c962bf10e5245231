//! Restarts (issue 20, item 1): a decision depends on what the cluster says, never on what one
//! process remembered, so killing the operator anywhere in a reconcile and starting it again
//! changes no reason and loses no write from what users see.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::harness::*;
use identity_simulator::Endpoint;
use k8s_openapi::api::events::v1::Event;
use kube::Api;

fn key(i: usize) -> String {
    format!("Custom.Restart.K{i}")
}

/// Every policy needs one write. The identity service answers each PUT 300 ms after storing
/// it, so most kills land after a PUT and before its status write (the narrow window where a
/// write can vanish); others land between policies, or after a status write. The operator is
/// killed (SIGKILL) eight times and started again each time.
///
/// Every policy must end Ready with the reason a run without kills gives it (`Applied`), or —
/// where the kill fell between the PUT and its record — `InSync` with an `Applied` Event that
/// recorded the write before it was made. No PUT is repeated for a write the server already
/// took (the bound allows one request per kill cut off while it was being sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_during_a_cold_start_lose_no_write_from_what_users_see() {
    const POLICIES: usize = 60;
    const KILLS_AFTER_MS: [u64; 8] = [900, 1300, 700, 1100, 800, 1500, 600, 1000];
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    for i in 0..POLICIES {
        world.sim.set_directly(&world.scope(), &key(i), "old");
        world
            .create_policy(&policy(
                &world,
                &format!("p{i}"),
                "admin",
                vec![setting(&key(i), "new")],
            ))
            .await;
    }
    world
        .sim
        .faults()
        .set_answer_latency(Duration::from_millis(300));
    let mut running = world.spawn_operator(&[]).await;
    for after in KILLS_AFTER_MS {
        tokio::time::sleep(Duration::from_millis(after)).await;
        world.operator(running).kill();
        running = world.spawn_operator(&[]).await;
    }
    world.sim.faults().set_answer_latency(Duration::ZERO);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let reasons = loop {
        let listed = world
            .policies()
            .list(&Default::default())
            .await
            .expect("list");
        let reasons: BTreeMap<String, Option<String>> = listed
            .iter()
            .map(|p| (p.metadata.name.clone().unwrap_or_default(), ready_reason(p)))
            .collect();
        let ready = listed
            .iter()
            .filter(|p| ready_condition(p).is_some_and(|c| c.status == "True"))
            .count();
        if ready == POLICIES {
            break reasons;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{ready} of {POLICIES} policies Ready after the kills: {reasons:?}\n{}",
            world.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    let events: Api<Event> = Api::namespaced(world.client.clone(), NS);
    let events = events.list(&Default::default()).await.expect("events");
    let mut in_sync = 0;
    for i in 0..POLICIES {
        let name = format!("p{i}");
        assert_eq!(
            world.stored_value(&key(i)).as_deref(),
            Some("new"),
            "{name}"
        );
        let reason = reasons[&name].as_deref();
        assert!(
            matches!(reason, Some("Applied" | "InSync")),
            "{name} ended {reason:?}, not as a run without kills would"
        );
        in_sync += usize::from(reason == Some("InSync"));
        let recorded = events.iter().any(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name.as_str())
                && e.reason.as_deref() == Some("Applied")
                && e.note.as_deref().is_some_and(|n| n.contains(&key(i)))
        });
        assert!(
            recorded,
            "{name} ({reason:?}): the write of {} shows in no Event\n{}",
            key(i),
            world.logs()
        );
    }
    let puts = world.sim.counters().count(Endpoint::Setting, "PUT");
    println!(
        "{POLICIES} policies, {} kills: {in_sync} ended InSync (killed between PUT and status), \
         {puts} PUTs",
        KILLS_AFTER_MS.len()
    );
    assert!(
        puts <= (POLICIES + KILLS_AFTER_MS.len()) as u64,
        "{puts} PUTs for {POLICIES} writes: writes the server already took were repeated"
    );
}
