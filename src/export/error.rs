//! Why `export` stopped. Messages name flags, keys, files and servers, never a secret value;
//! what the identity service answered is cut with the run's redactor before it is printed.

use std::path::PathBuf;

use crate::diff::check::CheckError;
use crate::identity::error::IdentityError;

/// Why an export failed; nothing is written when it does.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A flag's value cannot be used; the message names the flag.
    #[error("{0}")]
    Usage(String),
    /// The credentials could not be found or used (as `diff` reports it).
    #[error(transparent)]
    Credentials(#[from] CheckError),
    /// The identity service could not be read (unknown server, 401, 403, 404, …).
    #[error("reading {server}: {source}")]
    Identity {
        /// The server, without any password in its URL.
        server: String,
        /// What the client found.
        source: IdentityError,
    },
    /// The server holds no value for any key asked: most likely the wrong organization.
    #[error(
        "{server} holds no value for any of the {asked} keys read in partition {partition:?}{user}: \
         check --partition (and --user), or name the keys it holds with --key"
    )]
    NothingSet {
        /// The server, without any password in its URL.
        server: String,
        /// How many keys were read.
        asked: usize,
        /// The partition.
        partition: String,
        /// `, user "…"`, or nothing.
        user: String,
    },
    /// An exported policy would not pass the operator's own checks.
    #[error("the exported policy {name:?} would not be valid: {problems}")]
    Invalid {
        /// The policy's name.
        name: String,
        /// What the operator's checks say (keys and fields, no values).
        problems: String,
    },
    /// A manifest could not be rendered as YAML.
    #[error("cannot render {name:?} as YAML: {problem}")]
    Render {
        /// The object's name.
        name: String,
        /// Why.
        problem: String,
    },
    /// An output file exists already: a filled-in Secret stub must not be lost.
    #[error(
        "{} already exists; export never overwrites a file (a filled-in Secret stub would be \
         lost): remove it or choose another --output-dir",
        path.display()
    )]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The manifests could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file, directory or `-` (stdout).
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}
