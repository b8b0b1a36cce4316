//! The randomized sweep: every seed picks a cluster size, a node configuration, a fault
//! schedule and a workload, runs them, then heals everything and checks liveness.
//!
//! The cluster has 3 or 5 nodes, mostly with the default configuration but sometimes without
//! PreVote or CheckQuorum, with slower heartbeats, with appends of one or two entries, with a
//! pipelining window of one to four appends, or with slow (30 ms) disks. A seed's run then
//! has two phases:
//!
//! 1. *Chaos*, for [`CHAOS_MS_MIN`]–[`CHAOS_MS_MAX`] simulated milliseconds: a client issues
//!    commands while random faults strike (crashes, restarts, partitions, disconnections,
//!    isolating the leader, a lossy, duplicating and reordering network). Safety is checked
//!    after every step by the [`Cluster`] itself.
//! 2. *Recovery*: every node is restarted and reconnected and the network made reliable. A
//!    leader must then be elected within [`RECOVERY_LEADER_MS_MAX`], every command the client
//!    issued must be committed within [`RECOVERY_COMMIT_MS_MAX`] (the client re-proposes
//!    commands it has not seen committed, as a retrying client would, so a command may commit
//!    more than once), and every node must apply the whole committed log.

use std::num::NonZeroU64;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use raft_core::{Config, NodeId};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::client::RetryingClient;
use crate::cluster::Cluster;
use crate::config::{NetworkFaults, SimConfig};

/// The shortest chaos phase. Long enough for several elections (the default election timeout
/// is 100–200 ms) and many faults.
pub const CHAOS_MS_MIN: u64 = 10_000;
/// The longest chaos phase; with [`CHAOS_MS_MIN`] it sets the sweep's cost (see
/// `tests/sweep.rs` for the measured budget).
pub const CHAOS_MS_MAX: u64 = 40_000;
/// How long a healed cluster may take to elect a leader: ten of the longest election
/// timeouts, for split votes and for nodes that restarted with stale logs.
pub const RECOVERY_LEADER_MS_MAX: u64 = 2_000;
/// How long a healed cluster with a leader may take to commit every pending command, and
/// then to apply the log everywhere: long enough for the client's slowest retry
/// ([`crate::client::CLIENT_RETRY_MS_MAX`]) and for a follower to catch up on the longest
/// log a chaos phase builds, with the smallest appends the sweep configures.
pub const RECOVERY_COMMIT_MS_MAX: u64 = 10_000;
/// The mean simulated time between two rounds of client and fault decisions in the chaos
/// phase (one default tick), and the exact time between two rounds in recovery.
const SLICE_MS: u64 = 10;

/// What one seed's run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// The cluster size it picked.
    pub nodes: u64,
    /// Events processed.
    pub steps: u64,
    /// Simulated time, in milliseconds.
    pub simulated_ms: u64,
    /// Faults injected in the chaos phase.
    pub faults: u64,
    /// Distinct commands the client issued (all of them were committed).
    pub commands: u64,
    /// The index of the last committed entry.
    pub committed_index: u64,
    /// Messages sent.
    pub messages: u64,
    /// The run's trace hash (see [`Cluster::trace_hash`]).
    pub trace_hash: u64,
}

/// A seed whose run panicked: a safety or liveness violation, or a panic inside the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedFailure {
    /// The seed.
    pub seed: u64,
    /// The panic message.
    pub message: String,
}

/// What a sweep over many seeds did.
#[derive(Clone, Debug, Default)]
pub struct SweepReport {
    /// Seeds run.
    pub seeds: u64,
    /// Events processed, over all seeds that passed.
    pub steps: u64,
    /// Simulated time, over all seeds that passed, in milliseconds.
    pub simulated_ms: u64,
    /// Faults injected, over all seeds that passed.
    pub faults: u64,
    /// Distinct commands issued (and committed), over all seeds that passed.
    pub commands: u64,
    /// The seeds that failed, in seed order.
    pub failures: Vec<SeedFailure>,
    /// Wall-clock time of the whole sweep.
    pub wall: Duration,
}

/// The command that replays one seed.
#[must_use]
pub fn replay_command(seed: u64) -> String {
    format!("cargo xtask sim --seed {seed}")
}

/// Runs seeds `from..from + count` spread over `threads` threads (at least one), catching
/// each seed's panic so that every failing seed is reported.
#[must_use]
pub fn run_seeds(from: u64, count: u64, threads: usize) -> SweepReport {
    let started = Instant::now();
    let threads = threads.max(1) as u64;
    let reports: Vec<Vec<Result<SeedReport, SeedFailure>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                scope.spawn(move || {
                    (from + thread..from + count)
                        .step_by(threads as usize)
                        .map(run_seed_caught)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().expect("seeds catch panics")).collect()
    });
    let mut sweep = SweepReport::default();
    for result in reports.into_iter().flatten() {
        sweep.seeds += 1;
        match result {
            Ok(report) => {
                sweep.steps += report.steps;
                sweep.simulated_ms += report.simulated_ms;
                sweep.faults += report.faults;
                sweep.commands += report.commands;
            }
            Err(failure) => sweep.failures.push(failure),
        }
    }
    sweep.failures.sort_by_key(|failure| failure.seed);
    sweep.wall = started.elapsed();
    sweep
}

/// Runs one seed, turning a panic into a [`SeedFailure`].
///
/// # Errors
///
/// The seed's failure, with the panic message.
pub fn run_seed_caught(seed: u64) -> Result<SeedReport, SeedFailure> {
    panic::catch_unwind(AssertUnwindSafe(|| run_seed(seed, false))).map_err(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|text| (*text).to_string()))
            .unwrap_or_else(|| "a panic without a message".to_string());
        SeedFailure { seed, message }
    })
}

/// Runs one seed: chaos, then recovery, then the final checks. With `trace`, every event is
/// printed to standard error.
///
/// # Panics
///
/// On any safety or liveness violation, with the seed in the message.
#[must_use]
pub fn run_seed(seed: u64, trace: bool) -> SeedReport {
    let mut plan_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_5eed_5eed_5eed);
    let profile = Profile::random(&mut plan_rng);
    let nodes = if plan_rng.random_bool(0.5) { 3 } else { 5 };
    let config = SimConfig { trace, ..profile.config(nodes, seed) };
    let mut cluster = Cluster::new(config);
    let mut client = RetryingClient::new(profile.pending_max, profile.padding_bytes_max);
    let chaos_end_ms = plan_rng.random_range(CHAOS_MS_MIN..=CHAOS_MS_MAX);
    let mut faults = 0;
    while cluster.now_ms() < chaos_end_ms {
        // Slices of random length, so faults strike at any millisecond, not on a grid.
        let slice_ms = cluster.rng().random_range(1..2 * SLICE_MS);
        cluster.run_for(slice_ms);
        client.act(&mut cluster, profile.command_probability);
        if cluster.rng().random_bool(profile.fault_probability) {
            random_fault(&mut cluster, &profile);
            faults += 1;
        }
    }
    recover(&mut cluster, &mut client);
    cluster.check_durability();
    SeedReport {
        seed,
        nodes,
        steps: cluster.steps(),
        simulated_ms: cluster.now_ms(),
        faults,
        commands: client.issued(),
        committed_index: cluster.committed_index().0,
        messages: cluster.message_counts().total(),
        trace_hash: cluster.trace_hash(),
    }
}

/// How a seed's cluster is configured and how hard its chaos phase hits it.
#[derive(Clone, Debug)]
struct Profile {
    /// The nodes' configuration (the id is set per node).
    node_config: Config,
    /// The network at the start; faults may change it.
    network: NetworkFaults,
    /// Whether faults may make the network lossy.
    lossy: bool,
    /// The slowest disk write, in milliseconds.
    disk_write_ms_max: u64,
    /// The probability of a fault in each slice.
    fault_probability: f64,
    /// The probability that the client issues a command in each slice.
    command_probability: f64,
    /// The largest padding after a command's id.
    padding_bytes_max: usize,
    /// The most commands the client has outstanding.
    pending_max: usize,
}

impl Profile {
    fn random(rng: &mut ChaCha8Rng) -> Profile {
        let lossy = rng.random_bool(0.6);
        let network = if lossy { random_network(rng) } else { NetworkFaults::reliable() };
        // A fault every 100 ms to every 1.5 s on average; a command every 10 to 200 ms.
        let fault_interval_ms = rng.random_range(100..=1_500);
        let command_interval_ms = rng.random_range(10..=200);
        Profile {
            node_config: random_node_config(rng),
            network,
            lossy,
            disk_write_ms_max: if rng.random_bool(0.2) { 30 } else { 5 },
            fault_probability: SLICE_MS as f64 / fault_interval_ms as f64,
            command_probability: SLICE_MS as f64 / command_interval_ms as f64,
            padding_bytes_max: rng.random_range(0..=64),
            pending_max: rng.random_range(1..=50),
        }
    }

    fn config(&self, nodes: u64, seed: u64) -> SimConfig {
        SimConfig {
            node_config: self.node_config.clone(),
            network: self.network,
            disk_write_ms_max: self.disk_write_ms_max,
            ..SimConfig::new(nodes, seed)
        }
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

fn random_network(rng: &mut ChaCha8Rng) -> NetworkFaults {
    let delay_ms_min = rng.random_range(0..=3);
    NetworkFaults {
        drop_rate: rng.random_range(0.0..=0.2),
        duplicate_rate: rng.random_range(0.0..=0.1),
        delay_ms_min,
        delay_ms_max: delay_ms_min + rng.random_range(2..=60),
    }
}

/// Strikes the cluster with one random fault.
fn random_fault(cluster: &mut Cluster, profile: &Profile) {
    let ids = cluster.node_ids();
    let any = ids[cluster.rng().random_range(0..ids.len())];
    match cluster.rng().random_range(0..10) {
        0 => cluster.crash(any),
        8 => {
            if cluster.rng().random_bool(0.5) {
                cluster.reboot_after_next_vote();
            } else {
                reboot_a_voter(cluster, any);
            }
        }
        1 | 2 => {
            let down: Vec<NodeId> = ids.iter().copied().filter(|&id| !cluster.is_up(id)).collect();
            if let Some(&id) = down.get(cluster.rng().random_range(0..down.len().max(1))) {
                cluster.restart(id);
            }
        }
        3 => random_partition(cluster, &ids),
        4 => cluster.heal(),
        5 => cluster.disconnect(any),
        6 => cluster.reconnect(any),
        7 => {
            if let Some(leader) = cluster.leader() {
                cluster.disconnect(leader);
            }
        }
        _ => {
            let network = if profile.lossy && cluster.rng().random_bool(0.7) {
                random_network(cluster.rng())
            } else {
                NetworkFaults::reliable()
            };
            cluster.set_network(network);
        }
    }
}

/// Crashes and at once restarts a node that voted in its current term (`fallback` if none
/// did): a node that forgot its vote across the restart could vote twice in one term, and
/// only a restart soon after voting gives it the chance.
fn reboot_a_voter(cluster: &mut Cluster, fallback: NodeId) {
    let voters: Vec<NodeId> = cluster
        .node_ids()
        .into_iter()
        .filter(|&id| cluster.node(id).is_some_and(|node| node.voted_for().is_some()))
        .collect();
    let id = if voters.is_empty() {
        fallback
    } else {
        voters[cluster.rng().random_range(0..voters.len())]
    };
    cluster.restart(id);
}

/// Splits the nodes into two or three random groups.
fn random_partition(cluster: &mut Cluster, ids: &[NodeId]) {
    let mut shuffled = ids.to_vec();
    shuffled.shuffle(cluster.rng());
    let first_cut = cluster.rng().random_range(1..shuffled.len());
    let second_cut = if cluster.rng().random_bool(0.3) {
        cluster.rng().random_range(first_cut..=shuffled.len())
    } else {
        shuffled.len()
    };
    let groups =
        [&shuffled[..first_cut], &shuffled[first_cut..second_cut], &shuffled[second_cut..]];
    cluster.partition(&groups);
}

/// Heals everything and checks liveness: a leader, every command committed, every node
/// caught up.
fn recover(cluster: &mut Cluster, client: &mut RetryingClient) {
    let seed = cluster.config().seed;
    cluster.heal();
    cluster.set_network(NetworkFaults::reliable());
    for id in cluster.node_ids() {
        if !cluster.is_up(id) {
            cluster.restart(id);
        }
    }
    let healed_at_ms = cluster.now_ms();
    let leader = cluster.wait_for_leader(RECOVERY_LEADER_MS_MAX);
    assert!(
        leader.is_some(),
        "liveness violation (seed {seed}): no leader {RECOVERY_LEADER_MS_MAX} ms after \
         healing\n{}",
        cluster.describe()
    );
    let deadline_ms = cluster.now_ms() + RECOVERY_COMMIT_MS_MAX;
    while client.pending() > 0 && cluster.now_ms() < deadline_ms {
        cluster.run_for(SLICE_MS);
        client.act(cluster, 0.0);
    }
    assert!(
        client.pending() == 0,
        "liveness violation (seed {seed}): {} of {} commands not committed {} ms after the \
         healed cluster elected a leader (healed at {healed_at_ms} ms); first: {:?}\n{}",
        client.pending(),
        client.issued(),
        RECOVERY_COMMIT_MS_MAX,
        client.first_pending(),
        cluster.describe()
    );
    let committed_index = cluster.committed_index();
    let caught_up = cluster.run_until(RECOVERY_COMMIT_MS_MAX, |cluster| {
        cluster.node_ids().iter().all(|&id| cluster.applied(id).len() as u64 >= committed_index.0)
    });
    assert!(
        caught_up,
        "liveness violation (seed {seed}): not every node applied the committed log up to \
         {committed_index} within {RECOVERY_COMMIT_MS_MAX} ms\n{}",
        cluster.describe()
    );
}
