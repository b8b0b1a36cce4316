//! Failover as a user sees it: the leader is SIGKILLed and a fresh `kvctl put` against all
//! three endpoints must be acknowledged within a second, with the default timing settings.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, text};

/// The limit issue 14 sets: the next acknowledged write within 1 s of the kill.
const FAILOVER_MAX: Duration = Duration::from_secs(1);

/// kv-server's defaults, passed explicitly so the test harness does not speed them up.
const DEFAULT_TIMING: [&str; 4] = ["--heartbeat-ms", "50", "--election-timeout-ms", "300"];

#[test]
fn the_next_write_after_the_leader_is_killed_is_acknowledged_within_a_second() {
    let mut cluster = Cluster::start(3, &DEFAULT_TIMING);
    let warm = cluster.kvctl(&["put", "before", "1"]);
    assert!(warm.status.success(), "{}", text(&warm.stderr));
    let leader = cluster.leader();
    cluster.kill(leader);
    let killed = Instant::now();
    // Fresh processes, as a user's shell would run them, until one is acknowledged.
    let acknowledged = loop {
        let put = cluster.kvctl(&["--timeout", "5000", "put", "after", "2"]);
        if put.status.success() {
            break killed.elapsed();
        }
        assert!(killed.elapsed() < Duration::from_secs(15), "{}", text(&put.stderr));
    };
    eprintln!("leader {leader} killed; next write acknowledged after {acknowledged:?}");
    assert!(acknowledged < FAILOVER_MAX, "the next write took {acknowledged:?}");
    let read = cluster.kvctl(&["get", "after"]);
    assert_eq!(text(&read.stdout).trim(), "2");
}
