//! kvctl and kv-server against bad input and version conflicts, on a real cluster: each
//! mistake gives a clear error and its documented exit code, and the cluster keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};

use common::{Cluster, KVCTL, SERVER, json_of, text};

#[test]
fn a_stale_expected_version_is_a_conflict_with_exit_code_4_and_the_current_version() {
    let cluster = Cluster::start(3, &[]);
    cluster.leader();
    assert!(cluster.kvctl(&["put", "counter", "1"]).status.success());
    assert!(cluster.kvctl(&["put", "counter", "2", "--expect-version", "1"]).status.success());
    let stale = cluster.kvctl(&["cas", "counter", "1", "3"]);
    assert_eq!(stale.status.code(), Some(4), "{}", text(&stale.stderr));
    let error = json_of(&stale.stderr);
    assert_eq!(error["error"], "conflict");
    assert_eq!(error["current_version"], 2);
    let create_only = cluster.kvctl(&["put", "counter", "9", "--expect-version", "0"]);
    assert_eq!(create_only.status.code(), Some(4));
    assert_eq!(text(&cluster.kvctl(&["get", "counter"]).stdout), "2");
}

#[test]
fn bad_client_input_fails_clearly_and_the_cluster_keeps_serving() {
    let cluster = Cluster::start(3, &[]);
    cluster.leader();
    let unknown = cluster.kvctl(&["frobnicate", "x"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown.stderr).contains("unrecognized subcommand"), "{}", text(&unknown.stderr));
    let missing = cluster.kvctl(&["put", "only-a-key"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("VALUE"), "{}", text(&missing.stderr));
    // Over the 1 MiB value limit (too large for an argument, so from standard input).
    let mut put = cluster.kvctl_command(&["put", "big", "-"]);
    let mut child =
        put.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &vec![b'x'; 1_100_000]).unwrap();
    let too_large = child.wait_with_output().unwrap();
    assert_eq!(too_large.status.code(), Some(1), "{}", text(&too_large.stderr));
    let error = json_of(&too_large.stderr);
    assert_eq!(error["error"], "too_large");
    assert_eq!(error["what"], "value");
    let missing_key = cluster.kvctl(&["get", "never-written"]);
    assert_eq!(missing_key.status.code(), Some(5));
    assert_eq!(json_of(&missing_key.stderr)["error"], "not_found");
    // Still serving.
    assert!(cluster.kvctl(&["put", "after", "ok"]).status.success());
    assert_eq!(text(&cluster.kvctl(&["get", "after"]).stdout), "ok");
}

#[test]
fn not_following_redirects_reports_the_leader_with_exit_code_3() {
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.leader();
    let follower = cluster.addrs.keys().copied().find(|&id| id != leader).unwrap();
    let endpoint = cluster.addrs[&follower].to_string();
    let output = cluster.kvctl_at(&endpoint, &["--no-follow", "put", "x", "1"]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    let error = json_of(&output.stderr);
    assert_eq!(error["error"], "not_leader");
    assert_eq!(error["leader"], leader.to_string());
}

#[test]
fn an_unreachable_cluster_times_out_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let made = Command::new(SERVER)
        .arg("certs")
        .arg("--out")
        .arg(&certs)
        .args(["--nodes", "1"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(made.success());
    let output = Command::new(KVCTL)
        .args(["--endpoints", "127.0.0.1:9", "--timeout", "500"])
        .arg("--certs-dir")
        .arg(&certs)
        .args(["get", "x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert_eq!(json_of(&output.stderr)["error"], "timeout");
}

#[test]
fn bad_server_flags_and_directories_are_refused_with_a_clear_message() {
    let cluster = Cluster::start(1, &[]);
    cluster.leader();
    // A malformed peer list: a malformed setting, exit code 2.
    let output = Command::new(SERVER)
        .args(["--id", "1", "--peers", "1=127.0.0.1:7001,2:oops"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("2:oops"), "{}", text(&output.stderr));
    // A data directory that is a file.
    let file = cluster.dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let output = Command::new(SERVER)
        .args(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&file)
        .arg("--certs-dir")
        .arg(cluster.certs_dir())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = text(&output.stderr);
    assert!(message.contains("not-a-dir"), "names the path: {message}");
    // A damaged database file is reported by path, never reset.
    let damaged = cluster.dir.path().join("damaged");
    std::fs::create_dir_all(&damaged).unwrap();
    std::fs::write(damaged.join("raft-log.redb"), b"this is not a database").unwrap();
    let output = Command::new(SERVER)
        .args(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&damaged)
        .arg("--certs-dir")
        .arg(cluster.certs_dir())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("raft-log.redb"), "{}", text(&output.stderr));
    assert_eq!(std::fs::read(damaged.join("raft-log.redb")).unwrap(), b"this is not a database");
    // The running node is untouched.
    assert!(cluster.kvctl(&["put", "still", "here"]).status.success());
    // A stored membership that disagrees with --peers (the node stopped first: its
    // database is locked while it runs).
    let mut cluster = cluster;
    cluster.kill(1);
    let output = Command::new(SERVER)
        .args(["--id", "1", "--listen", &cluster.addrs[&1].to_string()])
        .args(["--peers", &format!("1={},2=127.0.0.1:9", cluster.addrs[&1])])
        .arg("--data-dir")
        .arg(cluster.data_dir(1))
        .arg("--certs-dir")
        .arg(cluster.certs_dir())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = text(&output.stderr);
    assert!(message.contains("--peers lists nodes [1, 2]"), "{message}");
}
