//! Why a benchmark run stopped: typed, so each message says which step failed.

use std::time::Duration;

/// A failure of the benchmark itself (not a slow figure: those are reported, not errors).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Building or finding the binaries failed.
    #[error("build: {0}")]
    Build(String),
    /// A child process could not be started, or exited when it should run.
    #[error("{what}: {problem}")]
    Process {
        /// Which process.
        what: String,
        /// What went wrong.
        problem: String,
    },
    /// A file in the run's directory could not be written or read.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An HTTP request to a stand-in failed or was answered with an error.
    #[error("{what}: {problem}")]
    Http {
        /// The request.
        what: String,
        /// The transport error or the unexpected answer.
        problem: String,
    },
    /// Something did not happen in time.
    #[error("{what} did not happen within {limit:?}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long the benchmark waited.
        limit: Duration,
    },
}

impl BenchError {
    /// An HTTP failure of `what`.
    pub fn http(what: impl Into<String>, problem: impl ToString) -> Self {
        Self::Http {
            what: what.into(),
            problem: problem.to_string(),
        }
    }

    /// A process failure of `what`.
    pub fn process(what: impl Into<String>, problem: impl ToString) -> Self {
        Self::Process {
            what: what.into(),
            problem: problem.to_string(),
        }
    }
}

/// The benchmark's result type.
pub type Result<T> = std::result::Result<T, BenchError>;
