//! The server definitions policies name in `spec.serverRef` — `IdentityServer`s of the watched
//! namespaces and every `ClusterIdentityServer` — and the namespaces' labels (for a cluster
//! server's `allowedNamespaces.selector`), as the watches show them.
//!
//! A change to any of them is broadcast as a [`ServerChange`]; each policy controller turns it
//! into reconciles of the policies concerned, so a fixed or changed server takes effect at once
//! rather than at the policies' next resync.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::Namespace;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::{broadcast, watch};

use crate::api::{
    ClusterIdentityServer, IdentityServer, IdentitySettingPolicy, ServerKind, ServerRef,
};
use crate::reconcile::server_ref::FoundServer;

/// How long a reconcile waits for the first lists of server definitions.
pub const LIST_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// How many changes may wait for a controller; more are dropped (those policies still
/// reconcile at their resync).
const CHANGE_BACKLOG: usize = 1024;

/// Something a policy's `serverRef` may depend on changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerChange {
    /// An `IdentityServer` was created, changed or deleted.
    Namespaced {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// A `ClusterIdentityServer` was created, changed or deleted.
    Cluster {
        /// Its name.
        name: String,
    },
    /// A namespace's labels may have changed (a cluster server's selector may now allow or
    /// refuse it).
    Namespace {
        /// The namespace.
        name: String,
    },
    /// Everything may have changed (the watches listed again): every policy with a
    /// `serverRef` is concerned.
    All,
}

impl ServerChange {
    /// Whether a policy of `namespace` with `reference` is concerned.
    pub fn concerns(&self, namespace: &str, reference: &ServerRef) -> bool {
        match self {
            ServerChange::Namespaced {
                namespace: ns,
                name,
            } => {
                reference.kind == ServerKind::IdentityServer
                    && ns == namespace
                    && *name == reference.name
            }
            ServerChange::Cluster { name } => {
                reference.kind == ServerKind::ClusterIdentityServer && *name == reference.name
            }
            ServerChange::Namespace { name } => {
                reference.kind == ServerKind::ClusterIdentityServer && name == namespace
            }
            ServerChange::All => true,
        }
    }
}

/// A server definition found by a lookup, held while it is used.
#[derive(Clone, Debug)]
pub enum HeldServer {
    /// An `IdentityServer`.
    Namespaced(Arc<IdentityServer>),
    /// A `ClusterIdentityServer`.
    Cluster(Arc<ClusterIdentityServer>),
}

impl HeldServer {
    /// The borrowed view [`crate::reconcile::server_ref::referenced`] takes.
    pub fn as_found(&self) -> FoundServer<'_> {
        match self {
            HeldServer::Namespaced(s) => FoundServer::Namespaced(s),
            HeldServer::Cluster(s) => FoundServer::Cluster(s),
        }
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        match self {
            HeldServer::Namespaced(s) => &s.spec.connection.url,
            HeldServer::Cluster(s) => &s.spec.connection.url,
        }
    }
}

/// The watched server definitions and namespace labels.
pub struct ServerCatalog {
    stores: RwLock<Stores>,
    /// True once every server and namespace watch delivered its first list: until then a
    /// server may simply not be known yet, and a policy would report `ServerNotFound` wrongly.
    ready: watch::Sender<bool>,
    /// Until when lookups wait for the first lists: [`LIST_WAIT`] after the watches started,
    /// once for the whole run (not per reconcile), so missing CRDs cost each reconcile nothing
    /// after that.
    wait_until: std::sync::Mutex<tokio::time::Instant>,
    /// [`LIST_WAIT`], but shorter in tests.
    list_wait: std::time::Duration,
    changes: broadcast::Sender<ServerChange>,
}

#[derive(Default)]
struct Stores {
    /// One per watched scope (a reflector fed by several watches would lose all but one).
    namespaced: Vec<Store<IdentityServer>>,
    cluster: Option<Store<ClusterIdentityServer>>,
    namespaces: Option<Store<PartialObjectMeta<Namespace>>>,
}

impl Default for ServerCatalog {
    fn default() -> Self {
        Self {
            stores: RwLock::default(),
            // Ready until the controller says the watches are starting: a reconcile run
            // without them (tests of one reconcile) has nothing to wait for.
            ready: watch::Sender::new(true),
            wait_until: std::sync::Mutex::new(tokio::time::Instant::now()),
            list_wait: LIST_WAIT,
            changes: broadcast::Sender::new(CHANGE_BACKLOG),
        }
    }
}

impl ServerCatalog {
    fn stores(&self) -> std::sync::RwLockReadGuard<'_, Stores> {
        self.stores.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The watches are starting, feeding these stores: lookups wait until [`Self::mark_ready`].
    pub fn listing(
        &self,
        namespaced: Vec<Store<IdentityServer>>,
        cluster: Store<ClusterIdentityServer>,
        namespaces: Store<PartialObjectMeta<Namespace>>,
    ) {
        self.ready.send_replace(false);
        *self.wait_until.lock().unwrap_or_else(|e| e.into_inner()) =
            tokio::time::Instant::now() + self.list_wait;
        *self.stores.write().unwrap_or_else(|e| e.into_inner()) = Stores {
            namespaced,
            cluster: Some(cluster),
            namespaces: Some(namespaces),
        };
    }

    /// Every watch delivered its first list; every policy with a `serverRef` is told.
    pub fn mark_ready(&self) {
        self.ready.send_replace(true);
        self.announce(ServerChange::All);
    }

    /// Whether the first lists are in.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits until the first lists are in, but not past [`LIST_WAIT`] after the watches
    /// started: false when they are not in (a server CRD not installed, or RBAC refusing the
    /// watch), so a reconcile reports that instead of holding its work-queue slot.
    pub async fn wait_listed(&self) -> bool {
        let until = *self.wait_until.lock().unwrap_or_else(|e| e.into_inner());
        let mut ready = self.ready.subscribe();
        // A closed sender cannot happen while `self` lives.
        tokio::time::timeout_at(until, ready.wait_for(|r| *r))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Tells the policy controllers that something servers depend on changed.
    pub fn announce(&self, change: ServerChange) {
        // No receiver (no controller running) is fine.
        let _ = self.changes.send(change);
    }

    /// The changes, for one policy controller.
    pub fn changes(&self) -> broadcast::Receiver<ServerChange> {
        self.changes.subscribe()
    }

    /// The server `reference` names for a policy of `namespace`, if it exists.
    pub fn lookup(&self, namespace: &str, reference: &ServerRef) -> Option<HeldServer> {
        let stores = self.stores();
        match reference.kind {
            ServerKind::IdentityServer => {
                let key = ObjectRef::new(&reference.name).within(namespace);
                stores
                    .namespaced
                    .iter()
                    .find_map(|s| s.get(&key))
                    .map(HeldServer::Namespaced)
            }
            ServerKind::ClusterIdentityServer => stores
                .cluster
                .as_ref()?
                .get(&ObjectRef::new(&reference.name))
                .map(HeldServer::Cluster),
        }
    }

    /// The labels of `namespace`; `None` when the namespace is not in the watched view (a
    /// cluster server's selector then allows nothing).
    pub fn namespace_labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.stores()
            .namespaces
            .as_ref()
            .and_then(|s| s.get(&ObjectRef::new(namespace)))
            .map(|n| n.metadata.labels.clone().unwrap_or_default())
    }

    /// Whether `namespace` is being deleted (as the namespace watch last saw it).
    pub fn namespace_terminating(&self, namespace: &str) -> bool {
        self.stores()
            .namespaces
            .as_ref()
            .and_then(|s| s.get(&ObjectRef::new(namespace)))
            .is_some_and(|n| n.metadata.deletion_timestamp.is_some())
    }

    /// The server URL a policy's keys are claimed under (see
    /// [`crate::reconcile::claims`]): its inline URL, its referenced server's, or — while that
    /// server is unknown — a name for the reference itself.
    pub fn claim_url(&self, policy: &IdentitySettingPolicy) -> String {
        if let Some(server) = &policy.spec.server {
            return server.url.clone();
        }
        let namespace = policy.metadata.namespace.as_deref().unwrap_or_default();
        match &policy.spec.server_ref {
            Some(reference) => match self.lookup(namespace, reference) {
                Some(server) => server.url().to_owned(),
                None => format!(
                    "serverRef:{}/{namespace}/{}",
                    reference.kind.as_str(),
                    reference.name
                ),
            },
            None => String::new(),
        }
    }

    /// The changes a Secret of `namespace` named `name` makes: the servers that read it.
    pub fn using_secret(&self, namespace: &str, name: &str) -> Vec<ServerChange> {
        let stores = self.stores();
        let mut changes: Vec<ServerChange> = stores
            .namespaced
            .iter()
            .flat_map(|s| s.state())
            .filter(|s| s.metadata.namespace.as_deref() == Some(namespace))
            .filter(|s| reads_secret(&s.spec.connection, name))
            .map(|s| ServerChange::Namespaced {
                namespace: namespace.to_owned(),
                name: s.metadata.name.clone().unwrap_or_default(),
            })
            .collect();
        changes.extend(
            stores
                .cluster
                .iter()
                .flat_map(|s| s.state())
                .filter(|s| s.spec.secret_namespace == namespace)
                .filter(|s| reads_secret(&s.spec.connection, name))
                .map(|s| ServerChange::Cluster {
                    name: s.metadata.name.clone().unwrap_or_default(),
                }),
        );
        changes
    }
}

impl ServerCatalog {
    /// Every Secret the known server definitions read, as (namespace, name): their data stays
    /// cached while a server needs it.
    pub fn secrets_read(&self) -> Vec<(String, String)> {
        let stores = self.stores();
        let namespaced = stores
            .namespaced
            .iter()
            .flat_map(|s| s.state())
            .flat_map(|s| {
                let namespace = s.metadata.namespace.clone().unwrap_or_default();
                secret_names(&s.spec.connection)
                    .into_iter()
                    .map(move |n| (namespace.clone(), n))
            });
        let cluster = stores.cluster.iter().flat_map(|s| s.state()).flat_map(|s| {
            let namespace = s.spec.secret_namespace.clone();
            secret_names(&s.spec.connection)
                .into_iter()
                .map(move |n| (namespace.clone(), n))
        });
        namespaced.chain(cluster).collect()
    }
}

/// The Secrets a server definition reads (credentials, CA).
fn secret_names(server: &crate::api::ServerSpec) -> Vec<String> {
    std::iter::once(server.credentials_secret_ref.name.clone())
        .chain(server.ca_secret_ref.iter().map(|r| r.name.clone()))
        .collect()
}

/// Whether a server definition reads the Secret `name` (credentials or CA).
fn reads_secret(server: &crate::api::ServerSpec, name: &str) -> bool {
    secret_names(server).iter().any(|n| n == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector;

    #[tokio::test]
    async fn without_first_lists_lookups_wait_once_per_run_not_once_per_reconcile() {
        let wait = std::time::Duration::from_millis(200);
        let catalog = ServerCatalog {
            list_wait: wait,
            ..ServerCatalog::default()
        };
        assert!(
            catalog.wait_listed().await,
            "no watches: nothing to wait for"
        );
        let (namespaced, _w1) = reflector::store();
        let (cluster, _w2) = reflector::store();
        let (namespaces, _w3) = reflector::store();
        catalog.listing(vec![namespaced], cluster, namespaces);
        let start = tokio::time::Instant::now();
        assert!(!catalog.wait_listed().await, "never listed (no CRD, say)");
        assert!(start.elapsed() >= wait);
        let again = tokio::time::Instant::now();
        assert!(!catalog.wait_listed().await);
        assert!(
            again.elapsed() < wait / 2,
            "the next reconcile does not wait again"
        );
        catalog.mark_ready();
        assert!(catalog.wait_listed().await);
    }

    #[test]
    fn a_change_concerns_the_policies_whose_reference_it_can_alter() {
        let namespaced = ServerRef {
            kind: ServerKind::IdentityServer,
            name: "acme".into(),
        };
        let cluster = ServerRef {
            kind: ServerKind::ClusterIdentityServer,
            name: "acme".into(),
        };
        let changed = ServerChange::Namespaced {
            namespace: "team-a".into(),
            name: "acme".into(),
        };
        assert!(changed.concerns("team-a", &namespaced));
        assert!(
            !changed.concerns("team-b", &namespaced),
            "another namespace's server"
        );
        assert!(
            !changed.concerns("team-a", &cluster),
            "same name, other kind"
        );
        let cluster_changed = ServerChange::Cluster {
            name: "acme".into(),
        };
        assert!(cluster_changed.concerns("team-b", &cluster));
        assert!(!cluster_changed.concerns("team-a", &namespaced));
        let relabelled = ServerChange::Namespace {
            name: "team-a".into(),
        };
        assert!(relabelled.concerns("team-a", &cluster));
        assert!(!relabelled.concerns("team-b", &cluster));
        assert!(
            !relabelled.concerns("team-a", &namespaced),
            "labels matter to cluster servers only"
        );
        assert!(ServerChange::All.concerns("x", &namespaced));
    }
}
