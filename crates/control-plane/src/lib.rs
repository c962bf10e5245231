//! A real Kubernetes control plane for tests, in the manner of controller-runtime's envtest:
//! etcd and kube-apiserver (built by `tests/control-plane/build`) started on free loopback
//! ports in a temporary directory, with the apiserver's own self-signed serving certificate, a
//! static token file, RBAC authorization and service-account signing keys. Everything it starts
//! is stopped when the value is dropped, also when the test panicked.
//!
//! A crate of its own so that the real-apiserver suite and the benchmark's real-apiserver mode
//! start the same control plane. The backend is chosen by one switch: `CONTROL_PLANE_BIN` names
//! the directory holding `etcd`, `kube-apiserver`, `kubectl` and `helm` (the last line `build`
//! prints). Unset, the tests run against the Kubernetes API emulator and need no Go.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

/// The switch: the directory of the control-plane binaries.
pub const BIN_ENV: &str = "CONTROL_PLANE_BIN";
/// The namespace the chart is rendered for (the operator's own, where its Lease lives).
pub const RELEASE_NAMESPACE: &str = "identity-settings-system";
/// The Helm release name the chart is rendered with.
pub const RELEASE: &str = "identity-settings-operator";
/// The chart, in the repository.
pub const CHART: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../charts/identity-settings-operator"
);
/// The generated CRD, in the repository.
pub const CRD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../crds/identitysettings.dev.yaml"
);

/// The restricted user the operator runs as. The static token file gives it the name and
/// groups Kubernetes gives the chart's ServiceAccount, so the only permissions it has are those
/// of the RoleBindings and ClusterRoleBindings that `helm template` renders for that account.
pub const OPERATOR_USER: &str =
    "system:serviceaccount:identity-settings-system:identity-settings-operator";

/// The control-plane binaries, when the real backend is selected.
pub fn selected() -> Option<PathBuf> {
    std::env::var_os(BIN_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// A running etcd and kube-apiserver.
pub struct ControlPlane {
    bin: PathBuf,
    dir: tempfile::TempDir,
    etcd: Child,
    apiserver: Child,
    /// kube-controller-manager, when a scenario started it.
    controller_manager: Option<Child>,
    /// How kube-apiserver was started, to start it again the same way.
    apiserver_args: Vec<String>,
    admin_token: String,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The server's version, e.g. `v1.34.4` (what `helm template` is told it renders for).
    pub version: String,
    /// The audit log, when started with [`Audit::Log`].
    audit_log: Option<PathBuf>,
}

/// Whether kube-apiserver writes an audit log: every request's user, verb and object, once
/// complete (the benchmark counts the operator's requests from it, as a cluster admin would).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audit {
    /// No audit log (the suite).
    Off,
    /// `audit.log` in the plane's directory, at level Metadata, one line per completed request.
    Log,
}

/// The audit policy of [`Audit::Log`]: metadata of every request, once, when complete.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
- level: Metadata
";

impl Drop for ControlPlane {
    fn drop(&mut self) {
        for child in self
            .controller_manager
            .iter_mut()
            .chain([&mut self.apiserver, &mut self.etcd])
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn random_token() -> String {
    let bits: u128 = rand::random();
    bits.to_be_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn spawn_logged(program: &Path, args: &[String], log: &Path) -> Child {
    let file = std::fs::File::create(log).expect("log file");
    Command::new(program)
        .args(args)
        .stdout(file.try_clone().expect("clone log"))
        .stderr(file)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{} starts: {e}", program.display()))
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver from `bin`, waits for `/readyz`, installs the CRD and
    /// creates `namespaces` (and the release namespace).
    pub async fn start(bin: &Path, namespaces: &[&str]) -> ControlPlane {
        Self::start_with(bin, namespaces, Audit::Off).await
    }

    /// [`ControlPlane::start`], with or without an audit log.
    pub async fn start_with(bin: &Path, namespaces: &[&str], audit: Audit) -> ControlPlane {
        let plane = Self::start_bare_with(bin, audit).await;
        plane.create_namespace(RELEASE_NAMESPACE).await;
        for ns in namespaces {
            plane.create_namespace(ns).await;
        }
        plane.kubectl(&["apply", "-f", CRD]).await;
        plane
            .kubectl(&[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "crd/identitysettingpolicies.identitysettings.dev",
                "crd/identityservers.identitysettings.dev",
                "crd/clusteridentityservers.identitysettings.dev",
            ])
            .await;
        plane
    }

    /// Starts etcd and kube-apiserver from `bin` and waits for `/readyz`; nothing installed.
    pub async fn start_bare(bin: &Path) -> ControlPlane {
        Self::start_bare_with(bin, Audit::Off).await
    }

    /// [`ControlPlane::start_bare`], with or without an audit log.
    pub async fn start_bare_with(bin: &Path, audit: Audit) -> ControlPlane {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = |name: &str| dir.path().join(name);
        let (client_port, peer_port, secure_port) = (free_port(), free_port(), free_port());

        let etcd = spawn_logged(
            &bin.join("etcd"),
            &[
                "--name=default".into(),
                format!("--data-dir={}", path("etcd").display()),
                format!("--listen-client-urls=http://127.0.0.1:{client_port}"),
                format!("--advertise-client-urls=http://127.0.0.1:{client_port}"),
                format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
                format!("--initial-cluster=default=http://127.0.0.1:{peer_port}"),
                "--unsafe-no-fsync".into(),
                "--log-level=warn".into(),
            ],
            &path("etcd.log"),
        );

        let status = Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(path("sa.key"))
            .arg("2048")
            .stderr(Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl made the service-account key");
        let (admin_token, operator_token) = (random_token(), random_token());
        std::fs::write(
            path("tokens.csv"),
            format!(
                "{admin_token},admin,admin,\"system:masters\"\n\
                 {operator_token},{OPERATOR_USER},operator,\"system:serviceaccounts,system:serviceaccounts:{RELEASE_NAMESPACE}\"\n"
            ),
        )
        .expect("token file");

        let mut apiserver_args = vec![
            format!("--etcd-servers=http://127.0.0.1:{client_port}"),
            format!("--cert-dir={}", path("certs").display()),
            format!("--secure-port={secure_port}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            format!("--token-auth-file={}", path("tokens.csv").display()),
            "--authorization-mode=RBAC".into(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-account-key-file={}", path("sa.key").display()),
            format!(
                "--service-account-signing-key-file={}",
                path("sa.key").display()
            ),
        ];
        let audit_log = (audit == Audit::Log).then(|| path("audit.log"));
        if let Some(log) = &audit_log {
            std::fs::write(path("audit-policy.yaml"), AUDIT_POLICY).expect("audit policy");
            apiserver_args.extend([
                format!(
                    "--audit-policy-file={}",
                    path("audit-policy.yaml").display()
                ),
                format!("--audit-log-path={}", log.display()),
                "--audit-log-maxsize=0".into(),
            ]);
        }
        let apiserver = spawn_logged(
            &bin.join("kube-apiserver"),
            &apiserver_args,
            &path("kube-apiserver.log"),
        );
        let url = format!("https://127.0.0.1:{secure_port}");
        let mut plane = ControlPlane {
            bin: bin.to_owned(),
            dir,
            etcd,
            apiserver,
            controller_manager: None,
            apiserver_args,
            admin_token: admin_token.clone(),
            url,
            version: String::new(),
            audit_log,
        };
        plane.wait_ready(&admin_token).await;
        plane.version = plane
            .admin_client()
            .await
            .apiserver_version()
            .await
            .expect("the server's version")
            .git_version;
        plane.write_kubeconfig("admin.kubeconfig", &admin_token);
        plane.write_kubeconfig("operator.kubeconfig", &operator_token);
        plane
    }

    /// Starts kube-controller-manager with the garbage collector and the namespace controller
    /// only (ownerReference collection, foreground deletion, namespace deletion) and waits a
    /// few seconds for its caches to sync.
    pub async fn start_controller_manager(&mut self) {
        if self.controller_manager.is_some() {
            return;
        }
        let args = vec![
            format!("--kubeconfig={}", self.admin_kubeconfig().display()),
            "--controllers=garbagecollector,namespace".into(),
            "--leader-elect=false".into(),
            "--secure-port=0".into(),
            "--use-service-account-credentials=false".into(),
        ];
        self.controller_manager = Some(spawn_logged(
            &self.bin.join("kube-controller-manager"),
            &args,
            &self.dir.path().join("kube-controller-manager.log"),
        ));
        tokio::time::sleep(Duration::from_secs(6)).await;
    }

    /// Stops kube-apiserver and starts it again on the same port and etcd (state kept), as a
    /// control-plane upgrade or crash does; returns once it is ready again.
    pub async fn restart_apiserver(&mut self) {
        let _ = self.apiserver.kill();
        let _ = self.apiserver.wait();
        self.apiserver = spawn_logged(
            &self.bin.join("kube-apiserver"),
            &self.apiserver_args,
            &self.dir.path().join("kube-apiserver.log"),
        );
        let token = self.admin_token.clone();
        self.wait_ready(&token).await;
    }

    /// Creates a namespace unless it exists.
    pub async fn create_namespace(&self, namespace: &str) {
        let exists = self
            .kubectl_output(&["get", "namespace", namespace], None)
            .await;
        if !exists.status.success() {
            self.kubectl(&["create", "namespace", namespace]).await;
        }
    }

    /// Polls `/readyz` until the apiserver answers ok (its serving certificate appears in the
    /// certificate directory first, and is the CA the kubeconfigs trust).
    async fn wait_ready(&self, admin_token: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        let cert = self.dir.path().join("certs").join("apiserver.crt");
        loop {
            if tokio::time::Instant::now() > deadline {
                panic!("kube-apiserver not ready after 90 s\n{}", self.logs_tail());
            }
            if cert.exists() {
                self.write_kubeconfig("admin.kubeconfig", admin_token);
                if let Ok(client) = self.client_from("admin.kubeconfig").await {
                    let request = http::Request::get("/readyz")
                        .body(Vec::new())
                        .expect("request");
                    if matches!(client.request_text(request).await.as_deref(), Ok("ok")) {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn write_kubeconfig(&self, file: &str, token: &str) {
        use base64::Engine as _;
        let cert = std::fs::read(self.dir.path().join("certs").join("apiserver.crt"))
            .expect("the apiserver's certificate");
        let ca = base64::engine::general_purpose::STANDARD.encode(cert);
        let yaml = format!(
            "apiVersion: v1\nkind: Config\n\
             clusters:\n- name: real\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\n\
             contexts:\n- name: real\n  context:\n    cluster: real\n    user: user\n\
             current-context: real\n\
             users:\n- name: user\n  user:\n    token: {token}\n",
            url = self.url,
        );
        std::fs::write(self.dir.path().join(file), yaml).expect("kubeconfig written");
    }

    async fn client_from(&self, file: &str) -> Result<kube::Client, String> {
        let kubeconfig =
            Kubeconfig::read_from(self.dir.path().join(file)).map_err(|e| e.to_string())?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| e.to_string())?;
        kube::Client::try_from(config).map_err(|e| e.to_string())
    }

    /// A client with cluster-admin rights (group `system:masters`).
    pub async fn admin_client(&self) -> kube::Client {
        self.client_from("admin.kubeconfig")
            .await
            .expect("admin client")
    }

    /// The admin's kubeconfig.
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    /// The restricted operator user's kubeconfig ([`OPERATOR_USER`]).
    pub fn operator_kubeconfig(&self) -> PathBuf {
        self.dir.path().join("operator.kubeconfig")
    }

    /// The audit log, when started with [`Audit::Log`].
    pub fn audit_log(&self) -> Option<&Path> {
        self.audit_log.as_deref()
    }

    /// The process ids of kube-apiserver and etcd (for their CPU time).
    pub fn pids(&self) -> (u32, u32) {
        (self.apiserver.id(), self.etcd.id())
    }

    /// The admin's bearer token (for a client of the benchmark's own).
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The apiserver's serving certificate, PEM (the CA its clients trust).
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("certs").join("apiserver.crt"))
            .expect("the apiserver's certificate")
    }

    /// Writes into `dir` what the kubelet mounts into the chart's pod at
    /// `/var/run/secrets/kubernetes.io/serviceaccount`: a token of the chart's ServiceAccount
    /// (issued by the TokenRequest API; [`apply_chart_rbac`](Self::apply_chart_rbac) creates the
    /// account), the API server's CA and the namespace. A process given these files and
    /// `KUBERNETES_SERVICE_HOST`/`_PORT` (see [`host_and_port`](Self::host_and_port)) authenticates
    /// as [`OPERATOR_USER`] exactly as it would in a cluster.
    pub async fn write_service_account_files(&self, dir: &Path) {
        let account = OPERATOR_USER.rsplit(':').next().expect("account name");
        let token = self
            .kubectl(&[
                "create",
                "token",
                account,
                "--namespace",
                RELEASE_NAMESPACE,
                "--duration=1h",
            ])
            .await;
        std::fs::create_dir_all(dir).expect("service-account directory");
        std::fs::write(dir.join("token"), token.trim()).expect("token written");
        std::fs::copy(
            self.dir.path().join("certs").join("apiserver.crt"),
            dir.join("ca.crt"),
        )
        .expect("ca.crt written");
        std::fs::write(dir.join("namespace"), RELEASE_NAMESPACE).expect("namespace written");
    }

    /// The API server's host and port, as a pod sees them in `KUBERNETES_SERVICE_HOST` and
    /// `KUBERNETES_SERVICE_PORT`.
    pub fn host_and_port(&self) -> (&str, &str) {
        self.url
            .trim_start_matches("https://")
            .rsplit_once(':')
            .expect("https://HOST:PORT")
    }

    /// A control-plane binary.
    pub fn binary(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// Runs the built kubectl as the admin; the output, whatever the exit code.
    pub async fn kubectl_output(&self, args: &[&str], stdin: Option<&str>) -> Output {
        self.run_tool("kubectl", args, stdin).await
    }

    /// Runs the built kubectl as the admin and returns its stdout; panics when it fails.
    pub async fn kubectl(&self, args: &[&str]) -> String {
        let out = self.kubectl_output(args, None).await;
        assert!(
            out.status.success(),
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs the built helm as the admin; panics when it fails.
    pub async fn helm(&self, args: &[&str]) -> String {
        let out = self.run_tool("helm", args, None).await;
        assert!(
            out.status.success(),
            "helm {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    async fn run_tool(&self, tool: &str, args: &[&str], stdin: Option<&str>) -> Output {
        use tokio::io::AsyncWriteExt as _;
        let mut child = tokio::process::Command::new(self.binary(tool))
            .args(args)
            .env("KUBECONFIG", self.admin_kubeconfig())
            .env("HOME", self.dir.path())
            .env("HELM_CACHE_HOME", self.dir.path().join("helm/cache"))
            .env("HELM_CONFIG_HOME", self.dir.path().join("helm/config"))
            .env("HELM_DATA_HOME", self.dir.path().join("helm/data"))
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{tool} starts: {e}"));
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes()).await.expect("stdin");
        }
        child.wait_with_output().await.expect("tool finishes")
    }

    /// Renders the chart with `helm template` for a release in [`RELEASE_NAMESPACE`] watching
    /// `watch` (`None`: all namespaces), and applies its ServiceAccount and RBAC objects as the
    /// admin: the operator user gets exactly what the chart grants.
    pub async fn apply_chart_rbac(&self, watch: Option<&[&str]>, leader_election: bool) {
        let mut args = vec![
            "template".to_owned(),
            RELEASE.to_owned(),
            CHART.to_owned(),
            "--namespace".to_owned(),
            RELEASE_NAMESPACE.to_owned(),
            format!("--kube-version={}", self.version),
            format!("--set=leaderElection.enabled={leader_election}"),
        ];
        if let Some(namespaces) = watch {
            args.push(format!(
                "--set=watchNamespaces={{{}}}",
                namespaces.join(",")
            ));
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let rendered = self.helm(&refs).await;
        let rbac = rbac_documents(&rendered);
        assert!(
            rbac.contains("kind: RoleBinding") || rbac.contains("kind: ClusterRoleBinding"),
            "the chart rendered no binding:\n{rendered}"
        );
        let out = self
            .kubectl_output(&["apply", "-f", "-"], Some(&rbac))
            .await;
        assert!(
            out.status.success(),
            "applying the chart's RBAC failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The last lines of the etcd and apiserver logs, for failure messages.
    pub fn logs_tail(&self) -> String {
        ["etcd.log", "kube-apiserver.log"]
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(30)..].join("\n");
                format!("===== {f} =====\n{tail}\n")
            })
            .collect()
    }
}

impl ControlPlane {
    /// Stores `object` (a policy) as it is, bypassing the CRD's validation: the schema is
    /// loosened, the object created, the schema restored. This is how a real server comes to
    /// hold an object that no longer matches the schema (one stored under an older version).
    pub async fn store_unvalidated(&self, object: &serde_json::Value) {
        let crd = "crd/identitysettingpolicies.identitysettings.dev";
        let loose = r#"[{"op":"replace","path":"/spec/versions/0/schema/openAPIV3Schema","value":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}]"#;
        self.kubectl(&["patch", crd, "--type=json", "-p", loose])
            .await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            // The apiserver serves the new schema within moments; until then it refuses.
            let out = self
                .kubectl_output(&["create", "-f", "-"], Some(&object.to_string()))
                .await;
            if out.status.success() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the loosened schema still refuses the object: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.kubectl(&["apply", "-f", CRD]).await;
    }
}

/// The ServiceAccount and RBAC documents of a rendered chart, as one multi-document YAML.
pub fn rbac_documents(rendered: &str) -> String {
    const KINDS: [&str; 5] = [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    ];
    rendered
        .split("\n---")
        .filter(|doc| {
            doc.lines().any(|line| {
                line.strip_prefix("kind: ")
                    .is_some_and(|kind| KINDS.contains(&kind.trim()))
            })
        })
        .collect::<Vec<_>>()
        .join("\n---\n")
}
