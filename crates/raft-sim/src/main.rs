//! `raft-sim`: runs the randomized simulation sweep, or replays one seed.
//!
//! ```text
//! raft-sim --seeds N [--from S] [--threads T]   run seeds S..S+N (default S = 0)
//! raft-sim --seed S [--trace]                   replay seed S (--trace prints every event)
//! ```
//!
//! Prints how many seeds and simulated steps ran and the wall time; on failure prints each
//! failing seed with the command that replays it, and exits with status 1.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::ExitCode;
use std::time::Instant;

use raft_sim::sweep::{self, SweepReport};

const USAGE: &str = "usage: raft-sim --seeds N [--from S] [--threads T] | --seed S [--trace]";

/// What the command line asked for.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    /// Run `count` seeds from `from` on `threads` threads.
    Sweep { from: u64, count: u64, threads: usize },
    /// Replay one seed, optionally printing every event.
    Replay { seed: u64, trace: bool },
}

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    match parse(&arguments) {
        Ok(Command::Sweep { from, count, threads }) => {
            report(&sweep::run_seeds(from, count, threads))
        }
        Ok(Command::Replay { seed, trace }) => replay(seed, trace),
        Err(message) => {
            eprintln!("raft-sim: {message}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn parse(arguments: &[String]) -> Result<Command, String> {
    let mut seed = None;
    let mut count = None;
    let mut from = 0;
    let mut threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut trace = false;
    let mut rest = arguments.iter();
    while let Some(flag) = rest.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            let text = rest.next().ok_or_else(|| format!("{name} needs a value"))?;
            text.parse().map_err(|error| format!("{name} {text:?}: {error}"))
        };
        match flag.as_str() {
            "--seed" => seed = Some(value("--seed")?),
            "--seeds" => count = Some(value("--seeds")?),
            "--from" => from = value("--from")?,
            "--threads" => {
                threads = usize::try_from(value("--threads")?).map_err(|e| e.to_string())?;
            }
            "--trace" => trace = true,
            "--help" | "-h" => return Err("help".to_string()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    match (seed, count) {
        (Some(seed), None) => Ok(Command::Replay { seed, trace }),
        (None, Some(count)) => Ok(Command::Sweep { from, count, threads }),
        (None, None) => Err("give --seeds N or --seed S".to_string()),
        (Some(_), Some(_)) => Err("give either --seeds or --seed, not both".to_string()),
    }
}

fn report(sweep: &SweepReport) -> ExitCode {
    println!(
        "ran {} seeds, {} steps, {:.1} s simulated, {} faults, {} commands, {} snapshots \
         installed, {} reads, {} transfers, {} membership changes, {} KV seeds with {} \
         operations checked for linearizability in {:.2} s, in {:.2} s wall",
        sweep.seeds,
        sweep.steps,
        sweep.simulated_ms as f64 / 1_000.0,
        sweep.faults,
        sweep.commands,
        sweep.snapshots_installed,
        sweep.reads_served,
        sweep.transfers,
        sweep.membership_changes,
        sweep.kv_seeds,
        sweep.kv_operations,
        sweep.kv_check.as_secs_f64(),
        sweep.wall.as_secs_f64()
    );
    for failure in &sweep.failures {
        println!("seed {} FAILED: {}", failure.seed, failure.message);
        println!("  replay: {}", sweep::replay_command(failure.seed));
    }
    if sweep.failures.is_empty() {
        println!("all seeds passed");
        ExitCode::SUCCESS
    } else {
        println!("{} of {} seeds failed", sweep.failures.len(), sweep.seeds);
        ExitCode::FAILURE
    }
}

fn replay(seed: u64, trace: bool) -> ExitCode {
    let started = Instant::now();
    let outcome = if trace {
        std::panic::catch_unwind(|| sweep::run_seed(seed, true)).map_err(|_| ())
    } else {
        sweep::run_seed_caught(seed).map_err(|failure| {
            println!("seed {seed} FAILED: {}", failure.message);
        })
    };
    match outcome {
        Ok(report) => {
            println!(
                "seed {seed} passed: {} nodes, {} steps, {:.1} s simulated, {} faults, \
                 {} commands, {} messages, {} snapshots installed and {} taken, {} reads, \
                 {} transfers, {} membership changes, {} KV operations checked, trace hash \
                 {:016x}, in {:.2} s wall\n\
                 features: {:?}",
                report.nodes,
                report.steps,
                report.simulated_ms as f64 / 1_000.0,
                report.faults,
                report.commands,
                report.messages,
                report.snapshots_installed,
                report.snapshots_taken,
                report.reads_served,
                report.transfers,
                report.membership_changes,
                report.kv_operations,
                report.trace_hash,
                started.elapsed().as_secs_f64(),
                report.features
            );
            ExitCode::SUCCESS
        }
        Err(()) => {
            println!("  features: {:?}", sweep::features(seed));
            println!("  replay: {}", sweep::replay_command(seed));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arguments(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn parses_a_sweep_and_a_replay() {
        assert_eq!(
            parse(&arguments("--seeds 10 --from 5 --threads 3")),
            Ok(Command::Sweep { from: 5, count: 10, threads: 3 })
        );
        assert_eq!(
            parse(&arguments("--seed 7 --trace")),
            Ok(Command::Replay { seed: 7, trace: true })
        );
    }

    #[test]
    fn rejects_unknown_and_conflicting_arguments() {
        assert!(parse(&arguments("--seeds")).is_err());
        assert!(parse(&arguments("--seed 1 --seeds 2")).is_err());
        assert!(parse(&arguments("--bogus")).is_err());
        assert!(parse(&arguments("")).is_err());
    }
}
