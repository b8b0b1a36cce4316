//! The simulated cluster's engine: the nodes with their disks, the network, and the event loop
//! that drives them. How each `Ready` is performed is in `driver.rs`; the controls tests use
//! (faults and queries) are in `control.rs`, the client operations in `operations.rs`.

use std::collections::VecDeque;

use raft_core::{
    AppendResult, Campaign, Config, Entry, LogIndex, Membership, Message, MessageBody, Node,
    NodeId, ReadState, RestoredState, Role, Term,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::checker::Checker;
use crate::config::SimConfig;
use crate::events::{Event, EventQueue};
use crate::kv_application::KvRecord;
use crate::network::Network;
use crate::reads::Reads;
use crate::state_machine::StateMachine;
use crate::stats::{MessageCounts, TraceHash};
use crate::storage::{DurableStore, PendingWrite};

/// The most events one simulated millisecond may hold. A protocol livelock on a zero-delay
/// network (two nodes answering each other forever) would otherwise never let time advance;
/// a healthy five-node cluster processes a few dozen events per millisecond.
const EVENTS_PER_INSTANT_MAX: u64 = 100_000;

/// The most events that may wait in the queue. A message storm (every message breeding
/// more) would otherwise exhaust memory before the run's simulated time is up; a healthy
/// cluster has a few hundred events in flight.
const QUEUED_EVENTS_MAX: usize = 1_000_000;

/// The most events per simulated millisecond, on average over a run (plus one second's
/// worth of slack for the start). A healthy five-node cluster averages a few; a run far
/// above this is a message storm that would make the sweep crawl rather than fail.
const EVENTS_PER_MS_MAX: u64 = 200;

/// What the simulator last saw of a node, to notice what a step changed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Observed {
    pub(crate) role: Role,
    pub(crate) term: Term,
    pub(crate) commit_index: LogIndex,
}

/// One simulated server: the running node (if up), its disk and its volatile extras.
#[derive(Debug)]
pub(crate) struct NodeSlot {
    pub(crate) id: NodeId,
    /// `None` while crashed.
    pub(crate) node: Option<Node>,
    /// The membership the node starts from when its store holds no snapshot: the initial
    /// voters for the cluster's first nodes, the empty membership for spare nodes, which
    /// join a running cluster and learn the membership from the leader's log.
    pub(crate) bootstrap_membership: Membership,
    /// What survives a crash.
    pub(crate) store: DurableStore,
    /// Writes handed out but not yet durable, oldest first; they complete in this order.
    pub(crate) writes: VecDeque<PendingWrite>,
    /// Counts the node's runs, so a crash cancels the timers and writes of the run it ended.
    pub(crate) incarnation: u64,
    /// The application. It is volatile: a restarted node restores it from its stored
    /// snapshot and applies the rest of the log again.
    pub(crate) machine: StateMachine,
    /// The key-value store the node runs besides `machine` when [`SimConfig::kv_store`] is
    /// on; volatile like it, and always at the same applied index.
    pub(crate) kv: Option<kv_store::KvStore>,
    /// The entries applied since the application was last restored (at start, or from a
    /// snapshot), in order.
    pub(crate) applied: Vec<Entry>,
    /// Confirmed reads waiting for the application to reach their read index.
    pub(crate) reads_waiting: Vec<ReadState>,
    pub(crate) observed: Observed,
    /// The last index this run handed out for persisting, to check leaders only append.
    pub(crate) handed_out_last: LogIndex,
    /// Retired for good: removed from the cluster and shut down, never restarted.
    pub(crate) retired: bool,
    /// Snapshots this node installed from a leader, over all its runs.
    pub(crate) snapshots_installed: u64,
    /// Snapshots this node took of its own application, over all its runs.
    pub(crate) snapshots_taken: u64,
}

impl NodeSlot {
    fn new(
        id: NodeId,
        bootstrap_membership: Membership,
        kv: Option<kv_store::KvStore>,
    ) -> NodeSlot {
        NodeSlot {
            id,
            node: None,
            bootstrap_membership,
            store: DurableStore::default(),
            writes: VecDeque::new(),
            incarnation: 0,
            machine: StateMachine::EMPTY,
            kv,
            applied: Vec::new(),
            reads_waiting: Vec::new(),
            observed: Observed {
                role: Role::Follower,
                term: Term::ZERO,
                commit_index: LogIndex::ZERO,
            },
            handed_out_last: LogIndex::ZERO,
            retired: false,
            snapshots_installed: 0,
            snapshots_taken: 0,
        }
    }
}

/// A whole Raft cluster in one thread, on simulated time, driven from one seed.
///
/// Each node is a real [`raft_core::Node`]; the cluster plays its driver: it delivers ticks
/// and messages, performs the `Ready` work (sending, persisting with a random latency,
/// applying), and after every step checks the safety properties, panicking on the first
/// violation with the seed in the message.
#[derive(Debug)]
pub struct Cluster {
    pub(crate) config: SimConfig,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) now_ms: u64,
    pub(crate) queue: EventQueue,
    pub(crate) slots: Vec<NodeSlot>,
    pub(crate) network: Network,
    pub(crate) checker: Checker,
    /// Every read invoked, and the ones served.
    pub(crate) reads: Reads,
    /// What the nodes' key-value stores answered the KV workload.
    pub(crate) kv_record: KvRecord,
    pub(crate) message_counts: MessageCounts,
    /// Events processed so far.
    pub(crate) steps: u64,
    /// Events processed at the current simulated millisecond.
    pub(crate) steps_this_instant: u64,
    pub(crate) trace_hash: TraceHash,
    /// Every message sent, when a test asked to record them.
    pub(crate) recorded: Option<Vec<Message>>,
    /// Armed by [`Cluster::reboot_after_next_vote`].
    pub(crate) reboot_after_next_vote: bool,
}

impl Cluster {
    /// Starts a fresh cluster of `config.nodes` voters and `config.spare_nodes` spare nodes,
    /// all followers at term 0 with empty logs and their first ticks scheduled.
    ///
    /// # Panics
    ///
    /// If `config` is out of range (the message names the field), or if `node_config` is
    /// rejected by `raft-core`.
    #[must_use]
    pub fn new(config: SimConfig) -> Cluster {
        config.validate();
        let membership = Membership::with_voters((1..=config.nodes).map(NodeId));
        let slots = (1..=config.nodes + config.spare_nodes)
            .map(|id| {
                let bootstrap_membership =
                    if id <= config.nodes { membership.clone() } else { Membership::default() };
                NodeSlot::new(
                    NodeId(id),
                    bootstrap_membership,
                    crate::kv_application::empty_store(&config),
                )
            })
            .collect();
        let mut cluster = Cluster {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            now_ms: 0,
            queue: EventQueue::default(),
            slots,
            network: Network::new(config.network),
            checker: Checker::new(config.seed, membership),
            reads: Reads::default(),
            kv_record: KvRecord::default(),
            message_counts: MessageCounts::default(),
            steps: 0,
            steps_this_instant: 0,
            trace_hash: TraceHash::new(),
            recorded: None,
            reboot_after_next_vote: false,
            config,
        };
        for position in 0..cluster.slots.len() {
            let membership = cluster.slots[position].bootstrap_membership.clone();
            cluster.start_node(position, RestoredState::bootstrap(membership));
        }
        cluster
    }

    pub(crate) fn position(&self, id: NodeId) -> usize {
        let position = id.0.checked_sub(1).and_then(|p| usize::try_from(p).ok());
        match position {
            Some(position) if position < self.slots.len() => position,
            _ => panic!("node {id} is not in this cluster of {} nodes", self.slots.len()),
        }
    }

    fn node_config(&self, id: NodeId) -> Config {
        Config { id, ..self.config.node_config.clone() }
    }

    /// Starts a run of the node at `position` from `restored`, with a fresh seed and timer
    /// phase: restores its application from the snapshot, if any, and lets it apply what it
    /// already knows is committed.
    pub(crate) fn start_node(&mut self, position: usize, restored: RestoredState) {
        let id = self.slots[position].id;
        let (machine, kv) = match &restored.snapshot {
            Some(snapshot) => {
                let (machine, kv) = self.decode_snapshot(id, snapshot);
                let bootstrap = &self.slots[position].bootstrap_membership;
                self.checker.check_snapshot(id, bootstrap, &snapshot.meta, &machine);
                (machine, kv)
            }
            None => (StateMachine::EMPTY, crate::kv_application::empty_store(&self.config)),
        };
        let seed = self.rng.random::<u64>();
        let node = Node::new(self.node_config(id), restored, seed).unwrap_or_else(|error| {
            panic!("node {id} could not start (seed {}): {error}", self.config.seed)
        });
        let slot = &mut self.slots[position];
        slot.incarnation += 1;
        slot.handed_out_last = node.last_log_id().index;
        // A restored commit index is checked like a fresh one, from index 1.
        slot.observed =
            Observed { role: node.role(), term: node.term(), commit_index: LogIndex::ZERO };
        slot.machine = machine;
        slot.kv = kv;
        slot.applied.clear();
        slot.node = Some(node);
        let incarnation = slot.incarnation;
        let phase_ms = self.rng.random_range(0..self.config.tick_ms);
        self.queue.push(self.now_ms + phase_ms, Event::Tick { node: id, incarnation });
        self.trace(|| format!("n{id} started (run {incarnation})"));
        self.after_input(position, 1);
    }

    /// Stops the node at `position`: its volatile state, pending writes and timers are lost;
    /// its durable store stays.
    pub(crate) fn stop_node(&mut self, position: usize) {
        let slot = &mut self.slots[position];
        slot.node = None;
        slot.writes.clear();
        slot.machine = StateMachine::EMPTY;
        slot.kv = crate::kv_application::empty_store(&self.config);
        slot.applied.clear();
        slot.reads_waiting.clear();
        slot.incarnation += 1;
        let id = slot.id;
        self.trace(|| format!("n{id} crashed"));
    }

    /// Processes the next event. Returns `false` when nothing is scheduled (every node is
    /// down and no message is in flight).
    pub fn step(&mut self) -> bool {
        let Some((time_ms, event)) = self.queue.pop() else {
            return false;
        };
        debug_assert!(time_ms >= self.now_ms, "time never runs backwards");
        self.steps_this_instant =
            if time_ms == self.now_ms { self.steps_this_instant + 1 } else { 1 };
        self.now_ms = time_ms;
        self.steps += 1;
        assert!(
            self.steps_this_instant <= EVENTS_PER_INSTANT_MAX,
            "livelock (seed {}): more than {EVENTS_PER_INSTANT_MAX} events at {time_ms} ms \
             without time advancing",
            self.config.seed
        );
        assert!(
            self.steps <= (time_ms + 1_000) * EVENTS_PER_MS_MAX,
            "message storm (seed {}): {} events in {time_ms} ms",
            self.config.seed,
            self.steps
        );
        assert!(
            self.queue.len() <= QUEUED_EVENTS_MAX,
            "message storm (seed {}): more than {QUEUED_EVENTS_MAX} events queued at {time_ms} ms",
            self.config.seed
        );
        match event {
            Event::Tick { node, incarnation } => self.handle_tick(node, incarnation),
            Event::Deliver { message } => self.handle_delivery(message),
            Event::WriteDone { node, incarnation } => self.handle_write_done(node, incarnation),
        }
        true
    }

    fn handle_tick(&mut self, id: NodeId, incarnation: u64) {
        let position = self.position(id);
        let slot = &mut self.slots[position];
        if slot.incarnation != incarnation {
            return;
        }
        let Some(node) = slot.node.as_mut() else {
            return;
        };
        node.tick();
        let next_ms = self.now_ms + self.config.tick_ms;
        self.queue.push(next_ms, Event::Tick { node: id, incarnation });
        self.after_input(position, 2);
    }

    fn handle_delivery(&mut self, message: Message) {
        if !self.network.links(message.from, message.to) {
            return;
        }
        let position = self.position(message.to);
        let Some(node) = self.slots[position].node.as_mut() else {
            return;
        };
        if self.config.trace {
            eprintln!(
                "{:>7}ms n{} <- n{} term {} {}",
                self.now_ms,
                message.to,
                message.from,
                message.term,
                describe_body(&message.body)
            );
        }
        let to = message.to;
        if let Err(error) = node.step(message) {
            panic!("node {to} refused a message addressed to it: {error}");
        }
        self.after_input(position, 3);
    }

    fn handle_write_done(&mut self, id: NodeId, incarnation: u64) {
        let position = self.position(id);
        if self.slots[position].incarnation != incarnation {
            return;
        }
        let write = self.slots[position].writes.pop_front().expect("one event per write");
        assert_eq!(write.done_at_ms, self.now_ms, "writes complete in the order issued");
        self.persist(position, &write);
        if self.config.disk_ignores_sync {
            // The node was told at once; the data only now reached the store.
            return;
        }
        // Judged by the vote sent, not the hard state written: a node that forgets to persist
        // its vote must still be rebooted here, or the fault could never expose that bug.
        let voted = write.messages_after_persist.iter().find_map(|message| {
            let granted = matches!(
                message.body,
                MessageBody::VoteResponse {
                    campaign: Campaign::Election | Campaign::Transfer,
                    granted: true,
                }
            );
            granted.then_some(message.to)
        });
        for message in write.messages_after_persist {
            self.check_promise(position, &message);
            self.send(message);
        }
        if let Some(last) = write.entries.last() {
            let node = self.slots[position].node.as_mut().expect("a running node has writes");
            node.on_persisted(last.log_id);
        }
        self.after_input(position, 4);
        if self.reboot_after_next_vote && voted.is_some() {
            self.reboot_after_next_vote = false;
            self.trace(|| format!("n{id} reboots right after voting for {voted:?}"));
            self.restart(id);
        }
    }

    /// Makes `write` durable on the node's store, checking that no committed entry is
    /// overwritten on the way.
    fn persist(&mut self, position: usize, write: &PendingWrite) {
        let slot = &mut self.slots[position];
        // A snapshot may replace everything up to its index; entries overwrite from the first.
        let first_at_risk = match (&write.snapshot, write.entries.first()) {
            (Some(_), _) => Some(LogIndex(1)),
            (None, Some(first)) => Some(first.log_id.index),
            (None, None) => None,
        };
        let at_risk: Vec<raft_core::LogId> = match first_at_risk {
            None => Vec::new(),
            Some(first) => {
                let last = slot.store.last_log_id().index.min(self.checker.committed_index());
                let first = first.max(slot.store.snapshot_log_id().index);
                (first.0..=last.0)
                    .filter_map(|index| self.checker.committed_log_id(LogIndex(index)))
                    .filter(|&committed| slot.store.holds_committed(committed))
                    .collect()
            }
        };
        slot.store.apply(write);
        for committed in at_risk {
            assert!(
                slot.store.holds_committed(committed),
                "safety violation (seed {}): node {} lost committed entry {committed} from its \
                 durable store (now last {}, snapshot {})",
                self.config.seed,
                slot.id,
                slot.store.last_log_id(),
                slot.store.snapshot_log_id()
            );
        }
    }

    /// A message that waited for the disk promises durable state: an acknowledged append
    /// promises the node's durable log reaches its match index, a granted vote that the
    /// vote is durable. Checked as the message leaves, so a node that acknowledges what it
    /// never handed out for persisting is caught at once rather than when a commit is found
    /// short of a majority.
    pub(crate) fn check_promise(&self, position: usize, message: &Message) {
        let slot = &self.slots[position];
        let store = &slot.store;
        let kept = match message.body {
            MessageBody::AppendResponse { result: AppendResult::Success { match_index } } => {
                store.last_log_id().index >= match_index
            }
            MessageBody::VoteResponse {
                campaign: Campaign::Election | Campaign::Transfer,
                granted: true,
            } => {
                let durable = store.hard_state();
                durable.term > message.term
                    || (durable.term == message.term && durable.voted_for == Some(message.to))
            }
            _ => true,
        };
        assert!(
            kept,
            "safety violation (seed {}): node {} sent {:?} in term {} to node {}, but its \
             durable store holds hard state {:?}, last entry {}, snapshot {}",
            self.config.seed,
            slot.id,
            message.body,
            message.term,
            message.to,
            store.hard_state(),
            store.last_log_id(),
            store.snapshot_log_id()
        );
    }

    /// After any input to a node: check what changed, do the node's `Ready` work, and fold
    /// the step into the trace hash.
    pub(crate) fn after_input(&mut self, position: usize, input_kind: u64) {
        self.observe(position);
        self.drain(position);
        let mut hash = self.trace_hash;
        hash.mix(self.now_ms);
        hash.mix(input_kind);
        hash.mix(self.slots[position].id.0);
        if let Some(node) = &self.slots[position].node {
            hash.mix(node.term().0);
            hash.mix(node.role() as u64);
            hash.mix(node.commit_index().0);
            hash.mix(node.last_log_id().index.0);
            hash.mix(node.last_log_id().term.0);
        }
        self.trace_hash = hash;
    }

    /// Checks the node's role, term and commit index against what was seen before.
    pub(crate) fn observe(&mut self, position: usize) {
        let slot = &self.slots[position];
        let Some(node) = slot.node.as_ref() else {
            return;
        };
        let (role, term, commit_index) = (node.role(), node.term(), node.commit_index());
        let observed = slot.observed;
        assert!(
            term >= observed.term,
            "safety violation (seed {}): node {} term fell from {} to {term}",
            self.config.seed,
            slot.id,
            observed.term
        );
        assert!(
            commit_index >= observed.commit_index,
            "safety violation (seed {}): node {} commit index fell from {} to {commit_index}",
            self.config.seed,
            slot.id,
            observed.commit_index
        );
        if role == Role::Leader {
            self.checker.on_leader(slot.id, term);
            if observed.role != Role::Leader || observed.term != term {
                self.checker.check_leader_completeness(node);
            }
        }
        if commit_index > observed.commit_index {
            let from_index = observed.commit_index;
            self.checker.on_commit(&self.slots, position, from_index);
        }
        if role != observed.role || term != observed.term {
            let id = slot.id;
            self.trace(|| format!("n{id} is {role} in term {term}"));
        }
        self.slots[position].observed = Observed { role, term, commit_index };
    }

    /// Hands a message to the network, which may drop, delay or duplicate it.
    pub(crate) fn send(&mut self, message: Message) {
        self.message_counts.record(message.body.kind());
        if let Some(recorded) = &mut self.recorded {
            recorded.push(message.clone());
        }
        if !self.network.links(message.from, message.to) {
            return;
        }
        let faults = self.network.faults;
        if faults.drop_rate > 0.0 && self.rng.random::<f64>() < faults.drop_rate {
            return;
        }
        if faults.duplicate_rate > 0.0 && self.rng.random::<f64>() < faults.duplicate_rate {
            let delay_ms = self.rng.random_range(faults.delay_ms_min..=faults.delay_ms_max);
            let copy = Event::Deliver { message: message.clone() };
            self.queue.push(self.now_ms + delay_ms, copy);
        }
        let delay_ms = self.rng.random_range(faults.delay_ms_min..=faults.delay_ms_max);
        self.queue.push(self.now_ms + delay_ms, Event::Deliver { message });
    }

    /// Prints a trace line when tracing is on; the closure keeps formatting off the hot
    /// path otherwise.
    pub(crate) fn trace(&self, line: impl FnOnce() -> String) {
        if self.config.trace {
            eprintln!("{:>7}ms {}", self.now_ms, line());
        }
    }
}

/// A one-line summary of a message body for traces: entries are counted, not printed.
fn describe_body(body: &MessageBody) -> String {
    match body {
        MessageBody::AppendRequest { prev_log_id, entries, leader_commit, .. } => format!(
            "append_request prev {prev_log_id} entries {} commit {leader_commit}",
            entries.len()
        ),
        MessageBody::AppendResponse { result } => format!("append_response {result:?}"),
        MessageBody::VoteRequest { last_log_id, .. } => {
            format!("{} last {last_log_id}", body.kind())
        }
        MessageBody::VoteResponse { granted, .. } => format!("{} granted {granted}", body.kind()),
        other => format!("{other:?}"),
    }
}
