//! The randomized sweep CI runs: many seeds, each with its own cluster size, fault schedule
//! and workload, checked for safety after every step and for liveness once healed.
//! `cargo xtask sim --seeds N` runs more; `cargo xtask sim --seed S` replays one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;

use raft_sim::sweep;

/// Seeds per CI run: each one picks its own cluster size, node configuration, network and
/// fault rates, so more seeds cover more combinations. Measured in the dev profile
/// (opt-level 1) on the two-core CI machine: 2,000 seeds of 10–40 s simulated chaos each
/// (about 41 million steps) take 13–20 s of wall time.
const SEEDS: u64 = 2_000;

/// The machine CI runs on has two cores.
const THREADS: usize = 2;

#[test]
fn randomized_sweep_finds_no_violation() {
    let report = sweep::run_seeds(0, SEEDS, THREADS);
    // Written to the stderr handle rather than with `eprintln!`, which the test harness
    // captures: the sweep's size shows in every CI log, passing or not.
    let _ = writeln!(
        std::io::stderr(),
        "sweep: {} seeds, {} steps, {:.0} s simulated, {} faults, {} commands, {:.1} s wall",
        report.seeds,
        report.steps,
        report.simulated_ms as f64 / 1_000.0,
        report.faults,
        report.commands,
        report.wall.as_secs_f64()
    );
    assert_eq!(report.seeds, SEEDS);
    let failures: Vec<String> = report
        .failures
        .iter()
        .map(|failure| {
            format!(
                "seed {}: {}\n  replay: {}",
                failure.seed,
                failure.message,
                sweep::replay_command(failure.seed)
            )
        })
        .collect();
    assert!(failures.is_empty(), "{} seeds failed:\n{}", failures.len(), failures.join("\n"));
}
