//! The randomized sweep: every seed picks a cluster size, a node configuration, a fault
//! schedule, a workload and a set of features, runs them, then heals everything and checks
//! liveness.
//!
//! The cluster has 3 or 5 voters, mostly with the default configuration but sometimes
//! without PreVote or CheckQuorum, with slower heartbeats, with appends of one or two
//! entries, with a pipelining window of one to four appends, or with slow (30 ms) disks.
//! Independently, each seed may:
//!
//! - snapshot and compact its logs past a small threshold (256 B to 4 KiB), sometimes sending
//!   snapshots in chunks of 1 to 32 bytes, so lagging, restarted and new nodes catch up by
//!   InstallSnapshot;
//! - run a read workload of linearizable reads on random nodes, followers included, in
//!   ReadIndex or lease mode, each checked when served;
//! - have faults ask the leader to hand leadership to a random voter;
//! - change the membership during the chaos phase: grow from three voters to five (two spare
//!   nodes join as learners, catch up and are promoted), shrink from five to three (two
//!   random voters, perhaps the leader, are removed and then shut down), or grow then shrink;
//! - (half the seeds) run a key-value store on every node and take its writes from KV
//!   clients ([`crate::kv::KvWorkload`]) instead of the opaque-command client: put,
//!   version-CAS and delete writes in sessions, and ReadIndex reads of the store, all
//!   recorded in a history that is checked for linearizability once the cluster recovered.
//!
//! A seed's run then has two phases:
//!
//! 1. *Chaos*, for [`CHAOS_MS_MIN`]–[`CHAOS_MS_MAX`] simulated milliseconds: clients issue
//!    commands and reads while random faults strike (crashes, restarts, partitions,
//!    disconnections, isolating the leader, a lossy, duplicating and reordering network,
//!    leadership transfers) and the membership plan proceeds. Safety is checked after every
//!    step by the [`Cluster`] itself.
//! 2. *Recovery*: every node not retired is restarted and reconnected and the network made
//!    reliable. A leader must then be elected within [`RECOVERY_LEADER_MS_MAX`]; every
//!    command the client issued must be committed and the membership plan finished within
//!    [`RECOVERY_COMMIT_MS_MAX`] (the client re-proposes commands it has not seen committed,
//!    as a retrying client would, so a command may commit more than once); every member must
//!    apply the whole committed log, the leader must be a voter of the committed membership,
//!    and with a read workload a read on every member must be served within
//!    [`RECOVERY_READ_MS_MAX`]. With the KV workload, every write a KV client still waits on
//!    must be answered within [`RECOVERY_COMMIT_MS_MAX`], and finally the whole client
//!    history must be linearizable (a verdict of "not linearizable" or "unknown" fails the
//!    seed, with the checker's explanation).

mod faults;
mod profile;
mod recovery;

use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use std::collections::BTreeSet;

use raft_core::NodeId;
use rand::Rng;

use crate::client::{ReadClient, RetryingClient};
use crate::cluster::Cluster;
use crate::kv::{KvWorkload, KvWorkloadConfig};
use crate::reconfiguration::Reconfiguration;

use profile::Profile;
pub use profile::{Features, MembershipPlan};

/// The shortest chaos phase. Long enough for several elections (the default election timeout
/// is 100–200 ms) and many faults.
pub const CHAOS_MS_MIN: u64 = 10_000;
/// The longest chaos phase; with [`CHAOS_MS_MIN`] it sets the sweep's cost (see
/// `tests/sweep.rs` for the measured budget).
pub const CHAOS_MS_MAX: u64 = 40_000;
/// How long a healed cluster may take to elect a leader: ten of the longest election
/// timeouts, for split votes and for nodes that restarted with stale logs.
pub const RECOVERY_LEADER_MS_MAX: u64 = 2_000;
/// How long a healed cluster with a leader may take to commit every pending command and
/// finish its membership plan, and then to apply the log everywhere: long enough for the
/// client's slowest retry ([`crate::client::CLIENT_RETRY_MS_MAX`]), for a follower to catch
/// up on the longest log a chaos phase builds with the smallest appends the sweep
/// configures, and for the four changes of a plan.
pub const RECOVERY_COMMIT_MS_MAX: u64 = 10_000;
/// How long a read on a member of the converged cluster may take to be served: a heartbeat
/// round trip is a few milliseconds, so this leaves room for a node that still has to learn
/// who leads.
pub const RECOVERY_READ_MS_MAX: u64 = 2_000;
/// The mean simulated time between two rounds of client and fault decisions in the chaos
/// phase (one default tick), and the exact time between two rounds in recovery.
const SLICE_MS: u64 = 10;

/// What one seed's run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// The cluster size it picked (voters at the start).
    pub nodes: u64,
    /// The features it exercised.
    pub features: Features,
    /// Events processed.
    pub steps: u64,
    /// Simulated time, in milliseconds.
    pub simulated_ms: u64,
    /// Faults injected in the chaos phase.
    pub faults: u64,
    /// Distinct commands the client issued (all of them were committed), or with the KV
    /// workload the writes the KV clients invoked.
    pub commands: u64,
    /// Operations in the KV clients' history, all checked (0 without the KV workload).
    pub kv_operations: u64,
    /// The index of the last committed entry.
    pub committed_index: u64,
    /// Messages sent.
    pub messages: u64,
    /// Snapshots installed from a leader, over all nodes.
    pub snapshots_installed: u64,
    /// Snapshots nodes took of their own applications.
    pub snapshots_taken: u64,
    /// Linearizable reads served (and checked).
    pub reads_served: u64,
    /// Leadership transfers a leader accepted.
    pub transfers: u64,
    /// Membership changes a leader accepted.
    pub membership_changes: u64,
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
    /// Snapshots installed from a leader, over all seeds that passed.
    pub snapshots_installed: u64,
    /// Linearizable reads served, over all seeds that passed.
    pub reads_served: u64,
    /// Leadership transfers accepted, over all seeds that passed.
    pub transfers: u64,
    /// Membership changes accepted, over all seeds that passed.
    pub membership_changes: u64,
    /// Seeds that ran the KV workload and passed its linearizability check.
    pub kv_seeds: u64,
    /// KV operations checked for linearizability, over all seeds that passed.
    pub kv_operations: u64,
    /// Wall-clock time spent in the linearizability checker, over all seeds that passed
    /// (summed over threads).
    pub kv_check: Duration,
    /// The seeds that failed, in seed order.
    pub failures: Vec<SeedFailure>,
    /// Wall-clock time of the whole sweep.
    pub wall: Duration,
}

impl SweepReport {
    fn add(&mut self, report: &SeedReport, kv_check: Duration) {
        self.kv_seeds += u64::from(report.features.kv_workload);
        self.kv_operations += report.kv_operations;
        self.kv_check += kv_check;
        self.steps += report.steps;
        self.simulated_ms += report.simulated_ms;
        self.faults += report.faults;
        self.commands += report.commands;
        self.snapshots_installed += report.snapshots_installed;
        self.reads_served += report.reads_served;
        self.transfers += report.transfers;
        self.membership_changes += report.membership_changes;
    }
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
    let reports: Vec<Vec<Result<(SeedReport, Duration), SeedFailure>>> =
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|thread| {
                    scope.spawn(move || {
                        (from + thread..from + count)
                            .step_by(threads as usize)
                            .map(run_seed_caught_timed)
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
            Ok((report, kv_check)) => sweep.add(&report, kv_check),
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
    run_seed_caught_timed(seed).map(|(report, _)| report)
}

/// [`run_seed_caught`], with the time the linearizability check took.
fn run_seed_caught_timed(seed: u64) -> Result<(SeedReport, Duration), SeedFailure> {
    panic::catch_unwind(AssertUnwindSafe(|| run_seed_timed(seed, false))).map_err(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|text| (*text).to_string()))
            .unwrap_or_else(|| "a panic without a message".to_string());
        SeedFailure { seed, message }
    })
}

/// The features seed `seed` exercises, without running it.
#[must_use]
pub fn features(seed: u64) -> Features {
    Profile::random(seed).features
}

/// What drives a seed's cluster: the clients, the membership plan, and the counts of what
/// the chaos phase did.
pub(crate) struct Workload {
    /// The opaque-command client; idle when `kv` is set.
    writes: RetryingClient,
    /// The KV clients, with the KV workload.
    kv: Option<KvWorkload>,
    reads: ReadClient,
    read_probability: f64,
    /// The membership plan under way; `None` when the membership stays as it started.
    plan: Option<Reconfiguration>,
    /// The targets to move to once the plan under way is done, next first.
    next_targets: Vec<BTreeSet<NodeId>>,
    /// Membership changes accepted by plans already done.
    membership_changes_done: u64,
    faults: u64,
    transfers: u64,
    /// A transfer whose old leader is cut off the moment its target takes over (until the
    /// deadline, in simulated milliseconds).
    cut_off_on_takeover: Option<(faults::Transfer, u64)>,
}

impl Workload {
    /// Drives the membership plan one round, moving on to the next target when one is
    /// reached; returns whether the last target is reached (always, without a plan).
    fn act_on_plan(&mut self, cluster: &mut Cluster) -> bool {
        let Some(plan) = &mut self.plan else {
            return true;
        };
        if !plan.act(cluster) {
            return false;
        }
        if self.next_targets.is_empty() {
            return true;
        }
        self.membership_changes_done += plan.proposed();
        *plan = Reconfiguration::new(self.next_targets.remove(0));
        false
    }

    /// Membership changes a leader accepted, over all plans.
    fn membership_changes(&self) -> u64 {
        self.membership_changes_done + self.plan.as_ref().map_or(0, Reconfiguration::proposed)
    }

    /// One round of the writing clients (the KV clients also read): issue with probability
    /// `issue_probability`, retry, and while `finishing` never give up.
    fn act_on_writes(&mut self, cluster: &mut Cluster, issue_probability: f64, finishing: bool) {
        match &mut self.kv {
            Some(kv) if finishing => kv.finish(cluster),
            Some(kv) => kv.act(cluster, issue_probability),
            None => self.writes.act(cluster, issue_probability),
        }
    }

    /// Writes not yet seen committed (or answered, with the KV workload).
    fn writes_pending(&self) -> usize {
        self.kv.as_ref().map_or(self.writes.pending(), KvWorkload::writes_pending)
    }

    /// Writes issued, and with the opaque-command client the first not seen committed.
    fn describe_writes(&self) -> String {
        match &self.kv {
            Some(kv) => format!("KV writes {:?}", kv.counts()),
            None => format!(
                "{} commands issued; first pending: {:?}",
                self.writes.issued(),
                self.writes.first_pending()
            ),
        }
    }
}

/// The most reads the read client keeps outstanding.
const READS_OUTSTANDING_MAX: usize = 8;

/// Runs one seed: chaos, then recovery, then the final checks. With `trace`, every event is
/// printed to standard error.
///
/// # Panics
///
/// On any safety or liveness violation, with the seed in the message.
#[must_use]
pub fn run_seed(seed: u64, trace: bool) -> SeedReport {
    run_seed_timed(seed, trace).0
}

/// [`run_seed`], with the wall-clock time its linearizability check took (kept out of the
/// report, which a replay must reproduce exactly).
fn run_seed_timed(seed: u64, trace: bool) -> (SeedReport, Duration) {
    let profile = Profile::random(seed);
    let config = crate::config::SimConfig { trace, ..profile.config(seed) };
    let mut cluster = Cluster::new(config);
    let mut targets = profile.targets.clone();
    let plan = (!targets.is_empty()).then(|| Reconfiguration::new(targets.remove(0)));
    let mut workload = Workload {
        writes: RetryingClient::new(profile.pending_max, profile.padding_bytes_max),
        kv: profile.features.kv_workload.then(|| KvWorkload::new(KvWorkloadConfig::default())),
        reads: ReadClient::new(READS_OUTSTANDING_MAX),
        read_probability: profile.read_probability,
        plan,
        next_targets: targets,
        membership_changes_done: 0,
        faults: 0,
        transfers: 0,
        cut_off_on_takeover: None,
    };
    while cluster.now_ms() < profile.chaos_end_ms {
        // Slices of random length, so faults strike at any millisecond, not on a grid.
        let slice_ms = cluster.rng().random_range(1..2 * SLICE_MS);
        run_slice(&mut cluster, &mut workload, slice_ms);
        workload.act_on_writes(&mut cluster, profile.command_probability, false);
        workload.reads.act(&mut cluster, profile.read_probability);
        if cluster.now_ms() >= profile.plan_start_ms {
            workload.act_on_plan(&mut cluster);
        }
        if cluster.rng().random_bool(profile.fault_probability) {
            let transfer = faults::random_fault(&mut cluster, &profile);
            workload.faults += 1;
            if let Some(transfer) = transfer {
                workload.transfers += 1;
                if cluster.rng().random_bool(0.5) {
                    let deadline_ms = cluster.now_ms() + TAKEOVER_WATCH_MS;
                    workload.cut_off_on_takeover = Some((transfer, deadline_ms));
                }
            }
        }
    }
    recovery::recover(&mut cluster, &mut workload);
    cluster.check_durability();
    let kv_check = check_kv_history(&cluster, &workload);
    (report(seed, &profile, &cluster, &workload), kv_check)
}

/// With the KV workload, checks the clients' whole history for linearizability, and
/// returns how long that took.
///
/// # Panics
///
/// If the verdict is not "linearizable", with the checker's explanation and the seed.
fn check_kv_history(cluster: &Cluster, workload: &Workload) -> Duration {
    let Some(kv) = &workload.kv else {
        return Duration::ZERO;
    };
    let started = Instant::now();
    let report = kv.check();
    assert!(
        report.verdict.is_linearizable(),
        "linearizability violation (seed {}): the KV clients' history of {} operations \
         ({:?}) is not shown linearizable: {}",
        cluster.config().seed,
        report.stats.operations,
        kv.counts(),
        report.verdict
    );
    started.elapsed()
}

/// How long after a transfer the sweep waits for the target to take over before it stops
/// watching: two election timeouts, past the point where the old leader gives up.
const TAKEOVER_WATCH_MS: u64 = 400;

/// Runs the cluster for `slice_ms`. While a transfer is watched, stops the moment its target
/// leads and cuts the old leader off right then, before the target's vote request or
/// anything else of the new term reaches it: the old leader must learn nothing from its
/// timed-out transfer that would let it serve reads the new leader's writes made stale.
fn run_slice(cluster: &mut Cluster, workload: &mut Workload, slice_ms: u64) {
    let Some((transfer, deadline_ms)) = workload.cut_off_on_takeover else {
        cluster.run_for(slice_ms);
        return;
    };
    let target_leads = |cluster: &Cluster| {
        cluster.node(transfer.to).is_some_and(|node| node.role() == raft_core::Role::Leader)
    };
    if cluster.run_until(slice_ms, target_leads) {
        cluster.partition(&[&[transfer.from]]);
        workload.cut_off_on_takeover = None;
    } else if cluster.now_ms() >= deadline_ms {
        workload.cut_off_on_takeover = None;
    }
}

fn report(seed: u64, profile: &Profile, cluster: &Cluster, workload: &Workload) -> SeedReport {
    let (installed, taken) = cluster
        .node_ids()
        .into_iter()
        .map(|id| cluster.snapshot_counts(id))
        .fold((0, 0), |(installed, taken), counts| (installed + counts.0, taken + counts.1));
    SeedReport {
        seed,
        nodes: profile.nodes,
        features: profile.features.clone(),
        steps: cluster.steps(),
        simulated_ms: cluster.now_ms(),
        faults: workload.faults,
        commands: workload.kv.as_ref().map_or(workload.writes.issued(), |kv| kv.counts().writes),
        kv_operations: workload.kv.as_ref().map_or(0, |kv| kv.history().len() as u64),
        committed_index: cluster.committed_index().0,
        messages: cluster.message_counts().total(),
        snapshots_installed: installed,
        snapshots_taken: taken,
        reads_served: cluster.served_reads().count() as u64,
        transfers: workload.transfers,
        membership_changes: workload.membership_changes(),
        trace_hash: cluster.trace_hash(),
    }
}
