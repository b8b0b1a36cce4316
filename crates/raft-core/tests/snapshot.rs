//! Snapshots: compaction, chunked InstallSnapshot that resumes after a lost chunk, and
//! restarting from a snapshot plus the remaining log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::num::NonZeroU64;

use bytes::Bytes;
use common::Cluster;
use raft_core::{
    Config, EntryPayload, Error, LogIndex, MessageBody, Node, NodeId, RestoredState, Role,
};

fn propose_many(cluster: &mut Cluster, leader: u64, count: usize) {
    for number in 0..count {
        let command = Bytes::from(format!("command {number}"));
        cluster.node_mut(leader).propose(command).unwrap();
        cluster.stabilize();
    }
}

/// The state machine's state: the commands applied, in order (after a snapshot's).
fn commands(cluster: &Cluster, id: u64) -> Vec<Bytes> {
    let disk = &cluster.disks[&NodeId(id)];
    let mut applied: Vec<Bytes> = match disk.installed.last() {
        Some(snapshot) => decode(&snapshot.data),
        None => Vec::new(),
    };
    let from = disk.installed.last().map_or(LogIndex(0), |s| s.meta.last_log_id.index);
    for entry in disk.applied.iter().filter(|e| e.log_id.index > from) {
        if let EntryPayload::Command(bytes) = &entry.payload {
            applied.push(bytes.clone());
        }
    }
    applied
}

fn encode(commands: &[Bytes]) -> Bytes {
    let joined: Vec<u8> = commands.iter().flat_map(|c| [c.as_ref(), b"\n"].concat()).collect();
    Bytes::from(joined)
}

fn decode(data: &Bytes) -> Vec<Bytes> {
    data.split(|&byte| byte == b'\n')
        .filter(|part| !part.is_empty())
        .map(Bytes::copy_from_slice)
        .collect()
}

fn compact_at_applied(cluster: &mut Cluster, id: u64) -> LogIndex {
    let applied_index = cluster.node(id).applied_index();
    let data = encode(&commands(cluster, id));
    cluster.node_mut(id).compact(applied_index, data).unwrap();
    applied_index
}

#[test]
fn compaction_drops_the_prefix_and_keeps_replicating() {
    let mut cluster = Cluster::new(3);
    cluster.campaign(1);
    propose_many(&mut cluster, 1, 20);
    let compacted = compact_at_applied(&mut cluster, 1);
    assert_eq!(cluster.node(1).first_index(), compacted.next());
    assert!(cluster.node(1).log_entries().is_empty());
    propose_many(&mut cluster, 1, 5);
    assert_eq!(cluster.node(2).last_log_id(), cluster.node(1).last_log_id());
    assert_eq!(commands(&cluster, 2).len(), 25);
}

#[test]
fn compaction_beyond_the_applied_index_is_refused() {
    let mut cluster = Cluster::new(3);
    cluster.campaign(1);
    propose_many(&mut cluster, 1, 3);
    let beyond = cluster.node(1).applied_index().next();
    let error = cluster.node_mut(1).compact(beyond, Bytes::new()).unwrap_err();
    assert!(matches!(error, Error::SnapshotNotApplicable { .. }), "{error}");
    assert!(error.to_string().contains("applied index"), "{error}");
}

#[test]
fn snapshot_is_due_once_the_applied_log_passes_the_threshold() {
    let mut cluster = Cluster::with_config(3, 1, |c| {
        c.snapshot_log_bytes = Some(NonZeroU64::new(500).unwrap());
    });
    cluster.campaign(1);
    assert!(!cluster.node(1).snapshot_due());
    propose_many(&mut cluster, 1, 20);
    assert!(cluster.node(1).snapshot_due());
    compact_at_applied(&mut cluster, 1);
    assert!(!cluster.node(1).snapshot_due(), "the log is short again");
}

/// After a snapshot larger than the threshold, the next one waits for the log to outgrow
/// it (the default 100%), unless the share is switched off.
#[test]
fn snapshot_waits_for_the_log_to_outgrow_the_latest_snapshot() {
    for percent in [100, 0] {
        let mut cluster = Cluster::with_config(3, 1, |c| {
            c.snapshot_log_bytes = Some(NonZeroU64::new(500).unwrap());
            c.snapshot_log_percent_of_snapshot = percent;
        });
        cluster.campaign(1);
        propose_many(&mut cluster, 1, 20);
        let applied_index = cluster.node(1).applied_index();
        // A state of 4,000 bytes, far above the 500-byte threshold.
        cluster.node_mut(1).compact(applied_index, Bytes::from(vec![7; 4000])).unwrap();
        propose_many(&mut cluster, 1, 30);
        let bytes: u64 = cluster.node(1).log_entries().iter().map(|e| e.size_bytes()).sum();
        assert!(bytes > 500 && bytes < 4000, "{bytes} bytes of log");
        assert_eq!(cluster.node(1).snapshot_due(), percent == 0, "percent {percent}");
        propose_many(&mut cluster, 1, 100);
        assert!(cluster.node(1).snapshot_due(), "percent {percent}: the log outgrew it");
    }
}

#[test]
fn lagging_follower_gets_the_snapshot_in_chunks_and_resumes_after_a_lost_one() {
    let mut cluster = Cluster::with_config(3, 1, |c| {
        c.snapshot_chunk_bytes = NonZeroU64::new(32).unwrap();
    });
    cluster.campaign(1);
    cluster.isolate(3);
    propose_many(&mut cluster, 1, 40);
    compact_at_applied(&mut cluster, 1);
    let snapshot_bytes = cluster.node(1).snapshot().unwrap().data.len();
    let chunks = snapshot_bytes.div_ceil(32);
    assert!(chunks >= 8, "{snapshot_bytes} bytes");
    cluster.heal();
    // Lose the third chunk once.
    let mut offsets_sent = Vec::new();
    let mut lost = false;
    for _ in 0..200 {
        cluster.node_mut(1).tick();
        cluster.node_mut(2).tick();
        cluster.process_readys();
        while let Some(message) = cluster.in_flight.pop_front() {
            if let MessageBody::InstallSnapshot { offset, .. } = &message.body {
                offsets_sent.push(*offset);
                if offsets_sent.len() == 3 && !lost {
                    lost = true;
                    continue;
                }
            }
            cluster.deliver(message);
        }
        if cluster.node(3).last_log_id() == cluster.node(1).last_log_id() {
            break;
        }
    }
    assert_eq!(cluster.node(3).last_log_id(), cluster.node(1).last_log_id(), "caught up");
    assert_eq!(cluster.disks[&NodeId(3)].installed.len(), 1, "installed once");
    assert_eq!(commands(&cluster, 3), commands(&cluster, 1), "same state as the leader");
    let lost_offset = offsets_sent[2];
    assert_eq!(offsets_sent[3], lost_offset, "resent from the lost chunk, not from zero");
    assert!(offsets_sent.len() <= chunks + 3, "{} sends for {chunks} chunks", offsets_sent.len());
    assert_eq!(cluster.node(1).role(), Role::Leader, "heartbeats kept the leader in place");
}

#[test]
fn restart_from_snapshot_and_remaining_log_gives_the_same_state() {
    let mut cluster = Cluster::new(3);
    cluster.campaign(1);
    propose_many(&mut cluster, 1, 10);
    compact_at_applied(&mut cluster, 2);
    propose_many(&mut cluster, 1, 5);
    let before = commands(&cluster, 2);
    // Restart node 2 from its durable state: its snapshot and the entries after it.
    let snapshot = cluster.node(2).snapshot().unwrap().clone();
    let disk = &cluster.disks[&NodeId(2)];
    let entries: Vec<_> = disk
        .entries
        .iter()
        .filter(|e| e.log_id.index > snapshot.meta.last_log_id.index)
        .cloned()
        .collect();
    let state = RestoredState {
        hard_state: disk.hard_state,
        membership: snapshot.meta.membership.clone(),
        applied_index: snapshot.meta.last_log_id.index,
        snapshot: Some(snapshot.clone()),
        entries,
    };
    let node = Node::new(Config::new(NodeId(2)), state, 99).unwrap();
    assert_eq!(node.first_index(), snapshot.meta.last_log_id.index.next());
    cluster.nodes.insert(NodeId(2), node);
    let disk = cluster.disks.get_mut(&NodeId(2)).unwrap();
    disk.installed = vec![snapshot];
    disk.applied.clear();
    cluster.tick_all(3);
    assert_eq!(commands(&cluster, 2), before, "snapshot plus replayed log = same state");
}
