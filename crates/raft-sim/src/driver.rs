//! The driver each simulated node runs: how it performs a `Ready` (send, persist, install,
//! apply, serve reads), and when it snapshots its application to compact the log.
//!
//! Snapshots are taken when [`raft_core::Node::snapshot_due`] says so, at the applied index.
//! The node compacts its in-memory log first (raft-core allows that before the snapshot is
//! durable, since it holds only applied state); the simulator then stores the snapshot and
//! drops the covered log prefix from the durable store in one instant, as a driver that
//! writes and syncs a snapshot file before truncating its log would, with no crash possible
//! in between. A crash afterwards restarts the node from that snapshot and the entries after
//! it, with the application restored from the snapshot. While a snapshot received from the
//! leader is still on its way to disk the node does not compact, so snapshots reach the
//! store in the order they were taken.

use raft_core::{Entry, LogIndex, Message, Ready, Role, Snapshot};
use rand::Rng;

use crate::cluster::Cluster;
use crate::events::Event;
use crate::storage::PendingWrite;

/// The most `Ready`s one input may produce before the simulator calls it a livelock: a node
/// that keeps reporting work after handing it all out would otherwise hang the run.
const READY_ROUNDS_MAX: usize = 1_000;

impl Cluster {
    /// Takes and performs `Ready`s until the node has no more work, snapshotting its
    /// application whenever the node says a snapshot is due.
    pub(crate) fn drain(&mut self, position: usize) {
        for _ in 0..READY_ROUNDS_MAX {
            let Some(node) = self.slots[position].node.as_mut() else {
                return;
            };
            if !node.has_ready() {
                self.maybe_compact(position);
                return;
            }
            let ready = node.ready();
            self.handle_ready(position, ready);
            // Only a disk that ignores sync feeds the node while its Ready is handled.
            if self.config.disk_ignores_sync {
                self.observe(position);
            }
        }
        panic!(
            "node {} still has work after {READY_ROUNDS_MAX} Readys (seed {})",
            self.slots[position].id, self.config.seed
        );
    }

    /// Performs one `Ready` in the order its contract gives.
    fn handle_ready(&mut self, position: usize, ready: Ready) {
        let Ready {
            hard_state,
            entries_to_persist,
            messages_now,
            messages_after_persist,
            committed_entries,
            snapshot_to_install,
            read_states,
            // Role changes are observed on the node itself.
            ..
        } = ready;
        if !entries_to_persist.is_empty() {
            self.check_handed_out(position, &entries_to_persist);
        }
        for message in messages_now {
            self.send(message);
        }
        let waits_for_disk = !self.config.disk_ignores_sync;
        let writes = hard_state.is_some() || !entries_to_persist.is_empty();
        if writes || snapshot_to_install.is_some() {
            let write = PendingWrite {
                snapshot: snapshot_to_install.clone(),
                hard_state,
                entries: entries_to_persist,
                messages_after_persist,
                done_at_ms: 0,
            };
            self.issue_write(position, write);
        } else if let Some(write) =
            self.slots[position].writes.back_mut().filter(|_| waits_for_disk)
        {
            // These messages promise state handed out earlier, which may still be on its
            // way to disk: they leave with the last write issued.
            write.messages_after_persist.extend(messages_after_persist);
        } else {
            for message in messages_after_persist {
                if waits_for_disk {
                    self.check_promise(position, &message);
                }
                self.send(message);
            }
        }
        if let Some(snapshot) = snapshot_to_install {
            self.restore_from_snapshot(position, &snapshot);
        }
        self.apply(position, &committed_entries);
        let id = self.slots[position].id;
        let awaited: Vec<_> = read_states
            .into_iter()
            .filter(|read_state| self.reads.is_awaited(id, read_state, self.config.seed))
            .collect();
        self.slots[position].reads_waiting.extend(awaited);
        self.serve_reads(position);
    }

    /// Replaces the application's state with a snapshot received from the leader.
    fn restore_from_snapshot(&mut self, position: usize, snapshot: &Snapshot) {
        let id = self.slots[position].id;
        let (machine, kv) = self.decode_snapshot(id, snapshot);
        let applied_index = self.slots[position].machine.applied_index;
        assert!(
            machine.applied_index > applied_index,
            "safety violation (seed {}): node {id} was handed a snapshot up to {}, which is \
             not past the index {applied_index} its application already applied",
            self.config.seed,
            snapshot.meta.last_log_id
        );
        let bootstrap = &self.slots[position].bootstrap_membership;
        self.checker.check_snapshot(id, bootstrap, &snapshot.meta, &machine);
        let slot = &mut self.slots[position];
        // The node kept the entries after the snapshot only if its log held the snapshot's
        // last entry; otherwise its log now ends at the snapshot and what follows is new.
        let last_index = slot.node.as_ref().map_or(LogIndex::ZERO, |node| node.last_log_id().index);
        let snapshot_index = snapshot.meta.last_log_id.index;
        slot.handed_out_last = slot.handed_out_last.min(last_index).max(snapshot_index);
        slot.machine = machine;
        slot.kv = kv;
        slot.applied.clear();
        slot.snapshots_installed += 1;
        self.reads.on_applied(machine.applied_index);
        self.trace(|| format!("n{id} installed snapshot {}", snapshot.meta.last_log_id));
    }

    /// Applies committed entries, checking each against the committed log and the state
    /// reached against the committed prefix.
    fn apply(&mut self, position: usize, entries: &[Entry]) {
        if entries.is_empty() {
            return;
        }
        let slot = &mut self.slots[position];
        for entry in entries {
            self.checker.on_apply(slot.id, &slot.machine, entry);
            slot.machine.apply(entry);
            if let Some(kv) = slot.kv.as_mut() {
                self.kv_record.apply(kv, entry, self.now_ms, self.config.seed);
            }
            slot.applied.push(entry.clone());
        }
        self.checker.check_state(slot.id, &slot.machine, "applied the committed log");
        self.reads.on_applied(slot.machine.applied_index);
    }

    /// Serves every waiting read whose read index the application reached.
    fn serve_reads(&mut self, position: usize) {
        let slot = &mut self.slots[position];
        if slot.reads_waiting.is_empty() {
            return;
        }
        let applied_index = slot.machine.applied_index;
        let early = self.config.serve_reads_before_applied;
        let (ready, waiting) = std::mem::take(&mut slot.reads_waiting)
            .into_iter()
            .partition(|read_state| early || read_state.read_index <= applied_index);
        slot.reads_waiting = waiting;
        let (id, machine) = (slot.id, slot.machine);
        for read_state in ready {
            let served = self.reads.serve(
                id,
                read_state,
                &machine,
                self.now_ms,
                &self.checker,
                self.config.seed,
            );
            if let Some(served) = served {
                let kv = self.slots[position].kv.as_ref();
                self.kv_record.on_read_served(served.read_id, kv, self.now_ms);
                self.trace(|| {
                    format!(
                        "n{id} served read {} at index {} (read index {})",
                        served.read_id.0, served.applied_index, served.read_index
                    )
                });
            }
        }
    }

    /// Snapshots the application and compacts the log when the node says a snapshot is due
    /// (see the module documentation for how the snapshot is made durable).
    fn maybe_compact(&mut self, position: usize) {
        let slot = &mut self.slots[position];
        let Some(node) = slot.node.as_mut() else {
            return;
        };
        // A snapshot received from the leader and still on its way to disk would replace
        // this one when it lands: compact once it is durable.
        let installing = slot.writes.iter().any(|write| write.snapshot.is_some());
        if installing || !node.snapshot_due() {
            return;
        }
        let machine = slot.machine;
        assert_eq!(
            machine.applied_index,
            node.applied_index(),
            "the application applied everything the node handed out"
        );
        let data = crate::kv_application::encode_snapshot(&machine, slot.kv.as_ref());
        let meta = node.compact(machine.applied_index, data.clone()).unwrap_or_else(|error| {
            panic!("node {} refused to compact its applied log: {error}", slot.id)
        });
        self.checker.check_snapshot(slot.id, &slot.bootstrap_membership, &meta, &machine);
        let last_log_id = meta.last_log_id;
        slot.store.install_snapshot(Snapshot { meta, data });
        slot.snapshots_taken += 1;
        let id = slot.id;
        self.trace(|| format!("n{id} compacted its log up to {last_log_id}"));
    }

    /// Log Matching for handed-out entries; entries are handed out without gaps (an entry
    /// skipped would never be persisted, yet count as durable once a later one is); and a
    /// leader only ever appends to its log.
    fn check_handed_out(&mut self, position: usize, entries: &[Entry]) {
        let slot = &self.slots[position];
        let node = slot.node.as_ref().expect("a running node hands out entries");
        self.checker.on_entries_handed_out(node, entries);
        let first = entries[0].log_id.index;
        assert!(
            first <= slot.handed_out_last.next(),
            "safety violation (seed {}): node {} handed out entries from {first} for \
             persisting, but only up to {} before: the entries in between are never persisted",
            self.config.seed,
            slot.id,
            slot.handed_out_last
        );
        if node.role() == Role::Leader {
            assert_eq!(
                first,
                slot.handed_out_last.next(),
                "safety violation (seed {}): leader {} rewrote its own log from index {first}",
                self.config.seed,
                slot.id
            );
        }
        let last = entries[entries.len() - 1].log_id.index;
        self.slots[position].handed_out_last = last;
    }

    /// Queues `write` on the node's disk, to complete after a random latency but never
    /// before the writes issued earlier.
    fn issue_write(&mut self, position: usize, mut write: PendingWrite) {
        let latency_ms =
            self.rng.random_range(self.config.disk_write_ms_min..=self.config.disk_write_ms_max);
        let slot = &mut self.slots[position];
        // Writes complete in the order issued, as the Ready contract requires.
        let after_ms = slot.writes.back().map_or(0, |write| write.done_at_ms);
        write.done_at_ms = (self.now_ms + latency_ms).max(after_ms);
        let event = Event::WriteDone { node: slot.id, incarnation: slot.incarnation };
        self.queue.push(write.done_at_ms, event);
        slot.writes.push_back(write);
        if self.config.disk_ignores_sync {
            self.acknowledge_early(position);
        }
    }

    /// What a driver on a disk that ignores sync does: it believes the write it just issued
    /// is durable, so it sends what waited for it and reports it persisted.
    fn acknowledge_early(&mut self, position: usize) {
        let write = self.slots[position].writes.back_mut().expect("a write was just issued");
        let messages: Vec<Message> = std::mem::take(&mut write.messages_after_persist);
        let last = write.entries.last().map(|entry| entry.log_id);
        for message in messages {
            self.send(message);
        }
        if let (Some(last), Some(node)) = (last, self.slots[position].node.as_mut()) {
            node.on_persisted(last);
        }
    }
}
