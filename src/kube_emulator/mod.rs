//! The Kubernetes API emulator (being built).
