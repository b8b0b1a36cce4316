//! `kv-bench`: Load harness with charts, comparing the store with etcd.
//!
//! **Not built yet.** This crate is a placeholder in the workspace so the layering
//! (see `DESIGN.md`) is fixed from the start; issue 7 fills it in. It exports nothing.
