//! One fresh set of processes: the Kubernetes API — the emulator (serving the repository's
//! CRD) or a real control plane (etcd and kube-apiserver with an audit log, the CRD and the
//! chart's RBAC installed) — the identity simulator, and later the operator pointed at both
//! through a kubeconfig (on the real server, as the chart's ServiceAccount).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

use crate::binaries::{Binaries, workspace_root};
use crate::error::{BenchError, Result};
use crate::kube::Kube;
use crate::manifests::NAMESPACE;
use crate::process::{Process, log_path};
use crate::sim::Sim;

/// How long a stand-in may take to say where it listens.
const START_LIMIT: Duration = Duration::from_secs(20);
/// How long SIGTERM may take before a process is killed.
pub const STOP_LIMIT: Duration = Duration::from_secs(10);

/// The CRD the emulator serves, relative to the workspace root.
const CRD: &str = "crds/identitysettings.dev.yaml";

/// The Kubernetes API a run measures against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiServer {
    /// The repository's emulator.
    Emulator,
    /// A real kube-apiserver and etcd, built by `tests/control-plane/build` into this directory.
    Real(PathBuf),
}

/// What serves the Kubernetes API of a run.
enum Backend {
    Emulator(Process),
    Real(control_plane::ControlPlane),
}

/// The stand-ins of one run, and clients of them.
pub struct World {
    /// The run's directory (kubeconfig, logs).
    pub dir: PathBuf,
    /// The emulator's API.
    pub kube: Kube,
    /// The simulator's admin API.
    pub sim: Sim,
    /// The identity base URL policies name.
    pub identity_url: String,
    kubeconfig: PathBuf,
    backend: Backend,
    simulator: Process,
}

/// The operator process of a run, and where its log goes.
pub struct Operator {
    /// The process.
    pub process: Process,
    /// Its stderr (and stdout).
    pub log: PathBuf,
}

impl World {
    /// Starts an emulator and a simulator (`latency_ms` per Setting request) with their logs in
    /// `dir`, which is created.
    pub async fn start(
        bins: &Binaries,
        api: &ApiServer,
        dir: &Path,
        latency_ms: u64,
    ) -> Result<World> {
        std::fs::create_dir_all(dir).map_err(|source| BenchError::File {
            path: dir.display().to_string(),
            source,
        })?;
        let (backend, kube, kubeconfig) = match api {
            ApiServer::Emulator => Self::start_emulator(bins, dir).await?,
            ApiServer::Real(bin) => Self::start_control_plane(bin).await?,
        };
        let (simulator, identity_url, admin_url) =
            Self::start_simulator(bins, dir, latency_ms).await?;
        Ok(World {
            dir: dir.to_owned(),
            kube,
            sim: Sim::new(&admin_url)?,
            identity_url,
            kubeconfig,
            backend,
            simulator,
        })
    }

    /// A real control plane with an audit log, the CRD, the benchmark namespace and the
    /// chart's RBAC for an operator watching it; the operator's kubeconfig.
    async fn start_control_plane(bin: &Path) -> Result<(Backend, Kube, PathBuf)> {
        use control_plane::{Audit, ControlPlane, OPERATOR_USER};
        let plane = ControlPlane::start_with(bin, &[NAMESPACE], Audit::Log).await;
        plane.apply_chart_rbac(Some(&[NAMESPACE]), false).await;
        let log = plane
            .audit_log()
            .ok_or_else(|| BenchError::process("kube-apiserver", "no audit log"))?
            .to_owned();
        let kube = Kube::of_api_server(
            &plane.url,
            &plane.ca_pem(),
            plane.admin_token(),
            log,
            OPERATOR_USER,
        )?;
        let kubeconfig = plane.operator_kubeconfig();
        Ok((Backend::Real(plane), kube, kubeconfig))
    }

    /// The emulator, serving the repository's CRD; a kubeconfig for it.
    async fn start_emulator(bins: &Binaries, dir: &Path) -> Result<(Backend, Kube, PathBuf)> {
        let mut command = Command::new(&bins.emulator);
        // A window as long as a real API server's (about 75 s of changes) at 10 000 policies:
        // with the emulator's default of 1000 events, watches fall behind and relist.
        command
            .args(["--port", "0", "--watch-history", "1000000", "--crd"])
            .arg(workspace_root().join(CRD));
        let mut emulator = Process::spawn(
            "kube-emulator",
            command,
            &log_path(dir, "kube-emulator"),
            true,
        )?;
        let kube_url = emulator
            .read_until(START_LIMIT, |line| {
                line.trim()
                    .starts_with("http://")
                    .then(|| line.trim().to_owned())
            })
            .await?;
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            kube_emulator::kubeconfig_yaml(&kube_url, NAMESPACE),
        )
        .map_err(|source| BenchError::File {
            path: kubeconfig.display().to_string(),
            source,
        })?;
        Ok((
            Backend::Emulator(emulator),
            Kube::new(&kube_url)?,
            kubeconfig,
        ))
    }

    /// The simulator; its identity base URL and admin URL.
    async fn start_simulator(
        bins: &Binaries,
        dir: &Path,
        latency_ms: u64,
    ) -> Result<(Process, String, String)> {
        let mut command = Command::new(&bins.simulator);
        command
            .args(["--port", "0", "--latency-ms", &latency_ms.to_string()])
            .env("RUST_LOG", "warn");
        let mut simulator = Process::spawn(
            "identity-simulator",
            command,
            &log_path(dir, "identity-simulator"),
            true,
        )?;
        let mut identity_url = None;
        let admin_url = simulator
            .read_until(START_LIMIT, |line| {
                let line = line.trim();
                if let Some(url) = line.strip_prefix("identity base URL:") {
                    identity_url = Some(url.trim().to_owned());
                }
                line.strip_prefix("admin API:").map(|u| u.trim().to_owned())
            })
            .await?;
        let identity_url = identity_url.ok_or_else(|| {
            BenchError::process("identity-simulator", "printed no identity base URL")
        })?;
        Ok((simulator, identity_url, admin_url))
    }

    /// The operator's kubeconfig (on the real server: the chart ServiceAccount's identity).
    pub fn operator_kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The process ids of kube-apiserver and etcd, on the real server.
    pub fn api_server_pids(&self) -> Option<(u32, u32)> {
        match &self.backend {
            Backend::Emulator(_) => None,
            Backend::Real(plane) => Some(plane.pids()),
        }
    }

    /// The API server's serving certificate, on the real server.
    pub fn api_server_ca(&self) -> Option<Vec<u8>> {
        match &self.backend {
            Backend::Emulator(_) => None,
            Backend::Real(plane) => Some(plane.ca_pem()),
        }
    }

    /// Starts the operator watching the benchmark namespace, with `extra` flags, logging at
    /// `info` to `operator.log` in the run directory. To profile it, `BENCH_OPERATOR_WRAPPER`
    /// (e.g. `heaptrack -o /tmp/operator`) is put before the operator's command line; memory and
    /// CPU figures are then the wrapper's.
    pub fn spawn_operator(&self, bins: &Binaries, extra: &[String]) -> Result<Operator> {
        self.spawn_operator_named("operator", bins, extra)
    }

    /// [`World::spawn_operator`], logging to `<name>.log` (a restarted operator's log beside the
    /// first one's).
    pub fn spawn_operator_named(
        &self,
        name: &str,
        bins: &Binaries,
        extra: &[String],
    ) -> Result<Operator> {
        let log = log_path(&self.dir, name);
        let wrapper = std::env::var("BENCH_OPERATOR_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut command = Command::new(program);
                command.args(words).arg(&bins.operator);
                command
            }
            None => Command::new(&bins.operator),
        };
        command
            .args(["run", "--allow-insecure-http", "--namespaces", NAMESPACE])
            .args(["--http-address", "127.0.0.1", "--http-port", "0"])
            .args(extra)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("RUST_LOG", "info");
        let process = Process::spawn("operator", command, &log, false)?;
        Ok(Operator { process, log })
    }

    /// Fails when a stand-in has exited.
    pub fn check_running(&mut self) -> Result<()> {
        if let Backend::Emulator(emulator) = &mut self.backend {
            emulator.check_running()?;
        }
        self.simulator.check_running()
    }

    /// Stops both stand-ins (SIGTERM, killed after [`STOP_LIMIT`]); a real control plane is
    /// killed.
    pub async fn stop(self) {
        match self.backend {
            Backend::Emulator(emulator) => {
                let (_, _) = tokio::join!(
                    emulator.terminate(STOP_LIMIT),
                    self.simulator.terminate(STOP_LIMIT)
                );
            }
            Backend::Real(plane) => {
                drop(plane);
                self.simulator.terminate(STOP_LIMIT).await;
            }
        }
    }
}

/// Lines of `log` at WARN level (text or JSON log format), or `None` if unreadable.
pub fn warn_lines(log: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(log).ok()?;
    let warn = |l: &&str| l.contains(" WARN ") || l.contains(r#""level":"WARN""#);
    Some(text.lines().filter(warn).count())
}
