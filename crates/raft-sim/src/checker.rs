//! The Raft safety properties, checked incrementally after every step.
//!
//! Each check is cheap enough to run on every event because it only looks at what the event
//! changed: the node that stepped, the entries it handed out, the indices it newly learned are
//! committed. A violation panics with the seed and what was seen, so the run stops at the
//! first step that broke the property.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry as MapEntry;

use raft_core::{Entry, EntryPayload, LogId, LogIndex, Membership, Node, NodeId, Role, Term};

use crate::cluster::NodeSlot;

/// One committed entry, with the earliest term in which some node knew it was committed:
/// every leader of that term or a later one must hold it (Leader Completeness).
#[derive(Debug)]
struct Committed {
    entry: Entry,
    known_in_term: Term,
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
}

/// The entry a node holds in memory at `index`.
pub(crate) fn entry_at(node: &Node, index: LogIndex) -> Option<&Entry> {
    let offset = usize::try_from(index.0.checked_sub(node.first_index().0)?).ok()?;
    node.log_entries().get(offset)
}

impl Checker {
    pub(crate) fn new(seed: u64) -> Checker {
        Checker {
            seed,
            leaders: BTreeMap::new(),
            persisted: BTreeMap::new(),
            committed: Vec::new(),
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
    /// it matches what other nodes committed at that index, a majority of voters hold it
    /// durably, and every current leader of a later term holds it.
    pub(crate) fn on_commit(
        &mut self,
        slots: &[NodeSlot],
        position: usize,
        from_index: LogIndex,
        membership: &Membership,
    ) {
        let node = slots[position].node.as_ref().expect("only a running node commits");
        let mut index = from_index.next();
        while index <= node.commit_index() {
            let entry = entry_at(node, index).unwrap_or_else(|| {
                panic!("node {} committed index {index} but does not hold it", node.id())
            });
            self.record_committed(node, entry);
            let committed = self.committed_at(index).expect("recorded just above");
            self.check_durable_majority(slots, membership, committed.entry.log_id);
            for leader in slots.iter().filter_map(|slot| slot.node.as_ref()) {
                if leader.role() == Role::Leader && leader.term() >= committed.known_in_term {
                    self.check_leader_holds(leader, committed);
                }
            }
            index = index.next();
        }
    }

    fn record_committed(&mut self, node: &Node, entry: &Entry) {
        let index = entry.log_id.index;
        let seed = self.seed;
        match self.committed_at(index) {
            Some(committed) => {
                assert!(
                    committed.entry == *entry,
                    "safety violation (seed {seed}): node {} committed {entry:?} at index \
                     {index}, where {:?} was committed before",
                    node.id(),
                    committed.entry
                );
                let known = &mut self.committed[index.0 as usize - 1].known_in_term;
                *known = (*known).min(node.term());
            }
            None => {
                assert_eq!(
                    index,
                    self.committed_index().next(),
                    "commit indices are recorded from 1 up"
                );
                self.committed.push(Committed { entry: entry.clone(), known_in_term: node.term() });
            }
        }
    }

    /// Durability: a majority of voters' durable stores hold the committed entry `log_id`.
    /// A leader that counted itself before its own write was durable, or a follower that
    /// acknowledged too early, breaks this the moment the commit is recorded.
    fn check_durable_majority(&self, slots: &[NodeSlot], membership: &Membership, log_id: LogId) {
        let holders = slots
            .iter()
            .filter(|slot| membership.is_voter(slot.id))
            .filter(|slot| slot.store.entry(log_id.index).map(|e| e.log_id) == Some(log_id))
            .count();
        assert!(
            holders >= membership.quorum(),
            "safety violation (seed {}): committed entry {log_id} is durable on only {holders} \
             of {} voters (quorum {})",
            self.seed,
            membership.voters.len(),
            membership.quorum()
        );
    }

    /// State Machine Safety: a node applies, at each index, the entry committed there, and
    /// applies indices in order from 1.
    pub(crate) fn on_apply(&self, id: NodeId, applied_count: usize, entry: &Entry) {
        let index = entry.log_id.index;
        assert_eq!(
            index.0,
            applied_count as u64 + 1,
            "safety violation (seed {}): node {id} applied index {index} after {applied_count} \
             entries",
            self.seed
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

    /// Durability of everything: every committed entry is still on a majority of voters'
    /// durable stores. Run at the end of a run (and whenever a test asks).
    pub(crate) fn check_all_durable(&self, slots: &[NodeSlot], membership: &Membership) {
        for committed in &self.committed {
            self.check_durable_majority(slots, membership, committed.entry.log_id);
        }
    }
}
