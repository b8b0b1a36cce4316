//! `raft-net-quic`: Raft peer and client transport over QUIC with mutual TLS.
//!
//! **Not built yet.** This crate is a placeholder in the workspace so the layering
//! (see `DESIGN.md`) is fixed from the start; issue 5 fills it in. It exports nothing.
