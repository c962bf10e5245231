//! The identity service simulator (being built).
