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
