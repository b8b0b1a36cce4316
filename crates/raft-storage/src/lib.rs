//! `raft-storage`: Durable Raft log, hard state and snapshots on redb.
//!
//! **Not built yet.** This crate is a placeholder in the workspace so the layering
//! (see `DESIGN.md`) is fixed from the start; issue 4 fills it in. It exports nothing.
