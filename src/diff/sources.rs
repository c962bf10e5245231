//! Where `diff` finds the Secrets a policy references, in order: the Secret manifests read
//! with the policies, a directory laid out like mounted Secret volumes (`--secrets-dir`), and
//! environment variables. The first source that holds a Secret supplies all of its keys.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::reconcile::resolve::{SecretData, keys};
use crate::reconcile::validate::{ValidPolicy, ValueOrigin};

use super::load::ObjectKey;

/// The prefix of the environment variables that hold Secret keys.
pub const ENV_PREFIX: &str = "IDENTITY_SETTINGS_SECRET_";

/// Every key a credentials Secret may hold: what the environment is searched for.
const CREDENTIAL_KEYS: [&str; 6] = [
    keys::CLIENT_ID,
    keys::CLIENT_SECRET,
    keys::TOKEN,
    keys::USERNAME,
    keys::PASSWORD,
    keys::TENANCY_NAME,
];

/// Reads one environment variable (the process environment, or a test's).
type EnvReader = Box<dyn Fn(&str) -> Option<OsString> + Send + Sync>;

/// The Secret sources of one run.
pub struct SecretSources {
    manifests: BTreeMap<ObjectKey, SecretData>,
    secrets_dir: Option<PathBuf>,
    env: EnvReader,
}

/// A Secret source that exists but could not be read. Names the file, never its content.
#[derive(Debug, thiserror::Error)]
#[error("cannot read Secret {name:?} from {}: {source}", path.display())]
pub struct SourceError {
    /// The Secret's name.
    pub name: String,
    /// The file or directory.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

impl SecretSources {
    /// Sources from the manifests' Secrets, `secrets_dir` and the process environment.
    pub fn new(manifests: BTreeMap<ObjectKey, SecretData>, secrets_dir: Option<PathBuf>) -> Self {
        Self::with_env(manifests, secrets_dir, |name| std::env::var_os(name))
    }

    /// Like [`SecretSources::new`] with `env` in place of the process environment (for tests).
    pub fn with_env(
        manifests: BTreeMap<ObjectKey, SecretData>,
        secrets_dir: Option<PathBuf>,
        env: impl Fn(&str) -> Option<OsString> + Send + Sync + 'static,
    ) -> Self {
        Self {
            manifests,
            secrets_dir,
            env: Box::new(env),
        }
    }

    /// The directory given with `--secrets-dir`, if any.
    pub fn secrets_dir(&self) -> Option<&Path> {
        self.secrets_dir.as_deref()
    }

    /// Whether Secret `name` of `namespace` comes from a manifest in DIR (written by whoever
    /// wrote the policies), not from the pipeline's --secrets-dir or environment.
    pub fn in_manifests(&self, namespace: &str, name: &str) -> bool {
        self.manifests
            .contains_key(&(namespace.to_owned(), name.to_owned()))
    }

    /// Every Secret `policy` (in `namespace`) references that some source holds, by name.
    pub fn secrets_of(
        &self,
        namespace: &str,
        policy: &ValidPolicy,
    ) -> Result<BTreeMap<String, SecretData>, SourceError> {
        self.secrets_named(
            namespace,
            policy,
            crate::reconcile::resolve::referenced_secrets(policy),
        )
    }

    /// Each of the Secrets `names` of `namespace` that some source holds, by name (`policy`
    /// says which keys to look for in the environment).
    pub fn secrets_named(
        &self,
        namespace: &str,
        policy: &ValidPolicy,
        names: BTreeSet<String>,
    ) -> Result<BTreeMap<String, SecretData>, SourceError> {
        let mut found = BTreeMap::new();
        for name in names {
            if let Some(data) = self.lookup(namespace, &name, &wanted_keys(policy, &name))? {
                found.insert(name, data);
            }
        }
        Ok(found)
    }

    /// The Secret `name` for a policy in `namespace`; `keys` are the keys to look for in the
    /// environment (which cannot be listed by Secret).
    fn lookup(
        &self,
        namespace: &str,
        name: &str,
        keys: &BTreeSet<String>,
    ) -> Result<Option<SecretData>, SourceError> {
        if let Some(data) = self.manifests.get(&(namespace.to_owned(), name.to_owned())) {
            return Ok(Some(data.clone()));
        }
        if let Some(data) = self.in_secrets_dir(name)? {
            return Ok(Some(data));
        }
        let data: SecretData = keys
            .iter()
            .filter_map(|key| {
                (self.env)(&env_var(name, key)).map(|v| (key.clone(), v.into_encoded_bytes()))
            })
            .collect();
        Ok((!data.is_empty()).then_some(data))
    }

    /// `secrets_dir/name/*`: one file per key. Entries starting with `..` (the timestamped
    /// directories of a mounted volume) and directories are skipped.
    fn in_secrets_dir(&self, name: &str) -> Result<Option<SecretData>, SourceError> {
        let Some(root) = &self.secrets_dir else {
            return Ok(None);
        };
        // A Secret's name is one path segment; anything else is not looked up.
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return Ok(None);
        }
        let dir = root.join(name);
        if !dir.is_dir() {
            return Ok(None);
        }
        let fail = |path: &Path| {
            let (name, path) = (name.to_owned(), path.to_owned());
            move |source| SourceError { name, path, source }
        };
        let mut data = SecretData::new();
        for entry in std::fs::read_dir(&dir).map_err(fail(&dir))? {
            let path = entry.map_err(fail(&dir))?.path();
            let Some(key) = path.file_name().and_then(|k| k.to_str()) else {
                continue;
            };
            if key.starts_with("..") || !path.is_file() {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(fail(&path))?;
            data.insert(key.to_owned(), bytes);
        }
        Ok(Some(data))
    }
}

/// The environment variable holding `key` of Secret `name`:
/// `IDENTITY_SETTINGS_SECRET_<NAME>_<KEY>`, upper-cased, `-` and `.` written as `_`.
pub fn env_var(name: &str, key: &str) -> String {
    let shout = |s: &str| s.to_ascii_uppercase().replace(['-', '.'], "_");
    format!("{ENV_PREFIX}{}_{}", shout(name), shout(key))
}

/// The keys a policy may read from Secret `name`: the credential keys when it is the
/// credentials Secret, and every key referenced from it.
fn wanted_keys(policy: &ValidPolicy, name: &str) -> BTreeSet<String> {
    let mut wanted = BTreeSet::new();
    if policy.credentials_secret == name {
        wanted.extend(CREDENTIAL_KEYS.map(str::to_owned));
    }
    let referenced = policy
        .settings
        .iter()
        .filter_map(|s| match &s.source {
            ValueOrigin::Secret(r) => Some(r),
            ValueOrigin::Literal(_) => None,
        })
        .chain(&policy.ca);
    wanted.extend(referenced.filter(|r| r.name == name).map(|r| r.key.clone()));
    wanted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{IdentitySettingPolicySpec, SecretKeyRef, SettingSpec, ValueSource};
    use crate::reconcile::validate::validate;

    fn policy() -> ValidPolicy {
        let smtp_password = SettingSpec {
            key: "Email.Smtp.Password".into(),
            value: None,
            value_from: Some(Box::new(ValueSource {
                secret_key_ref: SecretKeyRef {
                    name: "smtp.creds".into(),
                    key: "smtp-password".into(),
                },
            })),
        };
        let spec = IdentitySettingPolicySpec::for_tests(
            "https://x/identity_",
            "identity-admin",
            vec![smtp_password],
        );
        validate(&spec).expect("valid")
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> + Send + Sync + 'static {
        let vars: BTreeMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn environment_variables_are_named_after_secret_and_key() {
        assert_eq!(
            env_var("identity-admin", "clientSecret"),
            "IDENTITY_SETTINGS_SECRET_IDENTITY_ADMIN_CLIENTSECRET"
        );
        assert_eq!(
            env_var("smtp.creds", "smtp-password"),
            "IDENTITY_SETTINGS_SECRET_SMTP_CREDS_SMTP_PASSWORD"
        );
        let sources = SecretSources::with_env(
            BTreeMap::new(),
            None,
            env(&[
                ("IDENTITY_SETTINGS_SECRET_IDENTITY_ADMIN_CLIENTID", "app"),
                (
                    "IDENTITY_SETTINGS_SECRET_IDENTITY_ADMIN_CLIENTSECRET",
                    "s3cr3t",
                ),
                ("IDENTITY_SETTINGS_SECRET_SMTP_CREDS_SMTP_PASSWORD", "pw"),
            ]),
        );
        let found = sources.secrets_of("ns", &policy()).expect("reads");
        assert_eq!(found["identity-admin"]["clientId"], b"app");
        assert_eq!(found["identity-admin"]["clientSecret"], b"s3cr3t");
        assert_eq!(found["identity-admin"].len(), 2);
        assert_eq!(found["smtp.creds"]["smtp-password"], b"pw");
    }

    #[test]
    fn manifests_come_first_then_the_directory_then_the_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let admin = dir.path().join("identity-admin");
        std::fs::create_dir_all(admin.join("..2026_01_01")).expect("mkdir");
        std::fs::write(admin.join("token"), "from-dir").expect("write");
        std::fs::write(admin.join("..data"), "skipped").expect("write");
        let manifests = BTreeMap::from([(
            ("ns".to_owned(), "smtp.creds".to_owned()),
            SecretData::from([("smtp-password".to_owned(), b"from-manifest".to_vec())]),
        )]);
        let sources = SecretSources::with_env(
            manifests,
            Some(dir.path().to_owned()),
            env(&[
                (
                    "IDENTITY_SETTINGS_SECRET_IDENTITY_ADMIN_CLIENTID",
                    "from-env",
                ),
                (
                    "IDENTITY_SETTINGS_SECRET_SMTP_CREDS_SMTP_PASSWORD",
                    "from-env",
                ),
            ]),
        );
        let found = sources.secrets_of("ns", &policy()).expect("reads");
        assert_eq!(
            found["identity-admin"],
            SecretData::from([("token".to_owned(), b"from-dir".to_vec())]),
            "the whole Secret from the directory, nothing merged from the environment"
        );
        assert_eq!(found["smtp.creds"]["smtp-password"], b"from-manifest");
        let elsewhere = sources.secrets_of("other", &policy()).expect("reads");
        assert_eq!(
            elsewhere["smtp.creds"]["smtp-password"], b"from-env",
            "a manifest Secret serves its own namespace only"
        );
    }
}
