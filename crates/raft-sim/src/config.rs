//! What a simulated cluster is made of: its size, its seed, its clock and how badly its
//! network and disks behave.

use raft_core::Config;

/// How the simulated network treats each message.
///
/// Every message is delayed by a time drawn uniformly from `[delay_ms_min, delay_ms_max]`, so
/// any spread between the two reorders messages; `drop_rate` and `duplicate_rate` are
/// independent probabilities per message.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NetworkFaults {
    /// The probability, in `[0, 1]`, that a message is lost.
    pub drop_rate: f64,
    /// The probability, in `[0, 1]`, that a message is delivered a second time (with its own
    /// delay, so the copy may overtake the original).
    pub duplicate_rate: f64,
    /// The shortest one-way delay, in milliseconds.
    pub delay_ms_min: u64,
    /// The longest one-way delay, in milliseconds.
    pub delay_ms_max: u64,
}

impl NetworkFaults {
    /// No loss and no duplication; delays of 1–5 ms, so messages still reorder a little, as
    /// they may between separate connections of a real cluster.
    #[must_use]
    pub fn reliable() -> NetworkFaults {
        NetworkFaults { drop_rate: 0.0, duplicate_rate: 0.0, delay_ms_min: 1, delay_ms_max: 5 }
    }

    /// A lossy network: 10% of messages lost, 5% duplicated, delays of 1–30 ms (up to three
    /// ticks of the default clock, so heavy reordering).
    #[must_use]
    pub fn unreliable() -> NetworkFaults {
        NetworkFaults { drop_rate: 0.1, duplicate_rate: 0.05, delay_ms_min: 1, delay_ms_max: 30 }
    }

    /// Panics with the offending field when a value is out of range.
    pub(crate) fn validate(&self) {
        assert!(
            (0.0..=1.0).contains(&self.drop_rate),
            "network drop_rate = {} must lie in [0, 1]",
            self.drop_rate
        );
        assert!(
            (0.0..=1.0).contains(&self.duplicate_rate),
            "network duplicate_rate = {} must lie in [0, 1]",
            self.duplicate_rate
        );
        assert!(
            self.delay_ms_min <= self.delay_ms_max,
            "network delay_ms_min = {} must not exceed delay_ms_max = {}",
            self.delay_ms_min,
            self.delay_ms_max
        );
    }
}

impl Default for NetworkFaults {
    fn default() -> NetworkFaults {
        NetworkFaults::reliable()
    }
}

/// The parameters of one simulated cluster.
///
/// Everything random in a run (network delays and losses, disk latencies, tick phases, the
/// nodes' own seeds) is drawn from one PRNG seeded with `seed`, so a run is a pure function of
/// its `SimConfig` and the calls made on the [`crate::Cluster`].
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// How many voters the cluster starts with; they are numbered `1..=nodes`.
    pub nodes: u64,
    /// How many spare nodes run besides them, numbered `nodes + 1..=nodes + spare_nodes`.
    /// Each starts as a node joining a running cluster (an empty membership: it never
    /// campaigns and learns the membership from the leader's log) and takes part once a
    /// membership change adds it.
    pub spare_nodes: u64,
    /// The seed of the run's PRNG.
    pub seed: u64,
    /// Simulated milliseconds between two ticks of one node. Each node ticks with its own
    /// random phase, as real timers drift.
    pub tick_ms: u64,
    /// The configuration every node runs with; its `id` is replaced by each node's own.
    pub node_config: Config,
    /// How the network treats messages at the start (see [`crate::Cluster::set_network`]).
    pub network: NetworkFaults,
    /// The shortest time a disk write takes to become durable, in milliseconds.
    pub disk_write_ms_min: u64,
    /// The longest time a disk write takes to become durable, in milliseconds. Writes of one
    /// node still complete in the order they were issued.
    pub disk_write_ms_max: u64,
    /// Simulates a disk that ignores sync requests (a volatile write cache that lies): the
    /// node is told each write is durable as soon as it is issued, and the messages that
    /// wait for it leave at once, but the data reaches the durable store only after the
    /// write latency, and a crash before then loses it. Raft is not safe on such a disk;
    /// this exists so tests can prove the checker notices.
    pub disk_ignores_sync: bool,
    /// Simulates a driver that serves a confirmed read as soon as the node hands out its
    /// read index, without waiting for the application to apply up to it. Such reads can
    /// miss acknowledged writes; this exists so tests can prove the read checker notices.
    pub serve_reads_before_applied: bool,
    /// Runs a [`kv_store::KvStore`] on every node besides the digest application: it
    /// applies the committed entries, travels in the same snapshots and answers the
    /// [`crate::kv::KvWorkload`]'s writes and reads. Off by default: the digest application
    /// alone takes any command, while the store expects encoded [`kv_store::Command`]s.
    pub kv_store: bool,
    /// Print one line per event to standard error, to follow a failing seed.
    pub trace: bool,
}

impl SimConfig {
    /// The default configuration for a cluster of `nodes` voters, seeded with `seed`.
    #[must_use]
    pub fn new(nodes: u64, seed: u64) -> SimConfig {
        SimConfig { nodes, seed, ..SimConfig::default() }
    }

    /// Panics with the offending field when a value is out of range.
    pub(crate) fn validate(&self) {
        assert!(self.nodes >= 1, "sim nodes = {} must be at least 1", self.nodes);
        assert!(self.tick_ms >= 1, "sim tick_ms = {} must be at least 1", self.tick_ms);
        assert!(
            self.disk_write_ms_min <= self.disk_write_ms_max,
            "sim disk_write_ms_min = {} must not exceed disk_write_ms_max = {}",
            self.disk_write_ms_min,
            self.disk_write_ms_max
        );
        self.network.validate();
    }
}

impl Default for SimConfig {
    /// Three nodes and no spares, seed 0, a 10 ms tick (so the default election timeout of
    /// 10–20 ticks is 100–200 ms and heartbeats go every 10 ms), a reliable network and
    /// 1–5 ms disk writes.
    fn default() -> SimConfig {
        SimConfig {
            nodes: 3,
            spare_nodes: 0,
            seed: 0,
            tick_ms: 10,
            node_config: Config::default(),
            network: NetworkFaults::reliable(),
            disk_write_ms_min: 1,
            disk_write_ms_max: 5,
            disk_ignores_sync: false,
            serve_reads_before_applied: false,
            kv_store: false,
            trace: false,
        }
    }
}
