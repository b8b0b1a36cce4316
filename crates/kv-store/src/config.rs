//! The state machine's limits.

use crate::command::Write;
use crate::error::Error;
use crate::response::Rejection;

/// The state machine's limits.
///
/// Every replica of a cluster must run with the same values: they decide which commands
/// apply, which sessions are evicted and when history is compacted, so replicas with
/// different limits would diverge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvConfig {
    /// The largest key, in bytes. Default 4 KiB: keys are held in memory twice over (map
    /// and responses) and compared on every lookup, so they should stay small.
    pub key_bytes_max: u64,
    /// The largest value, in bytes. Default 1 MiB: a value travels in one log entry and one
    /// network frame, so it must stay well below the transport's frame limit.
    pub value_bytes_max: u64,
    /// The most client sessions remembered; the least recently active is evicted first.
    /// Default 10,000: each session holds one small response (about 100 bytes), so this
    /// costs about 1 MB, and a client must stay idle while 10,000 others write before it
    /// loses its session.
    pub sessions_max: u64,
    /// The most entries one range query returns. Default 10,000: it bounds the size of a
    /// range response no matter what limit the client asked for.
    pub range_entries_max: u64,
    /// The most revisions of history kept for reads at past revisions and for watches.
    /// When applying a write moves the revision more than this past the compact revision,
    /// the store compacts to `revision - history_revisions_max` by itself, at the same
    /// entry on every replica (this is the server's `--auto-compaction-retention` in
    /// revision mode). Default 10,000: about what etcd's clients expect to find after a
    /// short disconnection. Each revision costs its events (about 200 bytes each, plus old
    /// values the map no longer holds).
    pub history_revisions_max: u64,
    /// The most memory the history may weigh: its keys and values (old values included)
    /// plus about 200 bytes per event. When a write takes it past this, the store compacts
    /// away its oldest revisions by itself (whole revisions: it may exceed this by the
    /// newest revision's events), at the same entry on every replica. Default 64 MiB: with
    /// `history_revisions_max`, it keeps a burst of large values or wide transactions from
    /// holding gigabytes in memory and in every snapshot.
    pub history_bytes_max: u64,
    /// The most operations one transaction may hold, counted as etcd counts
    /// `--max-txn-ops`: per level the most of its compares, success and failure operations,
    /// with a nested transaction allowed what its parent left. Default 128, etcd's.
    pub txn_ops_max: u64,
    /// The most leases the store holds at once. Default 100,000: a lease costs about 100
    /// bytes plus its keys' names.
    pub leases_max: u64,
}

/// The largest `key_bytes_max` accepted: 1 MiB.
pub const KEY_BYTES_MAX_LIMIT: u64 = 1 << 20;
/// The largest `value_bytes_max` accepted: 256 MiB (the snapshot format's lengths are
/// 32-bit, and one entry must fit in memory several times over).
pub const VALUE_BYTES_MAX_LIMIT: u64 = 256 << 20;
/// The largest `sessions_max` accepted: 10 million sessions, about 1 GB.
pub const SESSIONS_MAX_LIMIT: u64 = 10_000_000;
/// The largest `range_entries_max` accepted.
pub const RANGE_ENTRIES_MAX_LIMIT: u64 = 1_000_000;
/// The largest `history_revisions_max` accepted: 10 million revisions, at least a few GB
/// of events.
pub const HISTORY_REVISIONS_MAX_LIMIT: u64 = 10_000_000;
/// The largest `history_bytes_max` accepted: 64 GiB.
pub const HISTORY_BYTES_MAX_LIMIT: u64 = 64 << 30;
/// The largest `txn_ops_max` accepted: every operation may answer up to
/// `range_entries_max` keys, so transactions must stay far smaller than the log's entries.
pub const TXN_OPS_MAX_LIMIT: u64 = 10_000;
/// The largest `leases_max` accepted: 10 million leases, about 1 GB.
pub const LEASES_MAX_LIMIT: u64 = 10_000_000;
/// The most member addresses the store records. A Raft cluster has a handful of members,
/// so 1,024 leaves room for any real cluster (and for addresses not yet removed) while
/// bounding what a stream of `SetMemberAddress` commands can make every replica hold.
pub const MEMBER_ADDRESSES_MAX: u64 = 1024;

impl Default for KvConfig {
    fn default() -> KvConfig {
        KvConfig {
            key_bytes_max: 4 << 10,
            value_bytes_max: 1 << 20,
            sessions_max: 10_000,
            range_entries_max: 10_000,
            history_revisions_max: 10_000,
            history_bytes_max: 64 << 20,
            txn_ops_max: 128,
            leases_max: 100_000,
        }
    }
}

impl KvConfig {
    /// Checks every field's range.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the first field out of range.
    pub fn validate(&self) -> Result<(), Error> {
        let checks = [
            (
                "key_bytes_max",
                self.key_bytes_max,
                KEY_BYTES_MAX_LIMIT,
                "1 <= key_bytes_max <= 1 MiB",
            ),
            (
                "value_bytes_max",
                self.value_bytes_max,
                VALUE_BYTES_MAX_LIMIT,
                "1 <= value_bytes_max <= 256 MiB",
            ),
            ("sessions_max", self.sessions_max, SESSIONS_MAX_LIMIT, "1 <= sessions_max <= 10^7"),
            (
                "range_entries_max",
                self.range_entries_max,
                RANGE_ENTRIES_MAX_LIMIT,
                "1 <= range_entries_max <= 10^6",
            ),
            (
                "history_revisions_max",
                self.history_revisions_max,
                HISTORY_REVISIONS_MAX_LIMIT,
                "1 <= history_revisions_max <= 10^7",
            ),
            (
                "history_bytes_max",
                self.history_bytes_max,
                HISTORY_BYTES_MAX_LIMIT,
                "1 <= history_bytes_max <= 64 GiB",
            ),
            ("txn_ops_max", self.txn_ops_max, TXN_OPS_MAX_LIMIT, "1 <= txn_ops_max <= 10^4"),
            ("leases_max", self.leases_max, LEASES_MAX_LIMIT, "1 <= leases_max <= 10^7"),
        ];
        for (field, value, max, rule) in checks {
            if value == 0 || value > max {
                return Err(Error::InvalidConfig { field, value, rule });
            }
        }
        Ok(())
    }

    /// Checks a write against the limits that do not depend on the store's state, as the
    /// state machine will when applying it: key and value sizes (of every key, range end
    /// and value inside a transaction, at any depth), a transaction's operation count and
    /// nesting, and a key written twice in one transaction. The server calls this before
    /// proposing, so that such a write never reaches the log; the state machine checks
    /// again, since a proposal may come from a node with another build.
    ///
    /// # Errors
    ///
    /// [`Error::CommandRefused`] with [`Rejection::KeyTooLarge`],
    /// [`Rejection::ValueTooLarge`], [`Rejection::TooManyOps`],
    /// [`Rejection::TxnNestedTooDeep`] or [`Rejection::DuplicateKey`].
    pub fn validate_write(&self, write: &Write) -> Result<(), Error> {
        match self.check_limits(write) {
            Some(rejection) => Err(Error::CommandRefused { source: rejection }),
            None => Ok(()),
        }
    }

    /// Checks the key of a read (or the prefix of a range) against `key_bytes_max`, as a
    /// write's key is checked: a key no write can create is refused, not looked up.
    ///
    /// # Errors
    ///
    /// [`Error::CommandRefused`] with [`Rejection::KeyTooLarge`].
    pub fn validate_key(&self, key: &[u8]) -> Result<(), Error> {
        match self.check_key(key) {
            Some(rejection) => Err(Error::CommandRefused { source: rejection }),
            None => Ok(()),
        }
    }

    /// The rejection a write's state-independent limits earn, if any.
    pub(crate) fn check_limits(&self, write: &Write) -> Option<Rejection> {
        match write {
            Write::Put { key, value, .. } => {
                self.check_key(key).or_else(|| self.check_value(value))
            }
            Write::Delete { key, .. } => self.check_key(key),
            Write::Txn(txn) => crate::txn_check::check_txn(self, txn),
            Write::SetMemberAddress { .. }
            | Write::RemoveMemberAddress { .. }
            | Write::Compact { .. }
            | Write::LeaseGrant { .. }
            | Write::LeaseRevoke { .. } => None,
        }
    }

    /// The rejection a value's size earns, if any.
    pub(crate) fn check_value(&self, value: &[u8]) -> Option<Rejection> {
        let value_bytes = value.len() as u64;
        (value_bytes > self.value_bytes_max)
            .then_some(Rejection::ValueTooLarge { bytes: value_bytes, max: self.value_bytes_max })
    }

    /// The rejection a key's size earns, if any.
    pub(crate) fn check_key(&self, key: &[u8]) -> Option<Rejection> {
        let key_bytes = key.len() as u64;
        (key_bytes > self.key_bytes_max)
            .then_some(Rejection::KeyTooLarge { bytes: key_bytes, max: self.key_bytes_max })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use bytes::Bytes;

    use super::*;

    #[test]
    fn default_config_is_valid() {
        KvConfig::default().validate().unwrap();
    }

    #[test]
    fn new_limits_are_refused_by_name_out_of_range() {
        let cases = [
            KvConfig { history_revisions_max: 0, ..KvConfig::default() },
            KvConfig {
                history_revisions_max: HISTORY_REVISIONS_MAX_LIMIT + 1,
                ..KvConfig::default()
            },
            KvConfig { txn_ops_max: 0, ..KvConfig::default() },
            KvConfig { leases_max: LEASES_MAX_LIMIT + 1, ..KvConfig::default() },
            KvConfig { history_bytes_max: 0, ..KvConfig::default() },
        ];
        let fields = [
            "history_revisions_max",
            "history_revisions_max",
            "txn_ops_max",
            "leases_max",
            "history_bytes_max",
        ];
        for (config, expected) in cases.iter().zip(fields) {
            let error = config.validate().unwrap_err();
            assert!(matches!(error, Error::InvalidConfig { field, .. } if field == expected));
        }
    }

    #[test]
    fn zero_sessions_max_is_refused_by_name() {
        let config = KvConfig { sessions_max: 0, ..KvConfig::default() };
        let error = config.validate().unwrap_err();
        assert!(matches!(error, Error::InvalidConfig { field: "sessions_max", value: 0, .. }));
    }

    #[test]
    fn oversized_value_is_refused_before_proposing() {
        let config = KvConfig { value_bytes_max: 4, ..KvConfig::default() };
        let write = Write::Put {
            key: Bytes::from_static(b"k"),
            value: Bytes::from_static(b"12345"),
            expect_version: None,
        };
        let error = config.validate_write(&write).unwrap_err();
        assert!(matches!(
            error,
            Error::CommandRefused { source: Rejection::ValueTooLarge { bytes: 5, max: 4 } }
        ));
    }

    #[test]
    fn value_at_the_limit_is_accepted() {
        let config = KvConfig { value_bytes_max: 4, key_bytes_max: 1, ..KvConfig::default() };
        let write = Write::Put {
            key: Bytes::from_static(b"k"),
            value: Bytes::from_static(b"1234"),
            expect_version: None,
        };
        config.validate_write(&write).unwrap();
    }

    #[test]
    fn oversized_read_key_is_refused_like_a_write_key() {
        let config = KvConfig { key_bytes_max: 2, ..KvConfig::default() };
        let error = config.validate_key(b"abc").unwrap_err();
        assert!(matches!(
            error,
            Error::CommandRefused { source: Rejection::KeyTooLarge { bytes: 3, max: 2 } }
        ));
        config.validate_key(b"ab").unwrap();
    }
}
