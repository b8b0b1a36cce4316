//! The snapshot format: the map, the sessions, the member address book, the leases and
//! the history, streamed into one buffer.
//!
//! ```text
//! magic "KVSNAP\r\n"  format version u32 | applied term u64  applied index u64
//! key count u64  session count u64  member address count u64
//! eviction watermark present u8 (0 or 1)  eviction watermark u64 (0 when absent)
//! revision u64  compact revision u64  lease count u64  event count u64
//! key count x   [key length u32, key, value length u32, value, meta]  (ascending keys)
//! session count x [client id u64, last sequence u64, last index u64,
//!                  response length u32, response (postcard)]      (ascending client ids)
//! member address count x [node id u64, address length u32, address (UTF-8 HOST:PORT)]
//!                                                                  (ascending node ids)
//! lease count x [lease id i64, time to live in seconds i64]        (ascending ids)
//! event count x [kind u8 (0 put, 1 delete), key length u32, key,
//!                put: value length u32, value, meta | delete: revision u64,
//!                previous present u8, previous: value length u32, value, meta]
//!                                                                  (history order)
//! crc32 u32 of everything before it
//!
//! meta: version u64, create index u64, mod index u64,
//!       create revision u64, mod revision u64, lease i64
//! ```
//!
//! The eviction watermark is the highest client id the session table ever evicted (see
//! the session module): no session at or below it applies a write again. A lease's keys
//! are not stored: they are the keys whose metadata names the lease. An event's previous
//! state has the event's key, and a delete event's own state is etcd's tombstone (no value,
//! all metadata zero but the mod revision), so neither is stored twice.
//!
//! Older formats still restore, and this build writes version 4:
//! - Version 3 has no revisions, leases or history, and its key metadata (in the map and
//!   in session responses) has only the version and the two indexes. It restores at
//!   revision 1 with compact revision 1, no leases and no history, every key created and
//!   last changed at revision 1 (see the `snapshot_legacy` module). Replicas that restore
//!   the same version-3 snapshot and apply the same entries stay identical; a replica that
//!   replayed the log from the start instead counts other revisions, so a cluster upgrades
//!   by restoring every node from one snapshot, or accepts that revisions differ until the
//!   next snapshot is installed everywhere.
//! - Version 2 also has no eviction watermark; it restores with none (a snapshot taken
//!   before the watermark existed cannot know which sessions were evicted before it).
//! - Version 1, written before the address book moved out of the user's keys, also has
//!   no member address count or section, and its session responses use the response enum
//!   of that time; it restores with an empty address book.
//!
//! Integers are little-endian and fixed-width, so the same state always gives the same
//! bytes on every platform. Entries are written one at a time into a buffer sized up
//! front, never through a second copy of the state. Reading checks the magic, the version
//! and the checksum before anything else, then that keys, client ids, node ids and lease
//! ids ascend, that history revisions do not fall, and that every index and revision is
//! possible at the applied index and revision, and builds the new state aside: a damaged
//! snapshot is an [`Error`] and leaves the store as it was.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use raft_core::{LogId, LogIndex, NodeId, Term};

use crate::command::decode_exact;
use crate::config::{KvConfig, MEMBER_ADDRESSES_MAX};
use crate::error::Error;
use crate::history::History;
use crate::key_index::KeyIndex;
use crate::lease::{LEASE_TTL_SECONDS_MAX, Leases};
use crate::mvcc::{Event, EventKind};
use crate::response::{KeyMeta, KeyValue, Response};
use crate::session::{SessionRecord, Sessions};
use crate::snapshot_legacy::{KeyMetaV3, LEGACY_REVISION, decode_response_v1, decode_response_v3};
use crate::store::{KvStore, REVISION_INITIAL, Record};

/// The first bytes of every kv-store snapshot. The `\r\n` catches text-mode mangling.
const MAGIC: &[u8; 8] = b"KVSNAP\r\n";
/// The format version this build writes; it also reads versions 1 to 3 (see the module
/// docs).
pub const SNAPSHOT_FORMAT_VERSION: u32 = 4;
/// The format without revisions, leases and history, still read.
const SNAPSHOT_FORMAT_VERSION_V3: u32 = 3;
/// The format without the eviction watermark, still read.
const SNAPSHOT_FORMAT_VERSION_V2: u32 = 2;
/// The format without the member address book, still read.
const SNAPSHOT_FORMAT_VERSION_V1: u32 = 1;
/// Magic, version, applied log id, key, session and member address counts, watermark,
/// revision, compact revision, lease and event counts.
const HEADER_BYTES: usize = 8 + 4 + 8 + 8 + 8 + 8 + 8 + 1 + 8 + 8 + 8 + 8 + 8;
/// The shortest header of any version read (version 1 has no member address count, no
/// watermark and nothing of version 4's).
const HEADER_BYTES_MIN: usize = 8 + 4 + 8 + 8 + 8 + 8;
/// The checksum.
const TRAILER_BYTES: usize = 4;
/// One key's metadata in version 4.
const META_BYTES: usize = 6 * 8;
/// The fixed part of one key's record: two lengths and the metadata.
const KEY_FIXED_BYTES: usize = 4 + 4 + META_BYTES;
/// The fixed part of one session's record, plus a typical response.
const SESSION_TYPICAL_BYTES: usize = 8 + 8 + 8 + 4 + 32;
/// One member address record: node id, length, and the longest IPv6 `[addr%scope]:port`.
const MEMBER_ADDRESS_MAX_BYTES: usize = 8 + 4 + 64;
/// One lease record.
const LEASE_BYTES: usize = 8 + 8;
/// The most fixed bytes of one event: kind, key length, value length, metadata, presence,
/// previous value length and metadata.
const EVENT_FIXED_BYTES: usize = 1 + 4 + 4 + META_BYTES + 1 + 4 + META_BYTES;
/// Event kind bytes.
const EVENT_PUT: u8 = 0;
const EVENT_DELETE: u8 = 1;

impl KvStore {
    /// Serializes the whole state (map, sessions, member addresses, leases, history,
    /// revisions, applied log id) deterministically: two stores in the same state give the
    /// same bytes.
    ///
    /// # Errors
    ///
    /// [`Error::SnapshotFieldTooLarge`] if a key, value or response exceeds 4 GiB (the
    /// configured limits prevent it); [`Error::Encode`] if postcard fails.
    pub fn snapshot_bytes(&self) -> Result<Bytes, Error> {
        let capacity = HEADER_BYTES
            + TRAILER_BYTES
            + usize::try_from(self.data_bytes.saturating_add(self.history.bytes())).unwrap_or(0)
            + self.map.len() * KEY_FIXED_BYTES
            + self.sessions.len() * SESSION_TYPICAL_BYTES
            + self.member_addresses.len() * MEMBER_ADDRESS_MAX_BYTES
            + self.leases.len() * LEASE_BYTES
            + self.history.len() * EVENT_FIXED_BYTES;
        let mut buffer = BytesMut::with_capacity(capacity);
        self.put_header(&mut buffer);
        for (key, record) in self.map.iter() {
            put_field(&mut buffer, "key", key)?;
            put_field(&mut buffer, "value", &record.value)?;
            put_meta(&mut buffer, &record.meta);
        }
        for (&client_id, session) in self.sessions.iter() {
            buffer.put_u64_le(client_id);
            buffer.put_u64_le(session.last_sequence);
            buffer.put_u64_le(session.last_index.0);
            let response = session.last_response.encode()?;
            put_field(&mut buffer, "session response", &response)?;
        }
        for (node, addr) in &self.member_addresses {
            buffer.put_u64_le(node.0);
            put_field(&mut buffer, "member address", addr.to_string().as_bytes())?;
        }
        for (id, lease) in self.leases.iter() {
            buffer.put_i64_le(id);
            buffer.put_i64_le(lease.ttl_seconds);
        }
        for event in self.history.iter() {
            put_event(&mut buffer, event)?;
        }
        let checksum = crc32fast::hash(&buffer);
        buffer.put_u32_le(checksum);
        Ok(buffer.freeze())
    }

    fn put_header(&self, buffer: &mut BytesMut) {
        buffer.put_slice(MAGIC);
        buffer.put_u32_le(SNAPSHOT_FORMAT_VERSION);
        buffer.put_u64_le(self.applied.term.0);
        buffer.put_u64_le(self.applied.index.0);
        buffer.put_u64_le(self.map.len() as u64);
        buffer.put_u64_le(self.sessions.len() as u64);
        buffer.put_u64_le(self.member_addresses.len() as u64);
        let watermark = self.sessions.evicted_client_id_max();
        buffer.put_u8(u8::from(watermark.is_some()));
        buffer.put_u64_le(watermark.unwrap_or(0));
        buffer.put_u64_le(self.revision);
        buffer.put_u64_le(self.compact_revision);
        buffer.put_u64_le(self.leases.len() as u64);
        buffer.put_u64_le(self.history.len() as u64);
    }

    /// Replaces the whole state with the snapshot's. With `expected`, the snapshot must
    /// record exactly that log id as applied. Keys and values (in the map and in the
    /// history) share `data`'s buffer rather than being copied.
    ///
    /// # Errors
    ///
    /// [`Error::CorruptSnapshot`] for damaged, truncated or foreign bytes, and for a
    /// snapshot beyond this store's limits; [`Error::UnsupportedSnapshotVersion`];
    /// [`Error::SnapshotMismatch`] when the applied log id differs from `expected`. On
    /// error the store is unchanged.
    pub fn restore_bytes(&mut self, data: &Bytes, expected: Option<LogId>) -> Result<(), Error> {
        let (mut reader, version) = Reader::open(data)?;
        let header = reader.header(version)?;
        if let Some(expected) = expected {
            if header.applied != expected {
                return Err(Error::SnapshotMismatch {
                    expected: expected.index.0,
                    found: header.applied.index.0,
                });
            }
        }
        reader.check_counts(&header, &self.config)?;
        let (map, data_bytes) = reader.map(&header, version)?;
        reader.check_sizes(&map, &self.config)?;
        let mut sessions = reader.sessions(header.session_count, header.applied.index, version)?;
        sessions.restore_evicted_client_id_max(header.watermark);
        let member_addresses = reader.member_addresses(header.member_address_count)?;
        let leases = reader.leases(header.lease_count, &map)?;
        let history = reader.history(&header)?;
        reader.finish()?;
        self.map = KeyIndex::from(map);
        self.sessions = sessions;
        self.member_addresses = member_addresses;
        self.applied = header.applied;
        self.data_bytes = data_bytes;
        self.revision = header.revision;
        self.compact_revision = header.compact_revision;
        self.leases = leases;
        self.history = history;
        Ok(())
    }
}

/// Writes a u32 length and the bytes.
fn put_field(buffer: &mut BytesMut, what: &'static str, field: &[u8]) -> Result<(), Error> {
    let length = u32::try_from(field.len())
        .map_err(|_| Error::SnapshotFieldTooLarge { what, bytes: field.len() })?;
    buffer.put_u32_le(length);
    buffer.put_slice(field);
    Ok(())
}

fn put_meta(buffer: &mut BytesMut, meta: &KeyMeta) {
    buffer.put_u64_le(meta.version);
    buffer.put_u64_le(meta.create_index.0);
    buffer.put_u64_le(meta.mod_index.0);
    buffer.put_u64_le(meta.create_revision);
    buffer.put_u64_le(meta.mod_revision);
    buffer.put_i64_le(meta.lease);
}

fn put_event(buffer: &mut BytesMut, event: &Event) -> Result<(), Error> {
    match event.kind {
        EventKind::Put => {
            buffer.put_u8(EVENT_PUT);
            put_field(buffer, "key", &event.kv.key)?;
            put_field(buffer, "value", &event.kv.value)?;
            put_meta(buffer, &event.kv.meta);
        }
        EventKind::Delete => {
            buffer.put_u8(EVENT_DELETE);
            put_field(buffer, "key", &event.kv.key)?;
            buffer.put_u64_le(event.revision());
        }
    }
    buffer.put_u8(u8::from(event.prev_kv.is_some()));
    if let Some(previous) = &event.prev_kv {
        put_field(buffer, "value", &previous.value)?;
        put_meta(buffer, &previous.meta);
    }
    Ok(())
}

/// The header's fields, whichever version wrote them (absent ones as that version
/// restores).
struct Header {
    applied: LogId,
    key_count: u64,
    session_count: u64,
    member_address_count: u64,
    watermark: Option<u64>,
    revision: u64,
    compact_revision: u64,
    lease_count: u64,
    event_count: u64,
}

/// Reads a snapshot's fields in order, each bounds-checked.
struct Reader<'a> {
    data: &'a Bytes,
    /// Where the next field starts.
    offset: usize,
    /// Where the checksum starts: fields end here.
    end: usize,
}

impl<'a> Reader<'a> {
    /// Checks the magic, the version and the checksum, and positions after the version;
    /// returns the reader and the format version.
    fn open(data: &'a Bytes) -> Result<(Reader<'a>, u32), Error> {
        let mut reader = Reader { data, offset: 0, end: data.len() };
        if data.len() < HEADER_BYTES_MIN + TRAILER_BYTES {
            return Err(reader.corrupt(format!(
                "it is shorter than the {} bytes of header and checksum",
                HEADER_BYTES_MIN + TRAILER_BYTES
            )));
        }
        if data.get(..MAGIC.len()) != Some(MAGIC.as_slice()) {
            return Err(reader.corrupt("it does not start with the kv-store magic".to_string()));
        }
        reader.offset = MAGIC.len();
        let version = reader.u32()?;
        let known = [
            SNAPSHOT_FORMAT_VERSION,
            SNAPSHOT_FORMAT_VERSION_V3,
            SNAPSHOT_FORMAT_VERSION_V2,
            SNAPSHOT_FORMAT_VERSION_V1,
        ];
        if !known.contains(&version) {
            return Err(Error::UnsupportedSnapshotVersion {
                found: version,
                supported: SNAPSHOT_FORMAT_VERSION,
            });
        }
        let end = data.len() - TRAILER_BYTES;
        let (body, trailer) = data.split_at(end);
        let mut stored = [0_u8; TRAILER_BYTES];
        stored.copy_from_slice(trailer);
        let stored = u32::from_le_bytes(stored);
        let computed = crc32fast::hash(body);
        if stored != computed {
            reader.offset = end;
            return Err(reader.corrupt(format!(
                "checksum {computed:#010x} of the contents does not match the stored {stored:#010x}"
            )));
        }
        reader.end = end;
        Ok((reader, version))
    }

    fn corrupt(&self, reason: String) -> Error {
        Error::CorruptSnapshot { bytes: self.data.len(), offset: self.offset, reason }
    }

    /// A corruption error located at `start`, where the record in question began.
    fn corrupt_at(&mut self, start: usize, reason: String) -> Error {
        self.offset = start;
        self.corrupt(reason)
    }

    /// The header after the version, as `version` wrote it.
    fn header(&mut self, version: u32) -> Result<Header, Error> {
        let applied = LogId::new(Term(self.u64()?), LogIndex(self.u64()?));
        let key_count = self.u64()?;
        let session_count = self.u64()?;
        let member_address_count =
            if version == SNAPSHOT_FORMAT_VERSION_V1 { 0 } else { self.u64()? };
        let has_watermark = version >= SNAPSHOT_FORMAT_VERSION_V3;
        let watermark = if has_watermark { self.watermark()? } else { None };
        let mut header = Header {
            applied,
            key_count,
            session_count,
            member_address_count,
            watermark,
            revision: LEGACY_REVISION,
            compact_revision: LEGACY_REVISION,
            lease_count: 0,
            event_count: 0,
        };
        if version == SNAPSHOT_FORMAT_VERSION {
            let start = self.offset;
            header.revision = self.u64()?;
            header.compact_revision = self.u64()?;
            header.lease_count = self.u64()?;
            header.event_count = self.u64()?;
            if header.revision < REVISION_INITIAL || header.compact_revision > header.revision {
                return Err(self.corrupt_at(
                    start,
                    format!(
                        "revision {} with compact revision {} is impossible",
                        header.revision, header.compact_revision
                    ),
                ));
            }
        }
        Ok(header)
    }

    /// Checks the header's counts and history span against this store's limits. Every
    /// replica runs with the same limits; a snapshot beyond them comes from a store
    /// configured otherwise (or is damaged), and restoring it would leave this store
    /// outside its own limits.
    fn check_counts(&self, header: &Header, limits: &KvConfig) -> Result<(), Error> {
        let same_limits = "every replica must run with the same limits";
        if header.session_count > limits.sessions_max {
            return Err(self.corrupt(format!(
                "{} sessions, over this store's sessions_max of {}; {same_limits}",
                header.session_count, limits.sessions_max
            )));
        }
        if header.member_address_count > MEMBER_ADDRESSES_MAX {
            return Err(self.corrupt(format!(
                "{} member addresses, over the maximum of {MEMBER_ADDRESSES_MAX}",
                header.member_address_count
            )));
        }
        if header.lease_count > limits.leases_max {
            return Err(self.corrupt(format!(
                "{} leases, over this store's leases_max of {}; {same_limits}",
                header.lease_count, limits.leases_max
            )));
        }
        let retained = header.revision - header.compact_revision;
        if retained > limits.history_revisions_max {
            return Err(self.corrupt(format!(
                "{retained} revisions of history, over this store's history_revisions_max of \
                 {}; {same_limits}",
                limits.history_revisions_max
            )));
        }
        Ok(())
    }

    /// Checks every key and value against this store's size limits.
    fn check_sizes(&self, map: &BTreeMap<Bytes, Record>, limits: &KvConfig) -> Result<(), Error> {
        let oversized = map.iter().find(|(key, record)| {
            key.len() as u64 > limits.key_bytes_max
                || record.value.len() as u64 > limits.value_bytes_max
        });
        match oversized {
            Some((key, record)) => Err(self.corrupt(format!(
                "a key of {} bytes with a value of {} bytes is over this store's limits \
                 ({} and {}); every replica must run with the same limits",
                key.len(),
                record.value.len(),
                limits.key_bytes_max,
                limits.value_bytes_max
            ))),
            None => Ok(()),
        }
    }

    /// The next `length` bytes, sharing the snapshot's buffer.
    fn take(&mut self, length: usize, what: &str) -> Result<Bytes, Error> {
        let available = self.end - self.offset;
        if length > available {
            return Err(self.corrupt(format!(
                "a {what} of {length} bytes runs past the end ({available} bytes left)"
            )));
        }
        let field = self.data.slice(self.offset..self.offset + length);
        self.offset += length;
        Ok(field)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], Error> {
        let field = self.take(N, what)?;
        let mut array = [0_u8; N];
        array.copy_from_slice(&field);
        Ok(array)
    }

    fn u8(&mut self) -> Result<u8, Error> {
        self.array("u8").map(u8::from_le_bytes)
    }

    /// The eviction watermark: a presence byte, then the id (zero when absent).
    fn watermark(&mut self) -> Result<Option<u64>, Error> {
        let start = self.offset;
        let present = self.u8()?;
        let client_id = self.u64()?;
        match (present, client_id) {
            (0, 0) => Ok(None),
            (1, client_id) => Ok(Some(client_id)),
            _ => Err(self.corrupt_at(
                start,
                format!("eviction watermark presence byte {present} with client id {client_id}"),
            )),
        }
    }

    fn u32(&mut self) -> Result<u32, Error> {
        self.array("u32").map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, Error> {
        self.array("u64").map(u64::from_le_bytes)
    }

    fn i64(&mut self) -> Result<i64, Error> {
        self.array("i64").map(i64::from_le_bytes)
    }

    /// A u32 length, then that many bytes.
    fn field(&mut self, what: &str) -> Result<Bytes, Error> {
        let length = self.u32()? as usize;
        self.take(length, what)
    }

    /// A presence byte: 0 or 1.
    fn present(&mut self, what: &str) -> Result<bool, Error> {
        let start = self.offset;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(self.corrupt_at(start, format!("{what} presence byte {other}"))),
        }
    }

    /// Key metadata as `version` wrote it.
    fn meta(&mut self, version: u32) -> Result<KeyMeta, Error> {
        let version_count = self.u64()?;
        let create_index = LogIndex(self.u64()?);
        let mod_index = LogIndex(self.u64()?);
        if version != SNAPSHOT_FORMAT_VERSION {
            return Ok(KeyMetaV3 { version: version_count, create_index, mod_index }.upgrade());
        }
        Ok(KeyMeta {
            version: version_count,
            create_index,
            mod_index,
            create_revision: self.u64()?,
            mod_revision: self.u64()?,
            lease: self.i64()?,
        })
    }

    /// Reads the keys; returns the map and the total key and value bytes.
    fn map(
        &mut self,
        header: &Header,
        version: u32,
    ) -> Result<(BTreeMap<Bytes, Record>, u64), Error> {
        let mut map = BTreeMap::new();
        let mut data_bytes = 0_u64;
        for _ in 0..header.key_count {
            let start = self.offset;
            let key = self.field("key")?;
            let value = self.field("value")?;
            let meta = self.meta(version)?;
            if !possible_key(&meta, header.applied.index, header.revision) {
                return Err(self.corrupt_at(
                    start,
                    format!(
                        "key metadata {meta:?} is impossible at applied index {} and revision \
                         {}",
                        header.applied.index, header.revision
                    ),
                ));
            }
            if map.last_key_value().is_some_and(|(last, _): (&Bytes, _)| *last >= key) {
                return Err(
                    self.corrupt_at(start, "keys are not in strictly ascending order".to_string())
                );
            }
            data_bytes = data_bytes.saturating_add((key.len() + value.len()) as u64);
            map.insert(key, Record { value, meta });
        }
        Ok((map, data_bytes))
    }

    /// Reads `count` sessions of format `version`.
    fn sessions(
        &mut self,
        count: u64,
        applied_index: LogIndex,
        version: u32,
    ) -> Result<Sessions, Error> {
        let mut sessions = Sessions::default();
        let mut previous_client = None;
        for _ in 0..count {
            let start = self.offset;
            let client_id = self.u64()?;
            let last_sequence = self.u64()?;
            let last_index = LogIndex(self.u64()?);
            let response = self.field("session response")?;
            let last_response = decode_session_response(&response, version).map_err(|error| {
                self.corrupt(format!("client {client_id}'s session response: {error}"))
            })?;
            if previous_client.is_some_and(|previous| previous >= client_id) {
                return Err(
                    self.corrupt_at(start, "client ids are not in strictly ascending order".into())
                );
            }
            previous_client = Some(client_id);
            if last_index > applied_index || last_index == LogIndex::ZERO {
                return Err(self.corrupt_at(
                    start,
                    format!(
                        "client {client_id}'s last write at index {last_index} is impossible at \
                         applied index {applied_index}"
                    ),
                ));
            }
            let session = SessionRecord { last_sequence, last_response, last_index };
            if !sessions.insert_restored(client_id, session) {
                return Err(
                    self.corrupt_at(start, format!("two sessions wrote at index {last_index}"))
                );
            }
        }
        Ok(sessions)
    }

    /// Reads `count` member addresses.
    fn member_addresses(&mut self, count: u64) -> Result<BTreeMap<NodeId, SocketAddr>, Error> {
        let mut addresses = BTreeMap::new();
        for _ in 0..count {
            let start = self.offset;
            let node = NodeId(self.u64()?);
            let text = self.field("member address")?;
            let addr = std::str::from_utf8(&text).ok().and_then(|text| text.parse().ok());
            let Some(addr) = addr else {
                return Err(
                    self.corrupt_at(start, format!("node {node}'s address is not HOST:PORT"))
                );
            };
            if addresses.last_key_value().is_some_and(|(&last, _)| last >= node) {
                return Err(
                    self.corrupt_at(start, "node ids are not in strictly ascending order".into())
                );
            }
            addresses.insert(node, addr);
        }
        Ok(addresses)
    }

    /// Reads `count` leases and attaches the keys whose metadata names them; every lease a
    /// key names must be there.
    fn leases(&mut self, count: u64, map: &BTreeMap<Bytes, Record>) -> Result<Leases, Error> {
        let mut leases = Leases::default();
        let mut previous_id = None;
        for _ in 0..count {
            let start = self.offset;
            let id = self.i64()?;
            let ttl_seconds = self.i64()?;
            if id <= 0 || ttl_seconds <= 0 || ttl_seconds > LEASE_TTL_SECONDS_MAX {
                return Err(self.corrupt_at(
                    start,
                    format!("lease {id} with a time to live of {ttl_seconds} s is impossible"),
                ));
            }
            if previous_id.is_some_and(|previous| previous >= id) {
                return Err(
                    self.corrupt_at(start, "lease ids are not in strictly ascending order".into())
                );
            }
            previous_id = Some(id);
            leases.grant(id, ttl_seconds);
        }
        for (key, record) in map {
            let lease = record.meta.lease;
            if lease != 0 && !leases.attach(lease, key.clone()) {
                return Err(self.corrupt(format!("a key is attached to missing lease {lease}")));
            }
        }
        Ok(leases)
    }

    /// Reads the history's events.
    fn history(&mut self, header: &Header) -> Result<History, Error> {
        let mut history = History::default();
        let mut last_revision = header.compact_revision;
        for _ in 0..header.event_count {
            let start = self.offset;
            let event = self.event(header.applied.index)?;
            let revision = event.revision();
            // Revision 1 is the empty store's: no write made it.
            if revision <= REVISION_INITIAL
                || revision < last_revision
                || revision > header.revision
            {
                return Err(self.corrupt_at(
                    start,
                    format!(
                        "an event at revision {revision} after one at {last_revision} is \
                         impossible in a history from revision {} to {}",
                        header.compact_revision, header.revision
                    ),
                ));
            }
            last_revision = revision;
            history.push(event);
        }
        Ok(history)
    }

    /// Reads one event; its metadata must be possible at `applied_index`.
    fn event(&mut self, applied_index: LogIndex) -> Result<Event, Error> {
        let start = self.offset;
        let kind = self.u8()?;
        let key = self.field("key")?;
        let (kind, kv) = match kind {
            EVENT_PUT => {
                let value = self.field("value")?;
                let meta = self.meta(SNAPSHOT_FORMAT_VERSION)?;
                let possible = possible_key(&meta, applied_index, meta.mod_revision);
                (possible.then_some(EventKind::Put), KeyValue { key: key.clone(), value, meta })
            }
            EVENT_DELETE => {
                let meta = KeyMeta { mod_revision: self.u64()?, ..KeyMeta::default() };
                (Some(EventKind::Delete), KeyValue { key: key.clone(), value: Bytes::new(), meta })
            }
            _ => {
                (None, KeyValue { key: key.clone(), value: Bytes::new(), meta: KeyMeta::default() })
            }
        };
        let prev_kv = if self.present("previous key")? {
            let value = self.field("value")?;
            let meta = self.meta(SNAPSHOT_FORMAT_VERSION)?;
            Some(KeyValue { key, value, meta })
        } else {
            None
        };
        let revision = kv.meta.mod_revision;
        let previous_possible = prev_kv.as_ref().is_none_or(|previous| {
            previous.meta.mod_revision < revision
                && possible_key(&previous.meta, applied_index, previous.meta.mod_revision)
        });
        // A delete always had something to delete.
        let delete_without_previous = kind == Some(EventKind::Delete) && prev_kv.is_none();
        match kind {
            Some(kind) if previous_possible && !delete_without_previous => {
                Ok(Event { kind, kv, prev_kv })
            }
            _ => Err(self.corrupt_at(
                start,
                format!("an event of kind {kind:?} with {kv:?} after {prev_kv:?} is impossible"),
            )),
        }
    }

    /// Checks that nothing is left before the checksum.
    fn finish(&self) -> Result<(), Error> {
        if self.offset != self.end {
            let extra = self.end - self.offset;
            return Err(self.corrupt(format!("{extra} unexpected bytes after the last record")));
        }
        Ok(())
    }
}

/// Whether a key's metadata is possible at `applied_index` and `revision`.
fn possible_key(meta: &KeyMeta, applied_index: LogIndex, revision: u64) -> bool {
    meta.version != 0
        && meta.create_index <= meta.mod_index
        && meta.mod_index <= applied_index
        && meta.create_revision != 0
        && meta.create_revision <= meta.mod_revision
        && meta.mod_revision <= revision
        && meta.lease >= 0
}

/// Decodes a session's remembered response as format `version` wrote it.
fn decode_session_response(bytes: &[u8], version: u32) -> Result<Response, Error> {
    match version {
        SNAPSHOT_FORMAT_VERSION => decode_exact(bytes, "session response"),
        SNAPSHOT_FORMAT_VERSION_V1 => decode_response_v1(bytes),
        _ => decode_response_v3(bytes),
    }
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
