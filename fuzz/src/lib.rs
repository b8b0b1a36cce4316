//! Fuzz targets for the decoders that read untrusted bytes.
//!
//! Each `fuzz_targets/<name>.rs` calls the function of the same name in [`targets`];
//! `crates/kv-server/tests/fuzz_corpus.rs` includes the same file and feeds it every input
//! under `fuzz/corpus/<name>/` and `fuzz/regressions/<name>/`, so CI replays the corpus
//! without nightly or cargo-fuzz.

pub mod targets;
