//! End-to-end: the real operator binary, as its own process, against the Kubernetes API
//! emulator and the identity service simulator. Each test builds its own world.

mod finalizers;
mod harness;
mod hostile;
mod limits;
mod monitoring;
mod rbac;
mod restart;
mod servers;

use std::time::Duration;

use harness::*;
use identity_settings_operator::api::{FINALIZER, SyncMode};
use identity_simulator::Endpoint;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const SECS_10: Duration = Duration::from_secs(10);
const SECS_20: Duration = Duration::from_secs(20);

fn password_settings() -> Vec<identity_settings_operator::api::SettingSpec> {
    vec![
        setting("Auth.Password.DefaultExpirationDays", "0"),
        setting(
            "Auth.Password.PasswordComplexity",
            r#"{"hasSpecialCharacter":false,"hasLowercase":true,"hasUppercase":false,"hasDigit":true,"Length":"10"}"#,
        ),
        setting("Auth.UserLockOut.IsEnabled", "false"),
    ]
}

/// A world whose operator (index 0) has applied the policy `password` with
/// [`password_settings`]; also returns the policy as it was then.
async fn applied_password_policy() -> (
    World,
    identity_settings_operator::api::IdentitySettingPolicy,
) {
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    world
        .create_policy(&policy(&world, "password", "admin", password_settings()))
        .await;
    world.spawn_operator(&[]).await;
    let applied = world.wait_reason("password", "Applied", SECS_20).await;
    (world, applied)
}

fn puts(world: &World) -> u64 {
    world.sim.counters().count(Endpoint::Setting, "PUT")
}

fn gets(world: &World) -> u64 {
    world.sim.counters().count(Endpoint::Setting, "GET")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_policy_becomes_ready_with_the_servers_ids_and_then_stays_quiet() {
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    world
        .create_policy(&policy(&world, "password", "admin", password_settings()))
        .await;
    world.spawn_operator(&[]).await;

    let p = world.wait_reason("password", "Applied", SECS_20).await;
    let status = p.status.clone().expect("status");
    assert_eq!(status.observed_generation, p.metadata.generation);
    assert!(
        !p.metadata
            .finalizers
            .as_deref()
            .unwrap_or_default()
            .contains(&FINALIZER.to_owned()),
        "deletionPolicy Retain: nothing to finalize"
    );
    let stored = world.sim.stored(&world.scope());
    assert_eq!(stored.len(), 3);
    assert_eq!(status.setting_ids.len(), 3, "{:?}", status.setting_ids);
    for (key, id) in status.setting_ids.iter() {
        let row = stored
            .iter()
            .find(|s| *key == s.key)
            .expect("stored on the server");
        assert_eq!(id, row.id, "status id of {key}");
    }
    assert!(status.last_applied_time.is_some());
    assert!(
        status.conditions.iter().all(|c| c.type_ != "Drifted"),
        "nothing drifts: no Drifted condition ({:?})",
        status.conditions
    );
    assert_eq!(status.setting_count, Some(3));
    assert_eq!(puts(&world), 1, "one PUT for all three keys");

    // Quiet: no further PUT, no status write, no self-triggered reconcile loop.
    let rv = p.metadata.resource_version.clone();
    let gets_before = gets(&world);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = world.policies().get("password").await.expect("get");
    assert_eq!(
        again.metadata.resource_version,
        rv,
        "status was rewritten although nothing changed\n{}",
        world.logs()
    );
    assert_eq!(puts(&world), 1);
    assert!(
        gets(&world) - gets_before <= 1,
        "the operator keeps reading: {} GETs in 3s",
        gets(&world) - gets_before
    );

    // Health and metrics endpoints tell the same story.
    let op = world.operator(0);
    assert_eq!(op.http_get("/healthz").await.0, 200);
    assert_eq!(op.http_get("/readyz").await.0, 200);
    let (code, metrics) = op.http_get("/metrics").await;
    assert_eq!(code, 200);
    for line in [
        r#"identity_settings_reconciles_total{result="Applied"} 1"#,
        r#"identity_settings_identity_requests_total{method="PUT",endpoint="setting",status="200"} 1"#,
        r#"identity_settings_policies{ready="true"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }

    // An Event was published for the apply, with keys but no values.
    let events: Api<Event> = Api::namespaced(world.client.clone(), NS);
    let list = events.list(&ListParams::default()).await.expect("events");
    assert!(
        list.items
            .iter()
            .any(|e| e.reason.as_deref() == Some("Applied")),
        "no Applied event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_one_value_puts_exactly_that_key() {
    let (world, before) = applied_password_policy().await;
    let puts_before = puts(&world);
    let old_status = before.status.clone().expect("status");
    // Status times have one-second resolution: make "rewritten" visible.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let patch = json!({"spec": {"settings": [
        {"key": "Auth.Password.DefaultExpirationDays", "value": "90"},
        {"key": "Auth.Password.PasswordComplexity", "value": r#"{"hasSpecialCharacter":false,"hasLowercase":true,"hasUppercase":false,"hasDigit":true,"Length":"10"}"#},
        {"key": "Auth.UserLockOut.IsEnabled", "value": "false"}
    ]}});
    world
        .policies()
        .patch("password", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    let after = world
        .wait_policy("password", "the new generation applied", SECS_20, |p| {
            p.status.as_ref().and_then(|s| s.observed_generation) == p.metadata.generation
                && ready_reason(p).as_deref() == Some("Applied")
        })
        .await;
    assert_eq!(puts(&world) - puts_before, 1, "exactly one PUT");
    assert_eq!(
        ready_message(&after),
        "wrote 1 of 3 settings: Auth.Password.DefaultExpirationDays"
    );
    // The Event says so too (kubectl describe): a second Applied within minutes is an Event of
    // its own, not a count bump of the first one, which names the first write's keys.
    let notes = world.event_notes("Applied", None).await.expect("events");
    assert!(
        notes.contains(&"writing 1 of 3 settings: Auth.Password.DefaultExpirationDays".to_owned()),
        "no Event says what the second write did: {notes:?}"
    );
    let new_status = after.status.expect("status");
    assert_ne!(new_status.last_applied_time, old_status.last_applied_time);
    assert_eq!(
        new_status.setting_ids, old_status.setting_ids,
        "the same keys, with the same ids"
    );
    assert_eq!(
        world
            .stored_value("Auth.Password.DefaultExpirationDays")
            .as_deref(),
        Some("90")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_on_the_server_is_corrected_within_the_resync_interval() {
    let (mut world, _) = applied_password_policy().await;

    world
        .sim
        .set_directly(&world.scope(), "Auth.UserLockOut.IsEnabled", "true");
    let p = world
        .wait_reason("password", "DriftCorrected", Duration::from_secs(15))
        .await;
    assert!(ready_message(&p).contains("Auth.UserLockOut.IsEnabled"));
    assert_eq!(
        world.stored_value("Auth.UserLockOut.IsEnabled").as_deref(),
        Some("false")
    );
    let puts_after = puts(&world);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(puts(&world), puts_after, "no tight loop after a correction");
    let (_, metrics) = world.operator(0).http_get("/metrics").await;
    assert!(
        metrics.contains("identity_settings_drift_corrections_total 1"),
        "{metrics}"
    );
    let events: Api<Event> = Api::namespaced(world.client.clone(), NS);
    let list = events.list(&ListParams::default()).await.expect("events");
    assert!(
        list.items
            .iter()
            .any(|e| e.reason.as_deref() == Some("DriftCorrected"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_corrected_within_the_resync_interval_while_the_secret_watch_fails() {
    if skipped_on_real_apiserver(
        "drift_is_corrected_within_the_resync_interval_while_the_secret_watch_fails",
        "API-server fault injection (failing Secret watches)",
    ) {
        return;
    }
    let (mut world, _) = applied_password_policy().await;
    // The Secret watch ends and cannot start again for a while (its RBAC withdrawn, say): its
    // errors must not hold up the policies' resyncs, which read no Secret they do not have.
    world
        .emulator()
        .faults()
        .fail_next_for(1000, 403, "secrets");
    world.emulator().faults().drop_watches();
    world
        .sim
        .set_directly(&world.scope(), "Auth.UserLockOut.IsEnabled", "true");
    world
        .wait_reason("password", "DriftCorrected", Duration::from_secs(15))
        .await;
    world.emulator().faults().clear();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_mode_reports_drift_and_never_writes() {
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    let mut p = policy(&world, "observed", "admin", password_settings());
    p.spec.mode = Some(SyncMode::Observe);
    world.create_policy(&p).await;
    world.spawn_operator(&[]).await;
    let p = world.wait_reason("observed", "Drifted", SECS_20).await;
    assert!(
        ready_message(&p).contains("3 of 3 settings differ"),
        "{}",
        ready_message(&p)
    );
    assert_eq!(puts(&world), 0);
}

/// The condition `type_` of a policy, if it has one.
fn condition<'a>(
    p: &'a identity_settings_operator::api::IdentitySettingPolicy,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    p.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

fn drifted_keys(p: &identity_settings_operator::api::IdentitySettingPolicy) -> Vec<String> {
    p.status
        .iter()
        .flat_map(|s| s.drift.iter().map(|d| d.key.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_mode_lists_changes_without_secret_values_and_drift_is_per_key_in_every_mode() {
    use identity_settings_operator::api::ChangeKind;
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    world
        .put_secret("smtp", &[("password", "new-smtp-secret-4711")])
        .await;
    world
        .sim
        .set_directly(&world.scope(), "Auth.Password.DefaultExpirationDays", "90");
    world.sim.set_directly(
        &world.scope(),
        "Email.Smtp.Password",
        "old-smtp-secret-0815",
    );
    let mut settings = password_settings();
    settings.push(secret_setting("Email.Smtp.Password", "smtp", "password"));
    let mut p = policy(&world, "planned", "admin", settings);
    p.spec.mode = Some(SyncMode::Plan);
    world.create_policy(&p).await;
    world.spawn_operator(&[]).await;

    // Plan: every change listed (current → desired), a secret one as "changed" only; nothing
    // written; Drifted apart from Ready.
    let planned = world
        .wait_reason("planned", "ChangesPlanned", SECS_20)
        .await;
    let status = planned.status.clone().unwrap_or_default();
    let changes: Vec<_> = status
        .planned_changes
        .iter()
        .map(|c| {
            (
                c.key.as_str(),
                c.change,
                c.current.as_deref(),
                c.desired.as_deref(),
                c.secret,
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            (
                "Auth.Password.DefaultExpirationDays",
                ChangeKind::Update,
                Some("90"),
                Some("0"),
                false
            ),
            (
                "Auth.Password.PasswordComplexity",
                ChangeKind::Create,
                None,
                Some(password_settings()[1].value.as_deref().unwrap_or_default()),
                false
            ),
            (
                "Auth.UserLockOut.IsEnabled",
                ChangeKind::Create,
                None,
                Some("false"),
                false
            ),
            ("Email.Smtp.Password", ChangeKind::Update, None, None, true),
        ]
    );
    assert_eq!(puts(&world), 0, "plan mode never writes");
    assert_eq!(
        condition(&planned, "Drifted").map(|c| c.status.as_str()),
        Some("True")
    );
    assert_eq!(drifted_keys(&planned).len(), 4);
    let seen = serde_json::to_string(&planned).expect("json") + &world.logs();
    for secret in ["new-smtp-secret-4711", "old-smtp-secret-0815"] {
        assert!(!seen.contains(secret), "{secret} shown");
    }

    // Enforce: written; no planned changes, no drift.
    let patch = json!({"spec": {"mode": "Enforce"}});
    world
        .policies()
        .patch("planned", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    let applied = world.wait_reason("planned", "Applied", SECS_10).await;
    let status = applied.status.clone().unwrap_or_default();
    assert!(
        status.planned_changes.is_empty() && status.drift.is_empty(),
        "{status:?}"
    );
    assert_eq!(
        condition(&applied, "Drifted"),
        None,
        "the Drifted condition goes with the drift"
    );
    assert_eq!(
        world.stored_value("Email.Smtp.Password").as_deref(),
        Some("new-smtp-secret-4711")
    );

    // Observe: drift listed per key, each keeping when it was first found.
    let patch = json!({"spec": {"mode": "Observe"}});
    world
        .policies()
        .patch("planned", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    world.wait_reason("planned", "InSync", SECS_10).await;
    world
        .sim
        .set_directly(&world.scope(), "Auth.UserLockOut.IsEnabled", "true");
    let first = world
        .wait_policy("planned", "one key drifted", SECS_20, |p| {
            drifted_keys(p) == ["Auth.UserLockOut.IsEnabled"]
        })
        .await;
    assert_eq!(ready_reason(&first).as_deref(), Some("Drifted"));
    let first_found = first
        .status
        .as_ref()
        .map(|s| s.drift[0].detected_at.clone());
    world
        .sim
        .set_directly(&world.scope(), "Auth.Password.DefaultExpirationDays", "30");
    let both = world
        .wait_policy("planned", "two keys drifted", SECS_20, |p| {
            drifted_keys(p).len() == 2
        })
        .await;
    let status = both.status.clone().unwrap_or_default();
    let lockout = status
        .drift
        .iter()
        .find(|d| d.key == "Auth.UserLockOut.IsEnabled");
    assert_eq!(
        lockout.map(|d| d.detected_at.clone()),
        first_found,
        "first found, kept"
    );
    assert_eq!(puts(&world), 1, "only the Enforce step wrote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_policies_on_one_key_do_not_flap_the_older_owns_it_until_it_goes() {
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    world
        .create_policy(&policy(
            &world,
            "first",
            "admin",
            vec![
                setting("Auth.UserLockOut.IsEnabled", "false"),
                setting("Auth.Password.DefaultExpirationDays", "0"),
            ],
        ))
        .await;
    world.spawn_operator(&[]).await;
    world.wait_reason("first", "Applied", SECS_20).await;
    // Newer: the same key (spellings that differ in case count as the same key too: see
    // `claims::tests`), and a key of its own.
    world
        .create_policy(&policy(
            &world,
            "second",
            "admin",
            vec![
                setting("Auth.UserLockOut.IsEnabled", "true"),
                setting("Email.Smtp.Port", "2525"),
            ],
        ))
        .await;
    let second = world.wait_reason("second", "Conflict", SECS_20).await;
    let message = ready_message(&second);
    assert!(
        message.contains("Auth.UserLockOut.IsEnabled (owned by older policy identity/first)"),
        "{message}"
    );
    assert_eq!(
        world.stored_value("Email.Smtp.Port").as_deref(),
        Some("2525"),
        "its own key is written"
    );
    // Its Event counts the write against the policy's own two keys, not the one it may write.
    let notes = world
        .event_notes("Applied", Some("second"))
        .await
        .expect("events");
    assert_eq!(notes, ["writing 1 of 2 settings: Email.Smtp.Port"]);

    // Several resyncs of both (10 s each): nobody writes the shared key again. (They read one
    // organization with the same credentials, so each check of the two is one shared GET.)
    let puts_before = puts(&world);
    let gets_before = gets(&world);
    world
        .eventually(
            "three checks of both policies",
            Duration::from_secs(45),
            || gets(&world) >= gets_before + 3,
        )
        .await;
    assert_eq!(puts(&world), puts_before, "no flip-flop");
    assert_eq!(
        world.stored_value("Auth.UserLockOut.IsEnabled").as_deref(),
        Some("false")
    );
    let first = world.policies().get("first").await.expect("get");
    assert_eq!(ready_reason(&first).as_deref(), Some("Applied"));
    let second = world.policies().get("second").await.expect("get");
    assert_eq!(ready_reason(&second).as_deref(), Some("Conflict"));

    // The owner goes: the newer policy takes the key at once (before its next resync).
    world
        .policies()
        .delete("first", &DeleteParams::default())
        .await
        .expect("delete");
    world
        .wait_reason("second", "Applied", Duration::from_secs(6))
        .await;
    assert_eq!(
        world.stored_value("Auth.UserLockOut.IsEnabled").as_deref(),
        Some("true")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_pauses_every_policy_of_that_server_which_show_throttled_then_recover() {
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    let names = ["lockout-a", "lockout-b", "lockout-c"];
    for (i, name) in names.iter().enumerate() {
        let key = format!("Custom.Throttle.Key{i}");
        world
            .create_policy(&policy(&world, name, "admin", vec![setting(&key, "1")]))
            .await;
    }
    world.spawn_operator(&[]).await;
    for name in names {
        world.wait_reason(name, "Applied", SECS_20).await;
    }
    // The server answers the next Setting request with 429, Retry-After 12 s.
    world
        .sim
        .faults()
        .fail_next(1, 429, Some(Duration::from_secs(12)));
    let setting_requests = || world.sim.counters().total(Endpoint::Setting);
    let before = setting_requests();
    let change = |value: &str| json!({"spec": {"settings": [{"key": "Custom.Throttle.Key0", "value": value}]}});
    world
        .policies()
        .patch(
            "lockout-a",
            &PatchParams::default(),
            &Patch::Merge(&change("2")),
        )
        .await
        .expect("patch");
    let told = world.wait_reason("lockout-a", "Throttled", SECS_10).await;
    assert!(
        ready_message(&told).contains("429"),
        "{}",
        ready_message(&told)
    );
    let after_429 = setting_requests();
    assert_eq!(after_429, before + 1, "the 429 was not retried at once");
    // The other policies of that server wait too, without a request.
    for (i, name) in names.iter().enumerate().skip(1) {
        let key = format!("Custom.Throttle.Key{i}");
        let patch = json!({"spec": {"settings": [{"key": key, "value": "2"}]}});
        world
            .policies()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("patch");
        let waiting = world.wait_reason(name, "Throttled", SECS_10).await;
        assert!(
            ready_message(&waiting).contains("asked every client to slow down"),
            "{}",
            ready_message(&waiting)
        );
    }
    assert_eq!(
        setting_requests(),
        after_429,
        "nothing sent during the pause"
    );
    // After the pause every policy writes its change.
    for name in names {
        world.wait_reason(name, "Applied", SECS_20).await;
    }
    for i in 0..3 {
        let key = format!("Custom.Throttle.Key{i}");
        assert_eq!(world.stored_value(&key).as_deref(), Some("2"), "{key}");
    }
}

/// Waits until the policy is gone (its finalizer released).
async fn wait_gone(world: &World, name: &str, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !matches!(world.policies().get_opt(name).await, Ok(None)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} was never released\n{}",
            world.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_on_delete_writes_back_the_values_saved_before_the_first_write() {
    use identity_settings_operator::api::DeletionPolicy;
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    world
        .put_secret("smtp", &[("password", "new-smtp-secret-4711")])
        .await;
    let scope = world.scope();
    world
        .sim
        .set_directly(&scope, "Auth.Password.DefaultExpirationDays", "90");
    world
        .sim
        .set_directly(&scope, "Email.Smtp.Password", "old-smtp-secret-0815");
    let mut settings = password_settings();
    settings.push(secret_setting("Email.Smtp.Password", "smtp", "password"));
    let mut p = policy(&world, "restored", "admin", settings);
    p.spec.deletion_policy = Some(DeletionPolicy::Restore);
    world.create_policy(&p).await;
    world.spawn_operator(&[]).await;
    let applied = world.wait_reason("restored", "Applied", SECS_20).await;
    assert_eq!(
        world
            .stored_value("Auth.Password.DefaultExpirationDays")
            .as_deref(),
        Some("0")
    );

    // The restore point: a Secret owned by the policy, holding the values from before.
    let point = world
        .secrets()
        .get("restored-restore")
        .await
        .expect("restore point");
    let owners = point.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owners.len(), 1);
    assert_eq!(Some(&owners[0].uid), applied.metadata.uid.as_ref());
    let saved = point
        .data
        .as_ref()
        .and_then(|d| d.get("values.json"))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .unwrap_or_default();
    assert!(
        saved.contains(r#""Auth.Password.DefaultExpirationDays":{"value":"90"}"#),
        "{saved}"
    );
    assert!(
        saved.contains("old-smtp-secret-0815"),
        "the old secret is kept, in a Secret"
    );
    // Drift corrected later does not replace what was saved.
    world
        .sim
        .set_directly(&scope, "Auth.Password.DefaultExpirationDays", "45");
    world
        .wait_reason("restored", "DriftCorrected", SECS_20)
        .await;

    // Deleted: the old values are back, the keys that had none keep the policy's.
    world
        .policies()
        .delete("restored", &DeleteParams::default())
        .await
        .expect("delete");
    wait_gone(&world, "restored", SECS_20).await;
    assert_eq!(
        world
            .stored_value("Auth.Password.DefaultExpirationDays")
            .as_deref(),
        Some("90")
    );
    assert_eq!(
        world.stored_value("Email.Smtp.Password").as_deref(),
        Some("old-smtp-secret-0815")
    );
    assert_eq!(
        world.stored_value("Auth.UserLockOut.IsEnabled").as_deref(),
        Some("false")
    );
    for secret in ["new-smtp-secret-4711", "old-smtp-secret-0815"] {
        assert!(!world.logs().contains(secret), "{secret} logged");
    }

    // The server cannot be reached: deletion waits and says how to give up; the annotation
    // lets the policy go without restoring.
    world.sim.set_directly(&scope, "Email.Smtp.Port", "25");
    let mut p = policy(
        &world,
        "stuck",
        "admin",
        vec![setting("Email.Smtp.Port", "2525")],
    );
    p.spec.deletion_policy = Some(DeletionPolicy::Restore);
    world.create_policy(&p).await;
    world.wait_reason("stuck", "Applied", SECS_20).await;
    world
        .sim
        .faults()
        .fail_next(1000, 503, Some(Duration::from_secs(60)));
    world
        .policies()
        .delete("stuck", &DeleteParams::default())
        .await
        .expect("delete");
    let waiting = world.wait_reason("stuck", "RestorePending", SECS_20).await;
    assert!(
        ready_message(&waiting).contains("identitysettings.dev/skip-restore=true"),
        "{}",
        ready_message(&waiting)
    );
    let give_up =
        json!({"metadata": {"annotations": {"identitysettings.dev/skip-restore": "true"}}});
    world
        .policies()
        .patch("stuck", &PatchParams::default(), &Patch::Merge(&give_up))
        .await
        .expect("annotate");
    wait_gone(&world, "stuck", SECS_10).await;
    world.sim.faults().clear();
    assert_eq!(
        world.stored_value("Email.Smtp.Port").as_deref(),
        Some("2525"),
        "not restored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_credentials_secret_reconciles_exactly_its_policies_with_the_new_credentials()
{
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    world.put_good_credentials("other").await;
    world
        .create_policy(&policy(&world, "uses-admin", "admin", password_settings()))
        .await;
    world
        .create_policy(&policy(
            &world,
            "uses-other",
            "other",
            vec![setting("Email.Smtp.Port", "25")],
        ))
        .await;
    world.spawn_operator(&[]).await;
    world.wait_reason("uses-admin", "Applied", SECS_20).await;
    world.wait_reason("uses-other", "Applied", SECS_20).await;

    // Rotate to credentials the server refuses: the change is picked up within seconds, not at
    // the next resync, and only the policy using the Secret is touched.
    let gets_before = gets(&world);
    world
        .put_secret(
            "admin",
            &[
                ("clientId", "operator"),
                ("clientSecret", "rotated-but-wrong"),
            ],
        )
        .await;
    world
        .wait_reason("uses-admin", "CredentialsRejected", Duration::from_secs(5))
        .await;
    let other = world.policies().get("uses-other").await.expect("get");
    assert_eq!(ready_reason(&other).as_deref(), Some("Applied"));
    assert!(
        gets(&world) - gets_before <= 1,
        "the other policy was reconciled too"
    );

    // Rotate to a valid bearer token: Ready again, using the token (no token request).
    let tokens_before = world.sim.counters().count(Endpoint::Token, "POST");
    world
        .put_secret("admin", &[("token", "static-admin-token")])
        .await;
    world
        .wait_reason("uses-admin", "InSync", Duration::from_secs(5))
        .await;
    assert_eq!(
        world.sim.counters().count(Endpoint::Token, "POST"),
        tokens_before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_reported_without_hammering_the_token_endpoint() {
    let mut world = World::start().await;
    world
        .put_secret(
            "admin",
            &[
                ("clientId", "operator"),
                ("clientSecret", "wrong-secret-value"),
            ],
        )
        .await;
    world
        .create_policy(&policy(&world, "password", "admin", password_settings()))
        .await;
    world.spawn_operator(&[]).await;
    let p = world
        .wait_reason("password", "CredentialsRejected", SECS_20)
        .await;
    assert_eq!(
        p.status
            .as_ref()
            .and_then(|s| s.conditions.first())
            .map(|c| c.status.as_str()),
        Some("False")
    );
    let start = world.sim.counters().count(Endpoint::Token, "POST");
    tokio::time::sleep(SECS_10).await;
    let during = world.sim.counters().count(Endpoint::Token, "POST") - start;
    assert!(
        during <= 2,
        "{during} token requests in 10 s with rejected credentials"
    );
    assert!(
        start <= 3,
        "{start} token requests before the condition was set"
    );
    let events: Api<Event> = Api::namespaced(world.client.clone(), NS);
    let rejected: Vec<Event> = events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("CredentialsRejected"))
        .collect();
    assert_eq!(rejected.len(), 1, "one Warning event, not one per retry");
    assert!(
        rejected[0].series.is_none(),
        "the event was repeated: {:?}",
        rejected[0].series
    );
    assert_eq!(rejected[0].type_.as_deref(), Some("Warning"));
    let logs = world.logs();
    assert!(
        !logs.contains("wrong-secret-value"),
        "the client secret reached the log"
    );
    assert!(
        !serde_json::to_string(&p)
            .expect("json")
            .contains("wrong-secret-value")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_is_reported_and_creating_it_makes_the_policy_ready() {
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    let mut settings = password_settings();
    settings.push(secret_setting("Email.Smtp.Password", "smtp", "password"));
    world
        .create_policy(&policy(&world, "smtp", "admin", settings))
        .await;
    world.spawn_operator(&[]).await;
    let p = world.wait_reason("smtp", "SecretNotFound", SECS_20).await;
    assert!(
        ready_message(&p).contains("\"smtp\""),
        "{}",
        ready_message(&p)
    );

    world
        .put_secret("smtp", &[("password", "smtp-pass-4711")])
        .await;
    let p = world
        .wait_reason("smtp", "Applied", Duration::from_secs(5))
        .await;
    assert_eq!(
        world.stored_value("Email.Smtp.Password").as_deref(),
        Some("smtp-pass-4711")
    );

    // Rotating the value's Secret writes the new value within seconds; it is a change of the
    // desired state, not drift.
    world
        .put_secret("smtp", &[("password", "smtp-pass-0815")])
        .await;
    world
        .eventually(
            "the rotated SMTP password is written",
            Duration::from_secs(5),
            || world.stored_value("Email.Smtp.Password").as_deref() == Some("smtp-pass-0815"),
        )
        .await;
    let rotated = world
        .wait_policy(
            "smtp",
            "the rotation recorded",
            Duration::from_secs(5),
            |p| ready_message(p) == "wrote 1 of 4 settings: Email.Smtp.Password",
        )
        .await;
    assert_eq!(ready_reason(&rotated).as_deref(), Some("Applied"));
    assert!(!world.logs().contains("smtp-pass-0815"));

    // The secret value is nowhere a user or log reader could see it.
    assert!(
        !serde_json::to_string(&p)
            .expect("json")
            .contains("smtp-pass-4711")
    );
    assert!(
        !world.logs().contains("smtp-pass-4711"),
        "the SMTP password reached the log"
    );
    let events: Api<Event> = Api::namespaced(world.client.clone(), NS);
    let list = events.list(&ListParams::default()).await.expect("events");
    assert!(
        !serde_json::to_string(&list.items)
            .expect("json")
            .contains("smtp-pass-4711")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_policy_keeps_the_settings_even_with_the_server_down() {
    let (mut world, _) = applied_password_policy().await;
    let stored_before = world.sim.stored(&world.scope());

    world.sim.faults().drop_next(1000);
    world
        .secrets()
        .delete("admin", &DeleteParams::default())
        .await
        .expect("delete secret");
    world
        .policies()
        .delete("password", &DeleteParams::default())
        .await
        .expect("delete policy");
    world
        .wait_gone(
            &world.policies(),
            "password",
            Duration::from_secs(5),
            "the policy is stuck in deletion",
        )
        .await;
    world.sim.faults().clear();
    assert_eq!(
        world.sim.stored(&world.scope()),
        stored_before,
        "Retain keeps the settings"
    );
    // The policy is gone from the API server before the operator's watch says so: the count
    // follows within moments.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, metrics) = world.operator(0).http_get("/metrics").await;
        if metrics.contains(r#"identity_settings_policies{ready="true"} 0"#) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a deleted policy is still counted:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_operator_does_not_rewrite_policies_already_in_sync() {
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    world
        .create_policy(&policy(&world, "password", "admin", password_settings()))
        .await;
    let first = world.spawn_operator(&[]).await;
    world.wait_reason("password", "Applied", SECS_20).await;
    world.operator(first).terminate();
    let puts_before = puts(&world);
    let gets_before = gets(&world);
    let rv = world
        .policies()
        .get("password")
        .await
        .expect("get")
        .metadata
        .resource_version;

    world.spawn_operator(&[]).await;
    world
        .eventually("the restarted operator read the server", SECS_10, || {
            gets(&world) > gets_before
        })
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        puts(&world),
        puts_before,
        "a restart rewrote settings already in sync"
    );
    let after = world.policies().get("password").await.expect("get");
    assert_eq!(
        after.metadata.resource_version,
        rv,
        "a restart rewrote the status\n{}",
        world.logs()
    );
    assert_eq!(ready_reason(&after).as_deref(), Some("Applied"));
}

/// How long the kubelet waits after SIGTERM before it kills the operator's pod: the chart sets
/// no `terminationGracePeriodSeconds`, so Kubernetes' default.
const POD_GRACE_PERIOD: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_operator_cleanly_within_the_pods_grace_period() {
    let deployment =
        include_str!("../../charts/identity-settings-operator/templates/deployment.yaml");
    assert!(
        !deployment.contains("terminationGracePeriodSeconds"),
        "the chart now sets its own grace period: use it as POD_GRACE_PERIOD"
    );
    let (mut world, _) = applied_password_policy().await;

    world.operator(0).send_sigterm();
    let started = tokio::time::Instant::now();
    let code = world.operator(0).wait_exit(POD_GRACE_PERIOD).await;
    assert_eq!(
        code,
        Some(0),
        "SIGTERM must end the operator with exit code 0 within {POD_GRACE_PERIOD:?} (after \
         that the kubelet kills it)\n{}",
        world.logs()
    );
    println!(
        "the operator exited 0 {:?} after SIGTERM",
        started.elapsed()
    );
    assert!(
        world.logs().contains("shutdown signal received"),
        "{}",
        world.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_replicas_only_the_leader_writes_and_the_other_takes_over() {
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    let a = world.spawn_operator(&["--leader-election"]).await;
    world
        .eventually("a replica leads", SECS_10, || {
            world_log_has(&world, "leading: starting the controller")
        })
        .await;
    let b = world.spawn_operator(&["--leader-election"]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    world
        .create_policy(&policy(&world, "password", "admin", password_settings()))
        .await;
    world.wait_reason("password", "Applied", SECS_20).await;
    assert!(
        world.operator(a).log_text().contains("wrote settings"),
        "the leader did not write\n{}",
        world.logs()
    );
    assert!(
        !world
            .operator(b)
            .log_text()
            .contains("starting the controller"),
        "the standby started a controller\n{}",
        world.logs()
    );
    assert!(
        !world.operator(b).log_text().contains("wrote settings"),
        "the standby wrote\n{}",
        world.logs()
    );

    world.operator(a).kill();
    world
        .create_policy(&policy(
            &world,
            "lockout",
            "admin",
            vec![setting(
                "Auth.UserLockOut.MaxFailedAccessAttemptsBeforeLockout",
                "5",
            )],
        ))
        .await;
    world.wait_reason("lockout", "Applied", SECS_20).await;
    assert!(
        world
            .operator(b)
            .log_text()
            .contains("leading: starting the controller")
    );
}

fn world_log_has(world: &World, needle: &str) -> bool {
    world.logs().contains(needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_watches_are_resumed_without_missing_a_change() {
    if skipped_on_real_apiserver(
        "dropped_watches_are_resumed_without_missing_a_change",
        "API-server fault injection (dropped watches) and a restart",
    ) {
        return;
    }
    let (mut world, _) = applied_password_policy().await;

    world.emulator().faults().drop_watches();
    let patch = json!({"spec": {"settings": [{"key": "Auth.Password.DefaultExpirationDays", "value": "30"}]}});
    world
        .policies()
        .patch("password", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    world
        .wait_policy(
            "password",
            "the change made while watches were down",
            SECS_20,
            |p| {
                p.status.as_ref().and_then(|s| s.observed_generation) == p.metadata.generation
                    && ready_reason(p).as_deref() == Some("Applied")
            },
        )
        .await;
    assert_eq!(
        world
            .stored_value("Auth.Password.DefaultExpirationDays")
            .as_deref(),
        Some("30")
    );

    // The API server restarts (state kept): the operator reconnects and sees the next change.
    world.emulator().restart().await.expect("emulator restarts");
    let patch = json!({"spec": {"settings": [{"key": "Auth.Password.DefaultExpirationDays", "value": "45"}]}});
    world
        .policies()
        .patch("password", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    world
        .eventually(
            "the change made after the API server restarted",
            SECS_20,
            || {
                world
                    .stored_value("Auth.Password.DefaultExpirationDays")
                    .as_deref()
                    == Some("45")
            },
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_watched_namespaces_are_reconciled() {
    let mut world = World::start().await;
    for ns in [NS, "team-b", "team-c"] {
        world
            .put_secret_in(
                ns,
                "admin",
                &[
                    ("clientId", "operator"),
                    ("clientSecret", "operator-secret"),
                ],
            )
            .await;
        let mut p = policy(
            &world,
            "lockout",
            "admin",
            vec![setting("Auth.UserLockOut.IsEnabled", "true")],
        );
        p.metadata.namespace = Some(ns.into());
        world.create_policy(&p).await;
    }
    let several = world
        .spawn_operator_watching(Some(&format!("{NS},team-b")), &[])
        .await;
    wait_ready_in(&world, NS).await;
    wait_ready_in(&world, "team-b").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ignored = world
        .policies_in("team-c")
        .get("lockout")
        .await
        .expect("get");
    assert_eq!(
        ready_reason(&ignored),
        None,
        "a namespace that is not watched was reconciled"
    );
    world.operator(several).terminate();

    world.spawn_operator_watching(None, &[]).await;
    wait_ready_in(&world, "team-c").await;
}

async fn wait_ready_in(world: &World, namespace: &str) {
    let api = world.policies_in(namespace);
    let deadline = tokio::time::Instant::now() + SECS_20;
    loop {
        let p = api.get("lockout").await.expect("get");
        if ready_reason(&p).is_some() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{namespace} not reconciled\n{}",
            world.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_spec_and_a_server_outage_become_clear_conditions() {
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    let mut bad = policy(
        &world,
        "bad",
        "admin",
        vec![setting("Email.Smtp.Password", "plain-text-pw")],
    );
    bad.spec.resync_interval = Some("1s".into());
    // A real API server refuses the literal secret at admission (a CEL rule); a policy stored
    // under an older schema still reaches the operator, which refuses it too.
    world
        .store_unvalidated(&serde_json::to_value(&bad).expect("json"))
        .await;
    world.sim.faults().fail_next(1000, 503, None);
    world
        .create_policy(&policy(&world, "outage", "admin", password_settings()))
        .await;
    world.spawn_operator(&[]).await;

    let p = world.wait_reason("bad", "InvalidSpec", SECS_20).await;
    let message = ready_message(&p);
    assert!(
        message.contains("Email.Smtp.Password") && message.contains("valueFrom"),
        "{message}"
    );
    assert!(message.contains("spec.resyncInterval"), "{message}");
    assert!(!message.contains("plain-text-pw"));
    world
        .wait_reason("outage", "ServerUnreachable", Duration::from_secs(60))
        .await;

    world.sim.faults().clear();
    world
        .wait_reason("outage", "Applied", Duration::from_secs(30))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_loses_its_lease_stops_and_exits() {
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    let leader = world.spawn_operator(&["--leader-election"]).await;
    world
        .eventually("the replica leads", SECS_10, || {
            world.logs().contains("leading: starting the controller")
        })
        .await;

    // Someone else takes the Lease (a replica that believes ours expired, say).
    take_over_lease(&world, "intruder").await;

    let code = world.operator(leader).wait_exit(SECS_10).await;
    assert_eq!(
        code,
        Some(1),
        "the deposed leader must exit non-zero\n{}",
        world.logs()
    );
    assert!(
        world.logs().contains("lost the leader lease"),
        "{}",
        world.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_policy_is_reported_and_does_not_stop_the_others() {
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    // A real API server refuses this one at admission, but holds objects stored under an older
    // schema that look like it.
    world
        .store_unvalidated(&json!({
            "apiVersion": "identitysettings.dev/v1alpha1",
            "kind": "IdentitySettingPolicy",
            "metadata": {"name": "broken", "namespace": NS},
            "spec": {"partitionGlobalId": "p", "mode": "Sometimes", "settings": "not a list"}
        }))
        .await;
    world
        .create_policy(&policy(&world, "good", "admin", password_settings()))
        .await;
    world.spawn_operator(&["--log-format", "json"]).await;

    world.wait_reason("good", "Applied", SECS_20).await;
    let events: Api<Event> = Api::namespaced(world.client.clone(), NS);
    let deadline = tokio::time::Instant::now() + SECS_10;
    loop {
        let list = events.list(&ListParams::default()).await.expect("events");
        let found = list.items.iter().any(|e| {
            e.reason.as_deref() == Some("InvalidSpec")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("broken")
        });
        if found {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no InvalidSpec event for the broken policy\n{}",
            world.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // --log-format json: every line is one JSON object.
    let log = world.operator(0).log_text();
    assert!(!log.is_empty());
    for line in log.lines() {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(parsed.get("level").is_some(), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_errors_become_a_condition_and_are_retried() {
    if skipped_on_real_apiserver(
        "api_server_errors_become_a_condition_and_are_retried",
        "API-server fault injection (500s for Secrets)",
    ) {
        return;
    }
    let (mut world, _) = applied_password_policy().await;
    // A Secret the policy does not read yet: its data is not in the operator's cache.
    world.put_secret("expiry", &[("days", "60")]).await;

    // Reading Secrets fails for a while (RBAC or the API server): the policy says so, and the
    // change is applied once reading works again.
    world.emulator().clear_requests();
    world.emulator().faults().fail_next_for(3, 500, "secrets");
    let patch = json!({"spec": {"settings": [{"key": "Auth.Password.DefaultExpirationDays",
        "valueFrom": {"secretKeyRef": {"name": "expiry", "key": "days"}}}]}});
    world
        .policies()
        .patch("password", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    let p = world
        .wait_reason("password", "KubernetesError", SECS_10)
        .await;
    assert!(
        ready_message(&p).contains("cannot read Secrets"),
        "{}",
        ready_message(&p)
    );
    world
        .wait_policy(
            "password",
            "the change applied after the errors",
            SECS_20,
            |p| {
                p.status.as_ref().and_then(|s| s.observed_generation) == p.metadata.generation
                    && ready_reason(p).as_deref() == Some("Applied")
            },
        )
        .await;
    let failed = failed_secret_requests(&mut world);
    assert_eq!(failed, 3, "the operator met every injected error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_ready_only_after_the_first_list_of_policies_and_secrets() {
    if skipped_on_real_apiserver(
        "readyz_answers_ready_only_after_the_first_list_of_policies_and_secrets",
        "API-server fault injection (failing Secret lists)",
    ) {
        return;
    }
    let mut world = World::start().await;
    // Listing Secrets fails for a while (the API server is slow to answer, say): the watcher
    // backs off and retries, and until its first list arrives the operator is not ready.
    world.emulator().faults().fail_next_for(3, 500, "secrets");
    world.spawn_operator(&[]).await;
    let op = world.operator(0);
    let (code, _) = op.http_get("/readyz").await;
    assert_eq!(code, 503, "ready before the Secrets were ever listed");
    // The watcher's backoff after three failures is about 6 s, with jitter.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        if world.operator(0).http_get("/readyz").await.0 == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never ready\n{}",
            world.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let failed = failed_secret_requests(&mut world);
    assert_eq!(failed, 3, "ready only after the failing lists");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_stored_with_a_duplicate_key_gets_an_invalid_spec_status() {
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    // Admission refuses duplicate keys today; a policy stored before still reaches the
    // operator, and its status must be one the schema accepts (a real server refuses a status
    // that lists a key twice).
    let mut duplicated = serde_json::to_value(policy(
        &world,
        "dup",
        "admin",
        vec![
            setting("Auth.UserLockOut.IsEnabled", "true"),
            setting("Auth.UserLockOut.IsEnabled", "false"),
        ],
    ))
    .expect("json");
    duplicated["metadata"]["namespace"] = json!(NS);
    world.store_unvalidated(&duplicated).await;
    world.spawn_operator(&[]).await;
    if on_real_apiserver() {
        // The real server refuses every write to this object, status included: it fails the
        // schema's case-insensitive uniqueness rule, which is not ratcheted for a list holding
        // the same key twice (only a schema bypass can store one). The Event still tells.
        world
            .wait_event("InvalidSpec", "listed twice", SECS_20)
            .await;
        return;
    }
    let p = world.wait_reason("dup", "InvalidSpec", SECS_20).await;
    assert!(
        ready_message(&p).contains("listed twice"),
        "{}",
        ready_message(&p)
    );
    let status = p.status.expect("status");
    assert!(
        status.setting_ids.is_empty(),
        "nothing was read: {:?}",
        status.setting_ids
    );
    assert_eq!(status.setting_count, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_makes_no_write_after_losing_its_lease() {
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    world
        .create_policy(&policy(&world, "password", "admin", password_settings()))
        .await;
    let leader = world.spawn_operator(&["--leader-election"]).await;
    world.wait_reason("password", "Applied", SECS_20).await;

    // The identity service turns slow (every Setting call takes 4 s), and a change arrives:
    // the leader's reconcile is now in its GET, its PUT to follow.
    world.sim.faults().set_latency(Duration::from_secs(4));
    let patch = json!({"spec": {"settings": [{"key": "Auth.Password.DefaultExpirationDays", "value": "77"}]}});
    world
        .policies()
        .patch("password", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Another replica takes the Lease over (it believes ours expired) and leads from now on.
    take_over_lease(&world, "new-leader").await;

    // The old leader steps down and exits; its GET and PUT would have finished by now.
    let code = world
        .operator(leader)
        .wait_exit(Duration::from_secs(20))
        .await;
    assert!(
        code.is_some_and(|c| c != 0),
        "the old leader exits non-zero"
    );
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert_eq!(
        world
            .stored_value("Auth.Password.DefaultExpirationDays")
            .as_deref(),
        Some("0"),
        "the deposed leader wrote after the new leader took over\n{}",
        world.logs()
    );
}

/// Writes the operators' Lease as held by `holder` for a minute, as another replica that
/// believes the holder's lease expired would.
async fn take_over_lease(world: &World, holder: &str) {
    let leases: Api<Lease> =
        Api::namespaced(world.client.clone(), control_plane::RELEASE_NAMESPACE);
    let mut lease = leases
        .get("identity-settings-operator")
        .await
        .expect("the Lease exists");
    let spec = lease.spec.as_mut().expect("spec");
    spec.holder_identity = Some(holder.into());
    spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
    spec.lease_duration_seconds = Some(60);
    leases
        .replace("identity-settings-operator", &PostParams::default(), &lease)
        .await
        .expect("replace");
}

/// How many requests for Secrets the emulator answered with an injected 500.
fn failed_secret_requests(world: &mut World) -> usize {
    world
        .emulator()
        .requests()
        .iter()
        .filter(|r| r.status == 500 && r.resource == "secrets")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_sharing_credentials_share_one_token_and_resyncs_read_no_secret() {
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    let names: Vec<String> = (0..12).map(|i| format!("org-{i:02}")).collect();
    for (i, name) in names.iter().enumerate() {
        let mut p = policy(&world, name, "admin", password_settings());
        p.spec.partition_global_id = format!("3fa85f64-5717-4562-b3fc-2c963f66a{i:03}");
        world.create_policy(&p).await;
    }
    world.spawn_operator(&[]).await;
    for name in &names {
        world.wait_reason(name, "Applied", SECS_20).await;
    }
    assert_eq!(
        world.sim.counters().count(Endpoint::Token, "POST"),
        1,
        "twelve policies with one credentials Secret need one token"
    );

    // A resync of every policy (10 s apart): one identity GET each, and no Kubernetes read or
    // write — Secret data comes from the cache, and nothing changed. (The request log is the
    // emulator's; on the real server the identity side is checked alone.)
    if let Some(emulator) = world.emulator_if_used() {
        emulator.clear_requests();
    }
    let gets_before = gets(&world);
    let deadline = tokio::time::Instant::now() + SECS_20;
    while gets(&world) < gets_before + names.len() as u64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every policy was resynced: {} GETs",
            gets(&world) - gets_before
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if let Some(emulator) = world.emulator_if_used() {
        let operator_requests: Vec<_> = emulator
            .requests()
            .into_iter()
            .filter(|r| r.verb != "watch" && r.resource != "leases")
            .filter(|r| {
                r.user_agent
                    .as_deref()
                    .is_some_and(|a| a.starts_with("identity-settings-operator"))
            })
            .map(|r| format!("{} {} {:?}", r.verb, r.resource, r.name))
            .collect();
        assert_eq!(
            operator_requests,
            Vec::<String>::new(),
            "a resync in sync makes no Kubernetes request"
        );
    }
    assert_eq!(world.sim.counters().count(Endpoint::Token, "POST"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_that_cannot_keep_up_says_so_and_still_checks_every_policy() {
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    let names: Vec<String> = (0..12).map(|i| format!("slow-{i:02}")).collect();
    for (i, name) in names.iter().enumerate() {
        let mut p = policy(&world, name, "admin", password_settings());
        p.spec.partition_global_id = format!("3fa85f64-5717-4562-b3fc-2c963f66b{i:03}");
        world.create_policy(&p).await;
    }
    // One reconcile at a time, and every check will take 1.5 s: 12 policies need 18 s per round,
    // more than their 10 s resync interval.
    world
        .spawn_operator(&["--concurrency", "1", "--identity-concurrency", "1"])
        .await;
    for name in &names {
        world.wait_reason(name, "Applied", SECS_20).await;
    }
    world.sim.faults().set_latency(Duration::from_millis(1500));
    world.sim.checks().reset();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    let overdue = loop {
        let (_, metrics) = world.operator(0).http_get("/metrics").await;
        let overdue: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("identity_settings_queue_overdue "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if overdue > 0 && world.operator(0).log_text().contains("cannot keep up") {
            break overdue;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no sign of the backlog; metrics:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(overdue <= names.len() as u64);
    // Behind, but fair: every policy is checked once before any is checked a third time.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let report = world.sim.checks().report();
        let most = report.scopes.iter().map(|s| s.gets).max().unwrap_or(0);
        assert!(
            most <= 2 || report.scopes.len() == names.len(),
            "a policy was checked {most} times while {} of {} were never checked",
            names.len() - report.scopes.len(),
            names.len()
        );
        if report.scopes.len() == names.len() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {} policies checked",
            report.scopes.len(),
            names.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    world.sim.faults().set_latency(Duration::ZERO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_policy_reads_and_writes_nothing_and_resumes_by_itself() {
    let (world, _) = applied_password_policy().await;

    // An emergency edit: suspend for a few seconds, then change the server by hand.
    let until = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(8);
    let patch = json!({"spec": {"suspendUntil": until.to_string()}});
    world
        .policies()
        .patch("password", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    let p = world.wait_reason("password", "Suspended", SECS_10).await;
    assert!(
        ready_message(&p).contains("suspended until"),
        "{}",
        ready_message(&p)
    );
    world
        .sim
        .set_directly(&world.scope(), "Auth.UserLockOut.IsEnabled", "true");
    let (gets_then, puts_then) = (gets(&world), puts(&world));
    let tokens_then = world.sim.counters().count(Endpoint::Token, "POST");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        (
            gets(&world),
            puts(&world),
            world.sim.counters().count(Endpoint::Token, "POST")
        ),
        (gets_then, puts_then, tokens_then),
        "nothing is read or written while suspended"
    );
    assert_eq!(
        world.stored_value("Auth.UserLockOut.IsEnabled").as_deref(),
        Some("true"),
        "the manual edit stands"
    );

    // The time passes: the policy resumes by itself and takes the edit back.
    let p = world
        .wait_reason("password", "DriftCorrected", SECS_20)
        .await;
    assert!(ready_message(&p).contains("Auth.UserLockOut.IsEnabled"));
    assert_eq!(
        world.stored_value("Auth.UserLockOut.IsEnabled").as_deref(),
        Some("false")
    );

    // Without a time, until `suspend` is set back to false.
    let patch = json!({"spec": {"suspend": true, "suspendUntil": null}});
    world
        .policies()
        .patch("password", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    let p = world.wait_reason("password", "Suspended", SECS_10).await;
    assert!(
        ready_message(&p).contains("spec.suspend is true"),
        "{}",
        ready_message(&p)
    );
    let patch = json!({"spec": {"suspend": false}});
    world
        .policies()
        .patch("password", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    world.wait_reason("password", "InSync", SECS_10).await;
}
