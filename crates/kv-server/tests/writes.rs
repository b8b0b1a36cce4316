//! Writes on the way to the log, on real `kv-server` processes: a write whose client gave
//! up is not proposed, and a retry of a write still in flight adds no log entry. Each test
//! is bounded (waits give up after 30 s) and kills its processes when it ends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command as Process;
use std::time::Duration;

use bytes::Bytes;
use common::{Cluster, json_of, text};
use kv_client::Consistency;
use kv_client::protocol::{Command, Request, Session, Write, new_session_client_id};

/// The leader's last log index, asking the leader alone.
fn leader_last_index(cluster: &Cluster, leader: u64) -> u64 {
    let endpoint = cluster.addrs[&leader].to_string();
    let output = cluster.kvctl_at(&endpoint, &["--output", "json", "--timeout", "2000", "status"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    json["nodes"][0]["log_last_index"].as_u64().unwrap()
}

fn signal(cluster: &Cluster, id: u64, name: &str) {
    let pid = cluster.processes[&id].id().to_string();
    assert!(Process::new("kill").args([name, &pid]).status().unwrap().success());
}

fn put(key: &'static str) -> Command {
    Command {
        session: Session { client_id: new_session_client_id(), sequence: 1 },
        write: Write::Put {
            key: Bytes::from_static(key.as_bytes()),
            value: Bytes::from_static(b"v"),
            expect_version: None,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_deadline_passed_is_not_proposed() {
    let cluster = Cluster::start(1, &[]);
    let leader = cluster.leader();
    let client = cluster.client();
    let addr = cluster.addrs[&leader];
    let late = Request::WriteWithin { command: put("late"), timeout_ms: 0 };
    let refused = client.admin_at(addr, &late).await;
    // Refused as unavailable, which the client retries until its own timeout.
    let message = refused.unwrap_err().to_string();
    assert!(message.contains("deadline passed before the write was proposed"), "{message}");
    let found = client.get(Bytes::from_static(b"late"), Consistency::Linearizable).await;
    assert_eq!(found.unwrap(), None, "a write past its deadline was applied");
    // A deadline in the future is proposed as usual.
    let timely = Request::WriteWithin { command: put("timely"), timeout_ms: 5_000 };
    let _ = client.admin_at(addr, &timely).await;
    let found = client.get(Bytes::from_static(b"timely"), Consistency::Linearizable).await;
    assert!(found.unwrap().is_some());
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_of_a_pending_write_add_one_log_entry() {
    // Long election timeouts keep the leader in place while its followers are paused, so
    // the write stays pending (no quorum) while its retries arrive.
    let cluster = Cluster::start(3, &["--election-timeout-ms", "3000", "--heartbeat-ms", "100"]);
    let leader = cluster.leader();
    let followers: Vec<u64> = cluster.addrs.keys().copied().filter(|&id| id != leader).collect();
    let before = leader_last_index(&cluster, leader);
    for &follower in &followers {
        signal(&cluster, follower, "-STOP");
    }
    let client = cluster.client();
    let addr = cluster.addrs[&leader];
    let request = Request::WriteWithin { command: put("once"), timeout_ms: 2_000 };
    let copies = 6;
    let mut tasks = Vec::new();
    for _ in 0..copies {
        let (client, request) = (client.clone(), request.clone());
        tasks.push(tokio::spawn(async move { client.admin_at(addr, &request).await }));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pending = tokio::task::spawn_blocking({
        let endpoint = addr.to_string();
        let certs = cluster.certs_dir();
        move || {
            let output = Process::new(common::KVCTL)
                .args(["--endpoints", &endpoint, "--output", "json", "--timeout", "2000"])
                .arg("--certs-dir")
                .arg(certs)
                .arg("status")
                .output()
                .unwrap();
            json_of(&output.stdout)["nodes"][0]["log_last_index"].as_u64().unwrap()
        }
    })
    .await
    .unwrap();
    for &follower in &followers {
        signal(&cluster, follower, "-CONT");
    }
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    assert_eq!(pending, before + 1, "{copies} copies of one write added {} entries", {
        pending - before
    });
    client.close().await;
}
