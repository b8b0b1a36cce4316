//! The application the log drives.

use std::future::Future;

use bytes::Bytes;

use crate::Error;
use raft_core::Entry;
use raft_core::Snapshot;

/// The replicated application: it applies committed entries in log order, and can save its
/// state as a snapshot and restore from one.
///
/// The driver owns it on a task of its own, so a slow `apply` never holds up heartbeats,
/// and serializes snapshots on yet another, so a large snapshot never holds up applies. It
/// is rebuilt at every start: from the latest stored snapshot, then from the log entries
/// after it.
pub trait StateMachine: Send + 'static {
    /// What applying one entry answers; the proposer of a command receives it.
    type Response: Send + 'static;

    /// Applies committed entries, in log order, and returns one response per entry.
    ///
    /// Entries include the leader's `Empty` entries and `Membership` entries, so the
    /// application sees every index; answer them with whatever the application uses for
    /// "nothing".
    ///
    /// # Correctness
    ///
    /// - Deterministic: the same entries from the same state give the same state on every
    ///   node.
    /// - Exactly `entries.len()` responses, in order; anything else stops the node.
    fn apply(&mut self, entries: &[Entry]) -> Vec<Self::Response>;

    /// Captures the application's state as it stands after the last applied entry, and
    /// returns a future that serializes that captured state.
    ///
    /// The capture happens in this call; the returned future runs on a task of its own
    /// while later entries apply, so it must own what it serializes (a copy, or a frozen
    /// view) and never see those later entries. Keep the call itself cheap, since applies
    /// wait for it, and put heavy serialization in the future (on a blocking thread if it
    /// is long: `tokio::task::spawn_blocking`).
    ///
    /// # Errors
    ///
    /// Any error (typically [`Error::StateMachine`]); the driver logs it and keeps the log
    /// uncompacted, trying again later.
    fn snapshot(&mut self) -> impl Future<Output = Result<Bytes, Error>> + Send + 'static;

    /// Replaces the application's state with `snapshot`'s (a follower that fell behind the
    /// leader's compacted log, or a node starting from its stored snapshot).
    ///
    /// # Errors
    ///
    /// Any error (typically [`Error::StateMachine`]) stops the node: its state is unknown.
    ///
    /// # Correctness
    ///
    /// Afterwards the state is exactly the one `snapshot` was taken from, with nothing
    /// of the previous state left over.
    fn restore(&mut self, snapshot: &Snapshot) -> impl Future<Output = Result<(), Error>> + Send;
}
