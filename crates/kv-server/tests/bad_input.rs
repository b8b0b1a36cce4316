//! Malformed values for every `kv-server` and `kvctl` flag, and for every key of the
//! `kv-server` TOML file: each gives a one-line error on stderr naming the flag (or key)
//! and the documented exit code (2 for kv-server, 1 for kvctl), never a panic. No case
//! needs a running cluster; each process is killed if it has not exited within 20 s.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{KVCTL, SERVER, text};

/// How long one process may take to refuse its input.
const EXIT_WAIT_MAX: Duration = Duration::from_secs(20);

/// kv-server's exit code for bad usage or a malformed setting.
const SERVER_EXIT_USAGE: i32 = 2;
/// kvctl's exit code for bad usage.
const KVCTL_EXIT_USAGE: i32 = 1;

/// Runs `command` to its end, killing it past [`EXIT_WAIT_MAX`] (an error then).
fn run_bounded(mut command: Command) -> Result<Output, String> {
    let mut child =
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + EXIT_WAIT_MAX;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            return Err(format!("still running after {EXIT_WAIT_MAX:?}: {}", text(&output.stderr)));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(child.wait_with_output().unwrap())
}

/// Checks one refusal; returns a description of what is wrong, if anything.
fn check(case: &str, output: Result<Output, String>, code: i32, names: &str) -> Option<String> {
    let output = match output {
        Ok(output) => output,
        Err(problem) => return Some(format!("{case}: {problem}")),
    };
    let stderr = text(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|line| !line.trim().is_empty()).collect();
    if stderr.contains("panicked") {
        return Some(format!("{case}: panicked: {stderr}"));
    }
    if output.status.code() != Some(code) {
        return Some(format!("{case}: exit {:?}, not {code}: {stderr}", output.status.code()));
    }
    if lines.len() != 1 {
        return Some(format!("{case}: {} lines on stderr, not 1: {stderr}", lines.len()));
    }
    if !stderr.contains(names) {
        return Some(format!("{case}: stderr does not name {names:?}: {stderr}"));
    }
    None
}

/// kv-server with `args`, its data and certificates in `dir`.
fn server(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(SERVER);
    command.current_dir(dir).env("RUST_LOG", "off").args(args);
    command
}

#[test]
fn every_malformed_kv_server_flag_is_refused_in_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let huge = "18446744073709551615";
    let too_big = "18446744073709551616";
    let cases: &[(&[&str], &str)] = &[
        (&["--id", "abc"], "--id"),
        (&["--id", "-1"], "--id"),
        (&["--id", too_big], "--id"),
        (&["--id", "0"], "id"),
        (&["--listen", "nowhere"], "listen"),
        (&["--listen", "127.0.0.1"], "listen"),
        (&["--listen", "127.0.0.1:99999"], "listen"),
        (&["--listen", ""], "listen"),
        (&["--listen", "127.0.0.1:65500"], "listen"),
        (&["--http", "127.0.0.1:70000"], "http"),
        (&["--http", "localhost"], "http"),
        (&["--peers", "1=nowhere"], "peers"),
        (&["--peers", "abc"], "peers"),
        (&["--peers", ""], "peers"),
        (&["--peers", "0=127.0.0.1:7001"], "peers"),
        (&["--peers", "1=127.0.0.1:7001,1=127.0.0.1:7002"], "peers"),
        (&["--peers", "2=127.0.0.1:7002"], "peers"),
        (&["--peers", &format!("{too_big}=127.0.0.1:7001")], "peers"),
        (&["--snapshot-threshold", "4parsecs"], "snapshot-threshold"),
        (&["--snapshot-threshold", "0"], "snapshot-threshold"),
        (&["--snapshot-threshold", "-1"], "snapshot-threshold"),
        (&["--snapshot-threshold", "99999999999999GiB"], "snapshot-threshold"),
        (&["--snapshot-threshold", ""], "snapshot-threshold"),
        (&["--election-timeout-ms", "abc"], "--election-timeout-ms"),
        (&["--election-timeout-ms", "0"], "election-timeout-ms"),
        (&["--election-timeout-ms", huge], "election-timeout-ms"),
        (&["--heartbeat-ms", "0"], "heartbeat-ms"),
        (&["--heartbeat-ms", "-5"], "--heartbeat-ms"),
        (&["--heartbeat-ms", huge], "heartbeat-ms"),
        (&["--heartbeat-ms", "600000", "--election-timeout-ms", "1200000"], "heartbeat-ms"),
        (&["--cluster-id", ""], "cluster-id"),
        (&["--config", "/nonexistent/kv.toml"], "/nonexistent/kv.toml"),
        (&["--frobnicate"], "--frobnicate"),
        (&["certs", "--out", "c", "--nodes", "abc"], "--nodes"),
        (&["certs", "--out", "c", "--nodes", "0"], "nodes"),
        (&["certs", "--out", "c", "--nodes", ""], "--nodes"),
        (&["certs", "--out", "c", "--nodes", "1", "--clients", "x"], "--clients"),
        (&["certs", "--out", "c", "--nodes", "1", "--clients", "0"], "clients"),
    ];
    let problems: Vec<String> = cases
        .iter()
        .filter_map(|(args, names)| {
            let output = run_bounded(server(dir.path(), args));
            check(&args.join(" "), output, SERVER_EXIT_USAGE, names)
        })
        .collect();
    assert!(problems.is_empty(), "{} cases failed:\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn every_malformed_config_file_value_is_refused_in_one_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        ("id = \"one\"", "id"),
        ("id = -1", "id"),
        ("id = 0", "id"),
        ("listen = 7001", "listen"),
        ("listen = \"nowhere\"", "listen"),
        ("peers = \"1=nowhere\"", "peers"),
        ("http = \"127.0.0.1:99999\"", "http"),
        ("snapshot-threshold = \"4parsecs\"", "snapshot-threshold"),
        ("snapshot-threshold = 4", "snapshot-threshold"),
        ("election-timeout-ms = -3", "election-timeout-ms"),
        ("election-timeout-ms = 1e9", "election-timeout-ms"),
        ("heartbeat-ms = 0", "heartbeat-ms"),
        ("heartbeat-ms = 18446744073709551615", "heartbeat-ms"),
        ("cluster-id = \"\"", "cluster-id"),
        ("join = \"yes\"", "join"),
        ("colour = \"blue\"", "colour"),
        ("id = ", "kv.toml"),
    ];
    let problems: Vec<String> = cases
        .iter()
        .filter_map(|(line, names)| {
            let path = dir.path().join("kv.toml");
            std::fs::write(&path, format!("{line}\n")).unwrap();
            let output = run_bounded(server(dir.path(), &["--config", "kv.toml"]));
            check(line, output, SERVER_EXIT_USAGE, names)
        })
        .collect();
    assert!(problems.is_empty(), "{} cases failed:\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn every_malformed_kvctl_flag_is_refused_in_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let huge = "18446744073709551615";
    let cases: &[(&[&str], &str)] = &[
        (&["--endpoints", "nowhere", "status"], "--endpoints"),
        (&["--endpoints", "127.0.0.1", "status"], "--endpoints"),
        (&["--endpoints", "", "status"], "--endpoints"),
        (&["--endpoints", "127.0.0.1:99999", "status"], "--endpoints"),
        (&["--timeout", "abc", "status"], "--timeout"),
        (&["--timeout", "-1", "status"], "--timeout"),
        (&["--timeout", huge, "status"], "timeout"),
        (&["--client-id", "abc", "status"], "--client-id"),
        (&["--client-id", "0", "status"], "client-id"),
        (&["--output", "yaml", "status"], "--output"),
        (&["--cluster-id", "", "status"], "cluster-id"),
        (&["get", "k", "--consistency", "eventual"], "--consistency"),
        (&["put", "k", "v", "--expect-version", "x"], "--expect-version"),
        (&["del", "k", "--expect-version", "-2"], "--expect-version"),
        (&["cas", "k", "one", "v"], "VERSION"),
        (&["range", "--limit", "many"], "--limit"),
        (&["range", "--limit", "0"], "limit"),
        (&["member", "add", "abc", "127.0.0.1:7004"], "ID"),
        (&["member", "add", "0", "127.0.0.1:7004"], "ID"),
        (&["member", "add", "4", "nowhere"], "ADDR"),
        (&["member", "remove", "x"], "ID"),
        (&["member", "remove", "0"], "ID"),
        (&["leader", "transfer", "x"], "ID"),
        (&["frobnicate"], "frobnicate"),
    ];
    let problems: Vec<String> = cases
        .iter()
        .filter_map(|(args, names)| {
            let mut command = Command::new(KVCTL);
            command.current_dir(dir.path()).args(*args);
            let output = run_bounded(command);
            check(&args.join(" "), output, KVCTL_EXIT_USAGE, names)
        })
        .collect();
    assert!(problems.is_empty(), "{} cases failed:\n{}", problems.len(), problems.join("\n"));
}
