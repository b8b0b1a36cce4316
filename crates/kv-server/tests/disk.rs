//! Disk faults on a real cluster: a node whose store (redb database or write-ahead log
//! segment) stops accepting writes reports a clear error naming the file and stops (so it
//! no longer votes), and the rest of the cluster keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Cluster, WAIT_MAX, text};

/// Makes `path` immutable (`chattr +i`): every later write to it fails with EPERM, even
/// for root and through descriptors already open. Returns false where the file system
/// does not support it.
fn make_immutable(path: &std::path::Path, immutable: bool) -> bool {
    let flag = if immutable { "+i" } else { "-i" };
    Command::new("chattr").arg(flag).arg(path).status().is_ok_and(|status| status.success())
}

#[test]
fn a_node_whose_database_becomes_unwritable_stops_and_the_others_keep_serving() {
    unwritable_store_stops_the_node(&["--storage", "redb"], "raft-log.redb");
}

#[test]
fn a_node_whose_log_segment_becomes_unwritable_stops_and_the_others_keep_serving() {
    unwritable_store_stops_the_node(&["--storage", "wal"], "wal/00000000000000000001.wal");
}

/// Runs a cluster with `flags`, makes `file` (in a follower's data directory) unwritable,
/// and checks the follower stops naming it while the others serve.
fn unwritable_store_stops_the_node(flags: &[&str], file: &str) {
    let mut cluster = Cluster::start(3, flags);
    let leader = cluster.leader();
    let victim = cluster.addrs.keys().copied().find(|&id| id != leader).unwrap();
    assert!(cluster.kvctl(&["put", "before", "1"]).status.success());
    let database = cluster.data_dir(victim).join(file);
    if !make_immutable(&database, true) {
        eprintln!("skipped: chattr +i is not supported here, so no write can be made to fail");
        return;
    }
    // Writes reach the victim, whose next durable write fails.
    let deadline = Instant::now() + WAIT_MAX;
    let status = loop {
        assert!(cluster.kvctl(&["put", "during", "2"]).status.success(), "the majority serves");
        if let Some(status) = cluster.processes.get_mut(&victim).unwrap().try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "node {victim} kept running with a read-only database");
        std::thread::sleep(Duration::from_millis(50));
    };
    make_immutable(&database, false);
    cluster.processes.remove(&victim);
    assert!(!status.success(), "the node exits with an error: {status}");
    let log = std::fs::read_to_string(cluster.log_path(victim)).unwrap();
    let errors: Vec<&str> = log.lines().filter(|line| line.contains("ERROR")).collect();
    eprintln!("node {victim} reported:\n{}", errors.join("\n"));
    let stopped = errors.iter().find(|line| line.contains("raft node stopped"));
    let stopped = stopped.unwrap_or_else(|| panic!("no stop reported: {log}"));
    assert!(stopped.contains(file), "the error names the file: {stopped}");
    assert!(stopped.contains("not permitted"), "the error gives the OS error: {stopped}");
    // The other two keep serving reads and writes.
    assert!(cluster.kvctl(&["put", "after", "3"]).status.success());
    assert_eq!(text(&cluster.kvctl(&["get", "after"]).stdout), "3");
    // Once the disk is fixed, the node restarts from what it had made durable.
    cluster.start_node(victim);
    cluster.wait_for_status(victim, "catch up", |status| {
        status["applied_index"].as_u64().unwrap_or(0) >= 4
    });
    let endpoint = cluster.addrs[&victim].to_string();
    assert_eq!(text(&cluster.kvctl_at(&endpoint, &["get", "after"]).stdout), "3");
}
