//! The commands that carry writes through the log, and the sessions they belong to.

use std::cell::RefCell;
use std::net::SocketAddr;

use bytes::Bytes;
use raft_core::NodeId;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::mvcc::Txn;

/// A change to the replicated state: the only thing that travels through the log.
///
/// Reads are not commands: the server confirms a ReadIndex and calls
/// [`KvStore::get`](crate::KvStore::get) or [`KvStore::range`](crate::KvStore::range).
/// The variants' order is part of the log's encoding: new variants go at the end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Write {
    /// Sets `key` to `value`.
    Put {
        /// The key.
        #[serde(deserialize_with = "sliced")]
        key: Bytes,
        /// The new value.
        #[serde(deserialize_with = "sliced")]
        value: Bytes,
        /// `None`: write unconditionally. `Some(0)`: only if the key does not exist.
        /// `Some(n)`: only if the key's current version is `n` (compare-and-set).
        expect_version: Option<u64>,
    },
    /// Removes `key`.
    Delete {
        /// The key.
        #[serde(deserialize_with = "sliced")]
        key: Bytes,
        /// `None`: delete unconditionally (deleting a missing key succeeds and changes
        /// nothing). `Some(0)`: only if the key does not exist (a no-op that checks).
        /// `Some(n)`: only if the key's current version is `n`.
        expect_version: Option<u64>,
    },
    /// Records where cluster member `node` listens, so that every replica (and every
    /// snapshot) knows the addresses of members added at run time. User keys are never
    /// involved.
    SetMemberAddress {
        /// The member.
        node: NodeId,
        /// Its QUIC address.
        addr: SocketAddr,
    },
    /// Forgets the address of `node` (a removed member). Forgetting an unknown node
    /// succeeds and changes nothing.
    RemoveMemberAddress {
        /// The member.
        node: NodeId,
    },
    /// An etcd v3 transaction (a plain put or delete range is a transaction without
    /// compares). Its writes share one new revision; a transaction that changes nothing
    /// keeps the revision.
    Txn(Txn),
    /// Drops the history before `revision`: reads at earlier revisions and watches from
    /// them are refused from then on. Refused at or below the current compact revision and
    /// above the current revision.
    Compact {
        /// The revision to compact to; reads at it still work.
        revision: u64,
    },
    /// Grants a lease. The server picks the id when the client asks for "any" (etcd's 0);
    /// the store refuses an id that is not positive, a time to live that is not positive,
    /// and an id in use.
    LeaseGrant {
        /// The lease's id (positive).
        id: i64,
        /// Its time to live, in seconds (positive). The store only records it: the leader
        /// of the server counts it down and proposes [`Write::LeaseRevoke`] when it runs out.
        ttl_seconds: i64,
    },
    /// Revokes a lease and deletes every key attached to it, all at one new revision.
    LeaseRevoke {
        /// The lease's id.
        id: i64,
    },
}

impl Write {
    /// A short name for logs and metrics: `put`, `cas` (a put with an expected version),
    /// `delete`, `set_member_address`, `remove_member_address`, `txn`, `compact`,
    /// `lease_grant` or `lease_revoke`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Write::Put { expect_version: None, .. } => "put",
            Write::Put { expect_version: Some(_), .. } => "cas",
            Write::Delete { .. } => "delete",
            Write::SetMemberAddress { .. } => "set_member_address",
            Write::RemoveMemberAddress { .. } => "remove_member_address",
            Write::Txn(_) => "txn",
            Write::Compact { .. } => "compact",
            Write::LeaseGrant { .. } => "lease_grant",
            Write::LeaseRevoke { .. } => "lease_revoke",
        }
    }

    /// Whether a client may propose the write: everything but the cluster's member
    /// address book, which only the server changes.
    #[must_use]
    pub fn is_user_write(&self) -> bool {
        !matches!(self, Write::SetMemberAddress { .. } | Write::RemoveMemberAddress { .. })
    }
}

/// A client session's position: the state machine applies each `(client_id, sequence)` at
/// most once and answers a retry with the original response.
///
/// A client numbers its writes `1, 2, 3, ...` within its session and sends one at a time,
/// retrying the same session position until it gets an answer.
///
/// Client id 0 ([`Session::UNSESSIONED`]) means no session: the write applies each time
/// it is committed and nothing is recorded in the session table. etcd's clients have no
/// sessions, so the etcd API proposes its writes this way; a retry of such a write may
/// apply twice, as with etcd.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Session {
    /// The client's session id, made by [`Session::client_id_at`] from the time the
    /// session starts and random bits, so two clients never share one and later sessions
    /// have higher ids (the store refuses a session below its eviction watermark).
    pub client_id: u64,
    /// The write's number in the session, starting at 1.
    pub sequence: u64,
}

impl Session {
    /// A write without exactly-once tracking: client id 0 (and sequence 0).
    pub const UNSESSIONED: Session = Session { client_id: 0, sequence: 0 };

    /// Whether the write is outside any session (client id 0).
    #[must_use]
    pub fn is_unsessioned(&self) -> bool {
        self.client_id == 0
    }

    /// A client id for a session starting at `unix_seconds` (seconds since the Unix
    /// epoch): the time in the high 32 bits and `random` in the low 32.
    ///
    /// The store evicts idle sessions and then refuses every client id at or below the
    /// highest one it evicted, so that no late retry of an evicted session applies again;
    /// ids that grow with time keep new sessions above that watermark. 32 random bits make
    /// two sessions starting in the same second collide with odds of about 1 in 4 billion
    /// per pair. 32 bits of seconds last until the year 2106.
    #[must_use]
    pub fn client_id_at(unix_seconds: u64, random: u32) -> u64 {
        (unix_seconds.min(u64::from(u32::MAX)) << 32) | u64::from(random)
    }

    /// When the session started, in seconds since the Unix epoch, as its client id says
    /// (see [`Session::client_id_at`]).
    #[must_use]
    pub fn started_at_unix_seconds(&self) -> u64 {
        self.client_id >> 32
    }
}

/// A write as proposed to the log: the write and the client session it belongs to.
///
/// The client builds it, the wire protocol carries it unchanged, and the server proposes
/// its [encoding](Command::encode) as the payload for
/// `raft_runtime::RaftHandle::propose`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The session the write belongs to.
    pub session: Session,
    /// The write.
    pub write: Write,
}

impl Command {
    /// Encodes the command (postcard) as a Raft proposal payload.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if postcard fails (it does not for these types in practice).
    pub fn encode(&self) -> Result<Bytes, Error> {
        encode_sized(self)
            .map(Bytes::from)
            .map_err(|source| Error::Encode { what: "command", source })
    }

    /// Decodes a command from a proposal payload; trailing bytes are an error, so exactly
    /// one encoding is accepted.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] when the bytes are not exactly one command.
    pub fn decode(bytes: &[u8]) -> Result<Command, Error> {
        decode_exact(bytes, "command")
    }

    /// [`Command::decode`], with the key and value of a put or delete sharing `bytes`'
    /// buffer instead of copied out of it (see [`decode_sharing`]).
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] when the bytes are not exactly one command.
    pub fn decode_shared(bytes: &Bytes) -> Result<Command, Error> {
        decode_sharing(bytes, || decode_exact(bytes, "command"))
    }
}

/// Encodes `value` with postcard into a vector allocated once at its exact size: a size
/// pass (no writes) first, rather than growing from empty by doubling (seven allocations
/// and copies for a 300-byte command).
///
/// # Errors
///
/// postcard's, which the types here never return in practice.
pub fn encode_sized<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, postcard::Error> {
    let size = postcard::experimental::serialized_size(value)?;
    postcard::to_extend(value, Vec::with_capacity(size))
}

thread_local! {
    /// The buffer [`decode_sharing`] is decoding on this thread, if any.
    static SOURCE: RefCell<Option<Bytes>> = const { RefCell::new(None) };
}

/// Runs `decode`, which decodes from `bytes`, so that the `Bytes` fields marked
/// `deserialize_with = "sliced"` (a put's key and value, a delete's key) come out as
/// slices of `bytes`' buffer rather than copies: one allocation and copy fewer per field
/// on the write path.
///
/// A slice keeps the whole buffer alive, so share only buffers about as large as what
/// they hold: a proposal's own payload, a request being served. Never a read buffer
/// holding many requests, if the result is kept.
pub fn decode_sharing<R>(bytes: &Bytes, decode: impl FnOnce() -> R) -> R {
    /// Puts back what was there (decodes do not nest today, but this keeps them correct
    /// if they do), even if `decode` panics.
    struct Restore(Option<Bytes>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            SOURCE.with(|source| *source.borrow_mut() = previous);
        }
    }
    let previous = SOURCE.with(|source| source.replace(Some(bytes.clone())));
    let _restore = Restore(previous);
    decode()
}

/// Deserializes a `Bytes` field: within [`decode_sharing`] of the buffer it is read from,
/// as a slice of that buffer; otherwise (another buffer, or a format that does not lend
/// its input) as a copy. The encoding is `Bytes`' own, so this changes no wire format.
fn sliced<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Bytes;

        fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("bytes")
        }

        fn visit_borrowed_bytes<E: serde::de::Error>(self, bytes: &'de [u8]) -> Result<Bytes, E> {
            Ok(SOURCE.with(|source| match &*source.borrow() {
                Some(source) if contains(source, bytes) => source.slice_ref(bytes),
                _ => Bytes::copy_from_slice(bytes),
            }))
        }

        fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Bytes, E> {
            Ok(Bytes::copy_from_slice(bytes))
        }

        fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<Bytes, E> {
            Ok(Bytes::from(bytes))
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
            let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(byte) = seq.next_element()? {
                bytes.push(byte);
            }
            Ok(Bytes::from(bytes))
        }
    }
    deserializer.deserialize_bytes(Visitor)
}

/// Whether `part` lies within `whole`'s memory.
fn contains(whole: &[u8], part: &[u8]) -> bool {
    let start = whole.as_ptr() as usize;
    let at = part.as_ptr() as usize;
    at >= start && at.saturating_add(part.len()) <= start.saturating_add(whole.len())
}

/// Decodes exactly one `T` from `bytes` with postcard.
pub(crate) fn decode_exact<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T, Error> {
    let (value, rest) = postcard::take_from_bytes::<T>(bytes).map_err(|error| Error::Decode {
        what,
        bytes: bytes.len(),
        reason: error.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(Error::Decode {
            what,
            bytes: bytes.len(),
            reason: format!("{} trailing bytes after the {what}", rest.len()),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn put() -> Command {
        Command {
            session: Session { client_id: 7, sequence: 3 },
            write: Write::Put {
                key: Bytes::from_static(b"key"),
                value: Bytes::from_static(b"value"),
                expect_version: Some(2),
            },
        }
    }

    #[test]
    fn command_survives_encode_and_decode() {
        let command = put();
        assert_eq!(Command::decode(&command.encode().unwrap()).unwrap(), command);
    }

    #[test]
    fn a_shared_decode_slices_the_key_and_value_out_of_the_payload() {
        let command = put();
        let payload = command.encode().unwrap();
        let shared = Command::decode_shared(&payload).unwrap();
        assert_eq!(shared, command);
        let Write::Put { key, value, .. } = &shared.write else { panic!("{shared:?}") };
        assert!(contains(&payload, key) && contains(&payload, value), "sliced, not copied");
        // A plain decode copies, and so does a shared decode of another buffer.
        let copied = Command::decode(&payload).unwrap();
        let Write::Put { key, .. } = &copied.write else { panic!("{copied:?}") };
        assert!(!contains(&payload, key));
        let other = Bytes::copy_from_slice(&payload);
        let elsewhere = decode_sharing(&other, || Command::decode(&payload)).unwrap();
        let Write::Put { key, .. } = &elsewhere.write else { panic!("{elsewhere:?}") };
        assert!(!contains(&payload, key) && !contains(&other, key));
        assert_eq!(elsewhere, command);
    }

    #[test]
    fn sized_encoding_is_postcards_in_one_exact_allocation() {
        let command = put();
        let sized = encode_sized(&command).unwrap();
        assert_eq!(sized, postcard::to_allocvec(&command).unwrap());
        assert_eq!(sized.capacity(), sized.len(), "allocated at its exact size");
    }

    #[test]
    fn trailing_bytes_after_a_command_are_refused() {
        let mut bytes = put().encode().unwrap().to_vec();
        bytes.push(0);
        let error = Command::decode(&bytes).unwrap_err();
        assert!(matches!(error, Error::Decode { what: "command", .. }), "{error}");
    }

    #[test]
    fn truncated_command_is_refused() {
        let bytes = put().encode().unwrap();
        let error = Command::decode(&bytes[..bytes.len() - 1]).unwrap_err();
        assert!(matches!(error, Error::Decode { .. }), "{error}");
    }

    #[test]
    fn a_put_keeps_the_encoding_of_earlier_builds() {
        // client id 7, sequence 3, variant 0 (Put), key, value, Some(2): the log entries
        // and fuzz seeds written before the command types moved still decode.
        let expected = [7, 3, 0, 3, b'k', b'e', b'y', 5, b'v', b'a', b'l', b'u', b'e', 1, 2];
        assert_eq!(put().encode().unwrap().as_ref(), expected.as_slice());
    }

    #[test]
    fn member_address_commands_survive_encode_and_decode() {
        let session = Session { client_id: 1, sequence: 1 };
        let writes = [
            Write::SetMemberAddress { node: NodeId(4), addr: "127.0.0.1:7004".parse().unwrap() },
            Write::SetMemberAddress { node: NodeId(5), addr: "[::1]:7005".parse().unwrap() },
            Write::RemoveMemberAddress { node: NodeId(4) },
        ];
        for write in writes {
            let command = Command { session, write };
            assert_eq!(Command::decode(&command.encode().unwrap()).unwrap(), command);
        }
    }

    #[test]
    fn later_sessions_have_higher_client_ids() {
        let earlier = Session::client_id_at(1_700_000_000, u32::MAX);
        let later = Session::client_id_at(1_700_000_001, 0);
        assert!(later > earlier);
        assert_eq!(Session::client_id_at(u64::MAX, 7) >> 32, u64::from(u32::MAX));
        let session = Session { client_id: later, sequence: 1 };
        assert_eq!(session.started_at_unix_seconds(), 1_700_000_001);
    }

    #[test]
    fn member_address_writes_are_the_only_ones_clients_may_not_propose() {
        let key = Bytes::from_static(b"k");
        assert!(Write::Delete { key, expect_version: None }.is_user_write());
        assert!(Write::Txn(Txn::default()).is_user_write());
        assert!(Write::Compact { revision: 3 }.is_user_write());
        assert!(Write::LeaseGrant { id: 1, ttl_seconds: 5 }.is_user_write());
        assert!(Write::LeaseRevoke { id: 1 }.is_user_write());
        assert!(!Write::RemoveMemberAddress { node: NodeId(1) }.is_user_write());
    }

    #[test]
    fn new_writes_have_their_own_kinds_and_survive_encode_and_decode() {
        let writes = [
            (Write::Txn(Txn::default()), "txn"),
            (Write::Compact { revision: 9 }, "compact"),
            (Write::LeaseGrant { id: 3, ttl_seconds: 10 }, "lease_grant"),
            (Write::LeaseRevoke { id: 3 }, "lease_revoke"),
        ];
        for (write, kind) in writes {
            assert_eq!(write.kind(), kind);
            let command = Command { session: Session::UNSESSIONED, write };
            assert_eq!(Command::decode(&command.encode().unwrap()).unwrap(), command);
        }
    }

    #[test]
    fn new_write_variants_come_after_the_old_ones() {
        // Variant 4 is Txn, 5 Compact, 6 LeaseGrant, 7 LeaseRevoke: logs written by
        // earlier builds keep decoding, and these stay where they are.
        let command =
            Command { session: Session::UNSESSIONED, write: Write::Compact { revision: 2 } };
        assert_eq!(command.encode().unwrap().as_ref(), [0, 0, 5, 2].as_slice());
        let revoke = Command { session: Session::UNSESSIONED, write: Write::LeaseRevoke { id: 1 } };
        // i64 is zigzag-encoded by postcard: 1 becomes 2.
        assert_eq!(revoke.encode().unwrap().as_ref(), [0, 0, 7, 2].as_slice());
    }
}
