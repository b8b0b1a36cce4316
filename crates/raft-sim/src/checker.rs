//! The Raft safety properties, checked incrementally after every step.
//!
//! Each check is cheap enough to run on every event because it only looks at what the event
//! changed: the node that stepped, the entries it handed out, the indices it newly learned are
//! committed, the snapshot it took or installed. A violation panics with the seed and what was
//! seen, so the run stops at the first step that broke the property.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry as MapEntry;

use raft_core::{
    Entry, EntryPayload, LogId, LogIndex, Membership, Node, NodeId, Role, SnapshotMeta, Term,
};

use crate::cluster::NodeSlot;
use crate::state_machine::{StateDigest, StateMachine};

/// One committed entry, with the earliest term in which some node knew it was committed
/// (every leader of that term or a later one must hold it: Leader Completeness) and the
/// application's state once it is applied.
#[derive(Debug)]
struct Committed {
    entry: Entry,
    known_in_term: Term,
    state: StateDigest,
}

/// The global record the properties are checked against.
#[derive(Debug)]
pub(crate) struct Checker {
    /// Named in every violation, so the run can be replayed.
    seed: u64,
    /// The one leader of each term (Election Safety).
    leaders: BTreeMap<Term, NodeId>,
    /// Every entry any node handed out for persisting: its payload and the term of the entry
    /// before it. One payload and one predecessor term per log id is, by induction on the
    /// index, the Log Matching property.
    persisted: BTreeMap<LogId, (EntryPayload, Term)>,
    /// The committed log, index `position + 1`. It grows contiguously because each node's
    /// commit index is recorded from 1 up.
    committed: Vec<Committed>,
    /// The membership the cluster started with, in force before any membership entry.
    initial_membership: Membership,
    /// The committed membership entries, in log order.
    committed_memberships: Vec<(LogIndex, Membership)>,
}

/// The entry a node holds in memory at `index`.
pub(crate) fn entry_at(node: &Node, index: LogIndex) -> Option<&Entry> {
    let offset = usize::try_from(index.0.checked_sub(node.first_index().0)?).ok()?;
    node.log_entries().get(offset)
}

/// The index a node's snapshot covers up to (0 without one).
fn compacted_index(node: &Node) -> LogIndex {
    node.first_index().prev().unwrap_or(LogIndex::ZERO)
}

impl Checker {
    pub(crate) fn new(seed: u64, initial_membership: Membership) -> Checker {
        Checker {
            seed,
            leaders: BTreeMap::new(),
            persisted: BTreeMap::new(),
            committed: Vec::new(),
            initial_membership,
            committed_memberships: Vec::new(),
        }
    }

    /// The committed log as far as any node knows it.
    pub(crate) fn committed_entries(&self) -> impl Iterator<Item = &Entry> {
        self.committed.iter().map(|committed| &committed.entry)
    }

    /// The highest index known committed.
    pub(crate) fn committed_index(&self) -> LogIndex {
        LogIndex(self.committed.len() as u64)
    }

    fn committed_at(&self, index: LogIndex) -> Option<&Committed> {
        let position = usize::try_from(index.0.checked_sub(1)?).ok()?;
        self.committed.get(position)
    }

    /// The id of the committed entry at `index`, if that index is known committed.
    pub(crate) fn committed_log_id(&self, index: LogIndex) -> Option<LogId> {
        self.committed_at(index).map(|committed| committed.entry.log_id)
    }

    /// The application's state after applying the committed log up to `index`, if that
    /// index is known committed.
    pub(crate) fn state_at(&self, index: LogIndex) -> Option<StateDigest> {
        if index == LogIndex::ZERO {
            return Some(StateDigest::EMPTY);
        }
        self.committed_at(index).map(|committed| committed.state)
    }

    /// The membership in force on the committed log at `index`: the last committed
    /// membership entry at or before it, else the initial membership.
    pub(crate) fn membership_at(&self, index: LogIndex) -> &Membership {
        self.committed_memberships
            .iter()
            .rev()
            .find(|(at, _)| *at <= index)
            .map_or(&self.initial_membership, |(_, membership)| membership)
    }

    /// The membership of the latest committed membership entry (the initial one if none).
    pub(crate) fn committed_membership(&self) -> &Membership {
        self.membership_at(self.committed_index())
    }

    /// Election Safety: `id` is a leader in `term`; no other node may ever be.
    pub(crate) fn on_leader(&mut self, id: NodeId, term: Term) {
        let seed = self.seed;
        let leader = *self.leaders.entry(term).or_insert(id);
        assert!(
            leader == id,
            "safety violation (seed {seed}): two leaders in term {term}: nodes {leader} and {id}"
        );
    }

    /// Leader Completeness: a node that just became leader holds every entry known committed
    /// in its term or an earlier one.
    pub(crate) fn check_leader_completeness(&self, node: &Node) {
        for committed in &self.committed {
            if committed.known_in_term <= node.term() {
                self.check_leader_holds(node, committed);
            }
        }
    }

    fn check_leader_holds(&self, node: &Node, committed: &Committed) {
        let log_id = committed.entry.log_id;
        // Entries below the node's snapshot are in it: each snapshot is checked against the
        // committed log when taken or installed, and its last entry is checked here.
        if log_id.index < compacted_index(node) {
            return;
        }
        let held = node.term_at(log_id.index);
        assert!(
            held == Some(log_id.term),
            "safety violation (seed {}): leader completeness: node {} leads term {} but holds \
             term {held:?} at index {}, where entry {log_id} was committed (known in term {})",
            self.seed,
            node.id(),
            node.term(),
            log_id.index,
            committed.known_in_term
        );
    }

    /// Log Matching, for entries a node just handed out for persisting: an id names one
    /// payload and one predecessor everywhere.
    pub(crate) fn on_entries_handed_out(&mut self, node: &Node, entries: &[Entry]) {
        for entry in entries {
            let log_id = entry.log_id;
            let previous_index = log_id.index.prev().unwrap_or_else(|| {
                panic!("safety violation (seed {}): entry {log_id} has index 0", self.seed)
            });
            let previous_term = node.term_at(previous_index).unwrap_or_else(|| {
                panic!("node {} handed out entry {log_id} but holds no entry before it", node.id())
            });
            match self.persisted.entry(log_id) {
                MapEntry::Vacant(vacant) => {
                    vacant.insert((entry.payload.clone(), previous_term));
                }
                MapEntry::Occupied(occupied) => {
                    let (payload, term_before) = occupied.get();
                    assert!(
                        *payload == entry.payload,
                        "safety violation (seed {}): log matching: node {} holds entry {log_id} \
                         with payload {:?}, another node had {payload:?}",
                        self.seed,
                        node.id(),
                        entry.payload
                    );
                    assert!(
                        *term_before == previous_term,
                        "safety violation (seed {}): log matching: node {} holds entry {log_id} \
                         after an entry of term {previous_term}, another node after term \
                         {term_before}",
                        self.seed,
                        node.id()
                    );
                }
            }
        }
    }

    /// Records that the node in `slots[position]` raised its commit index from `from_index`
    /// (exclusive) to its current commit index, and checks each newly committed entry:
    /// it matches what other nodes committed at that index, every current leader of a later
    /// term holds it, and, when no node knew it committed before, a majority of the voters
    /// the committing node counted (its membership in force) hold it durably.
    ///
    /// Indices the node's snapshot covers were committed (a snapshot holds applied state),
    /// so they must be known committed already; the snapshot's last entry must be the
    /// committed one.
    pub(crate) fn on_commit(&mut self, slots: &[NodeSlot], position: usize, from_index: LogIndex) {
        let node = slots[position].node.as_ref().expect("only a running node commits");
        let compacted = compacted_index(node);
        let mut index = from_index.next();
        if index <= compacted {
            self.check_covered_by_snapshot(node, compacted);
            index = compacted.next();
        }
        while index <= node.commit_index() {
            let entry = entry_at(node, index).unwrap_or_else(|| {
                panic!("node {} committed index {index} but does not hold it", node.id())
            });
            let first_seen = self.record_committed(node, entry);
            let committed = self.committed_at(index).expect("recorded just above");
            if first_seen {
                self.check_durable_majority(slots, node.membership(), committed.entry.log_id);
            }
            for leader in slots.iter().filter_map(|slot| slot.node.as_ref()) {
                if leader.role() == Role::Leader && leader.term() >= committed.known_in_term {
                    self.check_leader_holds(leader, committed);
                }
            }
            index = index.next();
        }
    }

    /// A node's commit index covers `compacted`, its snapshot's last index: that entry
    /// must be known committed, with the id the node holds for it.
    fn check_covered_by_snapshot(&self, node: &Node, compacted: LogIndex) {
        let committed = self.committed_log_id(compacted);
        let held = node.term_at(compacted).map(|term| LogId::new(term, compacted));
        assert!(
            committed.is_some() && committed == held,
            "safety violation (seed {}): node {} holds a snapshot up to {held:?}, but the \
             committed entry at index {compacted} is {committed:?}",
            self.seed,
            node.id()
        );
    }

    /// Records `entry` as committed. Returns whether no node knew it committed before.
    fn record_committed(&mut self, node: &Node, entry: &Entry) -> bool {
        let index = entry.log_id.index;
        let seed = self.seed;
        if let Some(committed) = self.committed_at(index) {
            assert!(
                committed.entry == *entry,
                "safety violation (seed {seed}): node {} committed {entry:?} at index {index}, \
                 where {:?} was committed before",
                node.id(),
                committed.entry
            );
            let known = &mut self.committed[index.0 as usize - 1].known_in_term;
            *known = (*known).min(node.term());
            return false;
        }
        assert_eq!(index, self.committed_index().next(), "commit indices are recorded from 1 up");
        let state = self.state_at(index.prev().unwrap_or_default()).unwrap_or(StateDigest::EMPTY);
        if let EntryPayload::Membership(membership) = &entry.payload {
            self.committed_memberships.push((index, membership.clone()));
        }
        self.committed.push(Committed {
            entry: entry.clone(),
            known_in_term: node.term(),
            state: state.after(entry),
        });
        true
    }

    /// Durability: a majority of `membership`'s voters hold the committed entry `log_id` in
    /// their durable stores (as an entry, or under a snapshot). A leader that counted itself
    /// before its own write was durable, or a follower that acknowledged too early, breaks
    /// this the moment the commit is recorded.
    fn check_durable_majority(&self, slots: &[NodeSlot], membership: &Membership, log_id: LogId) {
        let voters = slots.iter().filter(|slot| membership.is_voter(slot.id));
        let holders = voters.clone().filter(|slot| slot.store.holds_committed(log_id)).count();
        if holders >= membership.quorum() {
            return;
        }
        let stores: Vec<String> = voters
            .map(|slot| {
                format!(
                    "n{}: durable last {} snapshot {}",
                    slot.id,
                    slot.store.last_log_id(),
                    slot.store.snapshot_log_id()
                )
            })
            .collect();
        panic!(
            "safety violation (seed {}): committed entry {log_id} is durable on only {holders} \
             of {} voters (quorum {}): {}",
            self.seed,
            membership.voters.len(),
            membership.quorum(),
            stores.join(", ")
        );
    }

    /// State Machine Safety: node `id`, whose application is `machine`, applies at the next
    /// index the entry committed there.
    pub(crate) fn on_apply(&self, id: NodeId, machine: &StateMachine, entry: &Entry) {
        let index = entry.log_id.index;
        assert_eq!(
            index,
            machine.applied_index.next(),
            "safety violation (seed {}): node {id} applied index {index} after index {}",
            self.seed,
            machine.applied_index
        );
        let committed = self.committed_at(index).unwrap_or_else(|| {
            panic!(
                "safety violation (seed {}): node {id} applied entry {} before any node knew \
                 it was committed",
                self.seed, entry.log_id
            )
        });
        assert!(
            committed.entry == *entry,
            "safety violation (seed {}): state machine safety: node {id} applied {entry:?} at \
             index {index}, where {:?} was committed",
            self.seed,
            committed.entry
        );
    }

    /// Checks that node `id`'s application state `machine` is the state of the committed
    /// prefix up to its applied index.
    pub(crate) fn check_state(&self, id: NodeId, machine: &StateMachine, context: &str) {
        let expected = self.state_at(machine.applied_index);
        assert!(
            expected == Some(machine.digest),
            "safety violation (seed {}): node {id} {context}: its state at index {} is \
             {:?}, but the committed log up to there gives {expected:?}",
            self.seed,
            machine.applied_index,
            machine.digest
        );
    }

    /// A snapshot node `id` took, installed or restarted from: it must name a committed
    /// entry, carry the membership in force there, and hold the state of the committed
    /// prefix it claims.
    ///
    /// One membership is let through: a node that joined a running cluster (its
    /// `bootstrap_membership` is empty) cannot know the membership in force before the first
    /// membership entry it holds, so a snapshot it takes below that entry carries the empty
    /// membership. That is harmless (the entry that added the node follows the snapshot in
    /// its log, or the node is no member at all) but not the cluster's membership there.
    pub(crate) fn check_snapshot(
        &self,
        id: NodeId,
        bootstrap_membership: &Membership,
        meta: &SnapshotMeta,
        machine: &StateMachine,
    ) {
        let last = meta.last_log_id;
        let committed = self.committed_log_id(last.index);
        assert!(
            committed == Some(last),
            "safety violation (seed {}): node {id} has a snapshot up to {last}, but the \
             committed entry at index {} is {committed:?}",
            self.seed,
            last.index
        );
        assert_eq!(
            machine.applied_index, last.index,
            "safety violation (seed {}): node {id}'s snapshot up to {last} holds the state at \
             index {}",
            self.seed, machine.applied_index
        );
        let membership = self.membership_at(last.index);
        let joined_unknowing =
            bootstrap_membership.voters.is_empty() && meta.membership == *bootstrap_membership;
        assert!(
            meta.membership == *membership || joined_unknowing,
            "safety violation (seed {}): node {id}'s snapshot up to {last} has membership \
             {:?}, but {membership:?} is in force there",
            self.seed,
            meta.membership
        );
        self.check_state(id, machine, "has a snapshot that does not match the committed log");
    }

    /// Durability of everything: every committed entry is still on a majority of the
    /// durable stores of the voters of the latest committed membership. Sound once that
    /// membership's entry committed and no later change is under way (the end of a run).
    pub(crate) fn check_all_durable(&self, slots: &[NodeSlot]) {
        let membership = self.committed_membership();
        for committed in &self.committed {
            self.check_durable_majority(slots, membership, committed.entry.log_id);
        }
    }
}
