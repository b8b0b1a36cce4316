//! The persistence task: it owns the [`LogStore`], makes each `Ready`'s write durable in
//! order (merging queued ones into one write: group commit), sends the messages that
//! waited for it, and reports progress to the node task.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Mutex, mpsc, watch};

use crate::Error;
use crate::metrics::MetricsSink;
use crate::storage::LogStore;
use crate::transport::MessageSender;
use raft_core::Snapshot;
use raft_core::{AppendResult, LogIndex, Message, MessageBody, Term};
use raft_core::{Entry, HardState, LogId, NodeId};

/// One `Ready`'s durable work, numbered in the order the node task handed it out.
#[derive(Debug, Default)]
pub(crate) struct PersistJob {
    pub(crate) sequence: u64,
    /// Stored first (a snapshot from the leader, or our own after compaction).
    pub(crate) snapshot: Option<Snapshot>,
    pub(crate) hard_state: Option<HardState>,
    pub(crate) entries: Vec<Entry>,
    /// Sent once everything up to this job is durable.
    pub(crate) messages: Vec<Message>,
}

/// What the persistence task has made durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PersistProgress {
    /// Every job up to this sequence number is durable.
    pub(crate) sequence: u64,
    /// The last entry of the latest write that had entries: report it to `on_persisted`.
    pub(crate) last_log_id: Option<LogId>,
}

impl PersistJob {
    /// Adds a later job that has no snapshot: its hard state replaces ours, and its entries
    /// overwrite ours from their first index, exactly as two writes in a row would have left
    /// the log. Its messages follow ours (they promise a later write, which stays durable).
    pub(crate) fn merge(&mut self, job: PersistJob) {
        debug_assert!(job.snapshot.is_none(), "a snapshot starts a write of its own");
        debug_assert!(job.sequence > self.sequence, "jobs arrive in order");
        self.sequence = job.sequence;
        if job.hard_state.is_some() {
            self.hard_state = job.hard_state;
        }
        if let Some(first) = job.entries.first() {
            let first_index = first.log_id.index;
            let keep = self.entries.partition_point(|entry| entry.log_id.index < first_index);
            debug_assert!(
                self.entries.last().is_none_or(|last| first_index <= last.log_id.index.next()),
                "a node hands out contiguous entries"
            );
            self.entries.truncate(keep);
            if self.entries.is_empty() {
                self.entries = job.entries;
            } else {
                self.entries.extend(job.entries);
            }
        }
        if self.messages.is_empty() {
            self.messages = job.messages;
        } else {
            self.messages.extend(job.messages);
        }
    }
}

/// Several consecutive jobs merged into one durable write.
#[derive(Debug, Default)]
struct Write {
    job: PersistJob,
    jobs: usize,
}

impl Write {
    /// Adds a later job (see [`PersistJob::merge`]).
    fn merge(&mut self, job: PersistJob) {
        self.job.merge(job);
        self.jobs += 1;
    }
}

/// The persistence task's state.
pub(crate) struct PersistTask<S, P, M> {
    pub(crate) node: NodeId,
    /// Shared with the node task, which writes a follower's job itself while this task is
    /// idle (see `RuntimeConfig::follower_persist_inline`). Locked for one write at a
    /// time, and released before progress is reported, so the node task, which writes only
    /// once every job it handed out is reported durable, finds it free.
    pub(crate) store: Arc<Mutex<S>>,
    pub(crate) jobs: mpsc::Receiver<PersistJob>,
    pub(crate) progress: watch::Sender<PersistProgress>,
    pub(crate) sender: P,
    pub(crate) metrics: Arc<M>,
    pub(crate) batch_max: usize,
    /// A job taken while gathering that had to start a write of its own.
    pub(crate) carried: Option<PersistJob>,
    pub(crate) last_log_id: Option<LogId>,
}

impl<S: LogStore, P: MessageSender, M: MetricsSink> PersistTask<S, P, M> {
    /// Runs until the node task drops its end of the queue (after writing everything
    /// queued), or until the store fails.
    ///
    /// # Errors
    ///
    /// The store's error; the node task then stops the node.
    pub(crate) async fn run(mut self) -> Result<(), Error> {
        loop {
            let next = match self.carried.take() {
                Some(job) => Some(job),
                None => self.jobs.recv().await,
            };
            let Some(mut first) = next else {
                return Ok(());
            };
            if let Some(snapshot) = first.snapshot.take() {
                self.store_snapshot(snapshot).await?;
            }
            let mut write = Write::default();
            write.merge(first);
            self.gather(&mut write);
            self.write(write).await?;
        }
    }

    /// Takes the jobs already queued into `write`, up to the batch maximum.
    fn gather(&mut self, write: &mut Write) {
        while write.jobs < self.batch_max {
            let Ok(job) = self.jobs.try_recv() else {
                return;
            };
            if job.snapshot.is_some() {
                self.carried = Some(job);
                return;
            }
            write.merge(job);
        }
    }

    async fn store_snapshot(&mut self, snapshot: Snapshot) -> Result<(), Error> {
        let bytes = snapshot.data.len() as u64;
        let started = Instant::now();
        self.store.lock().await.store_snapshot(snapshot).await?;
        self.metrics.persisted(self.node, 0, bytes, started.elapsed());
        Ok(())
    }

    async fn write(&mut self, write: Write) -> Result<(), Error> {
        let PersistJob { sequence, hard_state, entries, messages, .. } = write.job;
        if let Some(last) = entries.last() {
            self.last_log_id = Some(last.log_id);
        }
        let mut store = self.store.lock().await;
        persist_measured(&mut *store, self.node, &*self.metrics, hard_state, entries).await?;
        drop(store);
        // The messages promise this write: they may leave now, and go before the progress
        // report because a follower's acknowledgement is on the leader's commit path.
        for message in coalesce_acknowledgements(messages) {
            let _ = self.sender.send(message);
        }
        self.progress.send_replace(PersistProgress { sequence, last_log_id: self.last_log_id });
        Ok(())
    }
}

/// Writes `hard_state` and `entries` durably, if there is anything to write, and reports
/// the write to `metrics`: the persistence task's writes and a follower's on its node task.
/// Returns whether there was anything to write.
pub(crate) async fn persist_measured<S: LogStore, M: MetricsSink>(
    store: &mut S,
    node: NodeId,
    metrics: &M,
    hard_state: Option<HardState>,
    entries: Vec<Entry>,
) -> Result<bool, Error> {
    if hard_state.is_none() && entries.is_empty() {
        return Ok(false);
    }
    let count = entries.len() as u64;
    let bytes = entries.iter().map(Entry::size_bytes).sum();
    let started = Instant::now();
    store.persist(hard_state, entries).await?;
    metrics.persisted(node, count, bytes, started.elapsed());
    Ok(true)
}

/// Drops every successful append acknowledgement that a later one in `messages`, to the
/// same node in the same term, supersedes: after a merged write one answer per leader says
/// how far the log now matches, instead of one per merged append. (The leader keeps the
/// highest match index it hears, so the dropped answers told it nothing the last one does
/// not.) Everything else, rejections and heartbeat answers included, stays, in order.
pub(crate) fn coalesce_acknowledgements(mut messages: Vec<Message>) -> Vec<Message> {
    let success_to = |message: &Message| match message.body {
        MessageBody::AppendResponse { result: AppendResult::Success { match_index } } => {
            Some((message.to, message.term, match_index))
        }
        _ => None,
    };
    let successes = messages.iter().filter(|message| success_to(message).is_some()).count();
    if successes < 2 {
        return messages;
    }
    // The highest match index per (node, term), then keep one success carrying it. A
    // duplicated or reordered append can be answered after a later one, lower: keeping the
    // highest, not the last, loses nothing either way.
    let mut highest: Vec<(NodeId, Term, LogIndex)> = Vec::new();
    for (to, term, match_index) in messages.iter().filter_map(success_to) {
        match highest.iter_mut().find(|(node, seen, _)| *node == to && *seen == term) {
            Some((_, _, best)) => *best = (*best).max(match_index),
            None => highest.push((to, term, match_index)),
        }
    }
    let mut keep = vec![true; messages.len()];
    for (position, message) in messages.iter().enumerate() {
        let Some((to, term, match_index)) = success_to(message) else {
            continue;
        };
        let slot = highest.iter_mut().find(|(node, seen, _)| *node == to && *seen == term);
        match slot {
            // The first success carrying the highest index stays; later ones with it go.
            Some((_, _, best)) if *best == match_index => *best = LogIndex(u64::MAX),
            _ => keep[position] = false,
        }
    }
    let mut position = 0;
    messages.retain(|_| {
        let retained = keep[position];
        position += 1;
        retained
    });
    messages
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{EntryPayload, LogIndex, NodeId, Term};

    fn entry(term: u64, index: u64) -> Entry {
        Entry { log_id: LogId::new(Term(term), LogIndex(index)), payload: EntryPayload::Empty }
    }

    fn job(sequence: u64, hard_term: Option<u64>, entries: Vec<Entry>) -> PersistJob {
        PersistJob {
            sequence,
            snapshot: None,
            hard_state: hard_term.map(|term| HardState {
                term: Term(term),
                voted_for: Some(NodeId(1)),
                commit_index: LogIndex::ZERO,
            }),
            entries,
            messages: Vec::new(),
        }
    }

    #[test]
    fn merged_writes_leave_the_log_as_separate_writes_would() {
        let mut write = Write::default();
        write.merge(job(1, Some(1), vec![entry(1, 1), entry(1, 2), entry(1, 3)]));
        write.merge(job(2, None, vec![entry(1, 4)]));
        // A newer leader overwrote entries 3 and 4 before they were written.
        write.merge(job(3, Some(2), vec![entry(2, 3)]));
        write.merge(job(4, None, Vec::new()));
        assert_eq!(write.job.sequence, 4);
        assert_eq!(write.jobs, 4);
        assert_eq!(write.job.entries, vec![entry(1, 1), entry(1, 2), entry(2, 3)]);
        assert_eq!(write.job.hard_state.map(|hard_state| hard_state.term), Some(Term(2)));
    }

    fn ack(to: u64, term: u64, match_index: u64) -> Message {
        let result = AppendResult::Success { match_index: LogIndex(match_index) };
        Message {
            from: NodeId(9),
            to: NodeId(to),
            term: Term(term),
            body: MessageBody::AppendResponse { result },
        }
    }

    #[test]
    fn one_acknowledgement_per_leader_and_term_survives_a_merged_write() {
        let heartbeat = Message {
            from: NodeId(9),
            to: NodeId(1),
            term: Term(2),
            body: MessageBody::HeartbeatResponse { round: 4 },
        };
        let reject = Message {
            from: NodeId(9),
            to: NodeId(1),
            term: Term(2),
            body: MessageBody::AppendResponse {
                result: AppendResult::Reject {
                    rejected_index: LogIndex(3),
                    hint: raft_core::ConflictHint::LogTooShort { last_index: LogIndex(2) },
                },
            },
        };
        let messages = vec![
            ack(1, 2, 5),
            heartbeat.clone(),
            ack(1, 2, 7),
            reject.clone(),
            ack(3, 3, 6),
            ack(1, 2, 9),
        ];
        let coalesced = coalesce_acknowledgements(messages);
        assert_eq!(coalesced, vec![heartbeat, reject, ack(3, 3, 6), ack(1, 2, 9)]);
        let single = vec![ack(1, 2, 5)];
        assert_eq!(coalesce_acknowledgements(single.clone()), single);
        // A late answer to a duplicated older append is lower: the highest survives.
        let reordered = vec![ack(1, 2, 9), ack(1, 2, 5), ack(1, 2, 9)];
        assert_eq!(coalesce_acknowledgements(reordered), vec![ack(1, 2, 9)]);
    }

    #[test]
    fn a_merge_may_replace_every_gathered_entry() {
        let mut write = Write::default();
        write.merge(job(1, None, vec![entry(1, 5), entry(1, 6)]));
        write.merge(job(2, None, vec![entry(2, 4)]));
        assert_eq!(write.job.entries, vec![entry(2, 4)]);
    }
}
