//! The end of a seed's run: everything heals, and the cluster must make progress again.

use raft_core::NodeId;

use crate::cluster::Cluster;
use crate::config::NetworkFaults;

use super::{
    RECOVERY_COMMIT_MS_MAX, RECOVERY_LEADER_MS_MAX, RECOVERY_READ_MS_MAX, SLICE_MS, Workload,
};

/// Heals everything and checks liveness: a leader among the voters in force, every command
/// committed, the membership plan finished, every member caught up, and (with a read
/// workload) a read served on every member.
pub(super) fn recover(cluster: &mut Cluster, workload: &mut Workload) {
    let seed = cluster.config().seed;
    cluster.heal();
    cluster.set_network(NetworkFaults::reliable());
    for id in cluster.node_ids() {
        if !cluster.is_up(id) && !cluster.is_retired(id) {
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
    let mut plan_done = workload.act_on_plan(cluster);
    while (workload.writes_pending() > 0 || !plan_done) && cluster.now_ms() < deadline_ms {
        cluster.run_for(SLICE_MS);
        workload.act_on_writes(cluster, 0.0, true);
        workload.reads.act(cluster, 0.0);
        plan_done = workload.act_on_plan(cluster);
    }
    assert!(
        workload.writes_pending() == 0,
        "liveness violation (seed {seed}): {} writes not committed {} ms after the healed \
         cluster elected a leader (healed at {healed_at_ms} ms); {}\n{}",
        workload.writes_pending(),
        RECOVERY_COMMIT_MS_MAX,
        workload.describe_writes(),
        cluster.describe()
    );
    assert!(
        plan_done,
        "liveness violation (seed {seed}): the membership plan did not finish (target under \
         way: voters {:?}) within {RECOVERY_COMMIT_MS_MAX} ms of healing; committed \
         membership {:?}\n{}",
        workload.plan.as_ref().map(|plan| plan.target().clone()),
        cluster.membership(),
        cluster.describe()
    );
    check_members_converge(cluster);
    if workload.read_probability > 0.0 {
        check_reads_served(cluster);
    }
}

/// Every member of the membership in force is running and applies the whole committed
/// log, and the leader is one of its voters and agrees on it.
fn check_members_converge(cluster: &mut Cluster) {
    let seed = cluster.config().seed;
    let members: Vec<NodeId> = cluster.membership().members().collect();
    for &id in &members {
        assert!(
            !cluster.is_retired(id),
            "node {id} was retired but is a member (seed {seed})\n{}",
            cluster.describe()
        );
    }
    let committed_index = cluster.committed_index();
    let caught_up = cluster.run_until(RECOVERY_COMMIT_MS_MAX, |cluster| {
        members.iter().all(|&id| cluster.applied_index(id) >= committed_index)
    });
    assert!(
        caught_up,
        "liveness violation (seed {seed}): not every member applied the committed log up to \
         {committed_index} within {RECOVERY_COMMIT_MS_MAX} ms\n{}",
        cluster.describe()
    );
    let leader = cluster.leader().and_then(|id| cluster.node(id));
    let in_force = leader.map(|node| (node.id(), node.membership().clone()));
    let committed = cluster.membership();
    assert!(
        in_force
            .as_ref()
            .is_some_and(|(id, membership)| { committed.is_voter(*id) && membership == committed }),
        "liveness violation (seed {seed}): after recovery the leader and its membership are \
         {in_force:?}, but the committed membership is {committed:?}\n{}",
        cluster.describe()
    );
}

/// How long the recovery check waits for one read before invoking another: a read
/// forwarded to a leader that is deposed meanwhile (a transfer from the chaos phase may
/// still complete) gets no answer, and a client times out and reads again. A healthy read
/// takes a heartbeat round trip, a few milliseconds.
const RECOVERY_READ_ATTEMPT_MS: u64 = 200;

/// A read invoked on each member of the healed cluster is served within
/// [`RECOVERY_READ_MS_MAX`] (read again if a node knows no leader yet, or an attempt goes
/// unanswered).
fn check_reads_served(cluster: &mut Cluster) {
    let seed = cluster.config().seed;
    let members: Vec<NodeId> = cluster.membership().members().collect();
    for id in members {
        let deadline_ms = cluster.now_ms() + RECOVERY_READ_MS_MAX;
        let mut served = false;
        while !served && cluster.now_ms() < deadline_ms {
            match cluster.read(id) {
                Some(read_id) => {
                    let wait_ms = RECOVERY_READ_ATTEMPT_MS.min(deadline_ms - cluster.now_ms());
                    served = cluster
                        .run_until(wait_ms, |cluster| cluster.served_read(read_id).is_some());
                }
                None => cluster.run_for(SLICE_MS),
            }
        }
        assert!(
            served,
            "liveness violation (seed {seed}): a read on node {id} was not served within \
             {RECOVERY_READ_MS_MAX} ms of the healed cluster converging\n{}",
            cluster.describe()
        );
    }
}
