//! `kv-server`: The key-value store node binary and the kvctl CLI.
//!
//! **Not built yet.** This crate is a placeholder in the workspace so the layering
//! (see `DESIGN.md`) is fixed from the start; issue 6 fills it in. It exports nothing.
