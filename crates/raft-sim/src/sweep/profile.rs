//! What a seed picks before its run: cluster size, node configuration, network, workload,
//! fault rates, and which of the newer features it exercises.

use std::collections::BTreeSet;
use std::num::NonZeroU64;

use raft_core::{Config, NodeId, ReadMode};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::{NetworkFaults, SimConfig};

use super::{CHAOS_MS_MAX, CHAOS_MS_MIN, SLICE_MS};

/// The share of seeds that run the KV workload: half, so CI's sweep checks about a thousand
/// client histories while the other half keeps the opaque-command client, whose many
/// outstanding commands load the cluster harder than three sequential KV clients do.
const KV_WORKLOAD_SHARE: f64 = 0.5;

/// A membership change a seed runs during its chaos phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MembershipPlan {
    /// The membership stays as it started.
    Unchanged,
    /// Three voters grow to five: two spare nodes join as learners and are promoted.
    Grow,
    /// Five voters shrink to three: two random voters (the leader, maybe) are removed and
    /// shut down.
    Shrink,
    /// Both, one after the other: three voters grow to five, then two random voters of the
    /// five are removed and shut down.
    GrowThenShrink,
}

/// Which of the newer protocol features a seed exercises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Features {
    /// The snapshot threshold, when the nodes snapshot and compact their logs.
    pub snapshot_log_bytes: Option<u64>,
    /// The snapshot chunk size.
    pub snapshot_chunk_bytes: u64,
    /// How reads are confirmed, when the seed has a read workload.
    pub read_mode: Option<ReadMode>,
    /// Whether faults include asking the leader to hand leadership to a random voter.
    pub transfers: bool,
    /// The membership change the seed runs.
    pub membership: MembershipPlan,
    /// Whether the nodes run a key-value store and the writes come from KV clients whose
    /// history is checked for linearizability at the end (rather than from the client of
    /// opaque commands).
    pub kv_workload: bool,
}

/// How a seed's cluster is configured and how hard its chaos phase hits it.
#[derive(Clone, Debug)]
pub(super) struct Profile {
    /// Voters at the start.
    pub(super) nodes: u64,
    /// Spare nodes, which a growing membership plan adds.
    pub(super) spare_nodes: u64,
    /// The nodes' configuration (the id is set per node).
    pub(super) node_config: Config,
    /// The network at the start; faults may change it.
    pub(super) network: NetworkFaults,
    /// Whether faults may make the network lossy.
    pub(super) lossy: bool,
    /// The slowest disk write, in milliseconds.
    pub(super) disk_write_ms_max: u64,
    /// The probability of a fault in each slice.
    pub(super) fault_probability: f64,
    /// The probability that the client issues a command in each slice.
    pub(super) command_probability: f64,
    /// The probability that the read client invokes a read in each slice (0 without reads).
    pub(super) read_probability: f64,
    /// The largest padding after a command's id.
    pub(super) padding_bytes_max: usize,
    /// The most commands the client has outstanding.
    pub(super) pending_max: usize,
    /// When the chaos phase ends, in simulated milliseconds.
    pub(super) chaos_end_ms: u64,
    /// The voters the membership plan moves to, one target after the other (none without a
    /// plan).
    pub(super) targets: Vec<BTreeSet<NodeId>>,
    /// When the membership plan starts, in simulated milliseconds.
    pub(super) plan_start_ms: u64,
    /// The features exercised, for the report.
    pub(super) features: Features,
}

impl Profile {
    /// Draws a profile from the seed (with its own PRNG, so the plan does not depend on
    /// how the run itself draws).
    pub(super) fn random(seed: u64) -> Profile {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_5eed_5eed_5eed);
        let lossy = rng.random_bool(0.6);
        let network = if lossy { random_network(&mut rng) } else { NetworkFaults::reliable() };
        // A fault every 100 ms to every 1.5 s on average; a command every 10 to 200 ms.
        let fault_interval_ms = rng.random_range(100..=1_500);
        let command_interval_ms = rng.random_range(10..=200);
        let mut node_config = random_node_config(&mut rng);
        let membership = match rng.random_range(0..6) {
            0 => MembershipPlan::Grow,
            1 => MembershipPlan::Shrink,
            2 => MembershipPlan::GrowThenShrink,
            _ => MembershipPlan::Unchanged,
        };
        let (nodes, spare_nodes, targets) = membership_targets(&mut rng, membership);
        let snapshot_log_bytes = rng.random_bool(0.5).then(|| rng.random_range(256..=4_096));
        if rng.random_bool(0.5) {
            node_config.snapshot_chunk_bytes = NonZeroU64::new(rng.random_range(1..=32))
                .unwrap_or(node_config.snapshot_chunk_bytes);
        }
        node_config.snapshot_log_bytes = snapshot_log_bytes.and_then(NonZeroU64::new);
        let read_mode = rng
            .random_bool(0.5)
            .then(|| if rng.random_bool(0.5) { ReadMode::Lease } else { ReadMode::ReadIndex });
        let read_probability = match read_mode {
            Some(mode) => {
                node_config.read_mode = mode;
                // Leases are only honoured by followers that run CheckQuorum.
                node_config.check_quorum |= mode == ReadMode::Lease;
                SLICE_MS as f64 / rng.random_range(10..=200) as f64
            }
            None => 0.0,
        };
        let chaos_end_ms = rng.random_range(CHAOS_MS_MIN..=CHAOS_MS_MAX);
        let features = Features {
            snapshot_log_bytes,
            snapshot_chunk_bytes: node_config.snapshot_chunk_bytes.get(),
            read_mode,
            transfers: rng.random_bool(0.3),
            membership,
            kv_workload: false,
        };
        let mut profile = Profile {
            nodes,
            spare_nodes,
            node_config,
            network,
            lossy,
            disk_write_ms_max: if rng.random_bool(0.2) { 30 } else { 5 },
            fault_probability: SLICE_MS as f64 / fault_interval_ms as f64,
            command_probability: SLICE_MS as f64 / command_interval_ms as f64,
            read_probability,
            padding_bytes_max: rng.random_range(0..=64),
            pending_max: rng.random_range(1..=50),
            plan_start_ms: rng.random_range(0..=chaos_end_ms / 2),
            chaos_end_ms,
            targets,
            features,
        };
        // Drawn last, so every draw before it is what the seed drew before the KV workload
        // existed, and the seeds that keep the opaque-command client run as they did.
        profile.features.kv_workload = rng.random_bool(KV_WORKLOAD_SHARE);
        profile
    }

    pub(super) fn config(&self, seed: u64) -> SimConfig {
        SimConfig {
            spare_nodes: self.spare_nodes,
            node_config: self.node_config.clone(),
            network: self.network,
            disk_write_ms_max: self.disk_write_ms_max,
            kv_store: self.features.kv_workload,
            ..SimConfig::new(self.nodes, seed)
        }
    }
}

/// The initial voters, the spare nodes and the successive target voters of a membership
/// plan.
fn membership_targets(
    rng: &mut ChaCha8Rng,
    plan: MembershipPlan,
) -> (u64, u64, Vec<BTreeSet<NodeId>>) {
    let three_of_five = |rng: &mut ChaCha8Rng| {
        let mut voters: Vec<NodeId> = (1..=5).map(NodeId).collect();
        voters.shuffle(rng);
        voters[..3].iter().copied().collect::<BTreeSet<NodeId>>()
    };
    let five = (1..=5).map(NodeId).collect::<BTreeSet<NodeId>>();
    match plan {
        MembershipPlan::Unchanged => (if rng.random_bool(0.5) { 3 } else { 5 }, 0, Vec::new()),
        MembershipPlan::Grow => (3, 2, vec![five]),
        MembershipPlan::Shrink => (5, 0, vec![three_of_five(rng)]),
        MembershipPlan::GrowThenShrink => (3, 2, vec![five, three_of_five(rng)]),
    }
}

/// Mostly the defaults, but sometimes without PreVote or CheckQuorum, with slower
/// heartbeats, or with appends small enough (one or two entries) and windows narrow enough
/// (one append in flight) to exercise batching and flow control.
fn random_node_config(rng: &mut ChaCha8Rng) -> Config {
    let defaults = Config::default();
    let append_bytes_max = if rng.random_bool(0.3) {
        NonZeroU64::new(rng.random_range(1..=128)).unwrap_or(defaults.append_bytes_max)
    } else {
        defaults.append_bytes_max
    };
    let inflight_appends_max = if rng.random_bool(0.3) {
        NonZeroU64::new(rng.random_range(1..=4)).unwrap_or(defaults.inflight_appends_max)
    } else {
        defaults.inflight_appends_max
    };
    Config {
        pre_vote: rng.random_bool(0.8),
        check_quorum: rng.random_bool(0.8),
        heartbeat_ticks: rng.random_range(1..=3),
        append_bytes_max,
        inflight_appends_max,
        ..defaults
    }
}

/// A lossy network: up to 20% loss, 10% duplicates, and delays spread over up to 60 ms.
pub(super) fn random_network(rng: &mut ChaCha8Rng) -> NetworkFaults {
    let delay_ms_min = rng.random_range(0..=3);
    NetworkFaults {
        drop_rate: rng.random_range(0.0..=0.2),
        duplicate_rate: rng.random_range(0.0..=0.1),
        delay_ms_min,
        delay_ms_max: delay_ms_min + rng.random_range(2..=60),
    }
}
