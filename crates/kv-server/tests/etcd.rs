//! etcd's v3 API end to end, through clients no one here wrote: Debian's stock `etcdctl`
//! (3.4) against a 3-node cluster, and the `etcd-client` crate. Each test is bounded and
//! kills its processes when it ends; without `etcdctl` on the PATH the etcdctl test says
//! so and passes without checking (`.ci/run` installs it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Write as _};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Cluster, WAIT_MAX, text};
use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, PutOptions, Txn, TxnOp, WatchOptions,
};

fn etcdctl_installed() -> bool {
    Command::new("etcdctl").arg("version").output().is_ok_and(|output| output.status.success())
}

/// Runs etcdctl against `endpoints` with bounded timeouts.
fn etcdctl(endpoints: &str, args: &[&str]) -> Output {
    etcdctl_command(endpoints, args).output().unwrap()
}

fn etcdctl_command(endpoints: &str, args: &[&str]) -> Command {
    let mut command = Command::new("etcdctl");
    command
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoints, "--dial-timeout", "3s", "--command-timeout", "10s"])
        .args(args);
    command
}

/// etcdctl's stdout, after checking it succeeded.
fn ok(endpoints: &str, args: &[&str]) -> String {
    let output = etcdctl(endpoints, args);
    assert!(
        output.status.success(),
        "etcdctl {args:?} failed: {} {}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// etcdctl's error output, after checking it failed.
fn fails(endpoints: &str, args: &[&str]) -> String {
    let output = etcdctl(endpoints, args);
    assert!(!output.status.success(), "etcdctl {args:?} succeeded: {}", text(&output.stdout));
    text(&output.stderr)
}

/// The header revision etcdctl prints with `-w json`.
fn revision_of(json: &str) -> i64 {
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    value["header"]["revision"].as_i64().unwrap()
}

/// Reads lines from a background process until `lines` have arrived or time runs out.
fn collect_lines(child: &mut Child, lines: usize, within: Duration) -> Vec<String> {
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + within;
    let mut collected = Vec::new();
    while collected.len() < lines {
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(left) {
            Ok(line) => collected.push(line),
            Err(_) => break,
        }
    }
    collected
}

#[test]
fn etcdctl_works_against_a_three_node_cluster() {
    if !etcdctl_installed() {
        eprintln!("SKIPPED: etcdctl is not installed (Debian: apt-get install etcd-client)");
        return;
    }
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.leader();
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    // Writes go to a follower (forwarded to the leader), reads to every node.
    let at_follower = cluster.etcd_addr(follower).to_string();
    let all = cluster.etcd_endpoints();

    // put / get / del, and the revisions they make.
    assert_eq!(ok(&at_follower, &["put", "greeting", "hello"]), "OK");
    assert_eq!(ok(&all, &["get", "greeting"]), "greeting\nhello");
    let json = ok(&at_follower, &["get", "greeting", "-w", "json"]);
    let first_revision = revision_of(&json);
    assert!(json.contains("\"version\":1"), "{json}");
    assert_eq!(ok(&at_follower, &["put", "greeting", "bonjour"]), "OK");
    assert!(ok(&all, &["get", "greeting", "-w", "json"]).contains("\"version\":2"));
    assert_eq!(
        ok(&at_follower, &["get", "greeting", "--rev", &first_revision.to_string()]),
        "greeting\nhello"
    );
    assert_eq!(ok(&at_follower, &["put", "p/1", "a"]), "OK");
    assert_eq!(ok(&at_follower, &["put", "p/2", "b"]), "OK");
    assert_eq!(ok(&all, &["get", "--prefix", "p/", "--keys-only"]), "p/1\n\np/2");
    let json = ok(&all, &["get", "--prefix", "p/", "--limit", "1", "-w", "json"]);
    assert!(json.contains("\"more\":true") && json.contains("\"count\":2"), "{json}");
    assert_eq!(ok(&at_follower, &["del", "--prefix", "p/"]), "2");
    assert_eq!(ok(&all, &["get", "--prefix", "p/"]), "");

    // txn: compare the value, take the success branch, then the failure branch.
    let txn = |input: &str| {
        let mut child = etcdctl_command(&at_follower, &["txn"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "txn failed: {}", text(&output.stderr));
        text(&output.stdout)
    };
    let swapped =
        txn("value(\"greeting\") = \"bonjour\"\n\nput greeting hallo\n\nput greeting nope\n\n");
    assert!(swapped.starts_with("SUCCESS"), "{swapped}");
    assert_eq!(ok(&all, &["get", "greeting", "--print-value-only"]), "hallo");
    let refused =
        txn("value(\"greeting\") = \"bonjour\"\n\nput greeting again\n\nget greeting\n\n");
    assert!(refused.starts_with("FAILURE"), "{refused}");
    assert!(refused.contains("hallo"), "{refused}");

    // watch: a background etcdctl sees the later writes, in order, once each; a watch
    // from an old revision replays history.
    // From the next revision, so the watch misses nothing however late it starts.
    let next = (revision_of(&ok(&all, &["get", "greeting", "-w", "json"])) + 1).to_string();
    let mut watcher = etcdctl_command(&all, &["watch", "--prefix", "w/", "--rev", &next])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(ok(&at_follower, &["put", "w/1", "one"]), "OK");
    assert_eq!(ok(&at_follower, &["put", "w/2", "two"]), "OK");
    assert_eq!(ok(&at_follower, &["del", "w/1"]), "1");
    let events = collect_lines(&mut watcher, 8, Duration::from_secs(10));
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert_eq!(events, ["PUT", "w/1", "one", "PUT", "w/2", "two", "DELETE", "w/1"], "{events:?}");
    let mut replay =
        etcdctl_command(&all, &["watch", "greeting", "--rev", &first_revision.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
    let history = collect_lines(&mut replay, 9, Duration::from_secs(10));
    let _ = replay.kill();
    let _ = replay.wait();
    assert_eq!(
        history,
        ["PUT", "greeting", "hello", "PUT", "greeting", "bonjour", "PUT", "greeting", "hallo"],
        "{history:?}"
    );

    // leases: grant, attach, keep alive, time to live, expiry.
    let granted = ok(&at_follower, &["lease", "grant", "3"]);
    let lease = granted.split_whitespace().nth(1).unwrap().to_owned();
    assert!(granted.ends_with("granted with TTL(3s)"), "{granted}");
    assert_eq!(ok(&at_follower, &["put", "--lease", &lease, "session", "alive"]), "OK");
    let kept = ok(&at_follower, &["lease", "keep-alive", "--once", &lease]);
    assert!(kept.contains("keepalived with TTL(3)"), "{kept}");
    let ttl = ok(&at_follower, &["lease", "timetolive", &lease, "--keys"]);
    assert!(ttl.contains("attached keys([session])"), "{ttl}");
    assert!(ok(&all, &["lease", "list"]).contains(&lease));
    let deadline = Instant::now() + WAIT_MAX;
    while !ok(&all, &["get", "session"]).is_empty() {
        assert!(Instant::now() < deadline, "the lease never expired");
        std::thread::sleep(Duration::from_millis(200));
    }
    let gone = ok(&at_follower, &["lease", "timetolive", &lease]);
    assert!(gone.contains("already expired"), "{gone}");
    let revoked = ok(&at_follower, &["lease", "grant", "60"]);
    let revoked = revoked.split_whitespace().nth(1).unwrap().to_owned();
    assert_eq!(ok(&at_follower, &["put", "--lease", &revoked, "temporary", "x"]), "OK");
    assert!(ok(&at_follower, &["lease", "revoke", &revoked]).contains("revoked"));
    assert_eq!(ok(&all, &["get", "temporary"]), "");

    // compaction: reads and watches below it are refused with etcd's message.
    let current = revision_of(&ok(&at_follower, &["get", "greeting", "-w", "json"]));
    assert!(ok(&at_follower, &["compact", &current.to_string()]).contains(&current.to_string()));
    let error = fails(&at_follower, &["get", "greeting", "--rev", &first_revision.to_string()]);
    assert!(error.contains("required revision has been compacted"), "{error}");
    let error = fails(&at_follower, &["compact", &first_revision.to_string()]);
    assert!(error.contains("required revision has been compacted"), "{error}");

    // member list, endpoint status and health, snapshot save.
    let members = ok(&at_follower, &["member", "list"]);
    assert_eq!(members.lines().count(), 3, "{members}");
    for id in 1..=3 {
        assert!(members.contains(&cluster.etcd_addr(id).to_string()), "{members}");
    }
    let status = ok(&all, &["endpoint", "status", "-w", "json"]);
    let statuses: serde_json::Value = serde_json::from_str(&status).unwrap();
    let leaders: Vec<u64> = statuses
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["Status"]["leader"].as_u64().unwrap())
        .collect();
    assert_eq!(leaders, [leader, leader, leader], "{status}");
    let health = etcdctl(&all, &["endpoint", "health"]);
    assert!(health.status.success(), "{}", text(&health.stderr));
    let said = format!("{}{}", text(&health.stdout), text(&health.stderr));
    assert_eq!(said.matches("is healthy").count(), 3, "{said}");
    let snapshot = cluster.dir.path().join("snapshot.db");
    let saved = etcdctl(&at_follower, &["snapshot", "save", snapshot.to_str().unwrap()]);
    assert!(saved.status.success(), "{}", text(&saved.stderr));
    assert!(std::fs::metadata(&snapshot).unwrap().len() > 0);

    // What is not built says so.
    let error =
        fails(&at_follower, &["member", "add", "node-4", "--peer-urls", "http://127.0.0.1:1"]);
    assert!(error.contains("not implemented") && error.contains("kvctl member add"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_etcd_client_crate_works_against_a_node() {
    let cluster = Cluster::start(1, &[]);
    cluster.leader();
    let endpoint = format!("http://{}", cluster.etcd_addr(1));
    let mut client = Client::connect([endpoint], None).await.unwrap();

    let put = client.put("k", "v1", Some(PutOptions::new().with_prev_key())).await.unwrap();
    assert!(put.prev_key().is_none());
    let created = put.header().unwrap().revision();
    let put = client.put("k", "v2", Some(PutOptions::new().with_prev_key())).await.unwrap();
    assert_eq!(put.prev_key().unwrap().value(), b"v1");
    let got = client.get("k", None).await.unwrap();
    let kv = &got.kvs()[0];
    assert_eq!((kv.value(), kv.version(), kv.create_revision()), (&b"v2"[..], 2, created));

    // A compare-and-swap on the key's version.
    let txn = Txn::new()
        .when([Compare::version("k", CompareOp::Equal, 2)])
        .and_then([TxnOp::put("k", "v3", None)])
        .or_else([TxnOp::get("k", None)]);
    assert!(client.txn(txn.clone()).await.unwrap().succeeded());
    assert!(!client.txn(txn).await.unwrap().succeeded());

    // A watch sees a put and a delete, with the previous value when asked.
    let mut stream = client.watch("k", Some(WatchOptions::new().with_prev_key())).await.unwrap();
    // etcd-client returns before the node has the watch: wait for it, as etcd's users do.
    let first = tokio::time::timeout(WAIT_MAX, stream.message()).await.unwrap().unwrap();
    assert!(first.unwrap().created());
    client.put("k", "v4", None).await.unwrap();
    client.delete("k", None).await.unwrap();
    let mut seen = Vec::new();
    let mut watch_id = None;
    while seen.len() < 2 {
        let response = tokio::time::timeout(WAIT_MAX, stream.message()).await.unwrap().unwrap();
        let response = response.unwrap();
        watch_id = Some(response.watch_id());
        for event in response.events() {
            let prev = event.prev_kv().map(|kv| kv.value().to_vec());
            seen.push((event.event_type(), prev));
        }
    }
    assert_eq!(
        seen,
        [(EventType::Put, Some(b"v3".to_vec())), (EventType::Delete, Some(b"v4".to_vec()))]
    );
    stream.cancel(watch_id.unwrap()).await.unwrap();

    // Reads at a past revision, and the refusal once it is compacted.
    let old = client.get("k", Some(GetOptions::new().with_revision(created))).await.unwrap();
    assert_eq!(old.kvs()[0].value(), b"v1");
    let now = client.get("k", None).await.unwrap().header().unwrap().revision();
    client.compact(now, None).await.unwrap();
    let error = client.get("k", Some(GetOptions::new().with_revision(created))).await.unwrap_err();
    assert!(error.to_string().contains("required revision has been compacted"), "{error}");

    // A lease's keys go when it is revoked.
    let lease = client.lease_grant(30, None).await.unwrap().id();
    client.put("leased", "x", Some(PutOptions::new().with_lease(lease))).await.unwrap();
    let ttl = client.lease_time_to_live(lease, None).await.unwrap();
    assert!(ttl.ttl() > 0 && ttl.ttl() <= 30, "{}", ttl.ttl());
    client.lease_revoke(lease).await.unwrap();
    assert!(client.get("leased", None).await.unwrap().kvs().is_empty());

    // The node's metrics count the etcd API's calls by method and outcome.
    let http = cluster.http_addr(1);
    let metrics = tokio::task::spawn_blocking(move || common::metrics_at(http)).await.unwrap();
    for method in ["etcd_put", "etcd_range", "etcd_txn", "etcd_compact", "etcd_lease_grant"] {
        let line = format!("command=\"{method}\",outcome=\"ok\"");
        assert!(metrics.contains(&line), "{method} missing from /metrics");
    }
    assert!(metrics.contains("command=\"etcd_range\",outcome=\"out_of_range\""));
}

/// The server's resident memory, from /proc.
fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// A watcher that never reads must not make the server hold 100,000 writes for it: the
/// stream's task waits once its small buffer is full, the history stays within
/// `--auto-compaction-retention`, and the watcher, once its history is compacted away, is
/// cancelled with the compaction revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_watcher_holds_bounded_memory() {
    /// The bound: the server's whole resident memory, baseline included.
    const RESIDENT_MAX: u64 = 160 << 20;
    const WRITERS: usize = 16;
    const TXNS_PER_WRITER: usize = 625;
    const PUTS_PER_TXN: usize = 10;
    let cluster = Cluster::start(1, &["--auto-compaction-retention", "1000"]);
    cluster.leader();
    let pid = cluster.processes[&1].id();
    let endpoint = format!("http://{}", cluster.etcd_addr(1));
    let client = Client::connect([endpoint.clone()], None).await.unwrap();
    // Its own connection, as a stalled client's would be.
    let mut stalled = Client::connect([endpoint], None)
        .await
        .unwrap()
        .watch("w/", Some(WatchOptions::new().with_prefix().with_prev_key()))
        .await
        .unwrap();
    // The node has the watch before the writes start; from here on nothing reads it.
    let created = tokio::time::timeout(WAIT_MAX, stalled.message()).await.unwrap().unwrap();
    assert!(created.unwrap().created());
    let value = "x".repeat(100);
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (mut client, value) = (client.clone(), value.clone());
            tokio::spawn(async move {
                for round in 0..TXNS_PER_WRITER {
                    let puts = (0..PUTS_PER_TXN).map(|slot| {
                        TxnOp::put(format!("w/{writer}/{slot}"), format!("{round}{value}"), None)
                    });
                    client.txn(Txn::new().and_then(puts.collect::<Vec<_>>())).await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let resident = resident_bytes(pid);
    eprintln!(
        "{} writes with a stalled watcher: the server holds {} MiB",
        WRITERS * TXNS_PER_WRITER * PUTS_PER_TXN,
        resident >> 20
    );
    assert!(resident < RESIDENT_MAX, "resident memory {resident} bytes");
    // Reading now: the events the stream had buffered, then the cancellation.
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let response = tokio::time::timeout(left, stalled.message()).await.unwrap().unwrap();
        let response = response.expect("the stream stays open until the watcher is cancelled");
        if response.canceled() {
            assert!(response.compact_revision() > 1, "{response:?}");
            assert!(response.cancel_reason().contains("compacted"), "{response:?}");
            break;
        }
    }
}

#[test]
fn etcdctl_speaks_mutual_tls_with_the_clusters_certificates() {
    if !etcdctl_installed() {
        eprintln!("SKIPPED: etcdctl is not installed (Debian: apt-get install etcd-client)");
        return;
    }
    let cluster = Cluster::start(1, &["--etcd-tls"]);
    cluster.leader();
    let endpoint = format!("https://{}", cluster.etcd_addr(1));
    let certs = cluster.certs_dir();
    let file = |name: &str| certs.join(name).to_str().unwrap().to_owned();
    let (ca, cert, key) = (file("ca.pem"), file("client-1.pem"), file("client-1.key"));
    let tls = ["--cacert", ca.as_str(), "--cert", cert.as_str(), "--key", key.as_str()];
    let with_tls = |args: &[&str]| {
        let mut all = tls.to_vec();
        all.extend_from_slice(args);
        etcdctl(&endpoint, &all)
    };
    let put = with_tls(&["put", "secret", "value"]);
    assert!(put.status.success(), "{}", text(&put.stderr));
    let got = with_tls(&["get", "secret", "--print-value-only"]);
    assert_eq!(text(&got.stdout), "value", "{}", text(&got.stderr));
    // Without a client certificate the server refuses the connection; plaintext too.
    let quick = ["--dial-timeout", "1s", "--command-timeout", "2s"];
    let anonymous = etcdctl(&endpoint, &[&quick[..], &["--cacert", &ca, "get", "secret"]].concat());
    assert!(!anonymous.status.success(), "a client without a certificate was served");
    let plain =
        etcdctl(&cluster.etcd_addr(1).to_string(), &[&quick[..], &["get", "secret"]].concat());
    assert!(!plain.status.success(), "a plaintext client was served");
}
