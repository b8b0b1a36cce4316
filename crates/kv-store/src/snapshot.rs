//! The snapshot format: the map, the sessions and the member address book, streamed into
//! one buffer.
//!
//! ```text
//! magic "KVSNAP\r\n"  format version u32 | applied term u64  applied index u64
//! key count u64  session count u64  member address count u64
//! eviction watermark present u8 (0 or 1)  eviction watermark u64 (0 when absent)
//! key count x   [key length u32, key, value length u32, value,
//!                version u64, create index u64, mod index u64]      (ascending keys)
//! session count x [client id u64, last sequence u64, last index u64,
//!                  response length u32, response (postcard)]      (ascending client ids)
//! member address count x [node id u64, address length u32, address (UTF-8 HOST:PORT)]
//!                                                                  (ascending node ids)
//! crc32 u32 of everything before it
//! ```
//!
//! The eviction watermark is the highest client id the session table ever evicted (see
//! the session module): no session at or below it applies a write again.
//!
//! Version 2 has no eviction watermark; it restores with none (a snapshot taken before
//! the watermark existed cannot know which sessions were evicted before it).
//! Version 1, written before the address book moved out of the user's keys, has no member
//! address count or section, and its session responses use the response enum of that
//! time; this build still restores it (with an empty address book) and writes version 3.
//!
//! Integers are little-endian and fixed-width, so the same state always gives the same
//! bytes on every platform. Entries are written one at a time into a buffer sized up
//! front, never through a second copy of the state. Reading checks the magic, the version
//! and the checksum before anything else, then that keys and client ids ascend and that
//! every index lies at or below the applied index, and builds the new state aside: a
//! damaged snapshot is an [`Error`] and leaves the store as it was.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use raft_core::{LogId, LogIndex, NodeId, Term};
use serde::Deserialize;

use crate::command::decode_exact;
use crate::config::MEMBER_ADDRESSES_MAX;
use crate::error::Error;
use crate::response::{
    DeleteResult, KeyMeta, KeyValue, RangeResult, Rejection, Response, WriteResult,
};
use crate::session::{SessionRecord, Sessions};
use crate::store::{KvStore, Record};

/// The first bytes of every kv-store snapshot. The `\r\n` catches text-mode mangling.
const MAGIC: &[u8; 8] = b"KVSNAP\r\n";
/// The format version this build writes; it also reads versions 1 and 2 (see the module
/// docs).
pub const SNAPSHOT_FORMAT_VERSION: u32 = 3;
/// The format without the eviction watermark, still read.
const SNAPSHOT_FORMAT_VERSION_V2: u32 = 2;
/// The format without the member address book, still read.
const SNAPSHOT_FORMAT_VERSION_V1: u32 = 1;
/// Magic, version, applied log id, key, session and member address counts, watermark.
const HEADER_BYTES: usize = 8 + 4 + 8 + 8 + 8 + 8 + 8 + 1 + 8;
/// The shortest header of any version read (version 1 has no member address count and
/// no watermark).
const HEADER_BYTES_MIN: usize = HEADER_BYTES - 8 - 1 - 8;
/// The checksum.
const TRAILER_BYTES: usize = 4;
/// The fixed part of one key's record: two lengths and three u64s.
const KEY_FIXED_BYTES: usize = 4 + 4 + 8 + 8 + 8;
/// The fixed part of one session's record, plus a typical response.
const SESSION_TYPICAL_BYTES: usize = 8 + 8 + 8 + 4 + 32;
/// One member address record: node id, length, and the longest IPv6 `[addr%scope]:port`.
const MEMBER_ADDRESS_MAX_BYTES: usize = 8 + 4 + 64;

impl KvStore {
    /// Serializes the whole state (map, sessions, member addresses, applied log id)
    /// deterministically: two stores in the same state give the same bytes.
    ///
    /// # Errors
    ///
    /// [`Error::SnapshotFieldTooLarge`] if a key, value or response exceeds 4 GiB (the
    /// configured limits prevent it); [`Error::Encode`] if postcard fails.
    pub fn snapshot_bytes(&self) -> Result<Bytes, Error> {
        let capacity = HEADER_BYTES
            + TRAILER_BYTES
            + usize::try_from(self.data_bytes).unwrap_or(0)
            + self.map.len() * KEY_FIXED_BYTES
            + self.sessions.len() * SESSION_TYPICAL_BYTES
            + self.member_addresses.len() * MEMBER_ADDRESS_MAX_BYTES;
        let mut buffer = BytesMut::with_capacity(capacity);
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
        for (key, record) in &self.map {
            put_field(&mut buffer, "key", key)?;
            put_field(&mut buffer, "value", &record.value)?;
            buffer.put_u64_le(record.meta.version);
            buffer.put_u64_le(record.meta.create_index.0);
            buffer.put_u64_le(record.meta.mod_index.0);
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
        let checksum = crc32fast::hash(&buffer);
        buffer.put_u32_le(checksum);
        Ok(buffer.freeze())
    }

    /// Replaces the whole state with the snapshot's. With `expected`, the snapshot must
    /// record exactly that log id as applied. Keys and values share `data`'s buffer rather
    /// than being copied.
    ///
    /// # Errors
    ///
    /// [`Error::CorruptSnapshot`] for damaged, truncated or foreign bytes;
    /// [`Error::UnsupportedSnapshotVersion`]; [`Error::SnapshotMismatch`] when the applied
    /// log id differs from `expected`. On error the store is unchanged.
    pub fn restore_bytes(&mut self, data: &Bytes, expected: Option<LogId>) -> Result<(), Error> {
        let (mut reader, version) = Reader::open(data)?;
        let applied = LogId::new(Term(reader.u64()?), LogIndex(reader.u64()?));
        if let Some(expected) = expected {
            if applied != expected {
                return Err(Error::SnapshotMismatch {
                    expected: expected.index.0,
                    found: applied.index.0,
                });
            }
        }
        let key_count = reader.u64()?;
        let session_count = reader.u64()?;
        let member_address_count =
            if version == SNAPSHOT_FORMAT_VERSION_V1 { 0 } else { reader.u64()? };
        let watermark = if version == SNAPSHOT_FORMAT_VERSION { reader.watermark()? } else { None };
        // Every replica runs with the same limits; a snapshot beyond them comes from a
        // store configured otherwise (or is damaged), and restoring it would leave this
        // store outside its own limits.
        let limits = &self.config;
        if session_count > limits.sessions_max {
            return Err(reader.corrupt(format!(
                "{session_count} sessions, over this store's sessions_max of {}; every \
                 replica must run with the same limits",
                limits.sessions_max
            )));
        }
        if member_address_count > MEMBER_ADDRESSES_MAX {
            return Err(reader.corrupt(format!(
                "{member_address_count} member addresses, over the maximum of \
                 {MEMBER_ADDRESSES_MAX}"
            )));
        }
        let (map, data_bytes) = reader.map(key_count, applied.index)?;
        let oversized = map.iter().find(|(key, record)| {
            key.len() as u64 > limits.key_bytes_max
                || record.value.len() as u64 > limits.value_bytes_max
        });
        if let Some((key, record)) = oversized {
            return Err(reader.corrupt(format!(
                "a key of {} bytes with a value of {} bytes is over this store's limits \
                 ({} and {}); every replica must run with the same limits",
                key.len(),
                record.value.len(),
                limits.key_bytes_max,
                limits.value_bytes_max
            )));
        }
        let mut sessions = reader.sessions(session_count, applied.index, version)?;
        sessions.restore_evicted_client_id_max(watermark);
        let member_addresses = reader.member_addresses(member_address_count)?;
        reader.finish()?;
        self.map = map;
        self.sessions = sessions;
        self.member_addresses = member_addresses;
        self.applied = applied;
        self.data_bytes = data_bytes;
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
        let known =
            [SNAPSHOT_FORMAT_VERSION, SNAPSHOT_FORMAT_VERSION_V2, SNAPSHOT_FORMAT_VERSION_V1];
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
            _ => {
                self.offset = start;
                Err(self.corrupt(format!(
                    "eviction watermark presence byte {present} with client id {client_id}"
                )))
            }
        }
    }

    fn u32(&mut self) -> Result<u32, Error> {
        self.array("u32").map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, Error> {
        self.array("u64").map(u64::from_le_bytes)
    }

    /// A u32 length, then that many bytes.
    fn field(&mut self, what: &str) -> Result<Bytes, Error> {
        let length = self.u32()? as usize;
        self.take(length, what)
    }

    /// Reads `count` keys; returns the map and the total key and value bytes.
    fn map(
        &mut self,
        count: u64,
        applied_index: LogIndex,
    ) -> Result<(BTreeMap<Bytes, Record>, u64), Error> {
        let mut map = BTreeMap::new();
        let mut data_bytes = 0_u64;
        for _ in 0..count {
            let start = self.offset;
            let key = self.field("key")?;
            let value = self.field("value")?;
            let meta = KeyMeta {
                version: self.u64()?,
                create_index: LogIndex(self.u64()?),
                mod_index: LogIndex(self.u64()?),
            };
            if meta.version == 0
                || meta.create_index > meta.mod_index
                || meta.mod_index > applied_index
            {
                self.offset = start;
                return Err(self.corrupt(format!(
                    "key metadata {meta:?} is impossible at applied index {applied_index}"
                )));
            }
            if map.last_key_value().is_some_and(|(last, _): (&Bytes, _)| *last >= key) {
                self.offset = start;
                return Err(self.corrupt("keys are not in strictly ascending order".to_string()));
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
                self.offset = start;
                return Err(self.corrupt("client ids are not in strictly ascending order".into()));
            }
            previous_client = Some(client_id);
            if last_index > applied_index || last_index == LogIndex::ZERO {
                self.offset = start;
                return Err(self.corrupt(format!(
                    "client {client_id}'s last write at index {last_index} is impossible at \
                     applied index {applied_index}"
                )));
            }
            let session = SessionRecord { last_sequence, last_response, last_index };
            if !sessions.insert_restored(client_id, session) {
                self.offset = start;
                return Err(self.corrupt(format!("two sessions wrote at index {last_index}")));
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
                self.offset = start;
                return Err(self.corrupt(format!("node {node}'s address is not HOST:PORT")));
            };
            if addresses.last_key_value().is_some_and(|(&last, _)| last >= node) {
                self.offset = start;
                return Err(self.corrupt("node ids are not in strictly ascending order".into()));
            }
            addresses.insert(node, addr);
        }
        Ok(addresses)
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

/// Decodes a session's remembered response as format `version` wrote it.
fn decode_session_response(bytes: &[u8], version: u32) -> Result<Response, Error> {
    if version != SNAPSHOT_FORMAT_VERSION_V1 {
        return decode_exact(bytes, "session response");
    }
    let response: ResponseV1 = decode_exact(bytes, "session response")?;
    response.into_response().ok_or_else(|| Error::Decode {
        what: "session response",
        bytes: bytes.len(),
        reason: "a read's answer is not the answer to a write".to_owned(),
    })
}

/// [`Response`] as format version 1 encoded it: it also had the answers to reads, which no
/// session ever remembered. Only the variants' order matters to postcard. Its rejections
/// decode as today's [`Rejection`]: a session only ever remembered the size refusals, whose
/// positions did not change.
#[derive(Deserialize)]
enum ResponseV1 {
    Written(WriteResult),
    Deleted(DeleteResult),
    Conflict { current_version: Option<u64> },
    Value(#[allow(dead_code)] Option<KeyValue>),
    Range(#[allow(dead_code)] RangeResult),
    NoOp,
    Rejected(Rejection),
}

impl ResponseV1 {
    /// The same response today; `None` for a read's answer.
    fn into_response(self) -> Option<Response> {
        match self {
            ResponseV1::Written(written) => Some(Response::Written(written)),
            ResponseV1::Deleted(deleted) => Some(Response::Deleted(deleted)),
            ResponseV1::Conflict { current_version } => {
                Some(Response::Conflict { current_version })
            }
            ResponseV1::NoOp => Some(Response::NoOp),
            ResponseV1::Rejected(rejection) => Some(Response::Rejected(rejection)),
            ResponseV1::Value(_) | ResponseV1::Range(_) => None,
        }
    }
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
