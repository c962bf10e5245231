//! The identity service's published per-organization limits (issue 21, item 3): Automation
//! Cloud allows about 300 GET and 160 PUT of one organization per 5 minutes and answers 429
//! beyond. Against an Automation Cloud host the operator keeps to a share of those limits by
//! default, so the service never has to refuse it.

use std::time::Duration;

use crate::harness::*;
use identity_simulator::Endpoint;
use identity_simulator::org_limits::Limits;

/// The simulator enforces limits of the published shape, in a window short enough for a test
/// (4 GETs and 3 PUTs of one organization per 4 s, 429 beyond), and the operator is told the
/// simulator is an Automation Cloud host with those limits, of which it uses three quarters (3
/// GETs and 2 PUTs per 4 s). Six new policies of one organization converge without one 429:
/// reads and writes of the organization are spaced to its share, whatever the operator's
/// concurrency (without the share, the six PUTs go out at once and three are refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_of_one_organization_keep_to_its_published_limits() {
    const POLICIES: usize = 6;
    // E2E_LIMITS_SHARE=0 shows the test failing without the operator's limits.
    let share = std::env::var("E2E_LIMITS_SHARE").unwrap_or_else(|_| "0.75".into());
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    world.sim.organization_limits().set(Some(Limits {
        window: Duration::from_secs(4),
        reads: 4,
        writes: 3,
    }));
    for i in 0..POLICIES {
        world
            .create_policy(&policy(
                &world,
                &format!("p{i}"),
                "admin",
                vec![setting(&format!("Custom.Limits.K{i}"), "v")],
            ))
            .await;
    }
    world
        .spawn_operator(&[
            "--automation-cloud-hosts",
            "127.0.0.1",
            "--automation-cloud-limits",
            "4,3/4s",
            "--automation-cloud-share",
            &share,
        ])
        .await;
    let started = tokio::time::Instant::now();
    for i in 0..POLICIES {
        world
            .wait_reason(&format!("p{i}"), "Applied", Duration::from_secs(60))
            .await;
    }
    let load = world.sim.organization_limits().load();
    assert_eq!(
        load.refused,
        0,
        "the service had to refuse the operator: {load:?}\n{}",
        world.logs()
    );
    assert!(load.peak_reads <= 4 && load.peak_writes <= 3, "{load:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(8),
        "six writes 2 s apart take 10 s, not {:?}",
        started.elapsed()
    );
}

/// When an organization has more policies than its budget can check within their
/// `resyncInterval`, the operator says so: a metric with the interval that would fit, and a
/// warning naming the organization (here 3 policies every 10 s need 18 reads a minute; the
/// budget allows 4, so 45 s would fit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organization_over_its_budget_is_reported_with_the_interval_that_fits() {
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    for i in 0..3 {
        let mut p = policy(
            &world,
            &format!("p{i}"),
            "admin",
            vec![setting(&format!("Custom.Limits.Over{i}"), "v")],
        );
        p.spec.resync_interval = Some("10s".into());
        world.create_policy(&p).await;
    }
    let operator = world
        .spawn_operator(&[
            "--automation-cloud-hosts",
            "127.0.0.1",
            "--automation-cloud-limits",
            "4,4/60s",
            "--automation-cloud-share",
            "1",
        ])
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, metrics) = world.operator(operator).http_get("/metrics").await;
        if metrics.contains("identity_settings_organizations_over_budget 1")
            && metrics.contains("identity_settings_budget_fitting_resync_seconds 45")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not reported:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let logs = world.logs();
    assert!(
        logs.contains("cannot check every policy within its resyncInterval")
            && logs.contains("fitting_resync_seconds=45"),
        "no warning:\n{logs}"
    );
}

/// Four policies of one organization (same server, credentials and user) cost one read per
/// check, not four: the first to be checked reads all their keys in one GET and the others,
/// told to check at once, take their rows from it. A drift on the third policy's key is still
/// found and corrected within its resync interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_of_one_organization_share_one_read_per_check() {
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    for i in 0..4 {
        let mut p = policy(
            &world,
            &format!("p{i}"),
            "admin",
            vec![setting(&format!("Custom.Shared.K{i}"), "v")],
        );
        p.spec.resync_interval = Some("10s".into());
        world.create_policy(&p).await;
    }
    world.spawn_operator(&[]).await;
    for i in 0..4 {
        world
            .wait_reason(&format!("p{i}"), "Applied", Duration::from_secs(20))
            .await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let gets = || world.sim.counters().count(Endpoint::Setting, "GET");
    let before = gets();
    world
        .sim
        .set_directly(&world.scope(), "Custom.Shared.K2", "drifted");
    tokio::time::sleep(Duration::from_secs(25)).await;
    let read = gets() - before;
    assert_eq!(
        world.stored_value("Custom.Shared.K2").as_deref(),
        Some("v"),
        "the drift was not corrected:\n{}",
        world.logs()
    );
    // Two or three checks of the group in 25 s (10 s + up to 10 % each), one GET each, and one
    // or two more when the drift's correction made the group read again. Four policies reading
    // on their own would make eight to ten.
    assert!(
        (2..=5).contains(&read),
        "{read} GETs in 25 s for four policies every 10 s\n{}",
        world.logs()
    );
}
