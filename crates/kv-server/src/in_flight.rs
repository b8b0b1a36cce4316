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
use tokio::sync::watch;

/// What a proposal ended with, shared with the retries that waited for it.
pub(crate) type ProposalResult = Result<kv_store::Response, ServerError>;

/// The table of writes in flight on this node.
#[derive(Debug)]
pub(crate) struct InFlightWrites {
    pending: Mutex<HashMap<Session, watch::Receiver<Option<ProposalResult>>>>,
    /// The most writes tracked at once; more are proposed untracked.
    writes_max: usize,
}

/// Removes a proposal's entry when the proposer finishes or gives up.
struct Entry<'a> {
    table: &'a InFlightWrites,
    session: Session,
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        self.table.lock().remove(&self.session);
    }
}

impl InFlightWrites {
    /// An empty table holding at most `writes_max` writes.
    pub(crate) fn new(writes_max: usize) -> InFlightWrites {
        InFlightWrites { pending: Mutex::new(HashMap::new()), writes_max }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<Session, watch::Receiver<Option<ProposalResult>>>> {
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
            if let Some(receiver) = pending.get(&session) {
                Role::Retry(receiver.clone())
            } else if pending.len() >= self.writes_max {
                Role::Untracked
            } else {
                let (sender, receiver) = watch::channel(None);
                pending.insert(session, receiver);
                Role::Original(sender)
            }
        };
        let sender = match role {
            Role::Original(sender) => sender,
            Role::Untracked => return propose.await,
            Role::Retry(mut receiver) => {
                tracing::debug!(
                    client_id = session.client_id,
                    sequence = session.sequence,
                    "attached a retry to its write in flight"
                );
                return match receiver.wait_for(Option::is_some).await {
                    Ok(result) => result.clone().unwrap_or_else(|| Err(gone())),
                    Err(_) => Err(gone()),
                };
            }
        };
        let entry = Entry { table: self, session };
        let result = propose.await;
        sender.send_replace(Some(result.clone()));
        drop(entry);
        result
    }
}

/// What a caller of [`InFlightWrites::run_once`] does.
enum Role {
    /// Proposes and shares the result.
    Original(watch::Sender<Option<ProposalResult>>),
    /// Waits for the original's result.
    Retry(watch::Receiver<Option<ProposalResult>>),
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
}
