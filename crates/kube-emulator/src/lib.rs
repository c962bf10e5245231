//! A Kubernetes API emulator: an in-process HTTP server that answers like kube-apiserver for
//! everything a kube-rs operator uses (CRUD, status subresource, the four patch types, finalizers,
//! list/watch with bookmarks and resume, Events, Leases), so end-to-end tests and the no-cluster
//! demo run without a cluster.
//!
//! Its value is fidelity; known deviations from a real apiserver are documented next to the code
//! that deviates. The main ones: no authentication/authorization, no admission, no schema
//! validation or defaulting, no managedFields shown (server-side apply is a simplified merge,
//! which still drops the fields a manager stops applying), no garbage collection or namespace
//! lifecycle, core v1 and `events.k8s.io/v1` Events are stored separately, and later list pages
//! are not snapshots.
//!
//! # Admin route
//!
//! Outside the Kubernetes paths, and never counted itself:
//! - `GET /_emulator/counters` — requests served so far (every API request, whatever its
//!   status, including discovery and watches, counted on arrival of the answer):
//!   `{"byVerb":{"get":n,"list":n,"watch":n,"create":n,"patch":n,...},
//!   "byResource":{"secrets/get":n,"identitysettingpolicies/status/patch":n,...}}` (discovery
//!   paths count by verb only); `DELETE /_emulator/counters` resets them (204). The same
//!   numbers are on [`KubeEmulator::counters`]. Unlike the request log they cost constant
//!   memory, so the `kube-emulator` binary (which records no requests) keeps them for
//!   benchmarks.

mod counters;
mod crd;
mod discovery;
mod events;
mod faults;
mod metadata;
mod patch;
mod path;
mod registry;
mod rules;
mod selectors;
mod server;
mod status;
mod store;
mod watch;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::TcpSocket;
use tokio::task::JoinHandle;

pub use counters::RequestCounters;
pub use crd::{CrdError, resource_kinds_from_crd};
pub use faults::EmulatorFaults;
pub use registry::ResourceKind;

use server::{RunState, Shared};

/// How to start an emulator.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Address to listen on; port 0 picks a free port (default `127.0.0.1:0`).
    pub bind: SocketAddr,
    /// Custom resources to serve besides the built-ins (what CRDs would register).
    pub custom_resources: Vec<ResourceKind>,
    /// Number of change events kept for watch resume; watching from an older resourceVersion
    /// gets a 410 `Expired` (default 1000).
    ///
    /// Deviation: the window is shared by all resources and counted in events (a real server
    /// keeps a watch cache per resource and etcd compacts by time).
    pub watch_history: usize,
    /// How often open watches that allow bookmarks receive a BOOKMARK (default 1 s; a real
    /// server sends them about once a minute). Zero disables bookmarks; watches never depend on
    /// them to deliver changes.
    pub bookmark_interval: Duration,
    /// How many requests [`KubeEmulator::requests`] keeps; older ones are forgotten first, so a
    /// long-running emulator (the no-cluster demo) does not grow without bound (default 10 000;
    /// 0 records nothing).
    pub request_log: usize,
}

/// Default of [`EmulatorConfig::request_log`].
pub const DEFAULT_REQUEST_LOG: usize = 10_000;

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            custom_resources: Vec::new(),
            watch_history: 1000,
            bookmark_interval: Duration::from_secs(1),
            request_log: DEFAULT_REQUEST_LOG,
        }
    }
}

/// One request as the emulator saw it, for tests asserting which API calls an operator made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete` or `deletecollection`.
    pub verb: String,
    /// API group (`""` for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural resource name (empty for discovery paths).
    pub resource: String,
    /// Subresource, e.g. `status`.
    pub subresource: Option<String>,
    /// Namespace from the path.
    pub namespace: Option<String>,
    /// Object name from the path.
    pub name: Option<String>,
    /// `merge`, `json`, `apply` or `strategic` for PATCH requests with a known content type.
    pub patch_type: Option<String>,
    /// The `fieldManager` query parameter.
    pub field_manager: Option<String>,
    /// The `User-Agent` header: tells the operator's requests from a test's own.
    pub user_agent: Option<String>,
    /// HTTP status of the response (200 for watches that started streaming).
    pub status: u16,
}

/// The server task of one serving period.
struct Running {
    stop: tokio::sync::watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// A running emulator. Dropping it stops the server; prefer [`KubeEmulator::shutdown`] to wait
/// for it.
pub struct KubeEmulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    running: Option<Running>,
}

/// How long a stop waits for open connections to finish before abandoning them.
const STOP_GRACE: Duration = Duration::from_secs(5);

async fn serve(shared: Arc<Shared>, bind: SocketAddr) -> std::io::Result<(Running, SocketAddr)> {
    let socket = if bind.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(bind)?;
    let listener = socket.listen(1024)?;
    let addr = listener.local_addr()?;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let app = server::router(RunState {
        shared,
        stop: stop_rx.clone(),
        server_address: addr.to_string(),
    });
    let mut signal = stop_rx;
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = signal.wait_for(|stopped| *stopped).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!(error = %e, "kube emulator server failed");
        }
    });
    Ok((Running { stop, task }, addr))
}

impl KubeEmulator {
    /// Starts serving on `config.bind`.
    pub async fn start(config: EmulatorConfig) -> std::io::Result<KubeEmulator> {
        let shared = Arc::new(Shared {
            registry: registry::Registry::new(&config.custom_resources),
            store: Arc::new(Mutex::new(store::Store::new(config.watch_history))),
            changes: tokio::sync::watch::channel(0).0,
            requests: Mutex::new(VecDeque::new()),
            request_log_cap: config.request_log,
            counters: RequestCounters::default(),
            faults: EmulatorFaults::new(),
            bookmark_interval: config.bookmark_interval,
        });
        let (running, addr) = serve(shared.clone(), config.bind).await?;
        Ok(Self {
            shared,
            addr,
            running: Some(running),
        })
    }

    /// Base URL, e.g. `http://127.0.0.1:34567`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig (no authentication) pointing at this server with `namespace` as default.
    pub fn kubeconfig_yaml(&self, namespace: &str) -> String {
        kubeconfig_yaml(&self.url(), namespace)
    }

    /// A kube client pointed at this server (default namespace `default`).
    pub fn client(&self) -> kube::Client {
        let uri: http::Uri = self
            .url()
            .parse()
            .expect("an http URL built from a socket address is a valid URI");
        kube::Client::try_from(kube::Config::new(uri))
            .expect("a client for a plain-HTTP URL always builds")
    }

    /// Every request served so far, in order (at most the last
    /// [`EmulatorConfig::request_log`] of them).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Requests served by verb and resource (also at `GET /_emulator/counters`).
    pub fn counters(&self) -> RequestCounters {
        self.shared.counters.clone()
    }

    /// The fault-injection handle.
    pub fn faults(&self) -> EmulatorFaults {
        self.shared.faults.clone()
    }

    async fn stop(&mut self) {
        if let Some(Running { stop, mut task }) = self.running.take() {
            stop.send_replace(true);
            if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
                tracing::warn!("kube emulator connections did not close in time; abandoning them");
                task.abort();
            }
        }
    }

    /// Stops serving (closing all connections and watches), then serves again on the same port
    /// with all objects and the resourceVersion counter kept, like an apiserver restart with
    /// etcd intact. As there, the watch cache starts fresh at the current resourceVersion: a
    /// watch resuming from an older version gets 410 `Expired`, so clients that missed changes
    /// while the server was down relist. A client that had seen everything resumes normally.
    pub async fn restart(&mut self) -> std::io::Result<()> {
        self.stop().await;
        self.shared
            .store
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .reset_history();
        self.serve_again().await
    }

    /// Like [`Self::restart`], but keeps the watch history, so every client can resume without
    /// relisting. A real apiserver does not do this; it is for tests that want a restart without
    /// the relist it causes.
    pub async fn restart_keeping_watch_cache(&mut self) -> std::io::Result<()> {
        self.stop().await;
        self.serve_again().await
    }

    async fn serve_again(&mut self) -> std::io::Result<()> {
        let (running, _) = serve(self.shared.clone(), self.addr).await?;
        self.running = Some(running);
        Ok(())
    }

    /// Stops serving and waits for the server to finish.
    pub async fn shutdown(mut self) {
        self.stop().await;
    }
}

impl Drop for KubeEmulator {
    fn drop(&mut self) {
        if let Some(running) = &self.running {
            running.stop.send_replace(true);
        }
    }
}

/// A kubeconfig (no authentication) for an emulator at `url` (its own process, say) with
/// `namespace` as default.
pub fn kubeconfig_yaml(url: &str, namespace: &str) -> String {
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: kube-emulator\n  cluster:\n    server: {url}\n\
         contexts:\n\
         - name: kube-emulator\n  context:\n    cluster: kube-emulator\n    user: kube-emulator\n    namespace: {namespace}\n\
         current-context: kube-emulator\n\
         users:\n\
         - name: kube-emulator\n  user: {{}}\n",
        namespace = serde_json::Value::from(namespace),
    )
}
