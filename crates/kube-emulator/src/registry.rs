//! Which resources the emulator serves and how each one behaves (the per-resource "strategy" of
//! kube-apiserver, reduced to the flags that matter to a kube-rs operator).

/// One servable resource type: what kube-apiserver learns from discovery or a CRD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceKind {
    /// API group; `""` for the core group.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Plural resource name used in paths, e.g. `secrets`.
    pub plural: String,
    /// Kind, e.g. `Secret`.
    pub kind: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Whether the `/status` subresource is enabled (main-resource writes then ignore `status`).
    pub status_subresource: bool,
}

impl ResourceKind {
    /// Convenience for a custom resource type derived with `kube::CustomResource`.
    pub fn of<K: kube::Resource<DynamicType = ()>>(
        namespaced: bool,
        status_subresource: bool,
    ) -> Self {
        Self {
            group: K::group(&()).into_owned(),
            version: K::version(&()).into_owned(),
            plural: K::plural(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
            namespaced,
            status_subresource,
        }
    }

    fn new(
        group: &str,
        version: &str,
        plural: &str,
        kind: &str,
        namespaced: bool,
        status: bool,
    ) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            kind: kind.into(),
            namespaced,
            status_subresource: status,
        }
    }

    /// `v1` or `group/version`, as written in `apiVersion`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// A resource kind plus the behaviour flags of its apiserver strategy.
#[derive(Clone, Debug)]
pub(crate) struct ResourceDef {
    pub kind: ResourceKind,
    /// Custom resources: generation tracking, no unconditional update, no strategic merge patch,
    /// DELETE returns the object, list items carry kind/apiVersion.
    pub custom: bool,
}

impl ResourceDef {
    /// Storage key of the resource, shared by all versions of it.
    ///
    /// Deviation: two versions of one custom resource share storage without any conversion; only
    /// `apiVersion` is rewritten on the way out.
    pub fn storage_key(&self) -> String {
        format!("{}/{}", self.kind.group, self.kind.plural)
    }

    /// Whether `metadata.generation` is maintained (custom resources; the built-ins served here
    /// have no generation on a real cluster either).
    pub fn tracks_generation(&self) -> bool {
        self.custom
    }

    /// PUT without `metadata.resourceVersion` is allowed (built-ins) or refused with 422 (CRs).
    pub fn allow_unconditional_update(&self) -> bool {
        !self.custom
    }

    /// PUT of a missing object creates it: true for events and leases, as in kube-apiserver.
    pub fn allow_create_on_update(&self) -> bool {
        !self.custom && (self.kind.plural == "events" || self.kind.plural == "leases")
    }

    /// Field selectors accepted besides `metadata.name`/`metadata.namespace`.
    ///
    /// Deviation: only a few of the real per-type field labels are supported.
    pub fn extra_field_labels(&self) -> &'static [&'static str] {
        match (
            self.custom,
            self.kind.group.as_str(),
            self.kind.plural.as_str(),
        ) {
            (false, "", "secrets") => &["type"],
            (false, "", "namespaces") => &["status.phase"],
            (false, "", "events") => &[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "reason",
                "type",
            ],
            (false, "events.k8s.io", "events") => &[
                "regarding.kind",
                "regarding.namespace",
                "regarding.name",
                "regarding.uid",
                "reason",
                "type",
            ],
            _ => &[],
        }
    }
}

/// All resources served by one emulator.
#[derive(Clone, Debug)]
pub(crate) struct Registry {
    defs: Vec<ResourceDef>,
}

impl Registry {
    /// The built-in resources plus the configured custom resources.
    ///
    /// Deviations: namespaces are not required to exist for namespaced objects, deleting a
    /// namespace does not delete its contents, and namespaces carry no `kubernetes` finalizer.
    /// Core v1 `events` and `events.k8s.io/v1` `events` are stored separately (on a real cluster
    /// they are one resource seen through two APIs, so an Event created through one shows up in
    /// the other). Events never expire (a real server deletes them after `--event-ttl`, 1 h by
    /// default), so a long-running emulator keeps every Event it was sent.
    pub fn new(custom: &[ResourceKind]) -> Self {
        let builtins = [
            ResourceKind::new("", "v1", "secrets", "Secret", true, false),
            ResourceKind::new("", "v1", "configmaps", "ConfigMap", true, false),
            ResourceKind::new("", "v1", "namespaces", "Namespace", false, true),
            ResourceKind::new("", "v1", "events", "Event", true, false),
            ResourceKind::new("events.k8s.io", "v1", "events", "Event", true, false),
            ResourceKind::new("coordination.k8s.io", "v1", "leases", "Lease", true, false),
        ];
        let mut defs: Vec<ResourceDef> = builtins
            .into_iter()
            .map(|kind| ResourceDef {
                kind,
                custom: false,
            })
            .collect();
        defs.extend(
            custom
                .iter()
                .cloned()
                .map(|kind| ResourceDef { kind, custom: true }),
        );
        Self { defs }
    }

    /// The resource at `group/version/plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceDef> {
        self.defs
            .iter()
            .find(|d| d.kind.group == group && d.kind.version == version && d.kind.plural == plural)
    }

    /// Every served resource, built-ins first.
    pub fn all(&self) -> &[ResourceDef] {
        &self.defs
    }
}
