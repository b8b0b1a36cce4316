//! Snapshots: what one covers, its bytes, and one being received (see
//! `node/snapshot.rs` for compaction and InstallSnapshot).

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::types::{LogId, Membership};

/// What a snapshot covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The last entry the snapshot includes.
    pub last_log_id: LogId,
    /// The membership in force at that entry.
    pub membership: Membership,
}

/// A snapshot of the application's state: its coverage and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// What it covers.
    pub meta: SnapshotMeta,
    /// The application's serialized state.
    pub data: Bytes,
}

/// A snapshot a follower is receiving.
#[derive(Debug)]
pub(crate) struct IncomingSnapshot {
    /// What the snapshot covers.
    pub(crate) meta: SnapshotMeta,
    /// The snapshot's whole size, as the leader announced it.
    pub(crate) total_bytes: u64,
    /// The bytes received so far, contiguously from the start.
    pub(crate) received: BytesMut,
}
