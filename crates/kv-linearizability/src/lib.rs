//! `kv-linearizability`: checks that a concurrent history of key-value operations is
//! linearizable, and shows a minimal counterexample when it is not.
//!
//! Each key is a register (read, write, delete, and compare-and-set by value or by version, with
//! versions counted as `kv-store` counts them). Clients record when they invoke an operation
//! and when, with what outcome, it completes; an operation that never completes (a timeout, a
//! crash) may have taken effect at any time after its invocation, or never. The checker is the
//! Wing & Gong search with Lowe's memoization of (linearized set, state), run per key
//! (linearizability is compositional) within a [`Budget`], so a pathological history yields
//! [`Verdict::Unknown`] rather than hanging. A failing key is shrunk by delta debugging to a
//! 1-minimal non-linearizable sub-history and explained.
//!
//! ```text
//!  clients ──invoke/complete──> History ──check(budget)──> Report { verdict, stats }
//!                                  │ split by key                 ^
//!                                  v                              │ first failing key,
//!                    per-key search (Wing–Gong–Lowe) ──> shrink ──┘ minimal + explanation
//! ```
//!
//! It depends on no crate of this workspace, so the simulator, process-level tests and the
//! load generator can all use it.
//!
//! # Example
//!
//! ```
//! use kv_linearizability::{Budget, Call, ClientId, History, Outcome, Verdict, check};
//!
//! let mut history: History<&str, u64> = History::new();
//! // Client 1 writes 1 during [0, 10]; client 2 then reads 0... a value never written.
//! let write = history.invoke(ClientId(1), "x", Call::Write { value: 1 }, 0);
//! history.complete(write, Outcome::Written, 10)?;
//! let read = history.invoke(ClientId(2), "x", Call::Read, 20);
//! history.complete(read, Outcome::Read { value: None }, 30)?;
//!
//! let report = check(&history, Budget::default());
//! let Verdict::NotLinearizable(violation) = &report.verdict else { unreachable!() };
//! assert_eq!(violation.key, "x");
//! assert_eq!(violation.minimal.len(), 2);
//! println!("{violation}"); // the operations with their times, and why they fail
//!
//! // A write that timed out may have happened or not: both reads below are fine.
//! let mut history: History<&str, u64> = History::new();
//! history.invoke(ClientId(1), "y", Call::Write { value: 7 }, 0); // never completed
//! history.record(ClientId(2), "y", Call::Read, 5, Some((Outcome::Read { value: Some(7) }, 6)))?;
//! history.record(ClientId(3), "z", Call::Read, 5, Some((Outcome::Read { value: None }, 6)))?;
//! assert!(check(&history, Budget::default()).verdict.is_linearizable());
//! # Ok::<(), kv_linearizability::Error>(())
//! ```

#![deny(missing_docs)]

mod check;
mod error;
mod history;
mod model;
mod search;
mod shrink;

pub use check::{Budget, Report, Stats, Verdict, Violation, check};
pub use error::Error;
pub use history::{
    Call, CasResult, ClientId, Completion, Expect, History, OpId, Operation, Outcome,
};
