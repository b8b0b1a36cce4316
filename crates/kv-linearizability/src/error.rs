//! The crate's error type.

use crate::history::OpId;

/// A history that cannot be checked because it was recorded wrongly.
///
/// These are mistakes of the recording harness (an outcome for an operation that was never
/// invoked, a completion before its invocation), never verdicts about the system under test:
/// those are [`Verdict`](crate::Verdict)s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `complete` named an operation this history never handed out.
    #[error("operation {id} is not in this history ({operations} operations were invoked)")]
    UnknownOperation {
        /// The id passed in.
        id: OpId,
        /// How many operations the history holds.
        operations: usize,
    },
    /// `complete` was called twice for one operation; record each outcome once.
    #[error("operation {id} was already completed; record each outcome once")]
    AlreadyCompleted {
        /// The operation.
        id: OpId,
    },
    /// An operation completed before it was invoked; the recorder's clock went backwards.
    #[error(
        "operation {id} completed at {completed_at} before it was invoked at {invoked_at}; \
         use one monotonic clock for both"
    )]
    CompletedBeforeInvoked {
        /// The operation.
        id: OpId,
        /// Its invocation time.
        invoked_at: u64,
        /// The completion time given.
        completed_at: u64,
    },
    /// The outcome does not fit the call (say, a read answered with a compare-and-set result).
    #[error("operation {id} is a {call} but its outcome is a {outcome} result")]
    OutcomeMismatch {
        /// The operation.
        id: OpId,
        /// What the operation was ("read", "write", "delete", "compare-and-set").
        call: &'static str,
        /// What the outcome was for.
        outcome: &'static str,
    },
}
