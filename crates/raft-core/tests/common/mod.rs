//! A hand-driven cluster for protocol tests: messages are delivered only when a test says
//! so, and each node's disk is either instant or held until the test releases it.
//! Each test file uses a different part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use raft_core::{
    Config, Entry, HardState, LogId, LogIndex, Membership, Message, Node, NodeId, Ready,
    RestoredState, Role, Snapshot, Term,
};

/// One node's durable store and what it applied.
#[derive(Default)]
pub struct Disk {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    pub applied: Vec<Entry>,
    /// Snapshots the application restored from.
    pub installed: Vec<Snapshot>,
}

pub struct Cluster {
    pub nodes: BTreeMap<NodeId, Node>,
    pub disks: BTreeMap<NodeId, Disk>,
    /// Messages sent and not yet delivered, in send order.
    pub in_flight: VecDeque<Message>,
    /// Nodes whose writes are held (not yet durable), with the held `Ready`s.
    pub held_writes: BTreeMap<NodeId, Vec<Ready>>,
    /// Links that drop everything: (from, to).
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// Every `Ready` handed out, for determinism checks.
    pub trace: Vec<String>,
    /// Rewrites each message before delivery (a test's man in the middle).
    pub rewrite: Option<Rewrite>,
}

/// A test's man in the middle: rewrites a message before it is delivered.
pub type Rewrite = Box<dyn FnMut(&mut Message)>;

pub fn ids(count: u64) -> Vec<NodeId> {
    (1..=count).map(NodeId).collect()
}

impl Cluster {
    pub fn new(count: u64) -> Cluster {
        Cluster::with_config(count, 1, |_| {})
    }

    pub fn with_config(count: u64, seed: u64, tweak: impl Fn(&mut Config)) -> Cluster {
        let membership = Membership::with_voters(ids(count));
        let states =
            ids(count).into_iter().map(|id| (id, RestoredState::bootstrap(membership.clone())));
        Cluster::restored(states.collect(), seed, tweak)
    }

    pub fn restored(
        states: BTreeMap<NodeId, RestoredState>,
        seed: u64,
        tweak: impl Fn(&mut Config),
    ) -> Cluster {
        let mut nodes = BTreeMap::new();
        let mut disks = BTreeMap::new();
        for (id, state) in states {
            let mut config = Config::new(id);
            tweak(&mut config);
            let disk = Disk {
                hard_state: state.hard_state,
                snapshot: state.snapshot.clone(),
                entries: state.entries.clone(),
                ..Disk::default()
            };
            nodes.insert(id, Node::new(config, state, seed * 1000 + id.0).unwrap());
            disks.insert(id, disk);
        }
        Cluster {
            nodes,
            disks,
            in_flight: VecDeque::new(),
            held_writes: BTreeMap::new(),
            cut: BTreeSet::new(),
            trace: Vec::new(),
            rewrite: None,
        }
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[&NodeId(id)]
    }

    pub fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes.get_mut(&NodeId(id)).unwrap()
    }

    /// Takes every node's `Ready`s until none has work, persisting instantly unless the
    /// node's disk is held.
    pub fn process_readys(&mut self) {
        loop {
            let ids: Vec<NodeId> =
                self.nodes.iter().filter(|(_, n)| n.has_ready()).map(|(&id, _)| id).collect();
            if ids.is_empty() {
                return;
            }
            for id in ids {
                let ready = self.nodes.get_mut(&id).unwrap().ready();
                self.trace.push(format!("{id}: {ready:?}"));
                self.in_flight.extend(ready.messages_now.iter().cloned());
                let disk = self.disks.get_mut(&id).unwrap();
                disk.applied.extend(ready.committed_entries.iter().cloned());
                if let Some(held) = self.held_writes.get_mut(&id) {
                    held.push(ready);
                } else {
                    self.complete_write(id, ready);
                }
            }
        }
    }

    fn complete_write(&mut self, id: NodeId, ready: Ready) {
        let disk = self.disks.get_mut(&id).unwrap();
        if let Some(snapshot) = &ready.snapshot_to_install {
            let last = snapshot.meta.last_log_id;
            let matches = disk.entries.iter().any(|e| e.log_id == last);
            disk.entries.retain(|e| matches && e.log_id.index > last.index);
            disk.snapshot = Some(snapshot.clone());
            disk.installed.push(snapshot.clone());
        }
        if let Some(hard_state) = ready.hard_state {
            disk.hard_state = hard_state;
        }
        if let Some(first) = ready.entries_to_persist.first() {
            disk.entries.retain(|e| e.log_id.index < first.log_id.index);
            disk.entries.extend(ready.entries_to_persist.iter().cloned());
        }
        self.in_flight.extend(ready.messages_after_persist);
        if let Some(last) = ready.entries_to_persist.last() {
            self.nodes.get_mut(&id).unwrap().on_persisted(last.log_id);
        }
    }

    pub fn hold_writes(&mut self, id: u64) {
        self.held_writes.entry(NodeId(id)).or_default();
    }

    pub fn release_writes(&mut self, id: u64) {
        for ready in self.held_writes.remove(&NodeId(id)).unwrap_or_default() {
            self.complete_write(NodeId(id), ready);
        }
    }

    /// Delivers one message (dropping it if its link is cut) and processes the readys.
    pub fn deliver(&mut self, mut message: Message) {
        if let Some(rewrite) = &mut self.rewrite {
            rewrite(&mut message);
        }
        if !self.cut.contains(&(message.from, message.to)) {
            // Messages to a node that does not exist (yet) are lost, as on a real network.
            if let Some(node) = self.nodes.get_mut(&message.to) {
                node.step(message).unwrap();
            }
        }
        self.process_readys();
    }

    /// Delivers everything until the cluster is quiet. Returns how many were delivered.
    pub fn stabilize(&mut self) -> usize {
        self.process_readys();
        let mut delivered = 0;
        while let Some(message) = self.in_flight.pop_front() {
            delivered += 1;
            assert!(delivered < 100_000, "the cluster never quiets down");
            self.deliver(message);
        }
        delivered
    }

    /// Ticks node `id` until its role changes from follower, then stabilizes.
    pub fn campaign(&mut self, id: u64) {
        for _ in 0..100 {
            if self.node(id).role() != Role::Follower {
                break;
            }
            self.node_mut(id).tick();
        }
        self.stabilize();
    }

    pub fn isolate(&mut self, id: u64) {
        for other in self.nodes.keys().copied().collect::<Vec<_>>() {
            self.cut.insert((NodeId(id), other));
            self.cut.insert((other, NodeId(id)));
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    pub fn tick_all(&mut self, ticks: usize) {
        for _ in 0..ticks {
            for node in self.nodes.values_mut() {
                node.tick();
            }
            self.stabilize();
        }
    }

    pub fn leaders(&self) -> Vec<NodeId> {
        self.nodes.values().filter(|n| n.role() == Role::Leader).map(|n| n.id()).collect()
    }
}

pub fn entry(term: u64, index: u64) -> Entry {
    Entry {
        log_id: LogId::new(Term(term), LogIndex(index)),
        payload: raft_core::EntryPayload::Empty,
    }
}

/// A node restored with a log of the given terms (index 1 onward) at hard-state `term`.
pub fn state_with_log(voters: u64, term: u64, log_terms: &[u64]) -> RestoredState {
    let entries = log_terms.iter().enumerate().map(|(i, &t)| entry(t, i as u64 + 1)).collect();
    RestoredState {
        hard_state: HardState { term: Term(term), voted_for: None, commit_index: LogIndex::ZERO },
        membership: Membership::with_voters(ids(voters)),
        snapshot: None,
        entries,
        applied_index: LogIndex::ZERO,
    }
}
