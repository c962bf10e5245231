//! Hooks that let the operator count identity API requests (Prometheus "requests by method and
//! status") without the client knowing about metrics.

/// Which identity endpoint a request went to; a small, fixed set so it can be a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `{base}/api/Setting` (GET and PUT).
    Setting,
    /// `{base}/connect/token` (client credentials).
    Token,
    /// The legacy ROPC `{orchestrator}/api/account/authenticate`.
    Authenticate,
}

impl Endpoint {
    /// A stable lower-case name for logs and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Setting => "setting",
            Endpoint::Token => "token",
            Endpoint::Authenticate => "authenticate",
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one HTTP attempt ended, as far as a metric needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestOutcome {
    /// The server answered with this status.
    Status(u16),
    /// No answer within the connect or request timeout.
    Timeout,
    /// The connection could not be made or broke before a response arrived.
    ConnectionError,
    /// Anything else (the request could not be built, the body could not be read, ...).
    Other,
}

/// Told about every HTTP attempt the client makes (Setting calls, token requests, retries),
/// exactly once per attempt. Implementations must be cheap and must not block.
pub trait RequestObserver: Send + Sync {
    /// One attempt finished: `method` is the HTTP method (`GET`, `PUT`, `POST`).
    fn observe(&self, method: &str, endpoint: Endpoint, outcome: RequestOutcome);
}
