//! The node task: it owns the [`Node`], feeds it ticks, messages and client requests, and
//! hands each `Ready` out: messages to the transport, writes to the persistence task,
//! committed entries to the apply task.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing::{debug, error, warn};

use crate::Error;
use crate::apply::{ApplyJob, BuiltSnapshot};
use crate::config::RuntimeConfig;
use crate::handle::{Command, Responder, Status};
use crate::metrics::{AppendSummary, MetricsSink, Observer};
use crate::persist::{PersistJob, PersistProgress, coalesce_acknowledgements, persist_measured};
use crate::reads::PendingReads;
use crate::storage::{ErrorSource, LogStore, SnapshotWriter};
use crate::transport::{MessageSender, Transport};
use raft_core::Message;
use raft_core::Node;
use raft_core::Ready;
use raft_core::Snapshot;
use raft_core::{Entry, LogId, Role};

/// The node task's links to the persistence task.
pub(crate) struct PersistLink<S> {
    /// The store, when a follower writes on the node task while the persistence task is
    /// idle (`RuntimeConfig::follower_persist_inline`).
    pub(crate) inline: Option<Arc<tokio::sync::Mutex<S>>>,
    pub(crate) jobs: mpsc::Sender<PersistJob>,
    pub(crate) progress: watch::Receiver<PersistProgress>,
    /// The sequence number of the last job handed over.
    pub(crate) submitted: u64,
    /// The last entry reported to `on_persisted`.
    pub(crate) reported: Option<LogId>,
    /// Jobs the full queue could not take yet, oldest first, each a merge of consecutive
    /// jobs (a new one starts only at a snapshot), so a stalled disk costs the node task a
    /// few merged writes rather than its ticks: it never waits for the queue.
    pub(crate) backlog: VecDeque<PersistJob>,
    pub(crate) task: JoinHandle<Result<(), Error>>,
}

/// The node task's links to the apply task.
pub(crate) struct ApplyLink<R> {
    pub(crate) jobs: mpsc::Sender<ApplyJob<R>>,
    pub(crate) built: mpsc::Receiver<BuiltSnapshot>,
    /// A snapshot was asked for and is not stored yet (or written ahead, with `writer`).
    pub(crate) building: bool,
    /// Writes our own snapshots ahead of their switch (see `LogStore::snapshot_writer`).
    pub(crate) writer: Option<SnapshotWriter>,
    /// The snapshot being written ahead, while it is: the writer's outcome.
    pub(crate) written: Option<oneshot::Receiver<Result<Snapshot, Error>>>,
    /// No snapshot is asked for before this tick (after a failed one).
    pub(crate) retry_tick: u64,
    /// The handle asked for a snapshot now, whatever the log's size.
    pub(crate) requested: bool,
    pub(crate) task: JoinHandle<Result<(), Error>>,
}

/// A proposer waiting for its entry to be applied.
struct Waiter<R> {
    log_id: LogId,
    responder: Responder<R>,
}

/// What woke the node task.
enum Event<R> {
    Tick,
    Persisted,
    PersistEnded,
    SnapshotBuilt(BuiltSnapshot),
    /// The writer finished writing a snapshot ahead (`None`: it panicked).
    SnapshotWritten(Option<Result<Snapshot, Error>>),
    ApplyEnded,
    Message(Option<Message>),
    Command(Option<Command<R>>),
}

/// Why the node task stops.
enum Stop {
    /// Asked to, or every handle is gone.
    Requested,
    /// A fatal error (or the persistence or apply task ended, whose own result says why).
    Fatal(Option<Error>),
}

/// The node task.
pub(crate) struct Driver<S, T: Transport, R, M> {
    pub(crate) node: Node,
    pub(crate) transport: T,
    pub(crate) sender: T::Sender,
    pub(crate) commands: mpsc::Receiver<Command<R>>,
    pub(crate) persist: PersistLink<S>,
    pub(crate) apply: ApplyLink<R>,
    pub(crate) metrics: Arc<M>,
    pub(crate) tick: Duration,
    pub(crate) input_batch_max: usize,
    pub(crate) waiters_max: usize,
    waiters: VecDeque<Waiter<R>>,
    reads: PendingReads,
    observer: Observer,
    ticks: u64,
}

impl<S: LogStore, T: Transport, R: Send + 'static, M: MetricsSink> Driver<S, T, R, M> {
    pub(crate) fn new(
        node: Node,
        transport: T,
        commands: mpsc::Receiver<Command<R>>,
        persist: PersistLink<S>,
        apply: ApplyLink<R>,
        metrics: Arc<M>,
        runtime: &RuntimeConfig,
    ) -> Driver<S, T, R, M> {
        let observer = Observer::new(node.id());
        let sender = transport.sender();
        Driver {
            node,
            transport,
            sender,
            commands,
            persist,
            apply,
            metrics,
            tick: runtime.tick,
            input_batch_max: runtime.input_batch_max.get(),
            waiters_max: runtime.proposals_pending_max.get(),
            waiters: VecDeque::new(),
            reads: PendingReads::new(runtime.proposals_pending_max.get()),
            observer,
            ticks: 0,
        }
    }

    /// Runs the node until it is shut down or fails, then stops its helper tasks.
    ///
    /// # Errors
    ///
    /// The fatal error that stopped the node.
    pub(crate) async fn run(mut self) -> Result<(), Error> {
        let stop = self.run_loop().await;
        // A snapshot being written ahead is waited for, so that the store is free once the
        // node has stopped, and its switch is queued behind everything handed out (a
        // failed write changes nothing: the switch is simply not queued).
        if let Some(written) = self.apply.written.take() {
            if let Ok(Ok(snapshot)) = written.await {
                let _ =
                    self.submit(PersistJob { snapshot: Some(snapshot), ..PersistJob::default() });
            }
        }
        let Driver { persist, apply, node, waiters, .. } = self;
        let id = node.id();
        // Proposers still waiting learn the node stopped when their responders drop.
        drop(waiters);
        // Closing the queues lets both tasks finish what was handed to them, so a clean stop
        // loses no write the node already acknowledged.
        let PersistLink { jobs, mut backlog, task: persist_task, .. } = persist;
        while let Some(job) = backlog.pop_front() {
            if jobs.send(job).await.is_err() {
                break;
            }
        }
        drop(jobs);
        drop(apply.jobs);
        let persisted = persist_task.await.unwrap_or(Err(Error::NodeStopped { node: id }));
        let applied = apply.task.await.unwrap_or(Err(Error::NodeStopped { node: id }));
        let result = match stop {
            Stop::Requested => Ok(()),
            Stop::Fatal(Some(error)) => Err(error),
            Stop::Fatal(None) => Ok(()),
        };
        let result = result.and(persisted).and(applied);
        if let Err(error) = &result {
            error!(%error, "node stopped on a fatal error");
        }
        result
    }

    async fn run_loop(&mut self) -> Stop {
        let mut ticker = tokio::time::interval(self.tick);
        // Under load, late ticks are not replayed in a burst: a burst would time elections
        // out on a node that was merely busy.
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticker.reset();
        loop {
            let event = self.next_event(&mut ticker).await;
            if let Err(stop) = self.handle_event(event).await {
                return stop;
            }
            if let Err(stop) = self.drain_inputs() {
                return stop;
            }
            if let Err(stop) = self.process_ready().await {
                return stop;
            }
        }
    }

    async fn next_event(&mut self, ticker: &mut tokio::time::Interval) -> Event<R> {
        // Biased, in this order: ticks first so a flood of input cannot starve the election
        // timer; then durable progress, which unblocks commits; then inputs.
        tokio::select! {
            biased;
            _ = ticker.tick() => Event::Tick,
            changed = self.persist.progress.changed() => match changed {
                Ok(()) => Event::Persisted,
                Err(_) => Event::PersistEnded,
            },
            // Polled only while a snapshot is being built: every branch polled costs a waker
            // registration on each pass. Ticks check the apply task is alive meanwhile.
            built = self.apply.built.recv(), if self.apply.building => match built {
                Some(built) => Event::SnapshotBuilt(built),
                None => Event::ApplyEnded,
            },
            written = written(&mut self.apply.written), if self.apply.written.is_some() => {
                Event::SnapshotWritten(written)
            }
            message = self.transport.recv() => Event::Message(message),
            command = self.commands.recv() => Event::Command(command),
        }
    }

    async fn handle_event(&mut self, event: Event<R>) -> Result<(), Stop> {
        match event {
            Event::Tick => {
                if self.apply.task.is_finished() {
                    return Err(Stop::Fatal(None));
                }
                self.ticks += 1;
                self.node.tick();
                if !self.reads.is_empty() {
                    self.reads.expire(self.ticks, self.node.leader());
                }
            }
            Event::Persisted => self.on_persist_progress(),
            Event::PersistEnded | Event::ApplyEnded => return Err(Stop::Fatal(None)),
            Event::SnapshotBuilt(built) => self.on_snapshot_built(built).await?,
            Event::SnapshotWritten(written) => self.on_snapshot_written(written)?,
            Event::Message(Some(message)) => self.step(message),
            Event::Message(None) => {
                return Err(Stop::Fatal(Some(Error::TransportClosed { node: self.node.id() })));
            }
            Event::Command(Some(command)) => self.handle_command(command)?,
            Event::Command(None) => return Err(Stop::Requested),
        }
        Ok(())
    }

    /// Takes every input already queued, up to the batch maximum, so one `Ready` covers a
    /// whole burst (proposals then share one append and one write).
    fn drain_inputs(&mut self) -> Result<(), Stop> {
        let mut budget = self.input_batch_max;
        while budget > 0 {
            let Some(message) = self.transport.try_recv() else {
                break;
            };
            self.step(message);
            budget -= 1;
        }
        while budget > 0 {
            let Ok(command) = self.commands.try_recv() else {
                break;
            };
            self.handle_command(command)?;
            budget -= 1;
        }
        if self.persist.progress.has_changed().unwrap_or(false) {
            self.on_persist_progress();
        }
        Ok(())
    }

    fn step(&mut self, message: Message) {
        let last_index = self.node.last_log_id().index;
        self.observer.on_received(&*self.metrics, &message, last_index);
        if let Err(error) = self.node.step(message) {
            warn!(%error, "dropped a message");
        }
    }

    fn handle_command(&mut self, command: Command<R>) -> Result<(), Stop> {
        match command {
            Command::Propose { payload, responder } => {
                let proposed = self
                    .check_waiters_room()
                    .and_then(|()| self.node.propose(payload).map_err(Error::from));
                self.add_waiter(proposed, responder);
            }
            Command::ChangeMembership { change, responder } => {
                let proposed = self.check_waiters_room().and_then(|()| {
                    self.node.propose_membership_change(change).map_err(Error::from)
                });
                self.add_waiter(proposed, responder);
            }
            Command::TransferLeader { target, responder } => {
                let _ = responder.send(self.node.transfer_leader(target).map_err(Error::from));
            }
            Command::ReadIndex { responder } => {
                // Two election timeouts: a leader answers within a heartbeat round trip, and
                // a follower's forwarded request within one more.
                let expiry_tick = self.ticks + 2 * self.node.config().election_ticks;
                self.reads.register(&mut self.node, responder, expiry_tick);
            }
            Command::Status { responder } => {
                let _ = responder.send(self.status());
            }
            Command::Snapshot => {
                self.apply.requested = true;
            }
            Command::Shutdown => return Err(Stop::Requested),
        }
        Ok(())
    }

    fn status(&self) -> Status {
        Status {
            node: self.node.id(),
            role: self.node.role(),
            term: self.node.term(),
            leader: self.node.leader(),
            last_log_id: self.node.last_log_id(),
            commit_index: self.node.commit_index(),
            applied_index: self.node.applied_index(),
            first_index: self.node.first_index(),
            snapshot_last_log_id: self.node.snapshot().map_or(LogId::ZERO, |s| s.meta.last_log_id),
            snapshot_bytes: self.node.snapshot().map_or(0, |snapshot| snapshot.data.len() as u64),
            membership: self.node.membership().clone(),
        }
    }

    /// Whether a new proposal may be taken: the leader keeps a bounded number waiting, and
    /// holds back a bounded number of entries while its write queue is full.
    ///
    /// A full queue alone refuses nothing: it fills for a moment whenever the leader's disk
    /// is busy (storing a snapshot takes tens of milliseconds), and meanwhile the followers'
    /// acknowledgements commit and apply the entries, so proposers are answered. Refusing
    /// then turned every leader snapshot into a burst of "unavailable" answers.
    fn check_waiters_room(&self) -> Result<(), Error> {
        let held_back: usize = self.persist.backlog.iter().map(|job| job.entries.len()).sum();
        if self.waiters.len() >= self.waiters_max || held_back >= self.waiters_max {
            return Err(Error::TooManyPendingProposals { pending: self.waiters.len() });
        }
        Ok(())
    }

    fn add_waiter(&mut self, proposed: Result<LogId, Error>, responder: Responder<R>) {
        let log_id = match proposed {
            Ok(log_id) => log_id,
            Err(error) => {
                let _ = responder.send(Err(error));
                return;
            }
        };
        // Waiters at or after the new entry's index wait for entries this node's log no
        // longer holds (it lost leadership and won it back): they never committed.
        while self.waiters.back().is_some_and(|waiter| waiter.log_id.index >= log_id.index) {
            if let Some(waiter) = self.waiters.pop_back() {
                let leader_hint = self.node.leader();
                let _ =
                    waiter.responder.send(Err(raft_core::Error::NotLeader { leader_hint }.into()));
            }
        }
        self.waiters.push_back(Waiter { log_id, responder });
    }

    fn on_persist_progress(&mut self) {
        let progress = *self.persist.progress.borrow_and_update();
        if let Some(last) = progress.last_log_id {
            if self.persist.reported != Some(last) {
                self.persist.reported = Some(last);
                self.node.on_persisted(last);
            }
        }
    }

    /// Whether a job handed to the persistence task is not yet durable.
    fn persist_busy(&self) -> bool {
        self.persist.progress.borrow().sequence != self.persist.submitted
    }

    /// Makes `job` durable: on this task when it may (see `persist_inline`), else through
    /// the persistence task.
    async fn write(&mut self, job: PersistJob) -> Result<(), Stop> {
        let inline = self.persist.inline.as_ref().filter(|_| {
            job.snapshot.is_none()
                && self.node.role() == Role::Follower
                && self.persist.backlog.is_empty()
                && !self.persist_busy()
        });
        // Free unless the persistence task is between reporting its last job and letting
        // go of the store (it lets go first), or the node is stopping.
        let Some(store) = inline.and_then(|store| Arc::clone(store).try_lock_owned().ok()) else {
            return self.submit(job);
        };
        self.persist_inline(store, job).await
    }

    /// Writes a follower's job on the node task, every job handed out before it being
    /// durable already: the acknowledgements it promises leave right after the sync, and
    /// its durability is reported to the node at once, with no hop through the persistence
    /// thread either way.
    async fn persist_inline(
        &mut self,
        mut store: tokio::sync::OwnedMutexGuard<S>,
        job: PersistJob,
    ) -> Result<(), Stop> {
        let PersistJob { hard_state, entries, messages, .. } = job;
        let last = entries.last().map(|entry| entry.log_id);
        let id = self.node.id();
        let wrote = persist_measured(&mut *store, id, &*self.metrics, hard_state, entries)
            .await
            .map_err(|error| Stop::Fatal(Some(error)))?;
        drop(store);
        if wrote {
            self.metrics.persisted_inline(id);
        }
        self.send_now(coalesce_acknowledgements(messages));
        if let Some(last) = last {
            self.persist.reported = Some(last);
            self.node.on_persisted(last);
        }
        Ok(())
    }

    /// Hands a job to the persistence task, or to the backlog while the queue is full (or
    /// older jobs wait there): the node task never waits for the disk.
    fn submit(&mut self, mut job: PersistJob) -> Result<(), Stop> {
        self.persist.submitted += 1;
        job.sequence = self.persist.submitted;
        if let Some(last) = self.persist.backlog.back_mut() {
            if job.snapshot.is_none() {
                last.merge(job);
            } else {
                self.persist.backlog.push_back(job);
            }
            return Ok(());
        }
        match self.persist.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(job)) => {
                warn!(sequence = job.sequence, "the write queue is full; holding writes back");
                self.persist.backlog.push_back(job);
                Ok(())
            }
            // A closed queue means the persistence task failed; its result says why.
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Stop::Fatal(None)),
        }
    }

    /// Moves held-back jobs into the queue as it frees up, oldest first.
    fn flush_backlog(&mut self) -> Result<(), Stop> {
        while let Some(job) = self.persist.backlog.pop_front() {
            match self.persist.jobs.try_send(job) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(job)) => {
                    self.persist.backlog.push_front(job);
                    return Ok(());
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(Stop::Fatal(None)),
            }
        }
        Ok(())
    }

    async fn submit_apply(&mut self, job: ApplyJob<R>) -> Result<(), Stop> {
        self.apply.jobs.send(job).await.map_err(|_| Stop::Fatal(None))
    }

    async fn process_ready(&mut self) -> Result<(), Stop> {
        if !self.persist.backlog.is_empty() {
            self.flush_backlog()?;
        }
        if self.node.has_ready() {
            let ready = self.node.ready();
            self.handle_ready(ready).await?;
        }
        let log_length = self.node.log_entries().len() as u64;
        self.observer.on_log_length(&*self.metrics, log_length);
        self.maybe_build_snapshot().await
    }

    /// Does what a `Ready` asks, in the order its documentation gives.
    async fn handle_ready(&mut self, ready: Ready) -> Result<(), Stop> {
        let Ready {
            hard_state,
            entries_to_persist,
            messages_now,
            messages_after_persist,
            committed_entries,
            soft_state,
            read_states,
            snapshot_to_install,
            ..
        } = ready;
        if let Some(soft_state) = soft_state {
            self.observer.on_soft_state(&*self.metrics, soft_state);
        }
        self.send_now(messages_now);
        let writes =
            hard_state.is_some() || !entries_to_persist.is_empty() || snapshot_to_install.is_some();
        if writes || (!messages_after_persist.is_empty() && self.persist_busy()) {
            let job = PersistJob {
                sequence: 0,
                snapshot: snapshot_to_install.clone(),
                hard_state,
                entries: entries_to_persist,
                messages: messages_after_persist,
            };
            self.write(job).await?;
        } else {
            // Nothing is being written, so what these promise is already durable.
            self.send_now(messages_after_persist);
        }
        if let Some(snapshot) = snapshot_to_install {
            self.submit_apply(ApplyJob::Restore(snapshot)).await?;
        }
        if !committed_entries.is_empty() {
            let waiters = self.take_waiters(&committed_entries);
            self.submit_apply(ApplyJob::Apply { entries: committed_entries, waiters }).await?;
        }
        for read_state in read_states {
            // After this Ready's entries: the read waits for the application to reach its
            // index, and those entries may be what gets it there.
            if let Some(responder) = self.reads.confirmed(read_state) {
                let read_index = read_state.read_index;
                self.submit_apply(ApplyJob::Read { read_index, responder }).await?;
            }
        }
        if let Some(soft_state) = soft_state.filter(|_| !self.reads.is_empty()) {
            // After the confirmations above, which stay valid: each was confirmed by a
            // quorum after its read began.
            self.reads.fail_all(soft_state.leader);
        }
        if self.node.role() != Role::Leader && !self.waiters.is_empty() {
            self.fail_waiters();
        }
        Ok(())
    }

    fn send_now(&mut self, messages: Vec<Message>) {
        if messages.is_empty() {
            return;
        }
        let now = Instant::now();
        for message in messages {
            let append = AppendSummary::of(&message);
            let delivery = self.sender.send(message);
            if let Some(append) = append {
                self.observer.on_append_sent(&*self.metrics, append, delivery, now);
            }
        }
    }

    /// Pairs the waiters of `committed` entries with their position in it. A waiter whose
    /// index now holds another entry is told its entry did not commit.
    fn take_waiters(&mut self, committed: &[Entry]) -> Vec<(usize, Responder<R>)> {
        let (Some(first), Some(last)) = (committed.first(), committed.last()) else {
            return Vec::new();
        };
        let (first_index, last_index) = (first.log_id.index, last.log_id.index);
        let mut matched = Vec::new();
        while self.waiters.front().is_some_and(|waiter| waiter.log_id.index <= last_index) {
            let Some(waiter) = self.waiters.pop_front() else {
                break;
            };
            let index = waiter.log_id.index;
            let offset = usize::try_from(index.distance_from(first_index)).unwrap_or(usize::MAX);
            let outcome = if index < first_index {
                // Applied inside a snapshot from the leader: committed or not, we cannot
                // tell from here.
                Err(Error::ProposalOutcomeUnknown {
                    log_id: waiter.log_id,
                    leader_hint: self.node.leader(),
                })
            } else if committed.get(offset).is_some_and(|entry| entry.log_id == waiter.log_id) {
                matched.push((offset, waiter.responder));
                continue;
            } else {
                Err(raft_core::Error::NotLeader { leader_hint: self.node.leader() }.into())
            };
            let _ = waiter.responder.send(outcome);
        }
        matched
    }

    /// This node is no longer the leader: its waiting proposals may commit under the next
    /// leader or be overwritten, and it cannot tell which soon, so it says so.
    fn fail_waiters(&mut self) {
        let leader_hint = self.node.leader();
        for waiter in self.waiters.drain(..) {
            let error = Error::ProposalOutcomeUnknown { log_id: waiter.log_id, leader_hint };
            let _ = waiter.responder.send(Err(error));
        }
    }

    async fn maybe_build_snapshot(&mut self) -> Result<(), Stop> {
        let due = self.apply.requested || self.node.snapshot_due();
        if self.apply.building || self.ticks < self.apply.retry_tick || !due {
            return Ok(());
        }
        self.apply.requested = false;
        self.apply.building = true;
        self.submit_apply(ApplyJob::BuildSnapshot).await
    }

    async fn on_snapshot_built(&mut self, built: BuiltSnapshot) -> Result<(), Stop> {
        let data = match built.data {
            Ok(data) => data,
            Err(_) => {
                // Logged by the apply task; try again after an election timeout's worth of
                // ticks rather than at once, so a broken snapshot does not spin.
                self.apply.building = false;
                self.apply.retry_tick = self.ticks + self.node.config().election_ticks;
                return Ok(());
            }
        };
        let index = built.last_log_id.index;
        if let Err(error) = self.node.compact(index, data) {
            // A snapshot from the leader overtook ours; nothing to do.
            self.apply.building = false;
            debug!(%error, "discarded the application's snapshot");
            return Ok(());
        }
        let Some(snapshot) = self.node.snapshot().cloned() else {
            self.apply.building = false;
            return Ok(());
        };
        let Some(writer) = self.apply.writer.clone() else {
            self.apply.building = false;
            return self.submit(PersistJob { snapshot: Some(snapshot), ..PersistJob::default() });
        };
        // Written off the persistence task, which goes on writing the log meanwhile; the
        // switch is queued when the file is durable. Until then `building` holds the next
        // snapshot back, and a snapshot from the leader may overtake this one (the store
        // then ignores the older switch).
        let (done, written) = oneshot::channel();
        tokio::task::spawn_blocking(move || {
            let outcome = writer.write(&snapshot).map(|()| snapshot);
            let _ = done.send(outcome);
        });
        self.apply.written = Some(written);
        Ok(())
    }

    /// Queues the switch to a snapshot written ahead; a failed write stops the node, like
    /// any failed store call.
    fn on_snapshot_written(
        &mut self,
        written: Option<Result<Snapshot, Error>>,
    ) -> Result<(), Stop> {
        self.apply.written = None;
        self.apply.building = false;
        match written {
            Some(Ok(snapshot)) => {
                self.submit(PersistJob { snapshot: Some(snapshot), ..PersistJob::default() })
            }
            Some(Err(error)) => Err(Stop::Fatal(Some(error))),
            None => Err(Stop::Fatal(Some(Error::Storage {
                operation: "writing a snapshot ahead of its switch".to_owned(),
                source: ErrorSource::new(WriterPanicked),
            }))),
        }
    }
}

/// The snapshot writer panicked on the blocking pool.
#[derive(Debug, thiserror::Error)]
#[error("the snapshot writer panicked")]
struct WriterPanicked;

/// The outcome of the snapshot being written ahead; pending forever without one (the
/// branch polling it is disabled then).
async fn written(
    slot: &mut Option<oneshot::Receiver<Result<Snapshot, Error>>>,
) -> Option<Result<Snapshot, Error>> {
    match slot {
        Some(receiver) => receiver.await.ok(),
        None => std::future::pending().await,
    }
}
