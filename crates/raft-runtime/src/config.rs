//! The driver's configuration: how long a tick is, the node's seed, and every queue's bound.

use std::num::NonZeroUsize;
use std::time::Duration;

use crate::Error;

/// How the driver runs one node. The protocol's own settings (in ticks) are in
/// [`raft_core::Config`]; this is the only place that knows milliseconds.
///
/// `Default` is safe for production: a 100 ms tick gives the default 10-tick election
/// timeout a 1–2 s range, and every queue is bounded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// The real time one [`raft_core::Node::tick`] stands for. At least 1 ms (the timer's
    /// resolution).
    pub tick: Duration,
    /// Seeds the node's election-timeout randomness. The driver mixes the node's id into
    /// it, so a cluster may share one seed; pass OS randomness in production and a fixed
    /// value to make a run repeatable.
    pub seed: u64,
    /// The most client requests (proposals, status queries) queued for the node task before
    /// callers wait.
    pub command_queue_max: NonZeroUsize,
    /// The most `Ready` writes queued for the persistence task. When the disk falls this far
    /// behind, the node task holds later writes back (merged into one; at most
    /// `proposals_pending_max` entries, beyond which new proposals are refused with
    /// [`Error::TooManyPendingProposals`]); it never waits for the disk itself, so it keeps
    /// ticking, heartbeating and answering.
    pub persist_queue_max: NonZeroUsize,
    /// The most queued writes the persistence task merges into one durable write (group
    /// commit).
    pub persist_batch_max: NonZeroUsize,
    /// The most batches of committed entries queued for the apply task before the node task
    /// waits (backpressure from a slow application).
    pub apply_queue_max: NonZeroUsize,
    /// The most proposals a leader keeps waiting for their entries to apply, and the most
    /// entries it holds back while its write queue is full; more are refused with
    /// [`Error::TooManyPendingProposals`] (a leader that cannot commit, for lack of a
    /// quorum, or whose disk stalls must not queue unbounded memory).
    pub proposals_pending_max: NonZeroUsize,
    /// The most inputs (messages and client requests) the node task takes before it asks
    /// the node for a `Ready`: large enough to batch a burst of proposals into one append,
    /// small enough that one burst does not delay the next heartbeat.
    pub input_batch_max: NonZeroUsize,
    /// Whether a follower writes on its node task, rather than handing the write to the
    /// persistence task, when that task has nothing left to write (every job handed to it
    /// is durable). The write is then one thread hop shorter each way: the acknowledgement
    /// leaves as soon as the sync returns, with no wake-up of the persistence thread before
    /// it nor of the node's runtime after it. Meanwhile the node task waits for the disk:
    /// what arrives queues up and is taken after it as one burst and one write. Under load
    /// a follower so writes everything on its node task, and it costs fewer thread
    /// switches per write. The price: a disk that stalls stalls the follower's node task
    /// for as long (no ticks, no heartbeat answers); a leader's never stalls, as it always
    /// hands its writes over (it sends its appends before its own write, and takes
    /// acknowledgements while it writes). Snapshots always go to the persistence task.
    pub follower_persist_inline: bool,
}

/// The default tick: with the default `election_ticks` of 10, elections time out after
/// 1–2 s, well above a LAN round trip and a disk sync.
const TICK_DEFAULT: Duration = Duration::from_millis(100);

/// The timer's resolution: a shorter tick would silently be rounded up.
const TICK_MIN: Duration = Duration::from_millis(1);

/// Default client queue: enough for thousands of concurrent callers to each have a request
/// waiting, while bounding memory if the node stalls.
const COMMAND_QUEUE_MAX_DEFAULT: NonZeroUsize = NonZeroUsize::new(4096).expect("non-zero");

/// Default write queue: a disk that falls this many `Ready`s behind stops the node task
/// from taking more work, instead of queueing unbounded memory.
const PERSIST_QUEUE_MAX_DEFAULT: NonZeroUsize = NonZeroUsize::new(256).expect("non-zero");

/// Default group-commit size: merging more than this saves little (one fsync already
/// covers them) and delays the acknowledgements of the first.
const PERSIST_BATCH_MAX_DEFAULT: NonZeroUsize = NonZeroUsize::new(64).expect("non-zero");

/// Default apply queue: as for writes, a bound on how far the application may lag.
const APPLY_QUEUE_MAX_DEFAULT: NonZeroUsize = NonZeroUsize::new(256).expect("non-zero");

/// Default pending-proposal bound: far more than any client population keeps in flight,
/// so it only bites when the leader cannot commit.
const PROPOSALS_PENDING_MAX_DEFAULT: NonZeroUsize = NonZeroUsize::new(65_536).expect("non-zero");

/// Default input batch: at a few hundred nanoseconds per input this is well under a
/// millisecond of work between two `Ready`s.
const INPUT_BATCH_MAX_DEFAULT: NonZeroUsize = NonZeroUsize::new(1024).expect("non-zero");

impl Default for RuntimeConfig {
    fn default() -> RuntimeConfig {
        RuntimeConfig {
            tick: TICK_DEFAULT,
            seed: 0,
            command_queue_max: COMMAND_QUEUE_MAX_DEFAULT,
            persist_queue_max: PERSIST_QUEUE_MAX_DEFAULT,
            persist_batch_max: PERSIST_BATCH_MAX_DEFAULT,
            apply_queue_max: APPLY_QUEUE_MAX_DEFAULT,
            proposals_pending_max: PROPOSALS_PENDING_MAX_DEFAULT,
            input_batch_max: INPUT_BATCH_MAX_DEFAULT,
            follower_persist_inline: true,
        }
    }
}

impl RuntimeConfig {
    /// Checks ranges. (Queue bounds are non-zero by type.)
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the field, its value and the rule it breaks.
    pub fn validate(&self) -> Result<(), Error> {
        if self.tick < TICK_MIN {
            return Err(Error::InvalidConfig {
                field: "tick",
                value: format!("{:?}", self.tick),
                rule: "must be at least 1 ms, the timer's resolution",
            });
        }
        Ok(())
    }

    /// The seed for node `id`'s PRNG: `seed` with the id mixed in, so nodes sharing one
    /// configuration still draw different election timeouts.
    pub(crate) fn seed_for(&self, id: raft_core::NodeId) -> u64 {
        // The 64-bit golden ratio spreads consecutive ids across the whole seed space.
        self.seed ^ id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::NodeId;

    #[test]
    fn default_runtime_config_is_valid() {
        RuntimeConfig::default().validate().unwrap();
    }

    #[test]
    fn sub_millisecond_tick_is_rejected() {
        let config = RuntimeConfig { tick: Duration::from_micros(500), ..RuntimeConfig::default() };
        let error = config.validate().unwrap_err();
        assert!(matches!(error, Error::InvalidConfig { field: "tick", .. }), "{error}");
        assert!(error.to_string().contains("1 ms"), "{error}");
    }

    #[test]
    fn nodes_sharing_a_seed_get_different_seeds() {
        let config = RuntimeConfig::default();
        assert_ne!(config.seed_for(NodeId(1)), config.seed_for(NodeId(2)));
    }
}
