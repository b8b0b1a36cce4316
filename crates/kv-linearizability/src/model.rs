//! The register model of one key, over interned values, and the per-key partitioning.
//!
//! Linearizability is compositional (P-compositionality, Herlihy & Wing): a history is
//! linearizable exactly when each key's sub-history is, so every key is checked on its own. Within
//! a key, values are interned to small integers so that a search state is a few `Copy` words.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use crate::history::{Call, CasResult, Expect, Operation, Outcome};

/// A value interned within one key's sub-history.
pub(crate) type ValueId = u32;

/// Stands for every value no operation of the key observes.
pub(crate) const ANONYMOUS_VALUE: ValueId = ValueId::MAX;

/// The state of one key: its value (`None` when absent) and its version (0 when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(crate) struct State {
    pub(crate) value: Option<ValueId>,
    pub(crate) version: u64,
}

impl State {
    fn set(self, value: Option<ValueId>) -> State {
        match value {
            Some(value) => State { value: Some(value), version: self.version.saturating_add(1) },
            None => State::default(),
        }
    }
}

/// A compare-and-set condition over interned values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PreparedExpect {
    Value(Option<ValueId>),
    Version(u64),
}

impl PreparedExpect {
    fn holds(self, state: State) -> bool {
        match self {
            PreparedExpect::Value(value) => state.value == value,
            PreparedExpect::Version(version) => state.version == version,
        }
    }
}

/// What an operation does to, and requires of, the key's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    Read {
        value: Option<ValueId>,
    },
    Write {
        value: ValueId,
    },
    Delete,
    /// `result: None` when the outcome is unknown: it applies exactly when the condition holds.
    Cas {
        expect: PreparedExpect,
        new: Option<ValueId>,
        result: Option<CasResult>,
    },
}

/// One operation of a key's sub-history, ready for the search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PreparedOp {
    /// Its position in the history's operations.
    pub(crate) index: usize,
    pub(crate) invoked_at: u64,
    /// `None` when the outcome is unknown: the response time is taken as infinity.
    pub(crate) completed_at: Option<u64>,
    pub(crate) effect: Effect,
}

impl PreparedOp {
    /// The value whose presence or absence the operation's outcome depends on, if any.
    pub(crate) fn observed_value(&self) -> Option<ValueId> {
        match self.effect {
            Effect::Read { value } => value,
            Effect::Cas { expect: PreparedExpect::Value(value), .. } => value,
            _ => None,
        }
    }

    /// Whether the operation is a blind write of an unobserved value (after
    /// `search::anonymize`) or a blind delete, with an unknown outcome: all such operations
    /// of a key invoked by some time are interchangeable from then on.
    pub(crate) fn is_anonymous(&self) -> bool {
        let blind = match self.effect {
            Effect::Write { value } => value == ANONYMOUS_VALUE,
            Effect::Delete => true,
            _ => false,
        };
        blind && self.completed_at.is_none()
    }

    /// Whether the operation's outcome depends on the key's version.
    pub(crate) fn observes_version(&self) -> bool {
        matches!(self.effect, Effect::Cas { expect: PreparedExpect::Version(_), .. })
    }

    /// The state after this operation takes effect in `state`, or `None` when its outcome is
    /// impossible there.
    pub(crate) fn step(&self, state: State) -> Option<State> {
        match self.effect {
            Effect::Read { value } => (state.value == value).then_some(state),
            Effect::Write { value } => Some(state.set(Some(value))),
            Effect::Delete => Some(State::default()),
            Effect::Cas { expect, new, result } => {
                let holds = expect.holds(state);
                match result {
                    Some(CasResult::Applied) => holds.then(|| state.set(new)),
                    Some(CasResult::Conflict) => (!holds).then_some(state),
                    None if holds => Some(state.set(new)),
                    None => Some(state),
                }
            }
        }
    }
}

/// One key's sub-history.
#[derive(Debug, Clone)]
pub(crate) struct Partition<'history, K> {
    pub(crate) key: &'history K,
    pub(crate) operations: Vec<PreparedOp>,
    /// How many operations of the key the history holds, including dropped unknown reads.
    pub(crate) recorded: usize,
}

/// Splits `operations` by key (in key order) and interns each key's values.
///
/// A read with an unknown outcome constrains nothing and is dropped here.
pub(crate) fn partition<K: Ord, V: Eq + Hash>(
    operations: &[Operation<K, V>],
) -> Vec<Partition<'_, K>> {
    let mut by_key: BTreeMap<&K, Vec<&Operation<K, V>>> = BTreeMap::new();
    for operation in operations {
        by_key.entry(&operation.key).or_default().push(operation);
    }
    by_key
        .into_iter()
        .map(|(key, operations)| {
            let mut interner = Interner::default();
            let recorded = operations.len();
            let operations =
                operations.into_iter().filter_map(|operation| prepare(operation, &mut interner));
            Partition { key, operations: operations.collect(), recorded }
        })
        .collect()
}

fn prepare<'history, K, V: Eq + Hash>(
    operation: &'history Operation<K, V>,
    interner: &mut Interner<'history, V>,
) -> Option<PreparedOp> {
    let outcome = operation.completion.as_ref().map(|done| &done.outcome);
    let effect = match (&operation.call, outcome) {
        (Call::Read, None) => return None,
        (Call::Read, Some(Outcome::Read { value })) => {
            Effect::Read { value: value.as_ref().map(|value| interner.intern(value)) }
        }
        (Call::Write { value }, _) => Effect::Write { value: interner.intern(value) },
        (Call::Delete, _) => Effect::Delete,
        (Call::Cas { expect, new }, outcome) => {
            let expect = match expect {
                Expect::Value(value) => {
                    PreparedExpect::Value(value.as_ref().map(|value| interner.intern(value)))
                }
                Expect::Version(version) => PreparedExpect::Version(*version),
            };
            let new = new.as_ref().map(|value| interner.intern(value));
            let result = match outcome {
                Some(Outcome::Cas(result)) => Some(*result),
                _ => None,
            };
            Effect::Cas { expect, new, result }
        }
        // `History::complete` refuses an outcome of another kind than the call, so a read
        // always has a read outcome; anything else constrains nothing and is dropped.
        (Call::Read, Some(_)) => return None,
    };
    Some(PreparedOp {
        index: operation.id.0,
        invoked_at: operation.invoked_at,
        completed_at: operation.completion.as_ref().map(|done| done.completed_at),
        effect,
    })
}

/// Gives each distinct value of one key a small integer.
struct Interner<'history, V> {
    ids: HashMap<&'history V, ValueId>,
}

impl<V> Default for Interner<'_, V> {
    fn default() -> Self {
        Self { ids: HashMap::new() }
    }
}

impl<'history, V: Eq + Hash> Interner<'history, V> {
    fn intern(&mut self, value: &'history V) -> ValueId {
        // 2^32 distinct values of one key would need hundreds of gigabytes of history, so the
        // saturation below is never reached in practice.
        let next = ValueId::try_from(self.ids.len()).unwrap_or(ValueId::MAX);
        *self.ids.entry(value).or_insert(next)
    }
}
