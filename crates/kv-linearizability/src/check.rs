//! Checking a whole history: per key, within a budget, with a shrunk counterexample.

use std::fmt;
use std::hash::Hash;
use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use crate::history::{History, Operation};
use crate::model::partition;
use crate::search::{Answer, Limits, search};
use crate::shrink::{explain, shrink};

/// How much work a check may do, so that a pathological history yields
/// [`Verdict::Unknown`] instead of hanging.
///
/// Steps count moves of the search through the history's events and comparisons with
/// memoized configurations; one costs tens of nanoseconds (up to a few hundred when each
/// compares long sets), so the default of 50 million is seconds per key, rarely more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Search steps allowed for one key's verdict.
    pub steps_max_per_key: NonZeroU64,
    /// Search steps allowed, in total, for shrinking the failing key's sub-history.
    pub shrink_steps_max: NonZeroU64,
    /// Wall-clock time allowed for one key's verdict, and again for shrinking; `None` bounds
    /// by steps alone, which keeps verdicts deterministic (what a seeded simulation needs).
    pub duration_max_per_key: Option<Duration>,
}

impl Default for Budget {
    fn default() -> Self {
        // 50 million steps: seconds at worst on a slow core, far beyond what a realistic
        // 10,000-operation history needs (it needs about one step per event per concurrent
        // operation).
        let steps = NonZeroU64::new(50_000_000).unwrap_or(NonZeroU64::MIN);
        Self { steps_max_per_key: steps, shrink_steps_max: steps, duration_max_per_key: None }
    }
}

/// Why a key's sub-history is not linearizable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation<K, V> {
    /// The key.
    pub key: K,
    /// A sub-history of the key that is still not linearizable, in invocation order.
    pub minimal: Vec<Operation<K, V>>,
    /// Whether `minimal` is 1-minimal: removing any single operation makes it linearizable
    /// (or too costly to decide). `false` when the shrink budget ran out first.
    pub minimal_proven: bool,
    /// How many operations the key had in the history.
    pub key_operations: usize,
    /// Why `minimal` has no linearization, in words.
    pub explanation: String,
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Display for Violation<K, V> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shrunk = if self.minimal_proven { "minimal" } else { "shrink budget ran out" };
        writeln!(
            formatter,
            "key {:?} is not linearizable; {} of its {} operations show it ({shrunk}):",
            self.key,
            self.minimal.len(),
            self.key_operations
        )?;
        for operation in &self.minimal {
            writeln!(formatter, "  {operation}")?;
        }
        write!(formatter, "{}", self.explanation)
    }
}

/// The verdict on a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<K, V> {
    /// Every key's sub-history has a linearization.
    Linearizable,
    /// A key's sub-history has none (the first such key, in key order).
    NotLinearizable(Box<Violation<K, V>>),
    /// No key was shown non-linearizable, but this key (the first such, in key order) ran out
    /// of budget.
    Unknown {
        /// The key.
        key: K,
        /// The steps spent on it.
        steps: u64,
    },
}

impl<K, V> Verdict<K, V> {
    /// Whether the history was shown linearizable.
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable)
    }

    /// The violation, if the history was shown not linearizable.
    pub fn violation(&self) -> Option<&Violation<K, V>> {
        match self {
            Verdict::NotLinearizable(violation) => Some(violation),
            _ => None,
        }
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Display for Verdict<K, V> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Linearizable => write!(formatter, "linearizable"),
            Verdict::NotLinearizable(violation) => write!(formatter, "{violation}"),
            Verdict::Unknown { key, steps } => write!(
                formatter,
                "unknown: key {key:?} was not decided within {steps} search steps; raise \
                 Budget::steps_max_per_key or check a shorter history"
            ),
        }
    }
}

/// What a check cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Operations in the history.
    pub operations: usize,
    /// Distinct keys.
    pub keys: usize,
    /// Keys shown not linearizable.
    pub keys_not_linearizable: usize,
    /// Keys that ran out of budget.
    pub keys_unknown: usize,
    /// Search steps spent on verdicts.
    pub steps: u64,
    /// Search steps spent shrinking the reported violation.
    pub shrink_steps: u64,
    /// Wall-clock time of the whole check (information only: verdicts never depend on it
    /// unless [`Budget::duration_max_per_key`] is set).
    pub duration: Duration,
}

/// A verdict with what it cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report<K, V> {
    /// The verdict.
    pub verdict: Verdict<K, V>,
    /// The cost.
    pub stats: Stats,
}

/// Checks whether `history` is linearizable for a key-value store whose keys are independent
/// registers (read, write, delete, compare-and-set by value or version).
///
/// Each key is checked on its own, in key order, within `budget`; the first non-linearizable
/// key is shrunk to a minimal failing sub-history and explained.
pub fn check<K, V>(history: &History<K, V>, budget: Budget) -> Report<K, V>
where
    K: Ord + Clone + fmt::Debug,
    V: Eq + Hash + Clone + fmt::Debug,
{
    let started = Instant::now();
    let operations = history.operations();
    let partitions = partition(operations);
    let mut stats =
        Stats { operations: operations.len(), keys: partitions.len(), ..Stats::default() };
    let mut violation: Option<Violation<K, V>> = None;
    let mut unknown: Option<(K, u64)> = None;
    for partition in &partitions {
        let deadline = budget.duration_max_per_key.map(|duration| Instant::now() + duration);
        let limits = Limits { steps_max: budget.steps_max_per_key.get(), deadline };
        let result = search(&partition.operations, limits, false);
        stats.steps = stats.steps.saturating_add(result.steps);
        match result.answer {
            Answer::Linearizable => {}
            Answer::Unknown => {
                stats.keys_unknown += 1;
                unknown.get_or_insert_with(|| (partition.key.clone(), result.steps));
            }
            Answer::NotLinearizable => {
                stats.keys_not_linearizable += 1;
                if violation.is_none() {
                    let deadline =
                        budget.duration_max_per_key.map(|duration| Instant::now() + duration);
                    let shrunk = shrink(
                        &partition.operations,
                        budget.steps_max_per_key.get(),
                        budget.shrink_steps_max.get(),
                        deadline,
                    );
                    stats.shrink_steps = shrunk.steps;
                    let explanation =
                        explain(&shrunk.operations, operations, budget.steps_max_per_key.get());
                    let mut minimal: Vec<Operation<K, V>> = shrunk
                        .operations
                        .iter()
                        .filter_map(|op| operations.get(op.index).cloned())
                        .collect();
                    minimal.sort_by_key(|op| (op.invoked_at, op.id));
                    violation = Some(Violation {
                        key: partition.key.clone(),
                        minimal,
                        minimal_proven: shrunk.complete,
                        key_operations: partition.recorded,
                        explanation,
                    });
                }
            }
        }
    }
    let verdict = match (violation, unknown) {
        (Some(violation), _) => Verdict::NotLinearizable(Box::new(violation)),
        (None, Some((key, steps))) => Verdict::Unknown { key, steps },
        (None, None) => Verdict::Linearizable,
    };
    stats.duration = started.elapsed();
    Report { verdict, stats }
}
