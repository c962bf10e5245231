//! Reads policy and Secret manifests from files, as `kubectl apply -f` finds them: every
//! `*.yaml`, `*.yml` and `*.json` file of a directory (by name; subdirectories only when asked),
//! multi-document YAML and `kind: List` included. Other kinds are ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::ByteString;
use serde::Deserialize;
use serde_json::Value;

use crate::api::{ClusterIdentityServer, IdentityServer, IdentitySettingPolicy};
use crate::reconcile::resolve::SecretData;

/// The `apiVersion` of the policies read.
pub const POLICY_API_VERSION: &str = "identitysettings.dev/v1alpha1";

/// A namespace and a name: how policies and Secrets are told apart.
pub type ObjectKey = (String, String);

/// What the manifests hold.
#[derive(Debug, Default)]
pub struct Manifests {
    /// The policies by namespace and name (a policy without namespace has the default one).
    pub policies: BTreeMap<ObjectKey, IdentitySettingPolicy>,
    /// The Secrets' data by namespace and name, `stringData` merged over `data`.
    pub secrets: BTreeMap<ObjectKey, SecretData>,
    /// The `IdentityServer`s by namespace and name.
    pub servers: BTreeMap<ObjectKey, IdentityServer>,
    /// The `ClusterIdentityServer`s, by name (with an empty namespace).
    pub cluster_servers: BTreeMap<ObjectKey, ClusterIdentityServer>,
}

/// Why the manifests could not be read. Messages name files, documents, Secrets and keys, never
/// a Secret's value.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file or directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// What could not be read.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A document is not YAML/JSON, or not a valid policy or Secret.
    #[error("{}: document {index}: {problem}", path.display())]
    Document {
        /// The file.
        path: PathBuf,
        /// The document's position in the file, from 1.
        index: usize,
        /// What is wrong.
        problem: String,
    },
    /// Two documents define the same object.
    #[error("{kind} {}/{} is defined twice (the second time in {})", key.0, key.1, path.display())]
    Duplicate {
        /// `IdentitySettingPolicy` or `Secret`.
        kind: &'static str,
        /// Its namespace and name.
        key: ObjectKey,
        /// Where it appeared again.
        path: PathBuf,
    },
}

/// Reads `path` (a directory, or one file) with `namespace` for objects that state none.
pub fn load(path: &Path, recursive: bool, namespace: &str) -> Result<Manifests, LoadError> {
    let mut manifests = Manifests::default();
    for file in manifest_files(path, recursive)? {
        let text = std::fs::read_to_string(&file).map_err(|source| LoadError::Read {
            path: file.clone(),
            source,
        })?;
        for (index, document) in documents(&file, &text)? {
            let fail = |problem: String| LoadError::Document {
                path: file.clone(),
                index,
                problem,
            };
            add_object(&mut manifests, document, namespace, &file, &fail)?;
        }
    }
    Ok(manifests)
}

/// The manifest files under `path`, sorted by name within each directory (a directory's files
/// before its subdirectories). Symbolic links to directories are not followed.
fn manifest_files(path: &Path, recursive: bool) -> Result<Vec<PathBuf>, LoadError> {
    let read_error = |path: &Path| {
        let path = path.to_owned();
        move |source| LoadError::Read { path, source }
    };
    let meta = std::fs::metadata(path).map_err(read_error(path))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut entries = std::fs::read_dir(path)
        .map_err(read_error(path))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_error(path))?;
    entries.sort();
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for entry in entries {
        let is_link = std::fs::symlink_metadata(&entry)
            .map_err(read_error(&entry))?
            .file_type()
            .is_symlink();
        // A dangling link is skipped like any other non-manifest.
        let Ok(meta) = std::fs::metadata(&entry) else {
            continue;
        };
        if meta.is_dir() {
            if recursive && !is_link {
                dirs.push(entry);
            }
        } else if is_manifest_name(&entry) {
            files.push(entry);
        }
    }
    for dir in dirs {
        files.extend(manifest_files(&dir, true)?);
    }
    Ok(files)
}

fn is_manifest_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["yaml", "yml", "json"].contains(&e.to_ascii_lowercase().as_str()))
}

fn is_json(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// The non-empty documents of a file, numbered from 1.
fn documents(path: &Path, text: &str) -> Result<Vec<(usize, Value)>, LoadError> {
    let fail = |index: usize, problem: String| LoadError::Document {
        path: path.to_owned(),
        index,
        problem,
    };
    if is_json(path) {
        let value: Value =
            serde_json::from_str(text).map_err(|e| fail(1, format!("not JSON: {e}")))?;
        return Ok(vec![(1, value)]);
    }
    let mut out = Vec::new();
    for (i, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let value =
            Value::deserialize(document).map_err(|e| fail(i + 1, format!("not YAML: {e}")))?;
        if !value.is_null() {
            out.push((i + 1, value));
        }
    }
    Ok(out)
}

/// Adds one document (or each item of a `List`) to `manifests`.
fn add_object(
    manifests: &mut Manifests,
    document: Value,
    namespace: &str,
    file: &Path,
    fail: &dyn Fn(String) -> LoadError,
) -> Result<(), LoadError> {
    let text = |field: &str| document.get(field).and_then(Value::as_str);
    let (Some(api_version), Some(kind)) = (text("apiVersion"), text("kind")) else {
        return Err(fail(
            "not a Kubernetes object (a mapping with apiVersion and kind)".into(),
        ));
    };
    match (api_version, kind) {
        (POLICY_API_VERSION, "IdentitySettingPolicy") => {
            let policy: IdentitySettingPolicy = serde_json::from_value(document)
                .map_err(|e| fail(format!("not a valid IdentitySettingPolicy: {e}")))?;
            let key = object_key(&policy.metadata, namespace, fail)?;
            insert_once(
                &mut manifests.policies,
                key,
                policy,
                "IdentitySettingPolicy",
                file,
            )
        }
        (POLICY_API_VERSION, "IdentityServer") => {
            let server: IdentityServer = serde_json::from_value(document)
                .map_err(|e| fail(format!("not a valid IdentityServer: {e}")))?;
            let key = object_key(&server.metadata, namespace, fail)?;
            insert_once(&mut manifests.servers, key, server, "IdentityServer", file)
        }
        (POLICY_API_VERSION, "ClusterIdentityServer") => {
            let server: ClusterIdentityServer = serde_json::from_value(document)
                .map_err(|e| fail(format!("not a valid ClusterIdentityServer: {e}")))?;
            // Cluster-scoped: no namespace, whatever -n says.
            let (_, name) = object_key(&server.metadata, namespace, fail)?;
            insert_once(
                &mut manifests.cluster_servers,
                (String::new(), name),
                server,
                "ClusterIdentityServer",
                file,
            )
        }
        (other, "IdentitySettingPolicy" | "IdentityServer" | "ClusterIdentityServer")
            if other.starts_with("identitysettings.dev/") =>
        {
            Err(fail(format!(
                "apiVersion {other:?} is not supported; use {POLICY_API_VERSION}"
            )))
        }
        ("v1", "Secret") => {
            let metadata =
                serde_json::from_value(document.get("metadata").cloned().unwrap_or_default())
                    .map_err(|e| fail(format!("Secret metadata: {e}")))?;
            let key = object_key(&metadata, namespace, fail)?;
            let data = secret_data(&document)
                .map_err(|problem| fail(format!("Secret {:?}: {problem}", key.1)))?;
            insert_once(&mut manifests.secrets, key, data, "Secret", file)
        }
        ("v1", "List") => {
            let Some(items) = document.get("items").and_then(Value::as_array) else {
                return Err(fail("a List without items".into()));
            };
            for item in items.clone() {
                add_object(manifests, item, namespace, file, fail)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn object_key(
    metadata: &kube::api::ObjectMeta,
    namespace: &str,
    fail: &dyn Fn(String) -> LoadError,
) -> Result<ObjectKey, LoadError> {
    let name = metadata
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| fail("metadata.name is missing".into()))?;
    let namespace = metadata
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| namespace.to_owned());
    Ok((namespace, name))
}

fn insert_once<T>(
    map: &mut BTreeMap<ObjectKey, T>,
    key: ObjectKey,
    value: T,
    kind: &'static str,
    file: &Path,
) -> Result<(), LoadError> {
    if map.contains_key(&key) {
        return Err(LoadError::Duplicate {
            kind,
            key,
            path: file.to_owned(),
        });
    }
    map.insert(key, value);
    Ok(())
}

/// A Secret's `data` (base64) with its `stringData` merged over it, as the API server does.
/// Problems name the key, never the value (serde's messages would quote it).
fn secret_data(secret: &Value) -> Result<SecretData, String> {
    let mut data = SecretData::new();
    for (key, value) in string_map(secret, "data")? {
        let bytes: ByteString = serde_json::from_value(Value::String(value.to_owned()))
            .map_err(|_| format!("data.{key} is not base64"))?;
        data.insert(key.to_owned(), bytes.0);
    }
    for (key, value) in string_map(secret, "stringData")? {
        data.insert(key.to_owned(), value.as_bytes().to_vec());
    }
    Ok(data)
}

/// The string values of the mapping `field` (absent or null: none).
fn string_map<'a>(secret: &'a Value, field: &str) -> Result<Vec<(&'a str, &'a str)>, String> {
    match secret.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.as_str(), s.as_str())),
                _ => Err(format!("{field}.{k} is not a string")),
            })
            .collect(),
        Some(_) => Err(format!("{field} is not a mapping of keys to strings")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).expect("write");
    }

    const POLICY: &str = "apiVersion: identitysettings.dev/v1alpha1
kind: IdentitySettingPolicy
metadata: {name: p}
spec:
  server: {url: https://x/identity_, credentialsSecretRef: {name: creds}}
  partitionGlobalId: magic-7
  settings: [{key: A, value: '1'}]
";

    #[test]
    fn reads_policies_and_secrets_of_every_manifest_file_and_ignores_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "b.yaml",
            &format!(
                "{POLICY}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: creds, namespace: other}}\n\
             data: {{clientId: YXBw, clientSecret: b2xk}}\nstringData: {{clientSecret: s3cr3t}}\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ignored}}\n---\n"
            ),
        );
        write(dir.path(), "notes.txt", "not a manifest: {");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        write(&dir.path().join("sub"), "c.json", &serde_json::json!({
            "apiVersion": "v1", "kind": "List",
            "items": [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "stringData": {"token": "t"}}]
        }).to_string());

        let flat = load(dir.path(), false, "ns").expect("loads");
        assert_eq!(
            flat.policies.keys().collect::<Vec<_>>(),
            [&("ns".to_owned(), "p".to_owned())]
        );
        let creds = &flat.secrets[&("other".to_owned(), "creds".to_owned())];
        assert_eq!(creds["clientId"], b"app");
        assert_eq!(creds["clientSecret"], b"s3cr3t", "stringData wins");
        assert_eq!(flat.secrets.len(), 1, "sub/ is not read without recursion");

        let deep = load(dir.path(), true, "ns").expect("loads");
        assert_eq!(
            deep.secrets[&("ns".to_owned(), "creds".to_owned())]["token"],
            b"t"
        );
    }

    #[test]
    fn bad_documents_are_named_by_file_and_index_without_secret_values() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cases = [
            (format!("{POLICY}---\nkind: [\n"), "document 2"),
            (format!("---\n{}", POLICY.replace("'1'", "1")), "document 1"),
            (
                "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: 123456}\n".into(),
                "stringData.password is not a string",
            ),
            (
                "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {password: '!!hunter2!!'}\n".into(),
                "data.password is not base64",
            ),
            (POLICY.replace("v1alpha1", "v2"), "not supported"),
            (format!("{POLICY}---\n{POLICY}"), "defined twice"),
            ("just text\n".into(), "not a Kubernetes object"),
        ];
        for (text, expected) in cases {
            write(dir.path(), "bad.yaml", &text);
            let err = load(dir.path(), false, "ns")
                .expect_err(expected)
                .to_string();
            assert!(err.contains("bad.yaml") && err.contains(expected), "{err}");
            assert!(!err.contains("123456") && !err.contains("hunter2"), "{err}");
        }
        for harmless in ["", "# only a comment\n", "---\n---\n"] {
            write(dir.path(), "bad.yaml", harmless);
            let empty = load(dir.path(), false, "ns").expect("an empty file is no error");
            assert!(empty.policies.is_empty() && empty.secrets.is_empty());
        }
        let missing = load(&dir.path().join("nope"), false, "ns").expect_err("missing");
        assert!(missing.to_string().contains("nope"), "{missing}");
    }
}
