//! One reconcile at a time, in-process, against the emulator and the simulator: asserts the
//! exact calls a reconcile makes.

use std::sync::Arc;

use identity_settings_operator::api::{
    IdentitySettingPolicy, IdentitySettingPolicySpec, LocalObjectRef, ServerSpec, SettingSpec,
};
use identity_settings_operator::controller::context::{Context, ReconcileSettings};
use identity_settings_operator::controller::reconciler::reconcile;
use identity_settings_operator::controller::resyncs::Next;
use identity_settings_operator::identity::types::SettingScope;
use identity_settings_operator::metrics::Metrics;
use identity_simulator::{Endpoint, Simulator, SimulatorConfig};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use kube_emulator::{EmulatorConfig, KubeEmulator, ResourceKind};

const NS: &str = "team-a";

struct Fixture {
    kube: KubeEmulator,
    sim: Simulator,
    ctx: Arc<Context>,
    policies: Api<IdentitySettingPolicy>,
}

async fn fixture() -> Fixture {
    let kube = KubeEmulator::start(EmulatorConfig {
        custom_resources: vec![
            ResourceKind::of::<IdentitySettingPolicy>(true, true),
            ResourceKind::of::<identity_settings_operator::api::IdentityServer>(true, true),
            ResourceKind::of::<identity_settings_operator::api::ClusterIdentityServer>(false, true),
        ],
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator");
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .expect("simulator");
    let client = kube.client();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("admin".into()),
            namespace: Some(NS.into()),
            ..ObjectMeta::default()
        },
        data: Some(
            [
                ("clientId", "operator"),
                ("clientSecret", "operator-secret"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
            .collect(),
        ),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret");
    let settings = ReconcileSettings {
        allow_insecure_http: true,
        ..ReconcileSettings::default()
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        Arc::new(Metrics::default()),
        settings,
        None,
    ));
    Fixture {
        policies: Api::namespaced(client, NS),
        kube,
        sim,
        ctx,
    }
}

fn policy(sim: &Simulator) -> IdentitySettingPolicy {
    let mut p = IdentitySettingPolicy::new(
        "lockout",
        IdentitySettingPolicySpec {
            server: Some(Box::new(ServerSpec {
                url: format!("{}/", sim.base_url()),
                credentials_secret_ref: LocalObjectRef {
                    name: "admin".into(),
                },
                auth: None,
                scopes: None,
                authenticate_url: None,
                ca_secret_ref: None,
            })),
            server_ref: None,
            partition_global_id: "magic-7".into(),
            user_id: None,
            settings: vec![
                SettingSpec {
                    key: "Auth.UserLockOut.IsEnabled".into(),
                    value: Some("True".into()),
                    value_from: None,
                },
                SettingSpec {
                    key: "Auth.UserLockOut.MaxFailedAccessAttemptsBeforeLockout".into(),
                    value: Some("5".into()),
                    value_from: None,
                },
            ],
            resync_interval: None,
            mode: None,
            deletion_policy: None,
            suspend: None,
            suspend_until: None,
        },
    );
    p.metadata.namespace = Some(NS.into());
    p
}

/// The operator's Kubernetes calls since the log was cleared, as `verb resource[/sub] (patch
/// type) by manager`.
fn calls(kube: &KubeEmulator) -> Vec<String> {
    kube.requests()
        .iter()
        .map(|r| {
            let sub = r
                .subresource
                .as_deref()
                .map(|s| format!("/{s}"))
                .unwrap_or_default();
            let patch = r
                .patch_type
                .as_deref()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default();
            let manager = r
                .field_manager
                .as_deref()
                .map(|m| format!(" by {m}"))
                .unwrap_or_default();
            format!("{} {}{sub}{patch}{manager}", r.verb, r.resource)
        })
        .collect()
}

#[tokio::test]
async fn a_reconcile_with_nothing_to_change_makes_one_get_no_put_and_no_status_write() {
    let f = fixture().await;
    f.policies
        .create(&PostParams::default(), &policy(&f.sim))
        .await
        .expect("create");

    // A `Retain` policy (the default) carries no finalizer: its first reconcile reads the
    // credentials Secret, publishes the Event, applies status — and patches nothing else.
    let first = f.policies.get("lockout").await.expect("get");
    f.kube.clear_requests();
    reconcile(Arc::new(first), f.ctx.clone())
        .await
        .expect("first reconcile");
    assert_eq!(
        calls(&f.kube),
        [
            "get secrets",
            "create events",
            "patch identitysettingpolicies/status (merge) by identity-settings-operator",
        ],
        "no finalizer patch; the Applied Event is published before the status write"
    );
    let applied = f.policies.get("lockout").await.expect("get");
    let status = applied.status.clone().expect("status written");
    assert_eq!(status.conditions[0].reason, "Applied");
    // magic-7 is seeded from the vendor example: these keys keep their ids 27 and 28.
    let ids: Vec<_> = status.setting_ids.iter().map(|(_, id)| id).collect();
    assert_eq!(ids, [27, 28]);

    // The next reconcile has nothing to change: the server holds "True" as sent.
    let in_sync = applied;
    let count = |e, m| f.sim.counters().count(e, m);
    let (gets, puts, tokens) = (
        count(Endpoint::Setting, "GET"),
        count(Endpoint::Setting, "PUT"),
        count(Endpoint::Token, "POST"),
    );
    f.kube.clear_requests();
    let next = reconcile(Arc::new(in_sync.clone()), f.ctx.clone())
        .await
        .expect("third reconcile");
    assert_eq!(count(Endpoint::Setting, "GET") - gets, 1, "exactly one GET");
    assert_eq!(count(Endpoint::Setting, "PUT"), puts, "no PUT");
    assert_eq!(
        count(Endpoint::Token, "POST"),
        tokens,
        "the cached token is reused"
    );
    let writes: Vec<_> = f
        .kube
        .requests()
        .into_iter()
        .filter(|r| !matches!(r.verb.as_str(), "get" | "list" | "watch"))
        .collect();
    assert!(
        writes.is_empty(),
        "a reconcile with nothing to change wrote to Kubernetes: {writes:?}"
    );
    let after = f.policies.get("lockout").await.expect("get");
    assert_eq!(
        after.metadata.resource_version,
        in_sync.metadata.resource_version
    );
    // The next check is scheduled at the resync interval (default 10 min, plus up to 10 % jitter).
    let Next::After(requeue) = next else {
        panic!("no next check: {next:?}");
    };
    assert!(
        (600.0..=660.0).contains(&requeue.as_secs_f64()),
        "next check after {requeue:?}"
    );
}

/// Identity requests since `before`: (GET, PUT, token POST) on the Setting and token endpoints.
fn identity_calls(sim: &Simulator, before: (u64, u64, u64)) -> (u64, u64, u64) {
    let c = sim.counters();
    (
        c.count(Endpoint::Setting, "GET") - before.0,
        c.count(Endpoint::Setting, "PUT") - before.1,
        c.count(Endpoint::Token, "POST") - before.2,
    )
}

fn identity_now(sim: &Simulator) -> (u64, u64, u64) {
    identity_calls(sim, (0, 0, 0))
}

/// Creates the policy and reconciles it once as stored; returns the calls it made.
async fn reconcile_stored(f: &Fixture, name: &str) -> (Vec<String>, (u64, u64, u64)) {
    let stored = f.policies.get(name).await.expect("get");
    let before = identity_now(&f.sim);
    f.kube.clear_requests();
    reconcile(Arc::new(stored), f.ctx.clone())
        .await
        .expect("reconcile");
    (calls(&f.kube), identity_calls(&f.sim, before))
}

fn ready(p: &IdentitySettingPolicy) -> (String, String) {
    let c = p
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .expect("Ready condition");
    (c.status.clone(), c.reason.clone())
}

const STATUS_APPLY: &str =
    "patch identitysettingpolicies/status (merge) by identity-settings-operator";

/// Gather, observe and plan branches: one GET, no PUT; the write step publishes the Event and
/// applies status, nothing else (plan mode lists the changes there).
#[tokio::test]
async fn observe_and_plan_modes_read_once_and_write_only_the_event_and_status() {
    use identity_settings_operator::api::SyncMode;
    for (mode, reason) in [
        (SyncMode::Observe, "Drifted"),
        (SyncMode::Plan, "ChangesPlanned"),
    ] {
        let f = fixture().await;
        let mut p = policy(&f.sim);
        p.spec.mode = Some(mode);
        f.policies
            .create(&PostParams::default(), &p)
            .await
            .expect("create");
        let (kube, identity) = reconcile_stored(&f, "lockout").await;
        assert_eq!(
            kube,
            ["get secrets", "create events", STATUS_APPLY],
            "{mode:?}"
        );
        assert_eq!(
            identity,
            (1, 0, 1),
            "{mode:?}: one GET (and the first token), no PUT"
        );
        let reported = f.policies.get("lockout").await.expect("get");
        assert_eq!(ready(&reported), ("False".into(), reason.into()));
        let planned = reported.status.expect("status").planned_changes;
        assert_eq!(
            !planned.is_empty(),
            mode == SyncMode::Plan,
            "{mode:?}: the changes are listed in plan mode only"
        );
    }
}

/// Gather, a missing Secret: no identity request at all; the write step reports
/// `SecretNotFound`.
#[tokio::test]
async fn a_missing_secret_makes_no_identity_request() {
    let f = fixture().await;
    let mut p = policy(&f.sim);
    if let Some(server) = p.spec.server.as_mut() {
        server.credentials_secret_ref.name = "absent".into();
    }
    f.policies
        .create(&PostParams::default(), &p)
        .await
        .expect("create");
    let (kube, identity) = reconcile_stored(&f, "lockout").await;
    assert_eq!(kube, ["get secrets", "create events", STATUS_APPLY]);
    assert_eq!(identity, (0, 0, 0));
    let reported = f.policies.get("lockout").await.expect("get");
    assert_eq!(ready(&reported), ("False".into(), "SecretNotFound".into()));
}

/// Gather, a suspended policy: nothing read (no Secret, no token, no GET); status says so.
#[tokio::test]
async fn a_suspended_policy_reads_nothing() {
    let f = fixture().await;
    let mut p = policy(&f.sim);
    p.spec.suspend = Some(true);
    f.policies
        .create(&PostParams::default(), &p)
        .await
        .expect("create");
    let (kube, identity) = reconcile_stored(&f, "lockout").await;
    assert_eq!(kube, ["create events", STATUS_APPLY]);
    assert_eq!(identity, (0, 0, 0));
}

/// Write, a `Restore` policy: the finalizer first (its own reconcile), then the values the
/// server had are saved before the announced PUT; deleting it writes them back and lets go.
#[tokio::test]
async fn a_restore_policy_saves_before_its_first_put_and_restores_on_delete() {
    let f = fixture().await;
    let mut p = policy(&f.sim);
    p.spec.deletion_policy = Some(identity_settings_operator::api::DeletionPolicy::Restore);
    f.policies
        .create(&PostParams::default(), &p)
        .await
        .expect("create");
    let (kube, identity) = reconcile_stored(&f, "lockout").await;
    assert_eq!(
        kube,
        ["patch identitysettingpolicies (json)"],
        "the finalizer alone"
    );
    assert_eq!(identity, (0, 0, 0));

    let scope = SettingScope::organization("magic-7");
    let before = f.sim.stored(&scope);
    let (kube, identity) = reconcile_stored(&f, "lockout").await;
    assert_eq!(
        kube,
        [
            "get secrets",
            // The restore point: the policy as stored now, any earlier point, its digest
            // recorded in status (a field manager of its own) before the Secret is created.
            "get identitysettingpolicies",
            "get secrets",
            "patch identitysettingpolicies/status (apply) by identity-settings-operator-restore-point",
            "create secrets by identity-settings-operator",
            // The write announced, then the PUT, then status (no second Event).
            "create events",
            STATUS_APPLY,
        ]
    );
    assert_eq!(identity, (1, 1, 1), "one GET, one PUT, the first token");
    assert_ne!(
        f.sim.stored(&scope),
        before,
        "the policy's values were written"
    );

    f.policies
        .delete("lockout", &Default::default())
        .await
        .expect("delete");
    let (kube, identity) = reconcile_stored(&f, "lockout").await;
    assert_eq!(
        kube,
        [
            "get identitysettingpolicies",
            // The restore point and the credentials.
            "get secrets",
            "get secrets",
            "create events",
            // The restore point released, then the policy.
            "get secrets",
            "patch secrets (merge)",
            "patch identitysettingpolicies (json)",
        ]
    );
    assert_eq!(
        identity,
        (0, 1, 0),
        "one PUT of the saved values, nothing read"
    );
    assert_eq!(f.sim.stored(&scope), before, "the old values are back");
    assert!(
        f.policies.get_opt("lockout").await.expect("get").is_none(),
        "the policy is gone"
    );
}
