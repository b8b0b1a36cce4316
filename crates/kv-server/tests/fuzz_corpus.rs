//! Replays the fuzz corpus: every input under `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/` goes through the same target body the fuzzer runs
//! (`fuzz/src/targets.rs`), on stable Rust and without cargo-fuzz. An input must not
//! panic; a seed named `valid-*` must also be accepted. The fuzzing itself runs by hand
//! (`cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run <target>`); this pass keeps what it found
//! fixed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../../fuzz/src/targets.rs"]
#[allow(dead_code)]
mod targets;

use std::fs;
use std::path::{Path, PathBuf};

fn fuzz_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of `fuzz/<kind>/<target>/`, sorted (none when the directory is missing).
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let directory = fuzz_directory().join(kind).join(target);
    let Ok(listing) = fs::read_dir(&directory) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> =
        listing.map(|item| item.unwrap().path()).filter(|path| path.is_file()).collect();
    files.sort();
    files
}

fn replay(kind: &str) -> usize {
    let mut count = 0;
    for target in targets::TARGETS {
        for path in inputs(kind, target) {
            let data = fs::read(&path).unwrap();
            let accepted = targets::run(target, &data).unwrap();
            let name = path.file_name().unwrap().to_string_lossy();
            if name.starts_with("valid-") {
                assert!(accepted, "{}: a valid seed was refused", path.display());
            }
            count += 1;
        }
    }
    count
}

#[test]
fn every_corpus_input_decodes_without_panicking_and_valid_seeds_are_accepted() {
    let count = replay("corpus");
    for target in targets::TARGETS {
        assert!(!inputs("corpus", target).is_empty(), "fuzz/corpus/{target} has no inputs");
    }
    assert!(count > 0);
}

#[test]
fn every_crash_reproducer_is_fixed() {
    replay("regressions");
}

#[test]
fn generated_seeds_are_accepted_by_their_targets() {
    let seeds = targets::seeds().expect("the seeds build");
    for (target, name, bytes) in seeds {
        let accepted = targets::run(target, &bytes).unwrap();
        if name.starts_with("valid-") {
            assert!(accepted, "{target}/{name}: a valid seed was refused");
        }
    }
}

/// Rewrites `fuzz/corpus/<target>/valid-*` and the other seeds from [`targets::seeds`];
/// run it after changing an encoding: `cargo test -p kv-server --test fuzz_corpus --
/// --ignored`.
#[test]
#[ignore = "writes the seed corpus into the source tree"]
fn regenerate_seed_corpus() {
    for (target, name, bytes) in targets::seeds().expect("the seeds build") {
        let directory = fuzz_directory().join("corpus").join(target);
        fs::create_dir_all(&directory).unwrap();
        fs::write(directory.join(name), bytes).unwrap();
    }
}
