//! End to end: three real `kv-server` processes on 127.0.0.1, driven through `kvctl` and
//! the client library. Each test is bounded (every wait gives up after 30 s) and kills its
//! processes when it ends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::{Cluster, json_of, text};
use kv_client::protocol::{Command, Request, Session, Write};
use kv_client::{Consistency, TransportKind};
use raft_core::NodeId;

#[test]
fn a_write_is_readable_from_every_node_including_linearizably_through_a_follower() {
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.leader();
    let put = cluster.kvctl(&["put", "greeting", "hello"]);
    assert!(put.status.success(), "{}", text(&put.stderr));
    let line = text(&put.stdout);
    assert!(line.starts_with(&format!("OK leader={leader} index=")), "{line}");
    for (&id, addr) in &cluster.addrs {
        let endpoint = addr.to_string();
        // Only this node is asked: a follower confirms the read with the leader (ReadIndex).
        let get = cluster.kvctl_at(&endpoint, &["get", "greeting"]);
        assert!(get.status.success(), "node {id}: {}", text(&get.stderr));
        assert_eq!(text(&get.stdout), "hello", "node {id}");
    }
}

/// Writes five keys through the leader and returns, per follower, how many of its writes it
/// made on its node task.
fn inline_writes_on_followers(cluster: &Cluster) -> Vec<f64> {
    let leader = cluster.leader();
    for number in 0..5 {
        let put = cluster.kvctl(&["put", &format!("key-{number}"), "value"]);
        assert!(put.status.success(), "{}", text(&put.stderr));
    }
    cluster
        .addrs
        .keys()
        .filter(|&&id| id != leader)
        .map(|&id| {
            // Every node applied the writes once its status shows them (the kvctl replies
            // came from the leader).
            cluster.wait_for_status(id, "the writes applied", |status| {
                status["applied_index"].as_u64().is_some_and(|index| index >= 6)
            });
            cluster.metric(id, "raft_persist_inline_total")
        })
        .collect()
}

#[test]
fn followers_write_on_their_node_task_unless_the_flag_says_not_to() {
    let inline_by_default = Cluster::start(3, &[]);
    for inline in inline_writes_on_followers(&inline_by_default) {
        assert!(inline >= 1.0, "{inline}");
    }
    drop(inline_by_default);
    let cluster = Cluster::start(3, &["--follower-persist-inline", "false"]);
    for inline in inline_writes_on_followers(&cluster) {
        assert_eq!(inline, 0.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tcp_writes_replicate_and_a_killed_leader_is_replaced() {
    let mut cluster = Cluster::start(3, &["--transport", "tcp"]);
    let leader = cluster.leader();
    let put = cluster.kvctl(&["put", "x", "1"]);
    assert!(put.status.success(), "{}", text(&put.stderr));
    assert!(text(&put.stdout).starts_with(&format!("OK leader={leader} index=")));
    // A QUIC client finds nobody on the TCP port, and says so.
    let wrong = cluster.kvctl_over(TransportKind::Quic, &["--timeout", "1500", "get", "x"]);
    assert!(!wrong.status.success(), "a QUIC client read from a TCP cluster");
    assert!(text(&wrong.stderr).contains("did not answer"), "{}", text(&wrong.stderr));
    let client = cluster.client();
    for number in 0..50 {
        let key = Bytes::from(format!("key-{number}"));
        client.put(key, Bytes::from(number.to_string())).await.unwrap();
    }
    cluster.kill(leader);
    let new_leader = cluster.leader();
    assert_ne!(new_leader, leader);
    for number in 0..50 {
        let key = Bytes::from(format!("key-{number}"));
        let found = client.get(key, Consistency::Linearizable).await.unwrap();
        assert_eq!(found.map(|kv| kv.value), Some(Bytes::from(number.to_string())));
    }
    let get = cluster.kvctl(&["get", "x"]);
    assert_eq!(text(&get.stdout), "1", "{}", text(&get.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_elects_another_and_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(3, &[]);
    let old_leader = cluster.leader();
    let client = cluster.client();
    let mut acknowledged = BTreeMap::new();
    for number in 0..100 {
        let key = format!("key-{number}");
        let written = client.put(Bytes::from(key.clone()), Bytes::from(number.to_string())).await;
        acknowledged.insert(key, number.to_string());
        written.unwrap();
    }
    cluster.kill(old_leader);
    let new_leader = cluster.leader();
    assert_ne!(new_leader, old_leader);
    // Writes go on during and after the failover; the client follows the new leader.
    for number in 100..150 {
        let key = format!("key-{number}");
        client.put(Bytes::from(key.clone()), Bytes::from(number.to_string())).await.unwrap();
        acknowledged.insert(key, number.to_string());
    }
    for (key, value) in &acknowledged {
        let found = client.get(Bytes::from(key.clone()), Consistency::Linearizable).await.unwrap();
        assert_eq!(found.map(|kv| kv.value), Some(Bytes::from(value.clone())), "{key}");
    }
    // The old leader comes back as a follower and catches up.
    cluster.start_node(old_leader);
    let commit = cluster.statuses()[&new_leader]["commit_index"].as_u64().unwrap();
    cluster.wait_for_status(old_leader, "catch up", |status| {
        status["applied_index"].as_u64().unwrap_or(0) >= commit
    });
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_after_snapshots_catches_up_by_install_snapshot() {
    let mut cluster = Cluster::start(3, &["--storage", "redb", "--snapshot-threshold", "16KB"]);
    let leader = cluster.leader();
    let lagging = cluster.addrs.keys().copied().find(|&id| id != leader).unwrap();
    let client = cluster.client();
    client.put(Bytes::from("first"), Bytes::from("1")).await.unwrap();
    let before = cluster.wait_for_status(lagging, "apply the first write", |status| {
        status["applied_index"].as_u64().unwrap_or(0) >= 2
    });
    let lagging_last = before["log_last_index"].as_u64().unwrap();
    cluster.kill(lagging);
    let value = Bytes::from(vec![b'v'; 200]);
    for number in 0..400 {
        client.put(Bytes::from(format!("bulk-{number}")), value.clone()).await.unwrap();
    }
    let leader_status = cluster.statuses()[&leader].clone();
    let compacted = leader_status["log_first_index"].as_u64().unwrap();
    assert!(
        compacted > lagging_last + 1,
        "the leader compacted past the lagging node: {leader_status}"
    );
    cluster.start_node(lagging);
    let commit = leader_status["commit_index"].as_u64().unwrap();
    let caught_up = cluster.wait_for_status(lagging, "catch up", |status| {
        status["applied_index"].as_u64().unwrap_or(0) >= commit
    });
    let snapshot_index = caught_up["snapshot_index"].as_u64().unwrap();
    assert!(snapshot_index > lagging_last, "installed the leader's snapshot: {caught_up}");
    assert!(caught_up["snapshot_bytes"].as_u64().unwrap() > 0);
    let endpoint = cluster.addrs[&lagging].to_string();
    let get = cluster.kvctl_at(&endpoint, &["get", "bulk-399", "--consistency", "stale"]);
    assert_eq!(text(&get.stdout), String::from_utf8_lossy(&value), "{}", text(&get.stderr));
    // The address book is not for clients: it changes only through member add/remove.
    let session = Session { client_id: 9, sequence: 1 };
    let write = Write::SetMemberAddress { node: NodeId(9), addr: cluster.addrs[&lagging] };
    let request = Request::Write(Command { session, write });
    let refused = client.admin(request).await;
    assert!(matches!(refused, Err(kv_client::Error::Invalid { .. })), "{refused:?}");
    // It no longer lives under user keys, so no key is reserved.
    let formerly_reserved = Bytes::from_static(b"\0raft/peer/9");
    client.put(formerly_reserved.clone(), Bytes::from("x")).await.unwrap();
    let found = client.get(formerly_reserved, Consistency::Linearizable).await.unwrap();
    assert_eq!(found.map(|found| found.value), Some(Bytes::from("x")));
    client.close().await;
}

#[test]
fn sigterm_stops_a_node_cleanly_and_its_restart_resumes_its_state() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.leader();
    assert!(cluster.kvctl(&["put", "kept", "yes"]).status.success());
    let before = cluster.statuses()[&leader].clone();
    assert!(cluster.terminate(leader), "exit status 0 after SIGTERM");
    cluster.leader();
    cluster.start_node(leader);
    let resumed = cluster.wait_for_status(leader, "rejoin", |status| {
        status["term"].as_u64().unwrap_or(0) >= before["term"].as_u64().unwrap()
            && status["applied_index"].as_u64().unwrap_or(0)
                >= before["commit_index"].as_u64().unwrap()
    });
    assert!(
        resumed["log_last_index"].as_u64().unwrap() >= before["log_last_index"].as_u64().unwrap()
    );
    let endpoint = cluster.addrs[&leader].to_string();
    let get = cluster.kvctl_at(&endpoint, &["get", "kept"]);
    assert_eq!(text(&get.stdout), "yes", "{}", text(&get.stderr));
}

#[test]
fn status_lists_every_node_with_its_log_and_snapshot() {
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.leader();
    let output = cluster.kvctl(&["--output", "json", "status"]);
    assert!(output.status.success());
    let json = json_of(&output.stdout);
    let nodes = json["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    for node in nodes {
        for field in [
            "id",
            "role",
            "term",
            "commit_index",
            "applied_index",
            "log_first_index",
            "log_last_index",
            "snapshot_index",
            "snapshot_bytes",
        ] {
            assert!(!node[field].is_null(), "{field} missing in {node}");
        }
    }
    let text_status = text(&cluster.kvctl(&["status"]).stdout);
    assert!(text_status.contains("leader"), "{text_status}");
    let members = text(&cluster.kvctl(&["member", "list"]).stdout);
    assert!(
        members.contains(&format!("{leader} voter")) && members.contains("(leader)"),
        "{members}"
    );
}

#[test]
fn a_joining_node_is_added_as_a_voter_serves_reads_and_is_removed() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.leader();
    assert!(cluster.kvctl(&["put", "before-join", "1"]).status.success());
    // Node 4's certificate comes from the cluster's CA, kept in the certificates directory.
    let made = std::process::Command::new(common::SERVER)
        .arg("certs")
        .arg("--out")
        .arg(cluster.certs_dir())
        .args(["--nodes", "4", "--clients", "1"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made.stderr));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], common::free_port()));
    cluster.addrs.insert(4, addr);
    let child = cluster.server_command(4).arg("--join").stderr(std::process::Stdio::null()).spawn();
    cluster.processes.insert(4, child.unwrap());
    let add = cluster.kvctl(&["member", "add", "4", &addr.to_string()]);
    assert!(add.status.success(), "{}", text(&add.stderr));
    let members = text(&cluster.kvctl(&["member", "list"]).stdout);
    assert!(members.contains(&format!("4 voter {addr}")), "{members}");
    let get = cluster.kvctl_at(&addr.to_string(), &["get", "before-join"]);
    assert_eq!(text(&get.stdout), "1", "{}", text(&get.stderr));
    let remove = cluster.kvctl(&["member", "remove", "4"]);
    assert!(remove.status.success(), "{}", text(&remove.stderr));
    let members = text(&cluster.kvctl(&["member", "list"]).stdout);
    assert!(!members.contains("4 voter"), "{members}");
}

/// The write-ahead log engine end to end: a node killed while its peers snapshot and
/// compact catches up by snapshot on restart, serves what was written, and its data
/// directory is refused to the other engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wal_cluster_restarts_from_its_log_and_refuses_the_other_engine() {
    let mut cluster = Cluster::start(3, &["--storage", "wal", "--snapshot-threshold", "16KB"]);
    let leader = cluster.leader();
    let lagging = cluster.addrs.keys().copied().find(|&id| id != leader).unwrap();
    let client = cluster.client();
    client.put(Bytes::from("first"), Bytes::from("1")).await.unwrap();
    cluster.wait_for_status(lagging, "apply the first write", |status| {
        status["applied_index"].as_u64().unwrap_or(0) >= 2
    });
    cluster.kill(lagging);
    let value = Bytes::from(vec![b'w'; 200]);
    for number in 0..300 {
        client.put(Bytes::from(format!("bulk-{number}")), value.clone()).await.unwrap();
    }
    let commit = cluster.statuses()[&leader]["commit_index"].as_u64().unwrap();
    cluster.start_node(lagging);
    let caught_up = cluster.wait_for_status(lagging, "catch up", |status| {
        status["applied_index"].as_u64().unwrap_or(0) >= commit
    });
    assert!(caught_up["snapshot_index"].as_u64().unwrap() > 2, "{caught_up}");
    let endpoint = cluster.addrs[&lagging].to_string();
    let get = cluster.kvctl_at(&endpoint, &["get", "bulk-299", "--consistency", "stale"]);
    assert_eq!(text(&get.stdout), String::from_utf8_lossy(&value), "{}", text(&get.stderr));
    assert!(cluster.data_dir(lagging).join("wal").is_dir());
    assert_eq!(std::fs::read_to_string(cluster.data_dir(lagging).join("engine")).unwrap(), "wal\n");
    client.close().await;

    cluster.kill(lagging);
    let output = std::process::Command::new(common::SERVER)
        .args(["--id", &lagging.to_string(), "--listen", &cluster.addrs[&lagging].to_string()])
        .args(["--peers", &cluster.peers(), "--storage", "redb"])
        .arg("--data-dir")
        .arg(cluster.data_dir(lagging))
        .arg("--certs-dir")
        .arg(cluster.certs_dir())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = text(&output.stderr);
    assert!(
        message.contains("holds a wal log store") && message.contains("--storage wal"),
        "{message}"
    );
    assert!(!cluster.data_dir(lagging).join("raft-log.redb").exists(), "nothing redb was made");
}
