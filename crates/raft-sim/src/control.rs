//! The cluster's controls: running the clock, injecting faults, and looking at the nodes.

use bytes::Bytes;
use raft_core::{
    Entry, EntryPayload, LogIndex, Membership, Message, Node, NodeId, RestoredState, Role, Term,
};
use rand_chacha::ChaCha8Rng;

use crate::cluster::Cluster;
use crate::config::{NetworkFaults, SimConfig};
use crate::state_machine::StateMachine;
use crate::stats::MessageCounts;
use crate::storage::DurableStore;

impl Cluster {
    /// The simulated time, in milliseconds since the cluster started.
    #[must_use]
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// How many events (ticks, deliveries, write completions) have been processed.
    #[must_use]
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The configuration the cluster was built from.
    #[must_use]
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// The run's PRNG, for tests that make random choices: drawing from it keeps the whole run
    /// a function of the seed.
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// Runs every event scheduled in the next `duration_ms` milliseconds.
    pub fn run_for(&mut self, duration_ms: u64) {
        let deadline_ms = self.now_ms + duration_ms;
        while self.queue.next_time_ms().is_some_and(|time_ms| time_ms <= deadline_ms) {
            self.step();
        }
        self.now_ms = deadline_ms;
    }

    /// Runs until `condition` holds (checked before the first event and after each one) or
    /// `duration_ms_max` milliseconds have passed. Returns whether the condition held; the
    /// clock stops at the event that made it true.
    pub fn run_until(
        &mut self,
        duration_ms_max: u64,
        mut condition: impl FnMut(&Cluster) -> bool,
    ) -> bool {
        let deadline_ms = self.now_ms + duration_ms_max;
        if condition(self) {
            return true;
        }
        while self.queue.next_time_ms().is_some_and(|time_ms| time_ms <= deadline_ms) {
            self.step();
            if condition(self) {
                return true;
            }
        }
        self.now_ms = deadline_ms;
        false
    }

    /// The ids of all nodes, up or down.
    #[must_use]
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.slots.iter().map(|slot| slot.id).collect()
    }

    /// The running node `id`, or `None` while it is crashed.
    ///
    /// # Panics
    ///
    /// If `id` is not a member of the cluster.
    #[must_use]
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.slots[self.position(id)].node.as_ref()
    }

    /// Whether node `id` is running.
    #[must_use]
    pub fn is_up(&self, id: NodeId) -> bool {
        self.node(id).is_some()
    }

    /// What node `id` has durably stored (kept across crashes).
    #[must_use]
    pub fn store(&self, id: NodeId) -> &DurableStore {
        &self.slots[self.position(id)].store
    }

    /// The entries node `id` applied since its application was last restored: since it
    /// started, from index 1, or since it last installed or restarted from a snapshot.
    #[must_use]
    pub fn applied(&self, id: NodeId) -> &[Entry] {
        &self.slots[self.position(id)].applied
    }

    /// The last index node `id`'s application applied (0 while it is down).
    #[must_use]
    pub fn applied_index(&self, id: NodeId) -> LogIndex {
        self.slots[self.position(id)].machine.applied_index
    }

    /// Node `id`'s application: its applied index and its state there.
    #[must_use]
    pub fn application(&self, id: NodeId) -> StateMachine {
        self.slots[self.position(id)].machine
    }

    /// How many snapshots node `id` installed from a leader, and how many it took of its own
    /// application, over all its runs.
    #[must_use]
    pub fn snapshot_counts(&self, id: NodeId) -> (u64, u64) {
        let slot = &self.slots[self.position(id)];
        (slot.snapshots_installed, slot.snapshots_taken)
    }

    /// The membership in force on the committed log: that of the latest committed
    /// membership entry, else the voters the cluster started with.
    #[must_use]
    pub fn membership(&self) -> &Membership {
        self.checker.committed_membership()
    }

    /// The leader a well-informed client would pick: among running nodes that are not
    /// disconnected, the one that believes it leads in the highest term.
    #[must_use]
    pub fn leader(&self) -> Option<NodeId> {
        self.slots
            .iter()
            .filter(|slot| !self.network.is_disconnected(slot.id))
            .filter_map(|slot| slot.node.as_ref())
            .filter(|node| node.role() == Role::Leader)
            .max_by_key(|node| node.term())
            .map(Node::id)
    }

    /// Every running node that believes it leads, with its term (connected or not).
    #[must_use]
    pub fn leaders(&self) -> Vec<(NodeId, Term)> {
        self.slots
            .iter()
            .filter_map(|slot| slot.node.as_ref())
            .filter(|node| node.role() == Role::Leader)
            .map(|node| (node.id(), node.term()))
            .collect()
    }

    /// Runs until [`Cluster::leader`] names a node, for at most `duration_ms_max`.
    pub fn wait_for_leader(&mut self, duration_ms_max: u64) -> Option<NodeId> {
        self.run_until(duration_ms_max, |cluster| cluster.leader().is_some());
        self.leader()
    }

    /// How many running nodes applied `command` at `index` (directly, or within a snapshot:
    /// the checker makes sure every node applies the committed log, so a node that applied
    /// past `index` applied the committed entry there).
    #[must_use]
    pub fn applied_count(&self, index: LogIndex, command: &[u8]) -> usize {
        let committed = self.checker.committed_entries().nth(index.0.saturating_sub(1) as usize);
        let is_command = committed.is_some_and(|entry| {
            index.0 >= 1
                && matches!(&entry.payload, EntryPayload::Command(bytes) if bytes == command)
        });
        if !is_command {
            return 0;
        }
        self.slots
            .iter()
            .filter(|slot| slot.node.is_some() && slot.machine.applied_index >= index)
            .count()
    }

    /// The commands of the committed log, in log order (as far as any node knows it).
    #[must_use]
    pub fn committed_commands(&self) -> Vec<Bytes> {
        self.checker
            .committed_entries()
            .filter_map(|entry| match &entry.payload {
                EntryPayload::Command(bytes) => Some(bytes.clone()),
                _ => None,
            })
            .collect()
    }

    /// The committed log, in log order, empty entries included.
    pub fn committed_entries(&self) -> impl Iterator<Item = &Entry> {
        self.checker.committed_entries()
    }

    /// The highest index any node knows is committed.
    #[must_use]
    pub fn committed_index(&self) -> LogIndex {
        self.checker.committed_index()
    }

    /// Cuts node `id` off from every other node (it keeps running).
    pub fn disconnect(&mut self, id: NodeId) {
        self.position(id);
        self.network.disconnect(id);
        self.trace(|| format!("n{id} disconnected"));
    }

    /// Undoes [`Cluster::disconnect`] (partitions stay as they are).
    pub fn reconnect(&mut self, id: NodeId) {
        self.position(id);
        self.network.reconnect(id);
        self.trace(|| format!("n{id} reconnected"));
    }

    /// Whether node `id` is disconnected.
    #[must_use]
    pub fn is_disconnected(&self, id: NodeId) -> bool {
        self.network.is_disconnected(id)
    }

    /// Splits the cluster into `groups` that only talk among themselves; the nodes no group
    /// names form one more group together, so `partition(&[&[id]])` cuts `id` off from the
    /// rest. Replaces any earlier partition; disconnected nodes stay disconnected.
    ///
    /// # Panics
    ///
    /// If a node is not a member, or is named in two groups.
    pub fn partition(&mut self, groups: &[&[NodeId]]) {
        for id in groups.iter().flat_map(|group| group.iter()) {
            self.position(*id);
        }
        self.network.partition(groups);
        self.trace(|| format!("partitioned into {groups:?}"));
    }

    /// Removes every partition and reconnects every node.
    pub fn heal(&mut self) {
        self.network.heal();
        self.trace(|| "healed the network".to_string());
    }

    /// Crashes node `id`: its volatile state, pending disk writes and timers are lost; what
    /// it reported durable stays. Crashing a crashed node does nothing.
    pub fn crash(&mut self, id: NodeId) {
        let position = self.position(id);
        if self.slots[position].node.is_some() {
            self.stop_node(position);
        }
    }

    /// Starts node `id` again from its durable store (crashing it first if it is running),
    /// as a real process restarting on its disk would.
    ///
    /// # Panics
    ///
    /// If the node was retired.
    pub fn restart(&mut self, id: NodeId) {
        let position = self.position(id);
        assert!(!self.slots[position].retired, "node {id} was retired and never restarts");
        if self.slots[position].node.is_some() {
            self.stop_node(position);
        }
        let slot = &self.slots[position];
        let store = &slot.store;
        // The application is volatile: it is restored from the stored snapshot, if any, and
        // the node applies the entries after it again.
        let (membership, applied_index) = match store.snapshot() {
            Some(snapshot) => (snapshot.meta.membership.clone(), snapshot.meta.last_log_id.index),
            None => (slot.bootstrap_membership.clone(), LogIndex::ZERO),
        };
        let restored = RestoredState {
            hard_state: store.hard_state(),
            membership,
            snapshot: store.snapshot().cloned(),
            entries: store.entries().to_vec(),
            applied_index,
        };
        self.start_node(position, restored);
    }

    /// Shuts node `id` down for good, as an operator does with a server removed from the
    /// cluster: it crashes and is never restarted (its durable store stays, for checks).
    pub fn retire(&mut self, id: NodeId) {
        self.crash(id);
        let position = self.position(id);
        self.slots[position].retired = true;
        self.trace(|| format!("n{id} retired"));
    }

    /// Whether node `id` was retired.
    #[must_use]
    pub fn is_retired(&self, id: NodeId) -> bool {
        self.slots[self.position(id)].retired
    }

    /// Arms a fault: the next node whose vote for another node becomes durable is
    /// restarted right after it sends that vote. It must remember the vote, or it could vote
    /// twice in one term; a restart at a random time rarely lands in that window.
    pub fn reboot_after_next_vote(&mut self) {
        self.reboot_after_next_vote = true;
    }

    /// Changes how the network treats messages sent from now on (messages in flight keep the
    /// fate they were given).
    ///
    /// # Panics
    ///
    /// If a rate lies outside `[0, 1]` or the delay range is empty.
    pub fn set_network(&mut self, faults: NetworkFaults) {
        faults.validate();
        self.network.faults = faults;
        self.trace(|| format!("network is now {faults:?}"));
    }

    /// How the network treats messages now.
    #[must_use]
    pub fn network(&self) -> NetworkFaults {
        self.network.faults
    }

    /// Messages sent so far, by kind.
    #[must_use]
    pub fn message_counts(&self) -> &MessageCounts {
        &self.message_counts
    }

    /// Starts counting messages from zero.
    pub fn reset_message_counts(&mut self) {
        self.message_counts = MessageCounts::default();
    }

    /// Starts (or stops) keeping a copy of every message sent, for tests that look at
    /// individual messages. Off by default: it costs a clone per message.
    pub fn record_messages(&mut self, on: bool) {
        self.recorded = on.then(Vec::new);
    }

    /// The messages recorded since the last call (see [`Cluster::record_messages`]).
    pub fn take_recorded_messages(&mut self) -> Vec<Message> {
        self.recorded.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// A hash of everything the run did so far: two runs with equal hashes took the same
    /// steps in the same order with the same outcomes.
    #[must_use]
    pub fn trace_hash(&self) -> u64 {
        self.trace_hash.value()
    }

    /// One line per node: up or down, role, term, leader, commit and applied indices, last
    /// entry, durable last entry, and on a leader each follower's match index. For failure
    /// messages.
    #[must_use]
    pub fn describe(&self) -> String {
        let mut lines = vec![format!(
            "at {} ms, committed {}, network {:?}",
            self.now_ms,
            self.committed_index(),
            self.network.faults
        )];
        for slot in &self.slots {
            let durable = slot.store.last_log_id();
            let cut = match (slot.retired, self.network.is_disconnected(slot.id)) {
                (true, _) => " (retired)",
                (false, true) => " (disconnected)",
                (false, false) => "",
            };
            let Some(node) = &slot.node else {
                lines.push(format!("  n{}: down, durable last {durable}{cut}", slot.id));
                continue;
            };
            let membership = node.membership();
            let mut line = format!(
                "  n{}: {} term {} leader {:?} commit {} applied {} last {} first {} durable \
                 {durable} snapshot {}, {} writes pending, voters {:?} learners {:?}{cut}",
                slot.id,
                node.role(),
                node.term(),
                node.leader().map(|id| id.0),
                node.commit_index(),
                slot.machine.applied_index,
                node.last_log_id(),
                node.first_index(),
                slot.store.snapshot_log_id(),
                slot.writes.len(),
                membership.voters.iter().map(|id| id.0).collect::<Vec<_>>(),
                membership.learners.iter().map(|id| id.0).collect::<Vec<_>>()
            );
            if node.role() == Role::Leader {
                for peer in membership.members().filter(|&peer| peer != slot.id) {
                    let matched = node.match_index(peer).map_or(0, |index| index.0);
                    line.push_str(&format!(" match[n{peer}]={matched}"));
                }
            }
            lines.push(line);
        }
        lines.join("\n")
    }

    /// Checks that every committed entry is still on a majority of the durable stores of
    /// the voters of [`Cluster::membership`] (the per-step checks verify it, against the
    /// committing leader's membership, when each commit is first seen; this re-checks it
    /// all, for the end of a run, once membership changes have settled).
    ///
    /// # Panics
    ///
    /// On a violation, naming the seed and the entry.
    pub fn check_durability(&self) {
        self.checker.check_all_durable(&self.slots);
    }
}
