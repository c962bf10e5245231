//! Test harness: a Kubernetes API server (the emulator, or the real control plane when
//! `CONTROL_PLANE_BIN` is set; see `tests/support/control_plane.rs`), an identity simulator,
//! and the real operator binary running as a separate process against both — or, with
//! `E2E_OPERATOR_IMAGE` set, the operator's image running as a container (see
//! [`OperatorImage`]).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use identity_settings_operator::api::{
    IdentitySettingPolicy, IdentitySettingPolicySpec, LocalObjectRef, SecretKeyRef, ServerSpec,
    SettingSpec, ValueSource,
};
use identity_settings_operator::identity::types::SettingScope;
use identity_simulator::{Simulator, SimulatorConfig};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ObjectMeta, PostParams};
use kube_emulator::{EmulatorConfig, KubeEmulator, ResourceKind};

use control_plane::{self, ControlPlane, RELEASE_NAMESPACE};

/// The partition every test policy manages.
pub const PARTITION: &str = "3fa85f64-5717-4562-b3fc-2c963f66afa6";
/// The namespace tests use.
pub const NS: &str = "identity";

/// Namespaces the scenarios use besides [`NS`]; the real control plane creates them up front.
const OTHER_NAMESPACES: [&str; 2] = ["team-b", "team-c"];

/// The Kubernetes API server a world runs against.
pub enum Backend {
    /// The project's Kubernetes API emulator (fault injection, restarts, a request log).
    Emulator(KubeEmulator),
    /// A real etcd and kube-apiserver; the operator runs as the chart's restricted user.
    Real(ControlPlane),
}

/// Whether this run uses the real control plane.
pub fn on_real_apiserver() -> bool {
    control_plane::selected().is_some()
}

/// For scenarios the real API server cannot play: on the real backend, says which scenario is
/// skipped and why (printed, and shown by the suite's `--show-output`), and returns `true`.
pub fn skipped_on_real_apiserver(scenario: &str, needs: &str) -> bool {
    let skip = on_real_apiserver();
    if skip {
        println!("SKIPPED on the real apiserver: {scenario}: it needs {needs}");
    }
    skip
}

/// One world: a Kubernetes API server, the simulator, and operator processes.
pub struct World {
    pub kube: Backend,
    pub sim: Simulator,
    pub client: kube::Client,
    dir: tempfile::TempDir,
    operators: Vec<Operator>,
}

/// The operator's image, when `E2E_OPERATOR_IMAGE` names one: every operator of the run is then
/// a container of it, started by `E2E_CONTAINER_ENGINE` (default `podman`) with the chart's
/// security context — user 65532, read-only root filesystem, no capabilities, no privilege
/// escalation — on the host's network, so it reaches the API server and the simulator on
/// loopback. On the real API server it authenticates as the chart's pod does: a ServiceAccount
/// token mounted at the in-cluster path, `KUBERNETES_SERVICE_HOST`/`_PORT`, no kubeconfig.
#[derive(Clone, Debug)]
pub struct OperatorImage {
    pub engine: String,
    pub image: String,
}

impl OperatorImage {
    /// The image to run, if the run asks for one.
    pub fn selected() -> Option<OperatorImage> {
        let image = std::env::var("E2E_OPERATOR_IMAGE")
            .ok()
            .filter(|v| !v.is_empty())?;
        let engine = std::env::var("E2E_CONTAINER_ENGINE").unwrap_or_else(|_| "podman".into());
        Some(OperatorImage { engine, image })
    }

    /// Runs `engine args...` quietly; whether it succeeded.
    fn engine(&self, args: &[&str]) -> bool {
        Command::new(&self.engine)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

/// A container of the operator's image, named so it can be stopped even when the engine's
/// client process is gone.
struct Container {
    image: OperatorImage,
    name: String,
}

/// A running operator process whose log goes to a file.
pub struct Operator {
    /// The operator, or the container engine's `run` in the foreground, which passes signals on
    /// to the container and exits with its exit code.
    child: Child,
    container: Option<Container>,
    pub log: PathBuf,
    pub name: String,
    /// `--namespaces` as given (`None`: all namespaces).
    namespaces: Option<String>,
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Operator {
    /// The address of /metrics, /healthz and /readyz, from the start-up log line.
    pub async fn http_address(&self) -> String {
        for _ in 0..100 {
            let log = self.log_text();
            let line = log.lines().find(|l| l.contains("serving /metrics"));
            if let Some(addr) = line.and_then(|l| l.split("address=").nth(1)) {
                return addr
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the operator never logged its HTTP address:\n{}",
            self.log_text()
        );
    }

    /// GETs a path of the operator's HTTP server: (status, body).
    pub async fn http_get(&self, path: &str) -> (u16, String) {
        let url = format!("http://{}{path}", self.http_address().await);
        let http = identity_client::http_client_builder()
            .build()
            .expect("an HTTP client");
        let response = http.get(&url).send().await.expect("operator HTTP answers");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits up to `timeout` for the process to exit; its exit code, or `None` if still running.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// The operator's process id on this machine (in a container: its init process).
    fn pid(&self) -> u32 {
        let Some(container) = &self.container else {
            return self.child.id();
        };
        let out = Command::new(&container.image.engine)
            .args(["inspect", "--format", "{{.State.Pid}}", &container.name])
            .output()
            .expect("the container engine runs");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no pid for container {}", container.name))
    }

    /// The process's peak resident memory so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the operator's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM")
    }

    /// Stops the process with SIGKILL (a crash) and waits for it. A container is killed through
    /// the engine (a SIGKILL to the engine's client would leave it running), then removed.
    pub fn kill(&mut self) {
        if let Some(container) = &self.container {
            container
                .image
                .engine(&["kill", "--signal", "KILL", &container.name]);
            for _ in 0..100 {
                if let Ok(Some(_)) = self.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(container) = &self.container {
            container.image.engine(&["rm", "--force", &container.name]);
        }
    }

    /// Sends SIGTERM, as the kubelet does to stop a pod, and returns at once.
    pub fn send_sigterm(&self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
    }

    /// Stops the process the way Kubernetes does (SIGTERM) and waits up to 10 s.
    pub fn terminate(&mut self) {
        self.send_sigterm();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.kill();
    }
}

impl Drop for World {
    /// Every world ends by checking the Helm chart's RBAC against the requests its operators
    /// made (see `rbac.rs`); skipped when the test already failed.
    fn drop(&mut self) {
        // On the real API server its RBAC authorizer has already judged every request.
        let Backend::Emulator(kube) = &self.kube else {
            return;
        };
        if std::thread::panicking() || self.operators.is_empty() {
            return;
        }
        let watched: Option<BTreeSet<String>> = self
            .operators
            .iter()
            .map(|o| o.namespaces.as_ref())
            .collect::<Option<Vec<_>>>()
            .map(|all| {
                all.iter()
                    .flat_map(|n| n.split(','))
                    .map(str::to_owned)
                    .collect()
            });
        let rules = crate::rbac::chart_rules();
        let forbidden: Vec<String> = crate::rbac::operator_requests(kube.requests())
            .iter()
            .filter_map(|r| crate::rbac::forbidden(&rules, r, watched.as_ref(), RELEASE_NAMESPACE))
            .collect();
        assert!(
            forbidden.is_empty(),
            "the Helm chart's RBAC would forbid requests the operator made:\n{}",
            forbidden.join("\n")
        );
    }
}

impl World {
    /// Starts the emulator and simulator.
    pub async fn start() -> World {
        Self::start_with(SimulatorConfig::default()).await
    }

    /// Starts the Kubernetes backend and a simulator with `sim_config`. With
    /// `E2E_SIMULATOR_CANONICALIZE=1` the simulator answers GUIDs upper-case and keys in the
    /// case first stored, as a .NET service on SQL Server might.
    pub async fn start_with(mut sim_config: SimulatorConfig) -> World {
        if std::env::var("E2E_SIMULATOR_CANONICALIZE").is_ok_and(|v| v == "1") {
            sim_config.canonicalize = true;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let (kube, client) = match control_plane::selected() {
            Some(bin) => {
                let mut namespaces = vec![NS];
                namespaces.extend(OTHER_NAMESPACES);
                let plane = ControlPlane::start(&bin, &namespaces).await;
                let client = plane.admin_client().await;
                (Backend::Real(plane), client)
            }
            None => {
                let config = EmulatorConfig {
                    custom_resources: vec![
                        ResourceKind::of::<IdentitySettingPolicy>(true, true),
                        ResourceKind::of::<identity_settings_operator::api::IdentityServer>(
                            true, true,
                        ),
                        ResourceKind::of::<identity_settings_operator::api::ClusterIdentityServer>(
                            false, true,
                        ),
                    ],
                    ..EmulatorConfig::default()
                };
                let kube = KubeEmulator::start(config).await.expect("emulator starts");
                std::fs::write(dir.path().join("kubeconfig"), kube.kubeconfig_yaml(NS))
                    .expect("kubeconfig written");
                let client = kube.client();
                (Backend::Emulator(kube), client)
            }
        };
        let sim = Simulator::start(sim_config)
            .await
            .expect("simulator starts");
        World {
            kube,
            sim,
            client,
            dir,
            operators: Vec::new(),
        }
    }

    /// The emulator, for scenarios that inject API-server faults or read its request log.
    /// Such scenarios call [`skipped_on_real_apiserver`] first.
    /// Restarts the Kubernetes API server (state kept), on either backend: every watch breaks.
    pub async fn restart_api_server(&mut self) {
        match &mut self.kube {
            Backend::Emulator(kube) => kube.restart().await.expect("emulator restarts"),
            Backend::Real(plane) => plane.restart_apiserver().await,
        }
    }

    /// On the real backend, starts kube-controller-manager (garbage collection); `false` on the
    /// emulator, which has none.
    pub async fn start_garbage_collector(&mut self) -> bool {
        match &mut self.kube {
            Backend::Emulator(_) => false,
            Backend::Real(plane) => {
                plane.start_controller_manager().await;
                true
            }
        }
    }

    pub fn emulator(&mut self) -> &mut KubeEmulator {
        match &mut self.kube {
            Backend::Emulator(kube) => kube,
            Backend::Real(_) => panic!("this scenario needs the emulator"),
        }
    }

    /// The emulator when the scenario runs on it: for checks only its request log can make
    /// (the rest of the scenario runs on both backends).
    pub fn emulator_if_used(&mut self) -> Option<&mut KubeEmulator> {
        match &mut self.kube {
            Backend::Emulator(kube) => Some(kube),
            Backend::Real(_) => None,
        }
    }

    /// Stores a policy that does not match the CRD's schema: directly on the emulator (which
    /// does not validate against the schema), under a loosened schema on the real server.
    pub async fn store_unvalidated(&self, object: &serde_json::Value) {
        match &self.kube {
            Backend::Real(plane) => plane.store_unvalidated(object).await,
            Backend::Emulator(_) => {
                let resource = kube::api::ApiResource::erase::<IdentitySettingPolicy>(&());
                let namespace = object["metadata"]["namespace"].as_str().unwrap_or(NS);
                let raw: Api<kube::api::DynamicObject> =
                    Api::namespaced_with(self.client.clone(), namespace, &resource);
                let object = serde_json::from_value(object.clone()).expect("an object");
                raw.create(&PostParams::default(), &object)
                    .await
                    .expect("stored");
            }
        }
    }

    /// Starts an operator process watching `NS` (all namespaces when
    /// `E2E_WATCH_ALL_NAMESPACES=1`, so the suite also runs under the chart's cluster-wide
    /// RBAC); returns its index.
    pub async fn spawn_operator(&mut self, extra: &[&str]) -> usize {
        let all = std::env::var("E2E_WATCH_ALL_NAMESPACES").is_ok_and(|v| v == "1");
        self.spawn_operator_watching((!all).then_some(NS), extra)
            .await
    }

    /// Starts an operator process watching `namespaces` (comma-separated; `None`: all). On the
    /// real API server it runs as the restricted operator user, after the admin has applied the
    /// RBAC the chart renders for the same `watchNamespaces` and leader election. With
    /// [`OperatorImage::selected`] it is a container of that image.
    pub async fn spawn_operator_watching(
        &mut self,
        namespaces: Option<&str>,
        extra: &[&str],
    ) -> usize {
        let real_plane = match &self.kube {
            Backend::Emulator(_) => None,
            Backend::Real(plane) => {
                let watched: Option<Vec<&str>> = namespaces.map(|n| n.split(',').collect());
                let leader_election = extra.contains(&"--leader-election");
                plane
                    .apply_chart_rbac(watched.as_deref(), leader_election)
                    .await;
                Some(plane)
            }
        };
        let index = self.operators.len();
        let name = format!("operator-{index}");
        let log = self.dir.path().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let mut args: Vec<&str> = vec!["run"];
        if let Some(n) = namespaces {
            args.extend(["--namespaces", n]);
        }
        args.extend(["--http-address", "127.0.0.1", "--http-port", "0"]);
        args.extend([
            "--allow-insecure-http",
            "--backoff-min",
            "1s",
            "--backoff-max",
            "5s",
            "--identity",
            &name,
        ]);
        args.extend([
            "--lease-namespace",
            RELEASE_NAMESPACE,
            "--lease-duration",
            "3s",
            "--lease-renew-interval",
            "1s",
        ]);
        args.extend(extra);
        let rust_log = std::env::var("E2E_OPERATOR_LOG")
            .unwrap_or_else(|_| "info,identity_settings_operator=debug".into());
        let image = OperatorImage::selected();
        static ANNOUNCED: std::sync::Once = std::sync::Once::new();
        if let Some(image) = &image {
            ANNOUNCED.call_once(|| {
                println!(
                    "operators run as containers of {} ({}), user 65532, read-only, no capabilities",
                    image.image, image.engine
                );
            });
        }
        let (mut command, container) = match image {
            None => {
                let kubeconfig = match real_plane {
                    None => self.dir.path().join("kubeconfig"),
                    Some(plane) => plane.operator_kubeconfig(),
                };
                let mut command = Command::new(env!("CARGO_BIN_EXE_identity-settings-operator"));
                command
                    .args(&args)
                    .env("KUBECONFIG", kubeconfig)
                    .env("RUST_LOG", rust_log);
                (command, None)
            }
            Some(image) => {
                let container_name = format!(
                    "identity-settings-e2e-{}-{:08x}-{name}",
                    std::process::id(),
                    rand::random::<u32>()
                );
                let mut run: Vec<String> = [
                    "run",
                    "--rm",
                    "--name",
                    &container_name,
                    "--network",
                    "host",
                    "--read-only",
                    "--user",
                    "65532:65532",
                    "--cap-drop",
                    "ALL",
                    "--security-opt",
                    "no-new-privileges",
                ]
                .map(str::to_owned)
                .into();
                run.push(format!("--env=RUST_LOG={rust_log}"));
                if image.engine.ends_with("podman") {
                    // Podman's --read-only mounts writable tmpfs on /tmp, /var/tmp and /run;
                    // readOnlyRootFilesystem in a pod gives none (Docker's gives none either).
                    run.push("--read-only-tmpfs=false".into());
                }
                match real_plane {
                    None => {
                        let kubeconfig = self.dir.path().join("kubeconfig");
                        run.push(format!(
                            "--volume={}:/etc/operator/kubeconfig:ro",
                            kubeconfig.display()
                        ));
                        run.push("--env=KUBECONFIG=/etc/operator/kubeconfig".into());
                    }
                    Some(plane) => {
                        let mounted = self.dir.path().join(format!("{name}-serviceaccount"));
                        plane.write_service_account_files(&mounted).await;
                        let (host, port) = plane.host_and_port();
                        run.push(format!(
                            "--volume={}:/var/run/secrets/kubernetes.io/serviceaccount:ro",
                            mounted.display()
                        ));
                        run.push(format!("--env=KUBERNETES_SERVICE_HOST={host}"));
                        run.push(format!("--env=KUBERNETES_SERVICE_PORT={port}"));
                    }
                }
                run.push(image.image.clone());
                let mut command = Command::new(&image.engine);
                command.args(&run).args(&args);
                let container = Container {
                    image,
                    name: container_name,
                };
                (command, Some(container))
            }
        };
        let child = command
            .stdout(file.try_clone().expect("clone"))
            .stderr(file)
            .stdin(Stdio::null())
            .spawn()
            .expect("the operator (or its container engine) starts");
        self.operators.push(Operator {
            child,
            container,
            log,
            name,
            namespaces: namespaces.map(str::to_owned),
        });
        index
    }

    /// An operator process.
    pub fn operator(&mut self, index: usize) -> &mut Operator {
        &mut self.operators[index]
    }

    /// Every operator's log (and the control plane's last lines), for failure messages.
    pub fn logs(&self) -> String {
        let mut logs: String = self
            .operators
            .iter()
            .map(|o| format!("===== {} =====\n{}", o.name, o.log_text()))
            .collect();
        if let Backend::Real(plane) = &self.kube {
            logs.push_str(&plane.logs_tail());
        }
        logs
    }

    /// The value the simulator stores for `key` in the org-level scope of `PARTITION`.
    pub fn stored_value(&self, key: &str) -> Option<String> {
        self.sim
            .stored(&self.scope())
            .into_iter()
            .find(|s| s.key == key)
            .map(|s| s.value)
    }

    /// The org-level scope of `PARTITION`.
    pub fn scope(&self) -> SettingScope {
        SettingScope::organization(PARTITION)
    }

    pub fn policies(&self) -> Api<IdentitySettingPolicy> {
        Api::namespaced(self.client.clone(), NS)
    }

    pub fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), NS)
    }

    /// Creates or replaces a Secret.
    pub async fn put_secret(&self, name: &str, data: &[(&str, &str)]) {
        self.put_secret_in(NS, name, data).await;
    }

    /// Creates or replaces a Secret in `namespace`.
    pub async fn put_secret_in(&self, namespace: &str, name: &str, data: &[(&str, &str)]) {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                ..ObjectMeta::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        };
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        match api.get_opt(name).await.expect("get secret") {
            Some(existing) => {
                let mut s = secret;
                s.metadata.resource_version = existing.metadata.resource_version;
                api.replace(name, &PostParams::default(), &s)
                    .await
                    .expect("replace secret");
            }
            None => {
                api.create(&PostParams::default(), &secret)
                    .await
                    .expect("create secret");
            }
        }
    }

    /// The client-credentials Secret the default simulator accepts.
    pub async fn put_good_credentials(&self, name: &str) {
        self.put_secret(
            name,
            &[
                ("clientId", "operator"),
                ("clientSecret", "operator-secret"),
            ],
        )
        .await;
    }

    /// Policies of another namespace.
    pub fn policies_in(&self, namespace: &str) -> Api<IdentitySettingPolicy> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Creates a policy.
    pub async fn create_policy(&self, policy: &IdentitySettingPolicy) {
        let namespace = policy.metadata.namespace.as_deref().unwrap_or(NS);
        self.policies_in(namespace)
            .create(&PostParams::default(), policy)
            .await
            .expect("create policy");
    }

    /// Waits until `check` holds for the policy, or fails with the operator logs.
    pub async fn wait_policy(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(&IdentitySettingPolicy) -> bool,
    ) -> IdentitySettingPolicy {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Ok(Some(p)) = self.policies().get_opt(name).await {
                if check(&p) {
                    return p;
                }
                last = Some(p);
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; last status: {}\n{}",
                    serde_json::to_string_pretty(&last.and_then(|p| p.status)).unwrap_or_default(),
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the policy's Ready condition has `reason`.
    pub async fn wait_reason(
        &self,
        name: &str,
        reason: &str,
        timeout: Duration,
    ) -> IdentitySettingPolicy {
        self.wait_policy(name, &format!("Ready reason {reason}"), timeout, |p| {
            ready_reason(p).as_deref() == Some(reason)
        })
        .await
    }

    /// Waits for an Event of `reason` whose note contains `note`, in the suite's namespace;
    /// returns the note. What a user sees on the real API server when it refuses the policy's
    /// status write (an object stored past its schema fails rules that are not ratcheted).
    pub async fn wait_event(&self, reason: &str, note: &str, timeout: Duration) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // A failed list (an API server restarting) is no Event yet: look again.
            let found = self
                .event_notes(reason, None)
                .await
                .unwrap_or_default()
                .into_iter()
                .find(|n| n.contains(note));
            if let Some(note) = found {
                return note;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {reason} Event with {note:?} after {timeout:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The notes of the Events of `reason` in the suite's namespace, about the object named
    /// `regarding` when given.
    pub async fn event_notes(
        &self,
        reason: &str,
        regarding: Option<&str>,
    ) -> Result<Vec<String>, kube::Error> {
        let events: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), NS);
        Ok(events
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .filter(|e| {
                regarding.is_none()
                    || e.regarding.as_ref().and_then(|r| r.name.as_deref()) == regarding
            })
            .filter_map(|e| e.note)
            .collect())
    }

    /// Waits until the object `name` of `api` is gone, polling; fails with `what` and the
    /// operator's log after `timeout`.
    pub async fn wait_gone<K>(&self, api: &Api<K>, name: &str, timeout: Duration, what: &str)
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        // A failed read (an API server restarting) is not "gone": look again.
        while !matches!(api.get_opt(name).await, Ok(None)) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what} (still there after {timeout:?})\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for an arbitrary condition, polling.
    pub async fn eventually(&self, what: &str, timeout: Duration, check: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        while !check() {
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The Ready condition.
pub fn ready_condition(p: &IdentitySettingPolicy) -> Option<&Condition> {
    p.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// The Ready condition's reason.
pub fn ready_reason(p: &IdentitySettingPolicy) -> Option<String> {
    ready_condition(p).map(|c| c.reason.clone())
}

/// The Ready condition's message.
pub fn ready_message(p: &IdentitySettingPolicy) -> String {
    ready_condition(p)
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// A literal setting.
pub fn setting(key: &str, value: &str) -> SettingSpec {
    SettingSpec {
        key: key.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

/// A setting taken from a Secret.
pub fn secret_setting(key: &str, secret: &str, secret_key: &str) -> SettingSpec {
    SettingSpec {
        key: key.into(),
        value: None,
        value_from: Some(Box::new(ValueSource {
            secret_key_ref: SecretKeyRef {
                name: secret.into(),
                key: secret_key.into(),
            },
        })),
    }
}

/// The world's simulator with the credentials Secret `credentials`: a policy's `server`, or a
/// server definition's connection.
pub fn server_spec(world: &World, credentials: &str) -> ServerSpec {
    ServerSpec {
        url: world.sim.base_url(),
        credentials_secret_ref: LocalObjectRef {
            name: credentials.into(),
        },
        auth: None,
        scopes: None,
        authenticate_url: None,
        ca_secret_ref: None,
    }
}

/// A policy against the world's simulator.
pub fn policy(
    world: &World,
    name: &str,
    credentials: &str,
    settings: Vec<SettingSpec>,
) -> IdentitySettingPolicy {
    let spec = IdentitySettingPolicySpec {
        server: Some(Box::new(server_spec(world, credentials))),
        server_ref: None,
        partition_global_id: PARTITION.into(),
        user_id: None,
        settings,
        resync_interval: Some("10s".into()),
        mode: None,
        deletion_policy: None,
        suspend: None,
        suspend_until: None,
    };
    let mut p = IdentitySettingPolicy::new(name, spec);
    p.metadata.namespace = Some(NS.into());
    p
}
