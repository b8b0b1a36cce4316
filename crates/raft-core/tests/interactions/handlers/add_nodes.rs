//! `add-nodes N [voters=(1,2,3)] [learners=(4)] [index=K] [CONFIG...]`.
//!
//! Adds N nodes, numbered after the existing ones. With `voters=`, each starts from that
//! membership; without it, the first `add-nodes` makes the new nodes the voters and a later
//! one adds nodes that know no membership (they join through `propose-conf-change`). With
//! `index=K`, each starts from an empty snapshot at `K@1`, so its log begins at `K+1`.
//! CONFIG: `pre-vote=false`, `check-quorum=false`, `read-mode=lease`, `lease-ticks=N`,
//! `snapshot-chunk-bytes=N`. Each node's seed is `1000 + id`.

use std::collections::BTreeSet;
use std::num::NonZeroU64;

use bytes::Bytes;
use raft_core::{Config, HardState, LogId, LogIndex, Membership, Node, NodeId, ReadMode};
use raft_core::{RestoredState, Snapshot, SnapshotMeta, Term};

use crate::arguments::Arguments;
use crate::environment::Environment;

/// Runs `add-nodes`.
pub fn add_nodes(environment: &mut Environment, arguments: &Arguments) {
    let count = arguments.number(0);
    let first = environment.nodes.keys().last().map_or(1, |last| last.0 + 1);
    let new_ids: Vec<NodeId> = (first..first + count).map(NodeId).collect();
    let voters = arguments
        .named_nodes("voters")
        .or_else(|| environment.nodes.is_empty().then(|| new_ids.clone()));
    let membership = match voters {
        Some(voters) => Membership {
            voters: voters.into_iter().collect(),
            learners: arguments.named_nodes("learners").unwrap_or_default().into_iter().collect(),
        },
        None => Membership { voters: BTreeSet::new(), learners: BTreeSet::new() },
    };
    let state = restored_state(membership, LogIndex(arguments.named_number("index").unwrap_or(0)));
    for id in new_ids {
        match Node::new(config(id, arguments), state.clone(), 1000 + id.0) {
            Ok(node) => {
                environment.nodes.insert(id, node);
                environment.machines.insert(id, Default::default());
            }
            Err(error) => environment.error(&format!("node {id}: {error}")),
        }
    }
}

/// A fresh node's state, or one restored from an empty snapshot at `index@1`.
fn restored_state(membership: Membership, index: LogIndex) -> RestoredState {
    if index == LogIndex::ZERO {
        return RestoredState::bootstrap(membership);
    }
    let last_log_id = LogId::new(Term(1), index);
    let meta = SnapshotMeta { last_log_id, membership: membership.clone() };
    RestoredState {
        hard_state: HardState { term: Term(1), voted_for: None, commit_index: index },
        membership,
        snapshot: Some(Snapshot { meta, data: Bytes::new() }),
        entries: Vec::new(),
        applied_index: index,
    }
}

/// The default configuration with the command's changes.
fn config(id: NodeId, arguments: &Arguments) -> Config {
    let mut config = Config::new(id);
    config.pre_vote = arguments.named_switch("pre-vote", config.pre_vote);
    config.check_quorum = arguments.named_switch("check-quorum", config.check_quorum);
    if let Some(mode) = arguments.named("read-mode") {
        config.read_mode = match mode {
            "lease" => ReadMode::Lease,
            "index" => ReadMode::ReadIndex,
            other => panic!("read-mode={other:?}: expected lease or index"),
        };
    }
    config.lease_ticks = arguments.named_number("lease-ticks").unwrap_or(config.lease_ticks);
    if let Some(bytes) = arguments.named_number("snapshot-chunk-bytes") {
        config.snapshot_chunk_bytes = NonZeroU64::new(bytes).expect("snapshot-chunk-bytes > 0");
    }
    config
}
