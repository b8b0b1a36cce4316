//! The apply task: it owns the [`StateMachine`], applies committed entries in order,
//! answers the proposals waiting on them, and snapshots or restores the application.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::warn;

use crate::Error;
use crate::handle::Responder;
use crate::metrics::MetricsSink;
use crate::reads::ReadResponder;
use crate::state_machine::StateMachine;
use crate::storage::ErrorSource;
use raft_core::Snapshot;
use raft_core::{Entry, LogId, LogIndex, NodeId};

/// Work for the apply task, in log order.
pub(crate) enum ApplyJob<R> {
    /// Apply committed entries; `waiters` pairs an offset into `entries` (ascending) with
    /// the proposer waiting for that entry's response.
    Apply { entries: Vec<Entry>, waiters: Vec<(usize, Responder<R>)> },
    /// Replace the application's state with a snapshot from the leader.
    Restore(Snapshot),
    /// Snapshot the application as it stands after everything queued before (captured
    /// then; serialized on a task of its own).
    BuildSnapshot,
    /// Answer a confirmed read once the application has applied up to `read_index`.
    Read { read_index: LogIndex, responder: ReadResponder },
}

/// A snapshot the application built, for the node task to compact the log with.
#[derive(Debug)]
pub(crate) struct BuiltSnapshot {
    /// The last entry the snapshot reflects.
    pub(crate) last_log_id: LogId,
    pub(crate) data: Result<Bytes, Error>,
}

/// A state machine broke its contract.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ContractViolation(String);

/// The apply task's state.
pub(crate) struct ApplyTask<A: StateMachine, M> {
    pub(crate) node: NodeId,
    pub(crate) state_machine: A,
    pub(crate) jobs: mpsc::Receiver<ApplyJob<<A as StateMachine>::Response>>,
    /// At most one snapshot is built at a time, so this never waits.
    pub(crate) built: mpsc::Sender<BuiltSnapshot>,
    pub(crate) metrics: Arc<M>,
    /// The last entry the application reflects.
    pub(crate) last_applied: LogId,
    /// Confirmed reads waiting for the application to reach their index. Bounded by the
    /// node task's limit on pending reads.
    pub(crate) reads: Vec<(LogIndex, ReadResponder)>,
}

impl<A: StateMachine, M: MetricsSink> ApplyTask<A, M> {
    /// Runs until the node task drops its end of the queue (after applying everything
    /// queued), or until the state machine fails fatally.
    ///
    /// # Errors
    ///
    /// The state machine's restore error, or [`Error::StateMachine`] when it breaks its
    /// contract; the node task then stops the node.
    pub(crate) async fn run(mut self) -> Result<(), Error> {
        while let Some(job) = self.jobs.recv().await {
            match job {
                ApplyJob::Apply { entries, waiters } => self.apply(&entries, waiters)?,
                ApplyJob::Restore(snapshot) => self.restore(&snapshot).await?,
                ApplyJob::BuildSnapshot => self.build_snapshot(),
                ApplyJob::Read { read_index, responder } => {
                    self.reads.push((read_index, responder));
                }
            }
            if !self.reads.is_empty() {
                self.serve_reads();
            }
        }
        Ok(())
    }

    fn apply(
        &mut self,
        entries: &[Entry],
        waiters: Vec<(usize, Responder<A::Response>)>,
    ) -> Result<(), Error> {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(());
        };
        debug_assert!(first.log_id.index > self.last_applied.index, "entries apply once");
        let responses = self.state_machine.apply(entries);
        if responses.len() != entries.len() {
            return Err(Error::StateMachine {
                operation: format!("applying entries {}..={}", first.log_id, last.log_id),
                source: ErrorSource::new(ContractViolation(format!(
                    "it returned {} responses for {} entries",
                    responses.len(),
                    entries.len()
                ))),
            });
        }
        self.last_applied = last.log_id;
        let mut waiters = waiters.into_iter().peekable();
        for (offset, response) in responses.into_iter().enumerate() {
            if waiters.peek().is_none() {
                break;
            }
            if let Some((_, responder)) = waiters.next_if(|(wanted, _)| *wanted == offset) {
                // The proposer may have given up waiting; nothing to do then.
                let _ = responder.send(Ok(response));
            }
        }
        Ok(())
    }

    /// Answers the reads whose index the application has reached.
    fn serve_reads(&mut self) {
        let applied_index = self.last_applied.index;
        let mut index = 0;
        while index < self.reads.len() {
            if self.reads[index].0 <= applied_index {
                let (read_index, responder) = self.reads.swap_remove(index);
                let _ = responder.send(Ok(read_index));
            } else {
                index += 1;
            }
        }
    }

    async fn restore(&mut self, snapshot: &Snapshot) -> Result<(), Error> {
        let started = Instant::now();
        self.state_machine.restore(snapshot).await?;
        self.last_applied = snapshot.meta.last_log_id;
        let bytes = snapshot.data.len() as u64;
        self.metrics.snapshot_installed(self.node, self.last_applied, bytes, started.elapsed());
        Ok(())
    }

    /// Captures the application's state now and serializes it on a task of its own, so
    /// entries keep applying (and proposers keep getting answers) meanwhile.
    fn build_snapshot(&mut self) {
        let started = Instant::now();
        let serialize = self.state_machine.snapshot();
        let last_log_id = self.last_applied;
        let (node, metrics, built) = (self.node, Arc::clone(&self.metrics), self.built.clone());
        tokio::spawn(async move {
            let data = serialize.await;
            match &data {
                Ok(bytes) => {
                    let size = bytes.len() as u64;
                    metrics.snapshot_built(node, last_log_id, size, started.elapsed());
                }
                Err(error) => warn!(%error, "the state machine failed to snapshot; will retry"),
            }
            // The node task asks for one snapshot at a time, so there is always room; if it
            // stopped, nobody needs the snapshot.
            let _ = built.try_send(BuiltSnapshot { last_log_id, data });
        });
    }
}
