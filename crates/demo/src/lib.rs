//! The no-cluster demo (`cargo run -p identity-settings-demo`): the operator end to end on one
//! machine, no cluster.
//!
//! Starts the Kubernetes API emulator and the identity simulator in this process, runs the real
//! controller against them, applies the manifests of `examples/` as a user would (with each
//! policy's URLs pointed at the simulator, and the simulator told to accept the examples'
//! credentials), waits until every policy converged, and prints what happened.

pub mod manifests;
pub mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};

use identity_client::types::SettingScope;
use identity_settings_operator::api::{IdentitySettingPolicy, SyncMode};
use identity_settings_operator::controller::context::{Context, ReconcileSettings};
use identity_settings_operator::controller::{self, WatchScope};
use identity_settings_operator::metrics::Metrics;
use identity_settings_operator::operator;
use identity_simulator::{Simulator, SimulatorConfig};
use kube_emulator::{EmulatorConfig, KubeEmulator, ResourceKind};
use manifests::{Manifest, ManifestError};

/// The namespace for manifests that name none (like `kubectl apply -n identity`).
pub const NAMESPACE: &str = "identity";

/// What the demo needs to know.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// The directory of manifests to apply.
    pub examples: PathBuf,
    /// How long to wait for every policy to converge.
    pub timeout: Duration,
}

/// Why the demo did not end well.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The manifests could not be read: fix the file named.
    #[error(transparent)]
    Manifests(#[from] ManifestError),
    /// A stand-in could not start.
    #[error("cannot start the {what}: {source}")]
    Start {
        /// Which stand-in.
        what: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The emulated API server refused a manifest or a read.
    #[error("Kubernetes API emulator: {0}")]
    Kube(#[from] kube::Error),
    /// Some policies failed in a way only a change of the manifests can fix: waiting is useless.
    #[error("not converged, and waiting cannot help: {}", pending.join("; "))]
    NeedsFix {
        /// `namespace/name: reason — message` of each policy that did not converge.
        pending: Vec<String>,
    },
    /// Some policies were not Ready for their latest generation in time.
    #[error("not converged within {timeout:?}: {}", pending.join("; "))]
    NotConverged {
        /// How long the demo waited.
        timeout: Duration,
        /// `namespace/name: reason — message` of each policy that did not converge.
        pending: Vec<String>,
    },
}

/// Runs the demo, printing progress to stdout.
pub async fn run(options: DemoOptions) -> Result<(), DemoError> {
    let manifests = manifests::load_dir(&options.examples)?;
    let (secrets, mut policies) = split(manifests);
    println!(
        "• read {} Secrets and {} policies from {}",
        secrets.len(),
        policies.len(),
        options.examples.display()
    );

    let credentials = manifests::simulator_credentials(&secrets);
    let sim = Simulator::start(SimulatorConfig {
        clients: credentials.clients,
        bearer_tokens: credentials.bearer_tokens,
        ropc_users: credentials.ropc_users,
        seed_example: false,
        ..SimulatorConfig::default()
    })
    .await
    .map_err(|source| DemoError::Start {
        what: "identity simulator",
        source,
    })?;
    println!(
        "• identity simulator at {} (accepting the examples' credentials)",
        sim.base_url()
    );
    let kube = KubeEmulator::start(EmulatorConfig {
        custom_resources: vec![
            ResourceKind::of::<IdentitySettingPolicy>(true, true),
            ResourceKind::of::<identity_settings_operator::api::IdentityServer>(true, true),
            ResourceKind::of::<identity_settings_operator::api::ClusterIdentityServer>(false, true),
        ],
        ..EmulatorConfig::default()
    })
    .await
    .map_err(|source| DemoError::Start {
        what: "Kubernetes API emulator",
        source,
    })?;
    println!("• Kubernetes API emulator at {}", kube.url());

    let result = converge(&options, &kube, &sim, &secrets, &mut policies).await;
    kube.shutdown().await;
    sim.shutdown().await;
    result
}

/// Runs the controller, applies, waits, reports; the stand-ins are the caller's to stop.
async fn converge(
    options: &DemoOptions,
    kube: &KubeEmulator,
    sim: &Simulator,
    secrets: &[Secret],
    policies: &mut [IdentitySettingPolicy],
) -> Result<(), DemoError> {
    let uri = kube
        .url()
        .parse()
        .expect("an http URL built from a socket address is a valid URI");
    let operator_client = operator::kube_client(kube::Config::new(uri))?;
    let ctx = Arc::new(Context::new(
        operator_client,
        Arc::new(Metrics::default()),
        ReconcileSettings {
            // The simulator serves plain HTTP on loopback.
            allow_insecure_http: true,
            ..ReconcileSettings::default()
        },
        Some("demo".to_owned()),
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(controller::run(ctx, WatchScope::All, || {}, async {
        let _ = stopped.await;
    }));
    println!("• operator controller running (all namespaces)");

    let applied = apply(kube.client(), sim, secrets, policies).await;
    let outcome = match applied {
        Ok(()) => wait(kube.client(), options.timeout).await,
        Err(e) => Err(e),
    };
    let _ = stop.send(());
    let _ = controller.await;
    let converged = outcome?;

    println!("\nPolicies (kubectl get isp -A, with the ids the server returned):\n");
    print!("{}", table::policies(&converged));
    let secret_keys: BTreeSet<String> = policies
        .iter()
        .flat_map(|p| &p.spec.settings)
        .filter(|s| s.value_from.is_some())
        .map(|s| s.key.to_string())
        .collect();
    let scopes: BTreeSet<(String, Option<String>)> = policies
        .iter()
        .map(|p| (p.spec.partition_global_id.clone(), p.spec.user_id.clone()))
        .collect();
    println!("\nSettings the identity simulator now holds:");
    for (partition_global_id, user_id) in scopes {
        match &user_id {
            None => println!("\npartition {partition_global_id}, organization level:\n"),
            Some(user) => println!("\npartition {partition_global_id}, user {user}:\n"),
        }
        let stored = sim.stored(&SettingScope {
            partition_global_id,
            user_id,
        });
        print!("{}", table::settings(&stored, &secret_keys));
    }
    let observing = converged
        .iter()
        .filter(|p| p.spec.mode == Some(SyncMode::Observe))
        .count();
    match observing {
        0 => println!("\nAll {} policies converged.", converged.len()),
        n => println!(
            "\nAll {} policies converged ({n} in observe mode: differences reported, nothing written).",
            converged.len()
        ),
    }
    Ok(())
}

fn split(manifests: Vec<Manifest>) -> (Vec<Secret>, Vec<IdentitySettingPolicy>) {
    let mut secrets = Vec::new();
    let mut policies = Vec::new();
    for m in manifests {
        match m {
            Manifest::Secret(s) => secrets.push(*s),
            Manifest::Policy(p) => policies.push(*p),
        }
    }
    (secrets, policies)
}

/// Creates the Secrets, then the policies pointed at the simulator, as a user would, each in
/// its own namespace or [`NAMESPACE`].
async fn apply(
    client: kube::Client,
    sim: &Simulator,
    secrets: &[Secret],
    policies: &mut [IdentitySettingPolicy],
) -> Result<(), DemoError> {
    for secret in secrets {
        let namespace = namespace_of(&secret.metadata);
        let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
        let created = api.create(&PostParams::default(), secret).await?;
        println!(
            "• created Secret {namespace}/{}",
            created.metadata.name.unwrap_or_default()
        );
    }
    for policy in policies.iter_mut() {
        let namespace = namespace_of(&policy.metadata);
        let api: Api<IdentitySettingPolicy> = Api::namespaced(client.clone(), &namespace);
        let was = manifests::point_at_simulator(policy, &sim.base_url(), &sim.authenticate_url());
        let created = api.create(&PostParams::default(), policy).await?;
        let count = policy.spec.settings.len();
        println!(
            "• created IdentitySettingPolicy {namespace}/{} ({count} setting{}; server {was} → simulator)",
            created.metadata.name.unwrap_or_default(),
            if count == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

fn namespace_of(meta: &kube::api::ObjectMeta) -> String {
    meta.namespace
        .clone()
        .unwrap_or_else(|| NAMESPACE.to_owned())
}

/// Polls the policies until all converged, printing each change of their Ready condition;
/// returns them, or the ones that did not converge.
async fn wait(
    client: kube::Client,
    timeout: Duration,
) -> Result<Vec<IdentitySettingPolicy>, DemoError> {
    let api: Api<IdentitySettingPolicy> = Api::all(client);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let policies = api.list(&ListParams::default()).await?.items;
        for p in &policies {
            let name = table::qualified_name(p);
            let state = match table::ready(p) {
                Some((status, reason, _)) => format!("Ready={status} ({reason})"),
                None => "no status yet".to_owned(),
            };
            if seen.get(&name) != Some(&state) {
                println!("  {name}: {state}");
                seen.insert(name, state);
            }
        }
        if policies.iter().all(table::converged) {
            return Ok(policies);
        }
        let pending: Vec<&IdentitySettingPolicy> =
            policies.iter().filter(|p| !table::converged(p)).collect();
        let stuck = pending.iter().all(|p| table::needs_user(p));
        if stuck || tokio::time::Instant::now() >= deadline {
            print!("\n{}", table::policies(&policies));
            let pending = pending
                .iter()
                .map(|p| {
                    let (_, reason, message) = table::ready(p).unwrap_or(("", "NoStatus", ""));
                    format!("{}: {reason} — {message}", table::qualified_name(p))
                })
                .collect();
            return Err(if stuck {
                DemoError::NeedsFix { pending }
            } else {
                DemoError::NotConverged { timeout, pending }
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
