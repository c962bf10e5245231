//! URL path -> request target. Pure: knows the kube-apiserver URL layout, nothing about storage.

/// What a request path addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/version`
    Version,
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/api/v1` or `/apis/{group}/{version}`
    ResourceList { group: String, version: String },
    /// Anything under a resource.
    Resource(ResourcePath),
}

/// A path into a resource collection, object or subresource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResourcePath {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The deprecated `/api/v1/watch/...` form.
    pub legacy_watch: bool,
}

/// Parses a request path. `None` for paths the apiserver does not serve.
pub(crate) fn parse(path: &str) -> Option<Route> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest): (&str, &str, &[&str]) = match segments.as_slice() {
        ["version"] => return Some(Route::Version),
        ["api"] => return Some(Route::CoreVersions),
        ["apis"] => return Some(Route::Groups),
        ["api", version, rest @ ..] => ("", version, rest),
        ["apis", group, version, rest @ ..] => (group, version, rest),
        _ => return None,
    };
    if rest.is_empty() {
        return Some(Route::ResourceList {
            group: group.into(),
            version: version.into(),
        });
    }
    let (legacy_watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    let resource =
        |plural: &str, namespace: Option<&str>, name: Option<&str>, sub: Option<&str>| {
            if [Some(plural), namespace, name, sub]
                .iter()
                .flatten()
                .any(|s| s.is_empty())
            {
                return None;
            }
            Some(Route::Resource(ResourcePath {
                group: group.into(),
                version: version.into(),
                plural: plural.into(),
                namespace: namespace.map(Into::into),
                name: name.map(Into::into),
                subresource: sub.map(Into::into),
                legacy_watch,
            }))
        };
    match rest {
        // The namespace object itself and its subresources.
        ["namespaces"] => resource("namespaces", None, None, None),
        ["namespaces", name] => resource("namespaces", None, Some(name), None),
        ["namespaces", name, sub @ ("status" | "finalize")] => {
            resource("namespaces", None, Some(name), Some(sub))
        }
        // Namespaced collections and objects.
        ["namespaces", ns, plural] => resource(plural, Some(ns), None, None),
        ["namespaces", ns, plural, name] => resource(plural, Some(ns), Some(name), None),
        ["namespaces", ns, plural, name, sub] => resource(plural, Some(ns), Some(name), Some(sub)),
        // Cluster-scoped objects, or all-namespaces collections.
        [plural] => resource(plural, None, None, None),
        [plural, name] => resource(plural, None, Some(name), None),
        [plural, name, sub] => resource(plural, None, Some(name), Some(sub)),
        _ => None,
    }
}

/// Decoded query parameters (last value wins, as in the apiserver).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = raw
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        Self { pairs }
    }

    /// The value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean parameter (`true`/`1`).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> ResourcePath {
        match parse(path) {
            Some(Route::Resource(r)) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn namespaced_object_with_subresource() {
        let r = res("/apis/example.com/v1/namespaces/ns1/widgets/w1/status");
        assert_eq!(r.group, "example.com");
        assert_eq!(r.version, "v1");
        assert_eq!(r.plural, "widgets");
        assert_eq!(r.namespace.as_deref(), Some("ns1"));
        assert_eq!(r.name.as_deref(), Some("w1"));
        assert_eq!(r.subresource.as_deref(), Some("status"));
    }

    #[test]
    fn core_paths() {
        let r = res("/api/v1/secrets");
        assert_eq!(
            (r.group.as_str(), r.plural.as_str(), r.namespace),
            ("", "secrets", None)
        );
        let r = res("/api/v1/namespaces/ns1/secrets");
        assert_eq!(r.namespace.as_deref(), Some("ns1"));
        assert_eq!(r.name, None);
        let r = res("/api/v1/namespaces/ns1");
        assert_eq!(
            (r.plural.as_str(), r.name.as_deref(), r.namespace),
            ("namespaces", Some("ns1"), None)
        );
        let r = res("/api/v1/namespaces/ns1/status");
        assert_eq!(r.subresource.as_deref(), Some("status"));
        let r = res("/api/v1/watch/namespaces/a/configmaps");
        assert!(r.legacy_watch);
        assert_eq!(r.plural, "configmaps");
    }

    #[test]
    fn discovery_and_unknown() {
        assert_eq!(parse("/version"), Some(Route::Version));
        assert_eq!(parse("/api"), Some(Route::CoreVersions));
        assert_eq!(parse("/apis"), Some(Route::Groups));
        assert_eq!(
            parse("/apis/coordination.k8s.io/v1"),
            Some(Route::ResourceList {
                group: "coordination.k8s.io".into(),
                version: "v1".into()
            })
        );
        assert_eq!(parse("/healthz"), None);
        assert_eq!(parse("/api/v1/namespaces/a/b/c/d/e"), None);
        assert_eq!(parse("/api/v1/namespaces//secrets"), None);
    }

    #[test]
    fn query_flags_and_values() {
        let q = Query::parse(Some("watch=1&labelSelector=a%3Db%2Cc&timeoutSeconds=5"));
        assert!(q.flag("watch"));
        assert!(!q.flag("allowWatchBookmarks"));
        assert_eq!(q.get("labelSelector"), Some("a=b,c"));
        assert_eq!(q.get("timeoutSeconds"), Some("5"));
    }
}
