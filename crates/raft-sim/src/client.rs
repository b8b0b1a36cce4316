//! Workload clients: one that writes and retries, as real clients of a replicated service
//! do, and one that reads.

use std::collections::BTreeMap;

use bytes::Bytes;
use raft_core::{EntryPayload, Node, NodeId, ReadId};
use rand::Rng;

use crate::cluster::Cluster;

/// How long the client waits for a command to show up committed before proposing it again
/// the first time: longer than a healthy commit (a few milliseconds) and than most
/// elections. Each further retry of the same command waits twice as long, up to
/// [`CLIENT_RETRY_MS_MAX`].
pub const CLIENT_RETRY_MS: u64 = 300;

/// The longest wait between two proposals of one command. Backing off keeps a client from
/// flooding a slow cluster with duplicates faster than it can replicate them.
pub const CLIENT_RETRY_MS_MAX: u64 = 2_400;

/// How long the read client waits for a read to be served before it gives up on it (the
/// request or its answer may be lost, or the leader deposed): a few election timeouts.
pub const READ_TIMEOUT_MS: u64 = 1_000;

/// Bytes of id at the start of every command.
const COMMAND_ID_BYTES: usize = 8;

/// When a pending command is proposed next, and how long the wait after that one is.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Retry {
    pub(crate) next_ms: u64,
    backoff_ms: u64,
}

impl Retry {
    pub(crate) fn first(now_ms: u64) -> Retry {
        Retry { next_ms: now_ms + CLIENT_RETRY_MS, backoff_ms: CLIENT_RETRY_MS }
    }

    pub(crate) fn after(self, now_ms: u64) -> Retry {
        let backoff_ms = (self.backoff_ms * 2).min(CLIENT_RETRY_MS_MAX);
        Retry { next_ms: now_ms + backoff_ms, backoff_ms }
    }
}

/// A client that issues numbered commands and re-proposes each one until it sees it in the
/// committed log, so a command may commit more than once but must commit at least once.
///
/// It is closed-loop, like a pool of real clients: at most `pending_max` commands are
/// outstanding, and a new one is issued only when fewer are. Without that bound, a long
/// leaderless stretch would pile up thousands of commands whose retries alone would keep
/// a healed cluster busy for longer than any liveness bound.
///
/// Each proposal goes to a random running node, and on to the leader that node names if it
/// does not lead itself, as a client without a leader cache would; so commands also reach
/// stale leaders cut off in a minority.
#[derive(Debug)]
pub struct RetryingClient {
    /// How many commands were issued; their ids are `0..issued`.
    issued: u64,
    /// Commands not yet seen committed, with when each may be proposed again.
    pending: BTreeMap<u64, Retry>,
    /// How many entries of the committed log were already scanned.
    scanned: usize,
    /// The largest padding after a command's id, to vary entry sizes.
    padding_bytes_max: usize,
    /// The most commands outstanding at once.
    pending_max: usize,
}

impl RetryingClient {
    /// A client with at most `pending_max` commands outstanding, whose commands carry up to
    /// `padding_bytes_max` bytes after their id.
    #[must_use]
    pub fn new(pending_max: usize, padding_bytes_max: usize) -> RetryingClient {
        RetryingClient {
            issued: 0,
            pending: BTreeMap::new(),
            scanned: 0,
            padding_bytes_max,
            pending_max,
        }
    }

    /// How many distinct commands were issued.
    #[must_use]
    pub fn issued(&self) -> u64 {
        self.issued
    }

    /// How many issued commands have not been seen committed yet.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The lowest id not yet seen committed, if any.
    #[must_use]
    pub fn first_pending(&self) -> Option<u64> {
        self.pending.keys().next().copied()
    }

    /// One round of the client's life: note what committed, issue a new command with
    /// probability `issue_probability` (if fewer than `pending_max` are outstanding), and
    /// re-propose commands not seen committed in time (see [`CLIENT_RETRY_MS`]).
    ///
    /// # Panics
    ///
    /// If the committed log holds a command this client never issued.
    pub fn act(&mut self, cluster: &mut Cluster, issue_probability: f64) {
        self.scan_committed(cluster);
        let has_room = self.pending.len() < self.pending_max;
        if has_room
            && issue_probability > 0.0
            && cluster.rng().random_bool(issue_probability.min(1.0))
        {
            let id = self.issued;
            self.issued += 1;
            self.pending.insert(id, Retry::first(cluster.now_ms()));
            self.submit(cluster, id);
        }
        let now_ms = cluster.now_ms();
        let due: Vec<u64> = self
            .pending
            .iter()
            .filter(|&(_, retry)| now_ms >= retry.next_ms)
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            if let Some(retry) = self.pending.get_mut(&id) {
                *retry = retry.after(now_ms);
            }
            self.submit(cluster, id);
        }
    }

    /// Removes from `pending` every command that appeared in the committed log since the
    /// last scan.
    fn scan_committed(&mut self, cluster: &Cluster) {
        let seed = cluster.config().seed;
        let mut scanned = 0;
        for entry in cluster.committed_entries().skip(self.scanned) {
            scanned += 1;
            let EntryPayload::Command(bytes) = &entry.payload else {
                continue;
            };
            let id = decode_command_id(bytes);
            assert!(
                id < self.issued,
                "safety violation (seed {seed}): entry {} holds command {id}, which was never \
                 issued",
                entry.log_id
            );
            self.pending.remove(&id);
        }
        self.scanned += scanned;
    }

    fn submit(&mut self, cluster: &mut Cluster, id: u64) {
        let padding_bytes_max = self.padding_bytes_max;
        propose_via_any_node(cluster, |cluster| {
            let padding_bytes = cluster.rng().random_range(0..=padding_bytes_max);
            encode_command(id, padding_bytes)
        });
    }
}

/// Proposes a command to a random running node, and on to the leader that node names if it
/// does not lead itself, as a client without a leader cache would. `command` builds the
/// command once the node is chosen (it may draw from the run's PRNG).
pub(crate) fn propose_via_any_node(
    cluster: &mut Cluster,
    command: impl FnOnce(&mut Cluster) -> Bytes,
) {
    let up: Vec<NodeId> =
        cluster.node_ids().into_iter().filter(|&node| cluster.is_up(node)).collect();
    if up.is_empty() {
        return;
    }
    let target = up[cluster.rng().random_range(0..up.len())];
    let command = command(cluster);
    if cluster.propose_to(target, command.clone()).is_some() {
        return;
    }
    if let Some(leader) = cluster.node(target).and_then(Node::leader) {
        let _ = cluster.propose_to(leader, command);
    }
}

/// A client that invokes linearizable reads on running nodes: half of them on a node that
/// believes it leads, the others on any node, followers included.
///
/// The cluster checks each read when it is served (see [`Cluster::read`]); this client only
/// keeps a bounded number outstanding and gives up on those not served within
/// [`READ_TIMEOUT_MS`], as a real client times out and reads again.
#[derive(Debug)]
pub struct ReadClient {
    /// Reads not yet served, with when the client gives up on each.
    outstanding: BTreeMap<ReadId, u64>,
    /// The most reads outstanding at once.
    outstanding_max: usize,
    issued: u64,
    served: u64,
    abandoned: u64,
}

impl ReadClient {
    /// A client with at most `outstanding_max` reads outstanding.
    #[must_use]
    pub fn new(outstanding_max: usize) -> ReadClient {
        ReadClient {
            outstanding: BTreeMap::new(),
            outstanding_max,
            issued: 0,
            served: 0,
            abandoned: 0,
        }
    }

    /// Reads a node accepted.
    #[must_use]
    pub fn issued(&self) -> u64 {
        self.issued
    }

    /// Reads served before the client gave up on them.
    #[must_use]
    pub fn served(&self) -> u64 {
        self.served
    }

    /// Reads the client gave up on.
    #[must_use]
    pub fn abandoned(&self) -> u64 {
        self.abandoned
    }

    /// One round: note which reads were served or timed out, then invoke a new read with
    /// probability `read_probability` (if there is room).
    pub fn act(&mut self, cluster: &mut Cluster, read_probability: f64) {
        let now_ms = cluster.now_ms();
        let finished: Vec<(ReadId, bool)> = self
            .outstanding
            .iter()
            .filter_map(|(&read_id, &give_up_ms)| {
                let served = cluster.served_read(read_id).is_some();
                (served || now_ms >= give_up_ms).then_some((read_id, served))
            })
            .collect();
        for (read_id, served) in finished {
            self.outstanding.remove(&read_id);
            if served {
                self.served += 1;
            } else {
                self.abandoned += 1;
            }
        }
        let has_room = self.outstanding.len() < self.outstanding_max;
        if !has_room
            || read_probability <= 0.0
            || !cluster.rng().random_bool(read_probability.min(1.0))
        {
            return;
        }
        // Clients mostly read where they believe the leader is (stale leaders included),
        // and otherwise from any node, followers forwarding to the leader.
        let leaders: Vec<NodeId> = cluster.leaders().into_iter().map(|(id, _)| id).collect();
        let candidates = if !leaders.is_empty() && cluster.rng().random_bool(0.5) {
            leaders
        } else {
            cluster.node_ids().into_iter().filter(|&node| cluster.is_up(node)).collect()
        };
        if candidates.is_empty() {
            return;
        }
        let target = candidates[cluster.rng().random_range(0..candidates.len())];
        if let Some(read_id) = cluster.read(target) {
            self.issued += 1;
            self.outstanding.insert(read_id, now_ms + READ_TIMEOUT_MS);
        }
    }
}

fn encode_command(id: u64, padding_bytes: usize) -> Bytes {
    let mut bytes = Vec::with_capacity(COMMAND_ID_BYTES + padding_bytes);
    bytes.extend_from_slice(&id.to_le_bytes());
    bytes.resize(COMMAND_ID_BYTES + padding_bytes, 0xab);
    Bytes::from(bytes)
}

fn decode_command_id(bytes: &[u8]) -> u64 {
    let mut id = [0; COMMAND_ID_BYTES];
    let prefix = bytes.get(..COMMAND_ID_BYTES).expect("every command starts with its id");
    id.copy_from_slice(prefix);
    u64::from_le_bytes(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SimConfig;

    #[test]
    fn command_ids_round_trip_through_padding() {
        let command = encode_command(0x0102_0304_0506_0708, 13);
        assert_eq!(command.len(), COMMAND_ID_BYTES + 13);
        assert_eq!(decode_command_id(&command), 0x0102_0304_0506_0708);
    }

    #[test]
    fn a_client_on_a_healthy_cluster_gets_everything_committed() {
        let mut cluster = Cluster::new(SimConfig::new(3, 9));
        let mut client = RetryingClient::new(10, 16);
        for _ in 0..100 {
            client.act(&mut cluster, 0.5);
            cluster.run_for(10);
        }
        assert!(client.issued() > 20);
        for _ in 0..100 {
            client.act(&mut cluster, 0.0);
            cluster.run_for(10);
        }
        assert_eq!(client.pending(), 0);
    }
}
