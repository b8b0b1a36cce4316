//! The Wing–Gong search with Lowe's memoization, over one key's sub-history.
//!
//! Call and return events sit in one time-ordered doubly linked list. The search walks it from
//! the front: at a call it tries to linearize that operation now (the model accepts it in the
//! current state, and the pair "set of linearized operations, state" was not reached before),
//! lifting the operation's call and return out of the list and restarting from the front; at a
//! return it has met an operation that must have taken effect already but has not, so it undoes
//! the most recent choice and tries the next call after it. The history is linearizable when
//! every completed operation is linearized: operations with an unknown outcome respond "at
//! infinity", so the rest of them can be placed after everything, where they change nothing
//! anyone observed — that is the same as not having happened.
//!
//! Memoization (Lowe, "Testing for linearizability", 2017) makes the search visit each
//! (linearized set, state) pair once; the budget bounds the number of list steps.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use crate::model::{ANONYMOUS_VALUE, Effect, PreparedOp, State, ValueId};

/// How often (in steps) the search looks at the clock, so that a time budget costs little.
const CLOCK_CHECK_STEPS: u64 = 4096;

/// The limits of one search.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) steps_max: u64,
    pub(crate) deadline: Option<Instant>,
}

/// The answer of one search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    Linearizable,
    NotLinearizable,
    /// The budget ran out first.
    Unknown,
}

/// The deepest point a failed search reached, for explaining the failure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Deepest {
    /// Positions (in the searched slice) of the operations linearized, in order.
    pub(crate) linearized: Vec<usize>,
    /// The position of the operation that had to take effect next and could not.
    pub(crate) stuck: Option<usize>,
}

/// What a search found and what it cost.
#[derive(Debug, Clone)]
pub(crate) struct Search {
    pub(crate) answer: Answer,
    pub(crate) steps: u64,
    /// Filled only when asked for and the answer is `NotLinearizable`.
    pub(crate) deepest: Option<Deepest>,
}

#[derive(Debug, Clone, Copy)]
enum Event {
    Call(usize),
    Return(usize),
}

/// Checks one key's operations.
pub(crate) fn search(operations: &[PreparedOp], limits: Limits, explain: bool) -> Search {
    let operations = &anonymize(operations);
    let anonymous: Vec<bool> = operations.iter().map(PreparedOp::is_anonymous).collect();
    let mut anonymous_used = 0_usize;
    let mut list = EventList::new(operations);
    let mut remaining = operations.iter().filter(|op| op.completed_at.is_some()).count();
    let mut search = Search { answer: Answer::Linearizable, steps: 0, deepest: None };
    if remaining == 0 {
        return search;
    }
    // Only completed operations enter the hash: a configuration is looked up among those with
    // the same completed operations linearized, whatever its unknown-outcome ones.
    let op_hashes: Vec<u64> = operations
        .iter()
        .enumerate()
        .map(|(position, op)| if op.completed_at.is_some() { mix(position as u64) } else { 0 })
        .collect();
    let mut unknown_outcome = Bitset::new(operations.len());
    for (position, op) in operations.iter().enumerate() {
        if op.completed_at.is_none() {
            unknown_outcome.set(position);
        }
    }
    let mut linearized = Bitset::new(operations.len());
    let mut linearized_hash = 0_u64;
    let mut state = State::default();
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut cache: Cache = HashMap::default();
    let mut deepest = Deepest::default();
    let versions_matter = operations.iter().any(PreparedOp::observes_version);
    let mut cursor = list.first();
    loop {
        search.steps += 1;
        if search.steps > limits.steps_max || out_of_time(search.steps, limits) {
            search.answer = Answer::Unknown;
            return search;
        }
        // The end of the list holds no return, so every completed operation was linearized and
        // `remaining` reached 0 already; going back is the safe reading of an impossible case.
        let event = list.event(cursor);
        match event {
            Some(Event::Call(position)) => {
                let Some(op) = operations.get(position) else { break };
                // When no operation of the key looks at versions, they are dropped from the
                // state so that configurations differing only in them are one.
                let next_state = op.step(state).map(|next| match versions_matter {
                    true => next,
                    false => State { version: 0, ..next },
                });
                let is_anonymous = anonymous.get(position).copied().unwrap_or_default();
                if let Some(next_state) = next_state {
                    mark(&mut linearized, &mut anonymous_used, position, is_anonymous);
                    linearized_hash ^= op_hashes.get(position).copied().unwrap_or_default();
                    let bucket = cache.entry((linearized_hash, next_state)).or_default();
                    // Each comparison with a seen configuration counts as a step, so that the
                    // budget bounds time even when many configurations share a bucket.
                    search.steps = search.steps.saturating_add(bucket.len() as u64);
                    let dominated = bucket.iter().any(|(seen, seen_anonymous)| {
                        *seen_anonymous <= anonymous_used
                            && seen.dominates(&linearized, &unknown_outcome)
                    });
                    if !dominated {
                        bucket.push((linearized.clone(), anonymous_used));
                        stack.push((position, state));
                        state = next_state;
                        list.lift(position);
                        if operations.get(position).is_some_and(|op| op.completed_at.is_some()) {
                            remaining -= 1;
                            if remaining == 0 {
                                return search;
                            }
                        }
                        cursor = list.first();
                        continue;
                    }
                    unmark(&mut linearized, &mut anonymous_used, position, is_anonymous);
                    linearized_hash ^= op_hashes.get(position).copied().unwrap_or_default();
                }
                cursor = list.next(cursor);
            }
            Some(Event::Return(_)) | None => {
                if explain && stack.len() >= deepest.linearized.len() {
                    deepest.linearized = stack.iter().map(|(position, _)| *position).collect();
                    deepest.stuck = match event {
                        Some(Event::Return(position)) => Some(position),
                        _ => None,
                    };
                }
                let Some((position, previous_state)) = stack.pop() else {
                    search.answer = Answer::NotLinearizable;
                    search.deepest = explain.then_some(deepest);
                    return search;
                };
                state = previous_state;
                let is_anonymous = anonymous.get(position).copied().unwrap_or_default();
                unmark(&mut linearized, &mut anonymous_used, position, is_anonymous);
                linearized_hash ^= op_hashes.get(position).copied().unwrap_or_default();
                list.unlift(position);
                let completed =
                    operations.get(position).is_some_and(|op| op.completed_at.is_some());
                if completed {
                    remaining += 1;
                }
                cursor = list.next(list.call_slot(position));
            }
        }
    }
    // Only reached when `operations` lost an element it had at the start: impossible.
    search.answer = Answer::Unknown;
    search
}

/// Adds `position` to the linearized set; an anonymous operation only as a count.
fn mark(linearized: &mut Bitset, anonymous_used: &mut usize, position: usize, anonymous: bool) {
    match anonymous {
        true => *anonymous_used += 1,
        false => linearized.set(position),
    }
}

/// Undoes [`mark`].
fn unmark(linearized: &mut Bitset, anonymous_used: &mut usize, position: usize, anonymous: bool) {
    match anonymous {
        true => *anonymous_used = anonymous_used.saturating_sub(1),
        false => linearized.clear(position),
    }
}

/// Replaces every written value that no operation of the key observes (no read returned it,
/// no compare-and-set compared with it) by [`ANONYMOUS_VALUE`].
///
/// No operation can tell such values apart, so merging them is exact, and it lets the search
/// treat timed-out blind writes of them as interchangeable (see [`PreparedOp::is_anonymous`]):
/// which of them took effect does not matter, only how many, so a failing search need not try
/// every subset of them.
fn anonymize(operations: &[PreparedOp]) -> Vec<PreparedOp> {
    let observed: HashSet<ValueId> =
        operations.iter().filter_map(PreparedOp::observed_value).collect();
    let hide = |value: ValueId| if observed.contains(&value) { value } else { ANONYMOUS_VALUE };
    let mut operations = operations.to_vec();
    for op in &mut operations {
        match &mut op.effect {
            Effect::Write { value } => *value = hide(*value),
            Effect::Cas { new: Some(value), .. } => *value = hide(*value),
            Effect::Read { .. } | Effect::Delete | Effect::Cas { new: None, .. } => {}
        }
    }
    operations
}

fn out_of_time(steps: u64, limits: Limits) -> bool {
    steps % CLOCK_CHECK_STEPS == 0
        && limits.deadline.is_some_and(|deadline| Instant::now() >= deadline)
}

/// Seen (linearized set, state) pairs, bucketed by the incremental hash of the set's completed
/// operations and the state, so that a lookup never hashes the whole set.
type Cache = HashMap<(u64, State), Vec<(Bitset, usize)>, BuildHasherDefault<FxHasher>>;

/// A fixed-size set of operation positions.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Bitset {
    words: Vec<u64>,
}

impl Bitset {
    fn new(bits: usize) -> Self {
        Self { words: vec![0; bits.div_ceil(64)] }
    }

    fn set(&mut self, bit: usize) {
        if let Some(word) = self.words.get_mut(bit / 64) {
            *word |= 1 << (bit % 64);
        }
    }

    fn clear(&mut self, bit: usize) {
        if let Some(word) = self.words.get_mut(bit / 64) {
            *word &= !(1 << (bit % 64));
        }
    }

    /// Whether a configuration with `self` linearized can do all that one with `other` can, in
    /// the same state: both linearized the same completed operations and `self` used no
    /// unknown-outcome operation that `other` did not. Unknown-outcome operations respond at
    /// infinity, so one left unused is an option kept, never a deadline missed; exploring
    /// `other` after `self` would find nothing new. Without this, every subset of the
    /// timed-out writes seen so far is a distinct configuration, and a failing search on a
    /// history with a few dozen of them never ends.
    fn dominates(&self, other: &Bitset, unknown_outcome: &Bitset) -> bool {
        self.words.iter().zip(&other.words).zip(&unknown_outcome.words).all(
            |((mine, theirs), unknown)| {
                let same_completed = (mine ^ theirs) & !unknown == 0;
                let fewer_unknown = mine & !theirs == 0;
                same_completed && fewer_unknown
            },
        )
    }
}

/// The time-ordered call and return events of a sub-history as a circular doubly linked list
/// with a sentinel, supporting O(1) removal of an operation and its undoing in LIFO order.
struct EventList {
    events: Vec<Event>,
    next: Vec<usize>,
    previous: Vec<usize>,
    /// Per operation: the slot of its call and of its return (`None`: unknown outcome).
    slots: Vec<(usize, Option<usize>)>,
}

impl EventList {
    fn new(operations: &[PreparedOp]) -> Self {
        let mut timed: Vec<(u64, u8, usize, Event)> = Vec::with_capacity(operations.len() * 2);
        for (position, op) in operations.iter().enumerate() {
            // Calls sort before returns at equal times: operations that touch are concurrent.
            timed.push((op.invoked_at, 0, position, Event::Call(position)));
            if let Some(completed_at) = op.completed_at {
                timed.push((completed_at, 1, position, Event::Return(position)));
            }
        }
        timed.sort_by_key(|(time, kind, position, _)| (*time, *kind, *position));
        let sentinel = timed.len();
        let mut slots = vec![(sentinel, None); operations.len()];
        for (slot, (_, _, _, event)) in timed.iter().enumerate() {
            match *event {
                Event::Call(position) => {
                    if let Some(entry) = slots.get_mut(position) {
                        entry.0 = slot;
                    }
                }
                Event::Return(position) => {
                    if let Some(entry) = slots.get_mut(position) {
                        entry.1 = Some(slot);
                    }
                }
            }
        }
        let events = timed.into_iter().map(|(_, _, _, event)| event).collect();
        let next = (0..=sentinel).map(|slot| (slot + 1) % (sentinel + 1)).collect();
        let previous = (0..=sentinel).map(|slot| (slot + sentinel) % (sentinel + 1)).collect();
        Self { events, next, previous, slots }
    }

    fn sentinel(&self) -> usize {
        self.events.len()
    }

    fn first(&self) -> usize {
        self.next(self.sentinel())
    }

    fn next(&self, slot: usize) -> usize {
        self.next.get(slot).copied().unwrap_or(self.sentinel())
    }

    /// The event at `slot`; `None` at the sentinel (the end of the list).
    fn event(&self, slot: usize) -> Option<Event> {
        self.events.get(slot).copied()
    }

    fn call_slot(&self, position: usize) -> usize {
        self.slots.get(position).map_or(self.sentinel(), |(call, _)| *call)
    }

    fn lift(&mut self, position: usize) {
        let Some(&(call, returned)) = self.slots.get(position) else { return };
        self.unlink(call);
        if let Some(returned) = returned {
            self.unlink(returned);
        }
    }

    /// Undoes the latest [`lift`](Self::lift), which must have been of `position`.
    fn unlift(&mut self, position: usize) {
        let Some(&(call, returned)) = self.slots.get(position) else { return };
        if let Some(returned) = returned {
            self.relink(returned);
        }
        self.relink(call);
    }

    fn unlink(&mut self, slot: usize) {
        let (Some(&previous), Some(&next)) = (self.previous.get(slot), self.next.get(slot)) else {
            return;
        };
        if let Some(link) = self.next.get_mut(previous) {
            *link = next;
        }
        if let Some(link) = self.previous.get_mut(next) {
            *link = previous;
        }
    }

    /// Puts `slot` back between the neighbours it had when unlinked (dancing links).
    fn relink(&mut self, slot: usize) {
        let (Some(&previous), Some(&next)) = (self.previous.get(slot), self.next.get(slot)) else {
            return;
        };
        if let Some(link) = self.next.get_mut(previous) {
            *link = slot;
        }
        if let Some(link) = self.previous.get_mut(next) {
            *link = slot;
        }
    }
}

/// splitmix64's finalizer: spreads an operation's position over 64 bits for the set hash.
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A small fast hasher (the rustc "Fx" scheme) for cache keys that are already well mixed.
#[derive(Default)]
struct FxHasher {
    hash: u64,
}

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.hash
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(u64::from(*byte));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(0x51_7C_C1_B7_27_22_0A_95);
    }

    fn write_u32(&mut self, word: u32) {
        self.write_u64(u64::from(word));
    }

    fn write_u8(&mut self, byte: u8) {
        self.write_u64(u64::from(byte));
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }
}
