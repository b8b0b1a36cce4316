//! Golden interaction scripts: `testdata/*.txt`.
//!
//! Each file opens with `#` lines saying what it proves, then blocks of a command, a `----`
//! line and the expected output, separated by blank lines. The runner executes every
//! command against a hand-driven cluster and compares the output, so a behaviour change
//! shows up as a readable diff of messages and state. To accept a change, run with
//! `REWRITE_TESTDATA=1` and review the diff like code.
//!
//! Commands: `add-nodes N [pre-vote=false] [check-quorum=false]`, `tick ID [COUNT]`,
//! `tick-all [COUNT]` (then stabilize), `propose ID TEXT`, `stabilize` (deliver everything,
//! printing each `Ready`), `isolate ID`, `heal`, `status`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use bytes::Bytes;
use common::Cluster;
use raft_core::{AppendResult, Entry, EntryPayload, Message, MessageBody, NodeId, Ready};

fn entry_text(entry: &Entry) -> String {
    let payload = match &entry.payload {
        EntryPayload::Empty => "empty".to_string(),
        EntryPayload::Command(bytes) => format!("{:?}", String::from_utf8_lossy(bytes)),
        EntryPayload::Membership(m) => format!("voters={:?} learners={:?}", m.voters, m.learners),
    };
    format!("{} {payload}", entry.log_id)
}

fn message_text(message: &Message) -> String {
    let head =
        format!("{}->{} term={} {}", message.from, message.to, message.term, message.body.kind());
    let detail = match &message.body {
        MessageBody::VoteRequest { last_log_id, .. } => format!(" last={last_log_id}"),
        MessageBody::VoteResponse { granted, .. } => format!(" granted={granted}"),
        MessageBody::AppendRequest { prev_log_id, entries, leader_commit } => {
            let entries: Vec<String> = entries.iter().map(entry_text).collect();
            format!(" prev={prev_log_id} commit={leader_commit} entries=[{}]", entries.join(", "))
        }
        MessageBody::AppendResponse { result: AppendResult::Success { match_index } } => {
            format!(" match={match_index}")
        }
        MessageBody::AppendResponse { result: AppendResult::Reject { rejected_index, hint } } => {
            format!(" rejected={rejected_index} hint={hint:?}")
        }
        MessageBody::Heartbeat { commit_index, round } => {
            format!(" commit={commit_index} round={round}")
        }
        MessageBody::HeartbeatResponse { round } => format!(" round={round}"),
        _ => String::new(),
    };
    head + &detail
}

fn ready_text(id: NodeId, ready: &Ready, out: &mut String) {
    writeln!(out, "> {id} ready").unwrap();
    if let Some(soft) = &ready.soft_state {
        let leader = soft.leader.map_or("none".to_string(), |l| l.to_string());
        writeln!(out, "  role={} term={} leader={leader}", soft.role, soft.term).unwrap();
    }
    if let Some(hard) = &ready.hard_state {
        let vote = hard.voted_for.map_or("none".to_string(), |v| v.to_string());
        writeln!(
            out,
            "  persist hard state term={} vote={vote} commit={}",
            hard.term, hard.commit_index
        )
        .unwrap();
    }
    for entry in &ready.entries_to_persist {
        writeln!(out, "  persist {}", entry_text(entry)).unwrap();
    }
    for message in &ready.messages_now {
        writeln!(out, "  send {}", message_text(message)).unwrap();
    }
    for message in &ready.messages_after_persist {
        writeln!(out, "  send after persist {}", message_text(message)).unwrap();
    }
    for entry in &ready.committed_entries {
        writeln!(out, "  apply {}", entry_text(entry)).unwrap();
    }
}

/// Runs the cluster until quiet, printing each Ready in order.
fn stabilize(cluster: &mut Cluster, out: &mut String) {
    loop {
        let mut progressed = false;
        let ids: Vec<NodeId> = cluster.nodes.keys().copied().collect();
        for id in ids {
            let node = cluster.nodes.get_mut(&id).unwrap();
            if !node.has_ready() {
                continue;
            }
            progressed = true;
            let ready = node.ready();
            ready_text(id, &ready, out);
            cluster.in_flight.extend(ready.messages_now);
            cluster.in_flight.extend(ready.messages_after_persist);
            if let Some(last) = ready.entries_to_persist.last() {
                cluster.nodes.get_mut(&id).unwrap().on_persisted(last.log_id);
            }
        }
        let messages: Vec<Message> = cluster.in_flight.drain(..).collect();
        for message in messages {
            progressed = true;
            if cluster.cut.contains(&(message.from, message.to)) {
                writeln!(out, "  dropped {}", message_text(&message)).unwrap();
            } else if let Some(node) = cluster.nodes.get_mut(&message.to) {
                node.step(message).unwrap();
            }
        }
        if !progressed {
            return;
        }
    }
}

fn status(cluster: &Cluster, out: &mut String) {
    for node in cluster.nodes.values() {
        let leader = node.leader().map_or("none".to_string(), |l| l.to_string());
        writeln!(
            out,
            "{}: {} term={} leader={leader} last={} commit={}",
            node.id(),
            node.role(),
            node.term(),
            node.last_log_id(),
            node.commit_index()
        )
        .unwrap();
    }
}

fn run_command(cluster: &mut Option<Cluster>, command: &str) -> String {
    let words: Vec<&str> = command.split_whitespace().collect();
    let number = |i: usize| words.get(i).map_or(1, |w| w.parse::<u64>().unwrap());
    let mut out = String::new();
    if words[0] == "add-nodes" {
        let pre_vote = !words.contains(&"pre-vote=false");
        let check_quorum = !words.contains(&"check-quorum=false");
        *cluster = Some(Cluster::with_config(number(1), 1, |c| {
            c.pre_vote = pre_vote;
            c.check_quorum = check_quorum;
        }));
        return out;
    }
    let cluster = cluster.as_mut().expect("add-nodes first");
    match words[0] {
        "tick" => {
            for _ in 0..number(2) {
                cluster.node_mut(number(1)).tick();
            }
        }
        "tick-all" => {
            for _ in 0..number(1) {
                for node in cluster.nodes.values_mut() {
                    node.tick();
                }
                stabilize(cluster, &mut out);
            }
        }
        "propose" => {
            let log_id = cluster.node_mut(number(1)).propose(Bytes::from(words[2].to_string()));
            writeln!(out, "{log_id:?}").unwrap();
        }
        "stabilize" => stabilize(cluster, &mut out),
        "isolate" => cluster.isolate(number(1)),
        "heal" => cluster.heal(),
        "status" => status(cluster, &mut out),
        other => panic!("unknown command {other:?}"),
    }
    out
}

/// Runs one script and returns the file's text as the runner would write it.
fn run_script(text: &str) -> String {
    let mut cluster = None;
    let mut output = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.starts_with('#') || line.trim().is_empty() {
            output.push_str(line);
            output.push('\n');
            continue;
        }
        // A command, its `----`, then its recorded output up to a blank line (skipped).
        output.push_str(line);
        output.push_str("\n----\n");
        if lines.peek() == Some(&"----") {
            lines.next();
            while lines.peek().is_some_and(|l| !l.trim().is_empty()) {
                lines.next();
            }
        }
        output.push_str(&run_command(&mut cluster, line));
    }
    output
}

#[test]
fn interaction_scripts_match_their_recorded_output() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let rewrite = std::env::var_os("REWRITE_TESTDATA").is_some();
    let mut paths: Vec<_> = fs::read_dir(&directory).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    assert!(!paths.is_empty(), "no scripts in {}", directory.display());
    for path in paths {
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with('#'), "{} must open with what it proves", path.display());
        let actual = run_script(&text);
        if rewrite {
            fs::write(&path, &actual).unwrap();
        } else {
            assert!(
                actual == text,
                "{} differs from its recorded output; run with REWRITE_TESTDATA=1 and review \
                 the diff.\n--- actual ---\n{actual}",
                path.display()
            );
        }
    }
}
