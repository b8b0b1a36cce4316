//! Snapshots and log compaction (Raft dissertation chapter 5).
//!
//! The application snapshots its state at an applied index and hands the bytes to
//! [`Node::compact`]; the node drops the log prefix and keeps the snapshot (a reference-
//! counted `Bytes`, never copied) to send to followers that fall behind the compacted
//! prefix. It sends it in chunks of at most `snapshot_chunk_bytes`, one at a time: the
//! follower acknowledges how many bytes it holds, so a lost chunk is resent from there
//! (after the next heartbeat answer) instead of starting over, and heartbeats and appends
//! to other followers are never held up, since nothing here blocks.

use bytes::{Bytes, BytesMut};
use tracing::{debug, info};

use super::Node;
use crate::error::{Error, SnapshotProblem};
use crate::message::MessageBody;
use crate::role::RoleState;
use crate::snapshot::{IncomingSnapshot, Snapshot, SnapshotMeta};
use crate::types::{EntryPayload, LogId, LogIndex, Membership, NodeId};

impl Node {
    /// Compacts the log up to `last_included` (inclusive), which `data` (the application's
    /// state after applying it) now stands for. Returns the snapshot's metadata for the
    /// driver to store next to the data.
    ///
    /// The in-memory compaction may happen before the snapshot is durable (the snapshot
    /// holds only applied, hence committed, state), but the driver must drop the log prefix
    /// from storage only once the snapshot is durable: a crash in between must leave either
    /// the old log or the new snapshot.
    ///
    /// # Errors
    ///
    /// [`Error::SnapshotNotApplicable`] when `last_included` is not yet applied or is not
    /// past the current compaction point.
    pub fn compact(&mut self, last_included: LogIndex, data: Bytes) -> Result<SnapshotMeta, Error> {
        let applied_index = self.log.applied_index();
        let compacted = self.log.compacted().index;
        if last_included > applied_index || last_included <= compacted {
            let reason =
                SnapshotProblem::OutsideAppliedLog { applied_index, compacted_index: compacted };
            return Err(Error::SnapshotNotApplicable { last_included, reason });
        }
        let Some(term) = self.log.term_at(last_included) else {
            let reason = SnapshotProblem::EntryNotInLog;
            return Err(Error::SnapshotNotApplicable { last_included, reason });
        };
        let meta = SnapshotMeta {
            last_log_id: LogId::new(term, last_included),
            membership: self.membership_at(last_included),
        };
        info!(node = %self.config.id, %last_included, bytes = data.len(), "compacting the log");
        self.log.compact_to(meta.last_log_id);
        self.base_membership = meta.membership.clone();
        self.snapshot = Some(Snapshot { meta: meta.clone(), data });
        Ok(meta)
    }

    /// Whether the log held in memory passed the configured snapshot threshold and the
    /// configured share of the latest snapshot's size
    /// ([`crate::Config::snapshot_log_percent_of_snapshot`]), with applied entries to
    /// snapshot (only those can go into one).
    #[must_use]
    pub fn snapshot_due(&self) -> bool {
        let Some(threshold) = self.config.snapshot_log_bytes else {
            return false;
        };
        let latest = self.snapshot.as_ref().map_or(0, |snapshot| snapshot.data.len() as u64);
        let percent = self.config.snapshot_log_percent_of_snapshot;
        let share = u128::from(latest) * u128::from(percent) / 100;
        let due_at = threshold.get().max(u64::try_from(share).unwrap_or(u64::MAX));
        self.log.applied_index() > self.log.compacted().index && self.log.entries_bytes() >= due_at
    }

    /// The latest snapshot this node holds (its own, or one installed from the leader).
    #[must_use]
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// The membership in force at `index` (which must not be compacted).
    fn membership_at(&self, index: LogIndex) -> Membership {
        self.log
            .entries()
            .iter()
            .rev()
            .filter(|entry| entry.log_id.index <= index)
            .find_map(|entry| match &entry.payload {
                EntryPayload::Membership(membership) => Some(membership.clone()),
                EntryPayload::Empty | EntryPayload::Command(_) => None,
            })
            .unwrap_or_else(|| self.base_membership.clone())
    }

    /// Sends `peer` the next chunk of the leader's snapshot. Returns false (nothing more to
    /// send now) always: chunks go one at a time.
    pub(crate) fn send_snapshot_chunk(&mut self, peer: NodeId) -> bool {
        let chunk_bytes = self.config.snapshot_chunk_bytes.get();
        let RoleState::Leader(leader) = &mut self.role else {
            return false;
        };
        let (Some(snapshot), Some(progress)) = (&self.snapshot, leader.progress.get_mut(&peer))
        else {
            return false;
        };
        let last_log_id = snapshot.meta.last_log_id;
        let Some(offset) = progress.snapshot_chunk_offset(last_log_id) else {
            return false;
        };
        let total_bytes = snapshot.data.len() as u64;
        let start = usize::try_from(offset.min(total_bytes)).unwrap_or(usize::MAX);
        let end = usize::try_from(offset.saturating_add(chunk_bytes).min(total_bytes))
            .unwrap_or(usize::MAX);
        let data = snapshot.data.slice(start..end);
        let meta = snapshot.meta.clone();
        progress.on_snapshot_chunk_sent(last_log_id, offset);
        debug!(%peer, %last_log_id, offset, bytes = data.len(), "sending snapshot chunk");
        self.send(peer, MessageBody::InstallSnapshot { meta, offset, total_bytes, data });
        false
    }

    /// A follower's handling of a snapshot chunk from the leader of the current term.
    pub(crate) fn handle_install_snapshot(
        &mut self,
        leader: NodeId,
        meta: SnapshotMeta,
        offset: u64,
        total_bytes: u64,
        data: Bytes,
    ) {
        if self.is_leader() {
            return;
        }
        self.follow(leader);
        let last_log_id = meta.last_log_id;
        if last_log_id.index <= self.log.commit_index() {
            // Already have everything it covers: say so, so the leader moves on.
            let body =
                MessageBody::InstallSnapshotResponse { last_log_id, received_bytes: total_bytes };
            self.send(leader, body);
            return;
        }
        let same = self
            .incoming_snapshot
            .as_ref()
            .is_some_and(|incoming| incoming.meta == meta && incoming.total_bytes == total_bytes);
        if !same {
            self.incoming_snapshot = (offset == 0).then(|| IncomingSnapshot {
                meta,
                total_bytes,
                received: BytesMut::new(),
            });
        }
        let Some(incoming) = &mut self.incoming_snapshot else {
            // A chunk of a snapshot we never saw the start of: ask for the start.
            let body = MessageBody::InstallSnapshotResponse { last_log_id, received_bytes: 0 };
            self.send(leader, body);
            return;
        };
        let received = incoming.received.len() as u64;
        let fits = received + data.len() as u64 <= incoming.total_bytes;
        if offset == received && fits {
            incoming.received.extend_from_slice(&data);
        }
        let received_bytes = incoming.received.len() as u64;
        if received_bytes == incoming.total_bytes {
            self.install_incoming_snapshot();
        }
        let body = MessageBody::InstallSnapshotResponse { last_log_id, received_bytes };
        self.send(leader, body);
    }

    fn install_incoming_snapshot(&mut self) {
        let Some(incoming) = self.incoming_snapshot.take() else {
            return;
        };
        let snapshot = Snapshot { meta: incoming.meta, data: incoming.received.freeze() };
        let last_log_id = snapshot.meta.last_log_id;
        info!(node = %self.config.id, %last_log_id, bytes = snapshot.data.len(), "installing snapshot");
        self.log.install_snapshot(last_log_id);
        self.base_membership = snapshot.meta.membership.clone();
        self.refresh_membership();
        self.snapshot_to_install = Some(snapshot.clone());
        self.snapshot = Some(snapshot);
    }

    /// A leader's handling of a follower's answer to a snapshot chunk.
    pub(crate) fn handle_install_snapshot_response(
        &mut self,
        peer: NodeId,
        last_log_id: LogId,
        received_bytes: u64,
    ) {
        // The size of the snapshot the answer is about: if the leader compacted again
        // since, it holds only the newer one, whose size says nothing about this transfer
        // (comparing with it once took a half-received snapshot for an installed one, and
        // a heartbeat then committed the follower's divergent tail: sweep seed 3766).
        let total_bytes = match &self.snapshot {
            Some(snapshot) if snapshot.meta.last_log_id == last_log_id => {
                snapshot.data.len() as u64
            }
            _ => u64::MAX,
        };
        let RoleState::Leader(leader) = &mut self.role else {
            return;
        };
        let Some(progress) = leader.progress.get_mut(&peer) else {
            return;
        };
        progress.mark_recently_active();
        if progress.snapshot_being_sent() != Some(last_log_id) {
            return;
        }
        if received_bytes >= total_bytes {
            info!(%peer, %last_log_id, "follower installed the snapshot");
            progress.on_snapshot_installed(last_log_id.index);
            self.advance_commit_index();
            self.mark_replication_pending();
        } else {
            if progress.on_snapshot_chunk_acked(last_log_id, received_bytes) {
                self.send_snapshot_chunk(peer);
            }
        }
    }
}
