//! Everything that talks to the identity service's Setting API.
//!
//! [`client::IdentityClient`] is the entry point; [`auth::Credentials`] says how it gets tokens;
//! [`error::IdentityError`] and its [`error::ErrorClass`] say what went wrong.

pub mod auth;
pub mod body;
pub mod budget;
pub mod client;
pub mod error;
pub mod observe;
pub mod redact;
pub mod retry;
pub mod secret;
mod transport;
pub mod types;
pub mod urls;

/// reqwest's client builder, after installing the process's TLS crypto provider (rustls with
/// ring). The workspace builds reqwest without a provider of its own (aws-lc-rs would add 1.5 MB
/// of code to the binary) and reqwest panics when a client is built before one is installed, so
/// every HTTP client, tests' included, starts here.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    // An error means a provider is installed already, and that one is used.
    let _ = rustls::crypto::ring::default_provider().install_default();
    #[allow(clippy::disallowed_methods)] // the one place allowed to (see clippy.toml)
    reqwest::Client::builder()
}
