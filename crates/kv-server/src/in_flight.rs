//! Writes being proposed, by session position, so that a client's retry of a write still
//! in flight waits for the original instead of adding a second log entry.
//!
//! The state machine would answer the duplicate entry with the original's response, so
//! attaching the retry to the pending proposal changes no answer; it only saves a log
//! entry, a round of replication and an apply per retry, which matters most exactly when
//! the cluster is slow and clients retry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use kv_client::protocol::{ServerError, Session};
use tokio::sync::oneshot;

/// What a proposal ended with, shared with the retries that waited for it.
pub(crate) type ProposalResult = Result<kv_store::Response, ServerError>;

/// The retries waiting for one write's result.
type Waiting = Vec<oneshot::Sender<ProposalResult>>;

/// The table of writes in flight on this node.
///
/// A write costs one insert and one removal under the lock and nothing more: a retry that
/// finds its write in flight leaves a channel to be answered on, and only then is one
/// made (retries are rare; every write is tracked).
#[derive(Debug)]
pub(crate) struct InFlightWrites {
    pending: Mutex<HashMap<Session, Waiting>>,
    /// The most writes tracked at once; more are proposed untracked.
    writes_max: usize,
}

/// A tracked proposal's row. Dropped unfinished (the proposer gave up), it removes the row
/// and with it the retries' channels, which then report the outcome unknown.
struct Row<'a> {
    table: &'a InFlightWrites,
    session: Session,
}

impl Row<'_> {
    /// Removes the row and answers the retries waiting on it.
    fn finish(self, result: &ProposalResult) {
        let waiting = self.table.lock().remove(&self.session);
        // Already removed; nothing leaks (the row is a reference and a `Copy` key).
        std::mem::forget(self);
        for retry in waiting.into_iter().flatten() {
            let _ = retry.send(result.clone());
        }
    }
}

impl Drop for Row<'_> {
    fn drop(&mut self) {
        self.table.lock().remove(&self.session);
    }
}

impl InFlightWrites {
    /// An empty table holding at most `writes_max` writes.
    pub(crate) fn new(writes_max: usize) -> InFlightWrites {
        InFlightWrites { pending: Mutex::new(HashMap::new()), writes_max }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Session, Waiting>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many writes are in flight.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Runs `propose` for `session`, unless a proposal for the same session position is
    /// already in flight: then waits for that one's result instead. With the table full,
    /// runs `propose` untracked (a retry then proposes again, which the session answers).
    ///
    /// # Errors
    ///
    /// `propose`'s error; [`ServerError::OutcomeUnknown`] when the original proposer went away without a
    /// result (retry: the session makes the retry safe).
    pub(crate) async fn run_once<F>(&self, session: Session, propose: F) -> ProposalResult
    where
        F: std::future::Future<Output = ProposalResult>,
    {
        let role = {
            let mut pending = self.lock();
            if let Some(waiting) = pending.get_mut(&session) {
                let (sender, receiver) = oneshot::channel();
                waiting.push(sender);
                Role::Retry(receiver)
            } else if pending.len() >= self.writes_max {
                Role::Untracked
            } else {
                pending.insert(session, Vec::new());
                Role::Original
            }
        };
        match role {
            Role::Original => {}
            Role::Untracked => return propose.await,
            Role::Retry(receiver) => {
                tracing::debug!(
                    client_id = session.client_id,
                    sequence = session.sequence,
                    "attached a retry to its write in flight"
                );
                return receiver.await.unwrap_or_else(|_| Err(gone()));
            }
        }
        let row = Row { table: self, session };
        let result = propose.await;
        row.finish(&result);
        result
    }
}

/// What a caller of [`InFlightWrites::run_once`] does.
enum Role {
    /// Proposes, and answers the retries that attach meanwhile.
    Original,
    /// Waits for the original's result.
    Retry(oneshot::Receiver<ProposalResult>),
    /// Proposes without sharing (the table is full).
    Untracked,
}

fn gone() -> ServerError {
    let reason = "the original of this retried write ended without a result".to_owned();
    ServerError::OutcomeUnknown { reason }
}

/// A shared table.
pub(crate) type SharedInFlightWrites = Arc<InFlightWrites>;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::atomic::{AtomicUsize, Ordering};

    use raft_core::LogIndex;
    use tokio::sync::Notify;

    use super::*;

    #[tokio::test]
    async fn a_retry_of_a_pending_write_waits_for_it_instead_of_proposing_again() {
        let table = Arc::new(InFlightWrites::new(8));
        let proposals = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Notify::new());
        let session = Session { client_id: 7, sequence: 3 };
        let propose = |proposals: Arc<AtomicUsize>, release: Arc<Notify>| async move {
            proposals.fetch_add(1, Ordering::SeqCst);
            release.notified().await;
            Ok(kv_store::Response::MemberAddressUpdated { index: LogIndex(4) })
        };
        let original = tokio::spawn({
            let (table, proposals, release) = (table.clone(), proposals.clone(), release.clone());
            async move { table.run_once(session, propose(proposals, release)).await }
        });
        while table.len() == 0 {
            tokio::task::yield_now().await;
        }
        let retry = tokio::spawn({
            let (table, proposals, release) = (table.clone(), proposals.clone(), release.clone());
            async move { table.run_once(session, propose(proposals, release)).await }
        });
        // The runtime runs on this thread: yielding lets the retry reach its wait.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        release.notify_waiters();
        let limit = std::time::Duration::from_secs(5);
        let first = tokio::time::timeout(limit, original).await.unwrap().unwrap();
        let second = tokio::time::timeout(limit, retry).await.expect("retry hung").unwrap();
        assert_eq!(first, second);
        assert_eq!(proposals.load(Ordering::SeqCst), 1, "the retry proposed again");
        assert_eq!(table.len(), 0);
    }

    #[tokio::test]
    async fn a_full_table_proposes_untracked() {
        let table = InFlightWrites::new(0);
        let session = Session { client_id: 1, sequence: 1 };
        let result = table.run_once(session, async { Ok(kv_store::Response::NoOp) }).await;
        assert_eq!(result, Ok(kv_store::Response::NoOp));
        assert_eq!(table.len(), 0);
    }

    #[tokio::test]
    async fn a_retry_learns_the_outcome_is_unknown_when_the_original_gives_up() {
        let table = Arc::new(InFlightWrites::new(8));
        let session = Session { client_id: 2, sequence: 9 };
        let original = tokio::spawn({
            let table = table.clone();
            async move { table.run_once(session, std::future::pending()).await }
        });
        while table.len() == 0 {
            tokio::task::yield_now().await;
        }
        let retry = tokio::spawn({
            let table = table.clone();
            async move { table.run_once(session, async { panic!("proposed twice") }).await }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        original.abort();
        let limit = std::time::Duration::from_secs(5);
        let answer = tokio::time::timeout(limit, retry).await.expect("retry hung").unwrap();
        assert!(matches!(answer, Err(ServerError::OutcomeUnknown { .. })), "{answer:?}");
        assert_eq!(table.len(), 0);
    }
}
