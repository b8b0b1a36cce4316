//! Shrinking a non-linearizable sub-history to a minimal one, and explaining it.

use std::collections::HashSet;
use std::fmt::{Debug, Write as _};
use std::time::Instant;

use crate::history::{Call, CasResult, Expect, Operation, Outcome};
use crate::model::{Effect, PreparedExpect, PreparedOp, ValueId};
use crate::search::{Answer, Limits, search};

/// The result of shrinking.
#[derive(Debug, Clone)]
pub(crate) struct Shrunk {
    /// Still not linearizable.
    pub(crate) operations: Vec<PreparedOp>,
    /// Whether removing any single operation was tried and made the rest linearizable (or
    /// undecidable within the budget): the result is 1-minimal.
    pub(crate) complete: bool,
    pub(crate) steps: u64,
}

/// Removes operations from a non-linearizable `operations` while the rest stays
/// non-linearizable, in two rounds: first only observers (reads and compare-and-sets) with every
/// blind write kept, so the observations that contradict each other are found in their real
/// context; then any operation. Each round is complement-only delta debugging (Zeller): chunks
/// of half the candidates, then ever smaller ones, then single operations until none can go.
///
/// A removal is never made when it would leave an observed value without its writer, or a
/// compare-and-set by version with fewer writes before it: that makes a new, spurious reason
/// to fail (a read of a value nobody wrote) and hides the real one.
///
/// Every search is bounded by `search_steps_max`, and all of them together by `steps_max` and
/// `deadline`; when those run out the smallest failing history found so far is returned with
/// `complete: false`. A removal whose search runs out of budget is not made.
pub(crate) fn shrink(
    operations: &[PreparedOp],
    search_steps_max: u64,
    steps_max: u64,
    deadline: Option<Instant>,
) -> Shrunk {
    let mut shrunk = Shrunk { operations: operations.to_vec(), complete: false, steps: 0 };
    let observer = |op: &PreparedOp| matches!(op.effect, Effect::Read { .. } | Effect::Cas { .. });
    let rounds: [&dyn Fn(&PreparedOp) -> bool; 2] = [&observer, &|_| true];
    for removable in rounds {
        let limits = ShrinkLimits { search_steps_max, steps_max, deadline };
        if !shrink_round(&mut shrunk, operations, removable, limits) {
            return shrunk;
        }
    }
    shrunk.complete = true;
    shrunk
}

#[derive(Debug, Clone, Copy)]
struct ShrinkLimits {
    search_steps_max: u64,
    steps_max: u64,
    deadline: Option<Instant>,
}

/// One round of delta debugging over the operations `removable` selects; `false` when the
/// budget ran out before it finished.
fn shrink_round(
    shrunk: &mut Shrunk,
    original: &[PreparedOp],
    removable: &dyn Fn(&PreparedOp) -> bool,
    limits: ShrinkLimits,
) -> bool {
    let written: HashSet<ValueId> = original.iter().filter_map(written_value).collect();
    let (mut pool, fixed): (Vec<PreparedOp>, Vec<PreparedOp>) =
        shrunk.operations.iter().partition(|op| removable(op));
    let mut chunk = (pool.len() / 2).max(1);
    loop {
        let mut start = 0;
        let mut removed_any = false;
        while start < pool.len() {
            let end = start.saturating_add(chunk).min(pool.len());
            let budget_left = limits.steps_max.saturating_sub(shrunk.steps);
            let over_time = limits.deadline.is_some_and(|deadline| Instant::now() >= deadline);
            if budget_left == 0 || over_time {
                return false;
            }
            let mut kept = Vec::with_capacity(pool.len());
            kept.extend_from_slice(pool.get(..start).unwrap_or_default());
            kept.extend_from_slice(pool.get(end..).unwrap_or_default());
            let mut candidate: Vec<PreparedOp> = fixed.iter().chain(&kept).copied().collect();
            candidate.sort_by_key(|op| op.index);
            if !writers_kept(&candidate, &written) || !version_setters_kept(&candidate, original) {
                start = end;
                continue;
            }
            let search_limits = Limits {
                steps_max: budget_left.min(limits.search_steps_max),
                deadline: limits.deadline,
            };
            let result = search(&candidate, search_limits, false);
            shrunk.steps = shrunk.steps.saturating_add(result.steps);
            if result.answer == Answer::NotLinearizable {
                shrunk.operations = candidate;
                pool = kept;
                removed_any = true;
            } else {
                start = end;
            }
        }
        if chunk > 1 {
            chunk = (chunk / 2).max(1);
        } else if !removed_any {
            return true;
        }
    }
}

/// The value `op` may set.
fn written_value(op: &PreparedOp) -> Option<ValueId> {
    match op.effect {
        Effect::Write { value } => Some(value),
        Effect::Cas { new, .. } => new,
        Effect::Read { .. } | Effect::Delete => None,
    }
}

/// The value `op` shows the key held, if any.
fn observed_value(op: &PreparedOp) -> Option<ValueId> {
    match op.effect {
        Effect::Read { value } => value,
        Effect::Cas {
            expect: PreparedExpect::Value(value),
            result: Some(CasResult::Applied),
            ..
        } => value,
        _ => None,
    }
}

/// Whether every value observed in `candidate` that some operation of the whole sub-history
/// (`written`) wrote is still written by an operation of `candidate`.
///
/// Shrinking keeps this so that a stale read shrinks to the write it saw, the write that
/// overwrote it and the read, rather than to the read alone ("a value nobody wrote"), which is
/// just as non-linearizable but says nothing about the bug.
fn writers_kept(candidate: &[PreparedOp], written: &HashSet<ValueId>) -> bool {
    let still_written: HashSet<ValueId> = candidate.iter().filter_map(written_value).collect();
    candidate
        .iter()
        .filter_map(observed_value)
        .all(|value| !written.contains(&value) || still_written.contains(&value))
}

/// Whether every version-conditioned compare-and-set in `candidate` is still preceded by as
/// many operations that may change the version as in `original`.
///
/// A version counts writes, so dropping one that precedes a compare-and-set by version makes
/// that compare-and-set fail on its own, which is true but shows nothing of the real bug.
fn version_setters_kept(candidate: &[PreparedOp], original: &[PreparedOp]) -> bool {
    let setters_before = |operations: &[PreparedOp]| {
        let mut completions: Vec<u64> = operations
            .iter()
            .filter(|op| !matches!(op.effect, Effect::Read { .. }))
            .filter_map(|op| op.completed_at)
            .collect();
        completions.sort_unstable();
        move |invoked_at: u64| completions.partition_point(|&at| at < invoked_at)
    };
    if !candidate.iter().any(PreparedOp::observes_version) {
        return true;
    }
    let in_candidate = setters_before(candidate);
    let in_original = setters_before(original);
    candidate
        .iter()
        .filter(|op| op.observes_version())
        .all(|op| in_candidate(op.invoked_at) == in_original(op.invoked_at))
}

/// Says in words why `minimal` (non-linearizable, in invocation order) has no linearization:
/// the longest valid order the search found and the operation it could not place after it.
pub(crate) fn explain<K: Debug, V: Debug + PartialEq>(
    prepared: &[PreparedOp],
    operations: &[Operation<K, V>],
    search_steps_max: u64,
) -> String {
    let limits = Limits { steps_max: search_steps_max, deadline: None };
    let result = search(prepared, limits, true);
    let Some(deepest) = result.deepest else {
        return format!(
            "no order of these {} operations is valid for a register (the explaining search \
             ran out of budget)",
            prepared.len()
        );
    };
    let operation_at =
        |position: usize| prepared.get(position).and_then(|op| operations.get(op.index));
    let mut text =
        format!("no order of these {} operations is valid for a register. ", prepared.len());
    let order: Vec<&Operation<K, V>> =
        deepest.linearized.iter().filter_map(|&position| operation_at(position)).collect();
    if order.is_empty() {
        text.push_str("No operation can take effect first");
    } else {
        let ids: Vec<String> = order.iter().map(|op| op.id.to_string()).collect();
        let _ = write!(text, "The longest valid order found is {}", ids.join(", "));
        match replay(&order) {
            Some((value, version)) => {
                let _ = write!(text, ", leaving the key at {value:?} (version {version})");
            }
            None => text.push_str(", leaving the key absent"),
        }
    }
    match deepest.stuck.and_then(operation_at) {
        Some(stuck) => {
            let completed_at = stuck.completion.as_ref().map(|done| done.completed_at);
            let _ = write!(
                text,
                "; then {} ({}) must take effect before it completed at {} but its outcome is \
                 impossible in every state reachable by then.",
                stuck.id,
                stuck.call.kind(),
                completed_at.unwrap_or(u64::MAX)
            );
        }
        None => text.push_str("; no remaining operation can take effect after it."),
    }
    text
}

/// The key's value and version after `order` takes effect from an absent key.
fn replay<'a, K, V: PartialEq>(order: &[&'a Operation<K, V>]) -> Option<(&'a V, u64)> {
    let mut state: Option<(&V, u64)> = None;
    for op in order {
        let outcome = op.completion.as_ref().map(|done| &done.outcome);
        let set = |value: Option<&'a V>, state: Option<(&'a V, u64)>| {
            value.map(|value| (value, state.map_or(1, |(_, version)| version.saturating_add(1))))
        };
        state = match &op.call {
            Call::Read => state,
            Call::Write { value } => set(Some(value), state),
            Call::Delete => None,
            Call::Cas { expect, new } => {
                let holds = match expect {
                    Expect::Value(value) => state.map(|(current, _)| current) == value.as_ref(),
                    Expect::Version(version) => state.map_or(0, |(_, current)| current) == *version,
                };
                let applied = match outcome {
                    Some(Outcome::Cas(CasResult::Conflict)) => false,
                    _ => holds,
                };
                if applied { set(new.as_ref(), state) } else { state }
            }
        };
    }
    state
}
