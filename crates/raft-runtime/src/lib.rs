//! `raft-runtime`: the async driver (tokio) that runs a `raft_core` [`Node`] against real
//! storage, a real network and a real application.
//!
//! `raft-core` is the consensus algorithm as a deterministic state machine with no I/O; this
//! crate is where the outside world meets it. It defines the three traits the other crates
//! implement ([`LogStore`]: `raft-storage`; [`Transport`]: `raft-net-quic`; [`StateMachine`]:
//! `kv-store`), with in-memory versions of the first two ([`MemLogStore`],
//! [`ChannelNetwork`]) for tests and benchmarks, and the [`MetricsSink`] it reports to.
//!
//! Three tasks per node, linked by bounded queues:
//!
//! ```text
//!   RaftHandle ──commands──┐
//!   Transport ──messages───┤
//!                          v
//!              node task (owns the Node) ──messages_now───────────────────> Transport
//!                 │                ^   │
//!  hard state,    │   last durable │   │ committed entries,
//!  entries,       │         LogId  │   │ waiting proposers
//!  messages_after_persist          │   v
//!                 v                │  apply task ──apply──> StateMachine
//!          persistence task ───────┘       └──responses──> proposers
//!            ├──one write per batch (group commit)──> LogStore
//!            └──messages_after_persist, once durable─────────────────────> Transport
//! ```
//!
//! The node task sends the leader's appends at once and hands the write to the persistence
//! task, so followers write while the leader does (Raft dissertation §10.2.1) and the node
//! keeps stepping messages while the disk works. The persistence task runs on a thread of
//! its own, which the store's writes block on the disk: no hand-off to tokio's blocking
//! pool per write, and the acknowledgements a write promised leave the moment it is durable
//! rather than after the runtime gets round to the task. The persistence task merges every
//! write queued behind the one in progress into a single durable write (group commit),
//! sends the messages that promised it (votes, acknowledgements), and reports the last
//! durable entry back to the node task, which calls [`Node::on_persisted`]. A follower
//! whose persistence task is idle writes on the node task itself, and sends the messages
//! the write promised right after it (see [`RuntimeConfig::follower_persist_inline`]): on
//! a follower, whose node task has little else to do, that saves a thread wake-up each way
//! on the leader's commit path. The apply task applies committed entries and answers each
//! waiting proposer with the application's response, and each linearizable read
//! ([`RaftHandle::read_index`]) once it reached the read's index.
//!
//! The driver is the only code that reads clocks, sleeps and spawns for the node (`raft-core`
//! has no tokio dependency at all): time reaches the node as [`Node::tick`] calls every
//! [`RuntimeConfig::tick`].
//!
//! Storage errors are fatal: the node stops, and a failed write is never retried.
//!
//! # Example
//!
//! A single-node cluster with in-memory storage:
//!
//! ```
//! use bytes::Bytes;
//! use raft_core::{Config, Entry, Membership, NodeId, Snapshot};
//! use raft_runtime::{ChannelNetwork, Error, MemLogStore, Raft, RuntimeConfig, StateMachine};
//!
//! /// Counts the commands it applied.
//! struct Counter(u64);
//!
//! impl StateMachine for Counter {
//!     type Response = u64;
//!     fn apply(&mut self, entries: &[Entry]) -> Vec<u64> {
//!         entries.iter().map(|_| { self.0 += 1; self.0 }).collect()
//!     }
//!     // The state is captured now; the future may finish while later entries apply.
//!     fn snapshot(&mut self) -> impl Future<Output = Result<Bytes, Error>> + Send + 'static {
//!         std::future::ready(Ok(Bytes::copy_from_slice(&self.0.to_le_bytes())))
//!     }
//!     async fn restore(&mut self, snapshot: &Snapshot) -> Result<(), Error> {
//!         self.0 = snapshot.data.iter().rev().fold(0, |n, &b| n << 8 | u64::from(b));
//!         Ok(())
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let id = NodeId(1);
//! let store = MemLogStore::new(Membership::with_voters([id]));
//! let network = ChannelNetwork::new();
//! let tick = std::time::Duration::from_millis(5);
//! let runtime = RuntimeConfig { tick, ..RuntimeConfig::default() };
//! let handle = Raft::new(Config::new(id), runtime, store, network.transport(id), Counter(0))
//!     .start()
//!     .await?;
//! let response = loop {
//!     match handle.propose(Bytes::from_static(b"+1")).await {
//!         Ok(response) => break response,
//!         // Until the node has elected itself.
//!         Err(Error::Core(raft_core::Error::NotLeader { .. })) => {
//!             tokio::task::yield_now().await
//!         }
//!         Err(error) => return Err(error),
//!     }
//! };
//! assert!(response >= 1);
//! handle.shutdown().await?;
//! # Ok::<(), Error>(())
//! # }).unwrap();
//! ```

mod apply;
mod config;
mod driver;
mod error;
mod handle;
mod metrics;
mod persist;
mod reads;
mod state_machine;
mod storage;
mod transport;

use std::sync::Arc;

use raft_core::{Config, Node};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

pub use config::RuntimeConfig;
pub use error::Error;
pub use handle::{RaftHandle, Status};
pub use metrics::{AppendFailure, MetricsSink, NoopMetrics};
pub use state_machine::StateMachine;
pub use storage::{ErrorSource, LogStore, MemLogStore, SnapshotWriter};
pub use transport::{
    ChannelNetwork, ChannelSender, ChannelTransport, Delivery, MessageSender, Transport,
};

use apply::ApplyTask;
use driver::{ApplyLink, Driver, PersistLink};
use persist::{PersistProgress, PersistTask};

/// Runs `task` on a thread of its own, inside the current runtime's context (its timers,
/// and `tokio::spawn` from within, are the runtime's). For the persistence task: the
/// store's calls block that thread on the disk, so a write needs no hand-off to the
/// blocking pool and back, and its completion is not queued behind the runtime's other
/// tasks before its acknowledgements go out.
fn spawn_on_own_thread<F>(task: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let runtime = tokio::runtime::Handle::current();
    // A blocking-pool thread is kept for as long as the task runs, and its join handle
    // reports a panic like a task's would.
    tokio::task::spawn_blocking(move || runtime.block_on(task))
}

/// A node ready to start: its configuration and the three parts it drives.
///
/// `Raft::new(..).start().await` restores the node from its store and spawns its tasks;
/// the returned [`RaftHandle`] drives it.
#[derive(Debug)]
pub struct Raft<S, T, A, M = NoopMetrics> {
    config: Config,
    runtime: RuntimeConfig,
    log_store: S,
    transport: T,
    state_machine: A,
    metrics: Arc<M>,
}

impl<S: LogStore, T: Transport, A: StateMachine> Raft<S, T, A> {
    /// Gathers a node's parts; nothing runs until [`Raft::start`].
    pub fn new(
        config: Config,
        runtime: RuntimeConfig,
        log_store: S,
        transport: T,
        state_machine: A,
    ) -> Raft<S, T, A> {
        Raft {
            config,
            runtime,
            log_store,
            transport,
            state_machine,
            metrics: Arc::new(NoopMetrics),
        }
    }
}

impl<S: LogStore, T: Transport, A: StateMachine, M: MetricsSink> Raft<S, T, A, M> {
    /// The same node, reporting to `metrics`.
    pub fn with_metrics<N: MetricsSink>(self, metrics: Arc<N>) -> Raft<S, T, A, N> {
        let Raft { config, runtime, log_store, transport, state_machine, .. } = self;
        Raft { config, runtime, log_store, transport, state_machine, metrics }
    }

    /// Restores the node (the log store's state; the application from the stored snapshot,
    /// after which the node hands out the committed entries after it again) and spawns its
    /// tasks on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for the runtime configuration and [`Error::Core`] with
    /// [`raft_core::Error::InvalidConfig`] for the node's; the store's [`LogStore::load`]
    /// error; the application's [`StateMachine::restore`] error; the node's errors for an
    /// inconsistent stored state ([`raft_core::Error::InvalidRestoredState`],
    /// [`raft_core::Error::LogNotContiguous`]).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub async fn start(self) -> Result<RaftHandle<A::Response>, Error> {
        let Raft { config, runtime, mut log_store, transport, mut state_machine, metrics } = self;
        runtime.validate()?;
        config.validate()?;
        let id = config.id;
        let mut restored = log_store.load().await?;
        let snapshot_writer = log_store.snapshot_writer();
        let last_applied = restored.compacted();
        if let Some(snapshot) = &restored.snapshot {
            state_machine.restore(snapshot).await?;
        }
        // The application is rebuilt at every start: from the snapshot, then from the
        // committed entries the node hands out again.
        restored.applied_index = last_applied.index;
        let node = Node::new(config, restored, runtime.seed_for(id))?;
        let span = tracing::info_span!("node", id = %id);

        let (persist_jobs, persist_queue) = mpsc::channel(runtime.persist_queue_max.get());
        let (progress_sender, progress) = watch::channel(PersistProgress::default());
        let store = Arc::new(tokio::sync::Mutex::new(log_store));
        let persist_task = PersistTask {
            node: id,
            store: Arc::clone(&store),
            jobs: persist_queue,
            progress: progress_sender,
            sender: transport.sender(),
            metrics: Arc::clone(&metrics),
            batch_max: runtime.persist_batch_max.get(),
            carried: None,
            last_log_id: None,
        };
        let persist = PersistLink {
            inline: runtime.follower_persist_inline.then_some(store),
            jobs: persist_jobs,
            progress,
            submitted: 0,
            reported: None,
            backlog: std::collections::VecDeque::new(),
            task: spawn_on_own_thread(persist_task.run().instrument(span.clone())),
        };

        let (apply_jobs, apply_queue) = mpsc::channel(runtime.apply_queue_max.get());
        let (built_sender, built) = mpsc::channel(1);
        let apply_task = ApplyTask {
            node: id,
            state_machine,
            jobs: apply_queue,
            built: built_sender,
            metrics: Arc::clone(&metrics),
            last_applied,
            reads: Vec::new(),
        };
        let apply = ApplyLink {
            jobs: apply_jobs,
            built,
            building: false,
            writer: snapshot_writer,
            written: None,
            requested: false,
            retry_tick: 0,
            task: tokio::spawn(apply_task.run().instrument(span.clone())),
        };

        let (commands, command_queue) = mpsc::channel(runtime.command_queue_max.get());
        let driver = Driver::new(node, transport, command_queue, persist, apply, metrics, &runtime);
        let task = tokio::spawn(driver.run().instrument(span));
        Ok(RaftHandle::new(id, commands, task))
    }
}
