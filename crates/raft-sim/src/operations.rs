//! What clients and operators ask of the cluster: commands, linearizable reads, leadership
//! transfers and membership changes, each handed to one node as a real client would.

use bytes::Bytes;
use raft_core::{Error, LogId, LogIndex, MembershipChange, NodeId, ReadId};

use crate::cluster::Cluster;
use crate::reads::ServedRead;

/// How long [`Cluster::replicate`] waits for one proposal to be applied before it proposes
/// the command again: five of the longest default election timeouts, time enough for a new
/// leader to be elected and to commit.
const REPLICATE_RETRY_MS: u64 = 1_000;

/// How long [`Cluster::replicate`] waits before asking again when there is no leader: one
/// default tick.
const LEADER_POLL_MS: u64 = 10;

impl Cluster {
    /// Proposes `command` to [`Cluster::leader`]. Returns the entry's id, or `None` when there
    /// is no leader.
    pub fn propose(&mut self, command: impl Into<Bytes>) -> Option<LogId> {
        let leader = self.leader()?;
        self.propose_to(leader, command)
    }

    /// Proposes `command` to node `id`, as a client talking to it would. Returns the entry's
    /// id, or `None` when the node is down or refuses (see [`Cluster::try_propose`]).
    pub fn propose_to(&mut self, id: NodeId, command: impl Into<Bytes>) -> Option<LogId> {
        self.try_propose(id, command).ok().flatten()
    }

    /// Proposes `command` to node `id`. Returns `Ok(None)` when the node is down, and the
    /// node's refusal as it gave it (not the leader, a leadership transfer under way), so a
    /// test can tell a refused proposal from one silently lost.
    ///
    /// # Errors
    ///
    /// What [`raft_core::Node::propose`] refused with.
    pub fn try_propose(
        &mut self,
        id: NodeId,
        command: impl Into<Bytes>,
    ) -> Result<Option<LogId>, Error> {
        let position = self.position(id);
        let Some(node) = self.slots[position].node.as_mut() else {
            return Ok(None);
        };
        let log_id = node.propose(command.into())?;
        self.trace(|| format!("n{id} proposed {log_id}"));
        self.after_input(position, 5);
        Ok(Some(log_id))
    }

    /// Proposes every command to node `id` before letting it hand out its work, as a driver
    /// that drains a burst of client requests before calling `ready()` would, so the node
    /// can batch them. Returns the entries' ids (fewer than the commands if the node stopped
    /// leading; none when it is down or not the leader).
    pub fn propose_batch_to(
        &mut self,
        id: NodeId,
        commands: impl IntoIterator<Item = Bytes>,
    ) -> Vec<LogId> {
        let position = self.position(id);
        let Some(node) = self.slots[position].node.as_mut() else {
            return Vec::new();
        };
        let mut log_ids = Vec::new();
        for command in commands {
            match node.propose(command) {
                Ok(log_id) => log_ids.push(log_id),
                Err(_) => break,
            }
        }
        if !log_ids.is_empty() {
            self.trace(|| format!("n{id} proposed a batch of {}", log_ids.len()));
            self.after_input(position, 6);
        }
        log_ids
    }

    /// Gets `command` applied by at least `nodes_min` running nodes, like a client that
    /// retries: proposes it to the leader, waits, and proposes again if it was lost. Returns
    /// the index it was applied at, or `None` after `duration_ms_max`.
    pub fn replicate(
        &mut self,
        command: impl Into<Bytes>,
        nodes_min: usize,
        duration_ms_max: u64,
    ) -> Option<LogIndex> {
        let command = command.into();
        let deadline_ms = self.now_ms + duration_ms_max;
        while self.now_ms < deadline_ms {
            let remaining_ms = deadline_ms - self.now_ms;
            let Some(log_id) = self.propose(command.clone()) else {
                self.run_for(LEADER_POLL_MS.min(remaining_ms));
                continue;
            };
            let index = log_id.index;
            let wait_ms = REPLICATE_RETRY_MS.min(remaining_ms);
            if self
                .run_until(wait_ms, |cluster| cluster.applied_count(index, &command) >= nodes_min)
            {
                return Some(index);
            }
        }
        None
    }

    /// Invokes a linearizable read on node `id`, as a client talking to it would. Returns
    /// the read's id, or `None` when the node is down or refuses at once (it knows no
    /// leader). The read is checked when it is served (see [`Cluster::served_read`]); it may
    /// never be, if the request or its answer is lost or the node crashes, and a client then
    /// gives up and reads again.
    pub fn read(&mut self, id: NodeId) -> Option<ReadId> {
        self.invoke_read(id, None)
    }

    /// [`Cluster::read`], noting `key` first (so a read served at once is served with it)
    /// when the KV workload reads it.
    pub(crate) fn invoke_read(&mut self, id: NodeId, key: Option<Bytes>) -> Option<ReadId> {
        let position = self.position(id);
        self.slots[position].node.as_ref()?;
        let read_id = self.reads.invoke(id, self.now_ms);
        if let Some(key) = key {
            self.kv_record.register_read(read_id, key);
        }
        let node = self.slots[position].node.as_mut().expect("checked above");
        if node.read_index(read_id).is_err() {
            self.reads.cancel(read_id);
            self.kv_record.cancel_read(read_id);
            return None;
        }
        self.trace(|| format!("n{id} invoked read {}", read_id.0));
        self.after_input(position, 7);
        Some(read_id)
    }

    /// The read `read_id`, once it was served.
    #[must_use]
    pub fn served_read(&self, read_id: ReadId) -> Option<&ServedRead> {
        self.reads.served(read_id)
    }

    /// Every read served so far, in id order.
    pub fn served_reads(&self) -> impl Iterator<Item = &ServedRead> {
        self.reads.all_served()
    }

    /// The highest index any node has applied: every write up to it was acknowledged.
    #[must_use]
    pub fn acknowledged_index(&self) -> LogIndex {
        self.reads.acknowledged_index()
    }

    /// Asks node `id`, which should lead, to hand leadership to `target`.
    ///
    /// # Errors
    ///
    /// What [`raft_core::Node::transfer_leader`] refused with; `NotLeader` when `id` is down.
    pub fn transfer_leader(&mut self, id: NodeId, target: NodeId) -> Result<(), Error> {
        let position = self.position(id);
        let node = self.slots[position].node.as_mut();
        let node = node.ok_or(Error::NotLeader { leader_hint: None })?;
        node.transfer_leader(target)?;
        self.trace(|| format!("n{id} transfers leadership to n{target}"));
        self.after_input(position, 8);
        Ok(())
    }

    /// Asks node `id`, which should lead, to make one membership change.
    ///
    /// # Errors
    ///
    /// What [`raft_core::Node::propose_membership_change`] refused with; `NotLeader` when
    /// `id` is down.
    pub fn propose_membership_change(
        &mut self,
        id: NodeId,
        change: MembershipChange,
    ) -> Result<LogId, Error> {
        let position = self.position(id);
        let node = self.slots[position].node.as_mut();
        let node = node.ok_or(Error::NotLeader { leader_hint: None })?;
        let log_id = node.propose_membership_change(change)?;
        self.trace(|| format!("n{id} proposed {change} at {log_id}"));
        self.after_input(position, 9);
        Ok(log_id)
    }
}
