//! Node configuration, validated before a node runs.

use std::num::NonZeroU64;

use crate::error::Error;
use crate::types::NodeId;

/// How a node behaves. Times are in ticks: only the driver knows how long a tick is.
///
/// `Default` is safe for production with a 100 ms tick... except `id`, which every node must
/// set to its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This node's id.
    pub id: NodeId,
    /// The shortest election timeout, in ticks. Each timeout is drawn uniformly from
    /// `[election_ticks, 2 * election_ticks)` so that candidates rarely split the vote.
    /// We suggest `10 * heartbeat_ticks` to avoid needless leader changes.
    pub election_ticks: u64,
    /// Ticks between leader heartbeats. Must be below `election_ticks`.
    pub heartbeat_ticks: u64,
    /// Run a PreVote round before starting an election, so that a node returning from a
    /// partition cannot depose a healthy leader by bumping the term (dissertation §9.6).
    pub pre_vote: bool,
    /// A leader that has not heard from a majority within `election_ticks` steps down, and
    /// followers that heard from a leader within `election_ticks` ignore vote requests
    /// (dissertation §6.2 and §4.2.3).
    pub check_quorum: bool,
    /// The most bytes of entries in one AppendEntries (at least one entry is always sent).
    pub append_bytes_max: NonZeroU64,
    /// The most AppendEntries in flight to one follower before the leader waits for
    /// acknowledgements (pipelining window).
    pub inflight_appends_max: NonZeroU64,
    /// The largest snapshot chunk in one InstallSnapshot message. Chunks go one at a time,
    /// so this bounds both the memory a transfer pins in flight and what a lost chunk costs.
    pub snapshot_chunk_bytes: NonZeroU64,
    /// When the applied part of the in-memory log passes this many bytes,
    /// [`crate::Node::snapshot_due`] says so and the application should snapshot. `None`:
    /// never (the log grows without bound).
    pub snapshot_log_bytes: Option<NonZeroU64>,
    /// How large the log must also have grown, as a percentage of the latest snapshot's
    /// size, before another snapshot is due (the Raft dissertation's "expansion factor",
    /// §5.1.3). A snapshot writes the whole state: taken whenever the log passes a
    /// threshold smaller than the state, it writes more than the log it frees (a 4 MB
    /// threshold under a 10 MB state writes 2.5 bytes of snapshot per byte of log). 100,
    /// the default, holds snapshot writes to about the log's own bytes; 0 leaves
    /// `snapshot_log_bytes` alone in charge.
    pub snapshot_log_percent_of_snapshot: u64,
    /// How linearizable reads are confirmed. `ReadIndex` (the default) costs a heartbeat
    /// round per batch of reads; `Lease` answers from the leader's lease with no round
    /// trip, trusting that ticks advance at about the same rate on every node.
    pub read_mode: ReadMode,
    /// With `ReadMode::Lease`: how many ticks after a heartbeat a majority answered the
    /// leader may still serve reads. Must be below `election_ticks`; the gap is the margin
    /// for tick rates that differ between nodes.
    pub lease_ticks: u64,
}

/// How a leader confirms it is still the leader before serving a read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadMode {
    /// Confirm with a heartbeat round to a majority (Raft dissertation §6.4). Safe whatever
    /// the clocks do.
    #[default]
    ReadIndex,
    /// Serve within a lease: a majority answered a heartbeat less than `lease_ticks` ago,
    /// and those followers refuse to elect anyone else for `election_ticks` (§6.4.1).
    /// Requires `check_quorum`.
    Lease,
}

impl Config {
    /// A configuration for node `id` with the defaults.
    #[must_use]
    pub fn new(id: NodeId) -> Config {
        Config { id, ..Config::default() }
    }

    /// Checks ranges and cross-field rules.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the field, its value and the rule it breaks.
    pub fn validate(&self) -> Result<(), Error> {
        if self.heartbeat_ticks == 0 {
            return Err(Error::InvalidConfig {
                field: "heartbeat_ticks",
                value: self.heartbeat_ticks.to_string(),
                rule: "must be at least 1",
            });
        }
        if self.election_ticks <= self.heartbeat_ticks {
            return Err(Error::InvalidConfig {
                field: "election_ticks",
                value: self.election_ticks.to_string(),
                rule: "must be greater than heartbeat_ticks",
            });
        }
        if self.read_mode == ReadMode::Lease && !self.check_quorum {
            return Err(Error::InvalidConfig {
                field: "read_mode",
                value: "Lease".to_string(),
                rule: "requires check_quorum, which is what makes followers honour the lease",
            });
        }
        if self.read_mode == ReadMode::Lease && self.lease_ticks >= self.election_ticks {
            return Err(Error::InvalidConfig {
                field: "lease_ticks",
                value: self.lease_ticks.to_string(),
                rule: "must be below election_ticks, leaving a margin for clock drift",
            });
        }
        Ok(())
    }
}

/// Upper bound of a default AppendEntries: large enough to amortise per-message cost under
/// load, small enough that one append never delays a heartbeat noticeably on a LAN.
const APPEND_BYTES_MAX_DEFAULT: NonZeroU64 = NonZeroU64::new(1 << 20).expect("non-zero");

/// Default pipelining window: enough to keep a follower busy across one network round trip
/// at high proposal rates without letting a slow follower queue unbounded memory.
const INFLIGHT_APPENDS_MAX_DEFAULT: NonZeroU64 = NonZeroU64::new(64).expect("non-zero");

/// Default snapshot chunk: a quarter of a second on a 32 Mbit/s link, small enough that a
/// transfer never crowds heartbeats on a shared connection.
const SNAPSHOT_CHUNK_BYTES_DEFAULT: NonZeroU64 = NonZeroU64::new(1 << 20).expect("non-zero");

/// Default snapshot threshold: keeps the in-memory log and restart replay time bounded
/// while snapshotting rarely enough that its cost stays small next to the write load.
const SNAPSHOT_LOG_BYTES_DEFAULT: NonZeroU64 = NonZeroU64::new(64 << 20).expect("non-zero");

impl Default for Config {
    fn default() -> Config {
        Config {
            id: NodeId(1),
            election_ticks: 10,
            heartbeat_ticks: 1,
            pre_vote: true,
            check_quorum: true,
            append_bytes_max: APPEND_BYTES_MAX_DEFAULT,
            inflight_appends_max: INFLIGHT_APPENDS_MAX_DEFAULT,
            snapshot_chunk_bytes: SNAPSHOT_CHUNK_BYTES_DEFAULT,
            snapshot_log_bytes: Some(SNAPSHOT_LOG_BYTES_DEFAULT),
            snapshot_log_percent_of_snapshot: 100,
            read_mode: ReadMode::ReadIndex,
            lease_ticks: 8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn election_ticks_must_exceed_heartbeat_ticks() {
        let config = Config { election_ticks: 3, heartbeat_ticks: 3, ..Config::default() };
        let error = config.validate().unwrap_err();
        assert!(error.to_string().contains("election_ticks"), "{error}");
        assert!(error.to_string().contains("greater than heartbeat_ticks"), "{error}");
    }

    #[test]
    fn lease_reads_need_check_quorum_and_a_lease_below_the_election_timeout() {
        let lease = Config { read_mode: ReadMode::Lease, ..Config::default() };
        lease.validate().unwrap();
        let no_check = Config { check_quorum: false, ..lease.clone() };
        assert!(no_check.validate().unwrap_err().to_string().contains("check_quorum"));
        let long = Config { lease_ticks: 10, ..lease };
        assert!(long.validate().unwrap_err().to_string().contains("lease_ticks"));
    }

    #[test]
    fn zero_heartbeat_ticks_is_rejected() {
        let config = Config { heartbeat_ticks: 0, ..Config::default() };
        assert!(matches!(
            config.validate(),
            Err(Error::InvalidConfig { field: "heartbeat_ticks", .. })
        ));
    }
}
