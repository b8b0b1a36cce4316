//! Developer tasks: `cargo xtask <task>`.
//!
//! - `ci`: what `.ci/run` runs: format check, clippy, the layering check and the test suite.
//! - `layering`: fails if a workspace crate depends on a crate above it (see DESIGN.md).
//! - `sim [--seeds N] [--from S] [--seed S]`: a randomized simulation sweep in release mode,
//!   or the replay of one seed.
//!
//! xtask depends on none of the workspace's crates: it drives them through cargo.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The test command the README gives users; CI runs exactly this.
/// `--all-features` compiles in the transport's fault-injection switch, which the process-level
/// fault tests need; production builds never enable it.
const TEST_COMMAND: &[&str] = &["test", "--workspace", "--all-features"];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((task, rest)) = args.split_first() else {
        bail!("usage: cargo xtask <ci|layering|sim> [args]\n{}", HELP);
    };
    match task.as_str() {
        "ci" => ci(),
        "layering" => layering(),
        "sim" => sim(rest),
        "faults" => faults(rest),
        "help" | "--help" | "-h" => {
            println!("{HELP}");
            Ok(())
        }
        other => bail!("unknown task {other:?}\n{HELP}"),
    }
}

const HELP: &str = "tasks:
  ci                          format check, clippy, layering check, tests (what .ci/run runs)
  layering                    check that crates only depend on crates below them
  sim --seeds N [--from S]    randomized simulation sweep of N seeds starting at S (release)
  sim --seed S                replay one seed
  faults [--time SECONDS]     process-level fault runs (crash, pause, partition), each
                              SECONDS long (default 60), checked for linearizability";

fn cargo(args: &[&str]) -> Result<()> {
    eprintln!("+ cargo {}", args.join(" "));
    let status = Command::new(env!("CARGO"))
        .args(args)
        .status()
        .with_context(|| format!("could not run cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed with {status}", args.join(" "));
    }
    Ok(())
}

fn ci() -> Result<()> {
    cargo(&["fmt", "--all", "--check"])?;
    layering()?;
    cargo(&["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"])?;
    cargo(TEST_COMMAND)
}

/// Runs the process-level fault tests of kv-server with a longer nemesis.
fn faults(args: &[String]) -> Result<()> {
    let seconds = match args {
        [] => "60".to_owned(),
        [flag, value] if flag == "--time" => {
            let seconds: u64 = value.parse().with_context(|| format!("--time {value:?}"))?;
            seconds.to_string()
        }
        _ => bail!("usage: cargo xtask faults [--time SECONDS]"),
    };
    eprintln!("+ KV_FAULTS_SECONDS={seconds}");
    let status = Command::new(env!("CARGO"))
        .args(["test", "--release", "-p", "kv-server", "--all-features", "--test", "faults"])
        .args(["--", "--nocapture", "--test-threads", "1"])
        .env("KV_FAULTS_SECONDS", &seconds)
        .status()
        .context("could not run cargo test")?;
    if !status.success() {
        bail!("the fault runs failed with {status}");
    }
    Ok(())
}

fn sim(args: &[String]) -> Result<()> {
    let mut command = vec!["run", "--release", "--quiet", "-p", "raft-sim", "--"];
    command.extend(args.iter().map(String::as_str));
    cargo(&command)
}

/// Crates that may not depend on these third-party crates at all, with the reason.
const FORBIDDEN_DEPENDENCIES: &[(&str, &str, &str)] = &[(
    "raft-core",
    "tokio",
    "the consensus core has no runtime: the tokio driver is raft-runtime (DESIGN.md)",
)];

/// Which workspace crates each crate may depend on (any kind of dependency): only crates
/// below it in DESIGN.md's list.
fn allowed_dependencies() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    let table: &[(&str, &[&str])] = &[
        // The history checker depends on nothing of ours, so any test may use it.
        ("kv-linearizability", &[]),
        ("raft-core", &[]),
        ("raft-runtime", &["raft-core"]),
        ("raft-storage", &["raft-core", "raft-runtime"]),
        ("raft-net-quic", &["raft-core", "raft-runtime"]),
        // The runtime only behind kv-store's `runtime` feature: the pure state machine that
        // raft-sim uses needs neither the driver nor tokio.
        ("kv-store", &["raft-core", "raft-runtime"]),
        ("kv-client", &["raft-core", "kv-store", "raft-net-quic"]),
        (
            "kv-server",
            &[
                "raft-core",
                "raft-runtime",
                "raft-storage",
                "raft-net-quic",
                "kv-store",
                "kv-client",
                "kv-linearizability",
            ],
        ),
        ("kv-bench", &["raft-core", "kv-store", "kv-client", "kv-linearizability"]),
        ("raft-sim", &["raft-core", "kv-store", "raft-storage", "kv-linearizability"]),
        ("xtask", &[]),
    ];
    table.iter().map(|(name, deps)| (*name, deps.iter().copied().collect())).collect()
}

fn layering() -> Result<()> {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("could not run cargo metadata")?;
    if !output.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("cargo metadata printed invalid JSON")?;
    let packages = metadata["packages"].as_array().context("cargo metadata has no packages")?;
    let members: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let allowed = allowed_dependencies();
    let mut violations = Vec::new();
    for package in packages {
        let name = package["name"].as_str().unwrap_or_default();
        let Some(allowed_here) = allowed.get(name) else {
            violations.push(format!("{name} is not in the layering table (xtask/src/main.rs)"));
            continue;
        };
        let dependencies = package["dependencies"].as_array().into_iter().flatten();
        for dependency in dependencies.filter_map(|d| d["name"].as_str()) {
            for (crate_name, forbidden, reason) in FORBIDDEN_DEPENDENCIES {
                if name == *crate_name && dependency == *forbidden {
                    violations.push(format!("{name} depends on {dependency}: {reason}"));
                }
            }
            if members.contains(dependency) && !allowed_here.contains(dependency) {
                violations.push(format!("{name} depends on {dependency}, which is above it"));
            }
        }
    }
    if !violations.is_empty() {
        bail!("layering violations (see DESIGN.md):\n  {}", violations.join("\n  "));
    }
    eprintln!("layering: {} crates, no upward dependency", members.len());
    Ok(())
}
