//! Everything that talks to the identity service's Setting API.

pub mod types;
