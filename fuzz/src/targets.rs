//! The bodies of the fuzz targets, one function per target, shared by the cargo-fuzz
//! binaries (`fuzz/fuzz_targets/*.rs`) and kv-server's corpus test
//! (`crates/kv-server/tests/fuzz_corpus.rs`), so CI replays the checked-in corpus through
//! exactly the code the fuzzer ran.
//!
//! Every function takes arbitrary bytes and returns whether they were accepted (decoded,
//! restored or opened); it panics only on a bug: a decoder that panicked, or a property
//! that failed on what it accepted (a decoded value that does not survive re-encoding, a
//! restored store that does not snapshot back to itself, a retried write applied twice).
//! [`seeds`] builds the valid inputs checked in under `fuzz/corpus/<target>/valid-*`.
//!
//! This file is compiled in two crates with different dependencies' names in scope, so it
//! names only crates both have: bytes, crc32fast, postcard, redb, serde, tempfile and ours.

use std::path::Path;
use std::sync::OnceLock;

use bytes::Bytes;
use raft_core::{
    Entry, EntryPayload, HardState, LogId, LogIndex, Membership, NodeId, Snapshot, SnapshotMeta,
    Term,
};

/// The targets, by the name of their corpus directory.
pub const TARGETS: [&str; 6] = [
    "client_request",
    "kv_command",
    "kv_snapshot",
    "storage_files",
    "wal_segment",
    "frame_decoder",
];

/// Runs the target called `name` on `data`; `None` for an unknown name.
pub fn run(name: &str, data: &[u8]) -> Option<bool> {
    match name {
        "client_request" => Some(client_request(data)),
        "kv_command" => Some(kv_command(data)),
        "kv_snapshot" => Some(kv_snapshot(data)),
        "storage_files" => Some(storage_files(data)),
        "wal_segment" => Some(wal_segment(data)),
        "frame_decoder" => Some(frame_decoder(data)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// client_request: the client/server protocol a node decodes from every client stream.

/// Decodes `data` as a client [`Request`](kv_client::protocol::Request) and as a
/// [`Response`](kv_client::protocol::Response); whatever decodes must survive re-encoding.
/// Accepted when either decodes.
pub fn client_request(data: &[u8]) -> bool {
    use kv_client::protocol::{Request, Response, decode, encode};
    let request = decode::<Request>(data).ok();
    if let Some(request) = &request {
        let _ = request.kind();
        let encoded = encode(request);
        assert!(encoded.is_ok(), "a decoded request fails to encode: {request:?}");
        if let Ok(encoded) = encoded {
            assert_eq!(decode::<Request>(&encoded).ok().as_ref(), Some(request));
        }
    }
    let response = decode::<Response>(data).ok();
    if let Some(response) = &response {
        let encoded = encode(response);
        assert!(encoded.is_ok(), "a decoded response fails to encode: {response:?}");
        if let Ok(encoded) = encoded {
            assert_eq!(decode::<Response>(&encoded).ok().as_ref(), Some(response));
        }
    }
    request.is_some() || response.is_some()
}

// ---------------------------------------------------------------------------------------
// kv_command: committed log entries, as the state machine decodes and applies them.

/// Limits small enough that the fuzzer reaches every size check and session eviction.
fn small_config() -> kv_store::KvConfig {
    kv_store::KvConfig {
        key_bytes_max: 16,
        value_bytes_max: 64,
        sessions_max: 3,
        range_entries_max: 4,
        history_revisions_max: 8,
        history_bytes_max: 2048,
        txn_ops_max: 8,
        leases_max: 4,
    }
}

/// The most commands one input applies, so that an input's cost stays bounded.
const COMMANDS_MAX: usize = 64;

/// Decodes `data` as a [`kv_store::Command`] and a [`kv_store::Response`] (each must
/// survive re-encoding), then applies to a small [`kv_store::KvStore`]: `data` itself as
/// one entry's payload, then every command a postcard stream of `data` decodes into,
/// each twice (a retry must be answered exactly as the first attempt), with reads of the
/// command's key served between them. The store must then snapshot and restore to an
/// equal store. Accepted when `data` is exactly one command.
pub fn kv_command(data: &[u8]) -> bool {
    use kv_store::{Command, KvStore, Response};
    let command = Command::decode(data).ok();
    if let Some(command) = &command {
        let encoded = command.encode();
        assert!(encoded.is_ok(), "a decoded command fails to encode: {command:?}");
        if let Ok(encoded) = encoded {
            assert_eq!(Command::decode(&encoded).ok().as_ref(), Some(command));
        }
    }
    if let Ok(response) = Response::decode(data) {
        let encoded = response.encode();
        assert!(encoded.is_ok(), "a decoded response fails to encode: {response:?}");
        if let Ok(encoded) = encoded {
            assert_eq!(Response::decode(&encoded).ok(), Some(response));
        }
    }

    let Ok(mut store) = KvStore::new(small_config()) else {
        return command.is_some();
    };
    let mut index = LogIndex(0);
    let mut apply = |store: &mut KvStore, payload: EntryPayload| {
        index = index.next();
        store.apply_entry(&Entry { log_id: LogId::new(Term(1), index), payload })
    };
    apply(&mut store, EntryPayload::Command(Bytes::copy_from_slice(data)));
    let mut rest = data;
    for _ in 0..COMMANDS_MAX {
        let Ok((command, tail)) = postcard::take_from_bytes::<Command>(rest) else {
            break;
        };
        rest = tail;
        if let kv_store::Write::Put { key, .. } | kv_store::Write::Delete { key, .. } =
            &command.write
        {
            let _ = store.get(key);
            let _ = store.range(key, None);
        }
        let Ok(payload) = command.encode() else {
            break;
        };
        let first = apply(&mut store, EntryPayload::Command(payload.clone()));
        let retry = apply(&mut store, EntryPayload::Command(payload));
        assert_eq!(first, retry, "a retried command was not answered as the first attempt");
    }
    apply(&mut store, EntryPayload::Empty);
    let stale = Entry { log_id: LogId::new(Term(1), LogIndex(1)), payload: EntryPayload::Empty };
    assert!(matches!(store.apply_entry(&stale), Response::Rejected(_)));
    check_snapshot_round_trip(&store);
    command.is_some()
}

/// Asserts that `store` snapshots, and that the snapshot restores to an equal store
/// which snapshots to the same bytes.
fn check_snapshot_round_trip(store: &kv_store::KvStore) {
    let snapshot = store.snapshot_bytes();
    assert!(snapshot.is_ok(), "a store fails to snapshot: {snapshot:?}");
    let Ok(snapshot) = snapshot else {
        return;
    };
    let Ok(mut replica) = kv_store::KvStore::new(store.config().clone()) else {
        return;
    };
    let restored = replica.restore_bytes(&snapshot, Some(store.applied_log_id()));
    assert!(restored.is_ok(), "a store's own snapshot fails to restore: {restored:?}");
    assert_eq!(&replica, store, "a snapshot restored to another state");
    assert_eq!(replica.snapshot_bytes().ok(), Some(snapshot), "snapshots are not deterministic");
}

// ---------------------------------------------------------------------------------------
// kv_snapshot: a state machine snapshot, as a node restores it from its leader or its disk.

/// Restores a [`kv_store::KvStore`] from `data[1..]`. Bit 0 of `data[0]` first replaces
/// the last four bytes with the checksum of the rest, so the fuzzer reaches past the
/// checksum. A restore must fail cleanly or give a consistent store: one that snapshots
/// and restores to itself and keeps applying writes. Accepted when it restores.
pub fn kv_snapshot(data: &[u8]) -> bool {
    let Some((&flags, rest)) = data.split_first() else {
        return false;
    };
    let mut bytes = rest.to_vec();
    if flags & 1 != 0 {
        fix_trailing_crc(&mut bytes);
    }
    let Ok(mut store) = kv_store::KvStore::new(small_config()) else {
        return false;
    };
    let before = store.clone();
    if store.restore_bytes(&Bytes::from(bytes), None).is_err() {
        assert_eq!(store, before, "a failed restore changed the store");
        return false;
    }
    check_snapshot_round_trip(&store);
    // The restored store keeps working: a new session writes, a known one retries.
    let applied = store.applied_log_id();
    if let Some(next) = applied.index.0.checked_add(1) {
        let command = kv_store::Command {
            session: kv_store::Session { client_id: 1, sequence: 1 },
            write: kv_store::Write::Put {
                key: Bytes::from_static(b"k"),
                value: Bytes::from_static(b"v"),
                expect_version: None,
            },
        };
        if let Ok(payload) = command.encode() {
            let log_id = LogId::new(applied.term, LogIndex(next));
            let _ = store.apply_entry(&Entry { log_id, payload: EntryPayload::Command(payload) });
            check_snapshot_round_trip(&store);
        }
    }
    true
}

/// Replaces the last four bytes with the little-endian crc32 of the bytes before them.
fn fix_trailing_crc(bytes: &mut [u8]) {
    let Some(body_bytes) = bytes.len().checked_sub(4) else {
        return;
    };
    let (body, trailer) = bytes.split_at_mut(body_bytes);
    trailer.copy_from_slice(&crc32fast::hash(body).to_le_bytes());
}

// ---------------------------------------------------------------------------------------
// storage_files: the files raft-storage reads back at start-up.

/// The store's tables, by the names raft-storage gives them (its on-disk format).
const META: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("raft_meta");
const HARD_STATE: redb::TableDefinition<&str, &[u8]> =
    redb::TableDefinition::new("raft_hard_state");
const ENTRIES: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("raft_entries");
/// The metadata records fields 1, 3, 4 and 5 replace, and the hard state's key.
const SNAPSHOT_KEY: &str = "snapshot";
const BOOTSTRAP_KEY: &str = "bootstrap_membership";
const FIRST_INDEX_KEY: &str = "first_index";
const FORMAT_KEY: &str = "format";
const HARD_STATE_KEY: &str = "hard_state";
/// Where the snapshot file goes when the record names none the harness can use.
const FALLBACK_SNAPSHOT_FILE: &str = "snapshot-00000000000000000001-00000000000000000001.snap";
/// A field length meaning "remove this record".
const REMOVE: u16 = u16::MAX;
/// The most entry fields one input writes.
const ENTRIES_MAX: usize = 64;

/// raft-storage's snapshot record (private there), mirrored field for field: postcard is
/// not self-describing, so this reads and writes exactly the bytes the store does.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SnapshotRecordMirror {
    meta: SnapshotMeta,
    file_name: String,
    data_bytes: u64,
    crc32: u32,
}

/// A store directory's files as one input: `flags u8`, then fields, each a `u16` LE
/// length (clamped to what is left; [`REMOVE`]: delete the record; 0: keep the valid
/// record of a new store) and that many bytes.
///
/// Fields in order: 0 the snapshot file, 1 the snapshot record, 2 the hard state, 3 the
/// bootstrap membership, 4 the first index, 5 the format record, then log entries, each a
/// key delta byte (the key is the previous one plus it, from 0) and the encoded entry.
/// Flags: bit 0 fixes the snapshot file's checksum trailer; bit 1 copies the file's
/// checksum into the record; bit 2 sets the first index to follow the record's snapshot.
#[derive(Debug, Default)]
struct StoreFiles<'a> {
    flags: u8,
    fields: [Option<Field<'a>>; 6],
    entries: Vec<(u64, &'a [u8])>,
}

#[derive(Clone, Copy, Debug)]
enum Field<'a> {
    Remove,
    Write(&'a [u8]),
}

impl<'a> StoreFiles<'a> {
    fn parse(data: &'a [u8]) -> StoreFiles<'a> {
        let mut files = StoreFiles::default();
        let Some((&flags, mut rest)) = data.split_first() else {
            return files;
        };
        files.flags = flags;
        let mut next = || -> Option<Field<'a>> {
            let (length, tail) = rest.split_first_chunk::<2>()?;
            let length = u16::from_le_bytes(*length);
            if length == REMOVE {
                rest = tail;
                return Some(Field::Remove);
            }
            let (field, tail) = tail.split_at(usize::from(length).min(tail.len()));
            rest = tail;
            Some(Field::Write(field))
        };
        for slot in &mut files.fields {
            *slot = next().filter(|field| !matches!(field, Field::Write([])));
        }
        let mut key = 0_u64;
        while files.entries.len() < ENTRIES_MAX {
            let Some(field) = next() else {
                break;
            };
            if let Field::Write([delta, entry @ ..]) = field {
                key = key.saturating_add(u64::from(*delta));
                files.entries.push((key, entry));
            }
        }
        files
    }

    /// Appends a field.
    fn push(out: &mut Vec<u8>, field: Option<&[u8]>) {
        let Some(field) = field else {
            out.extend_from_slice(&0_u16.to_le_bytes());
            return;
        };
        let length = u16::try_from(field.len()).unwrap_or(REMOVE - 1).min(REMOVE - 1);
        out.extend_from_slice(&length.to_le_bytes());
        out.extend_from_slice(&field[..usize::from(length)]);
    }
}

/// A new store's database file, built once per process: every input starts from a copy.
fn template_database() -> Option<&'static [u8]> {
    static TEMPLATE: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let directory = tempfile::tempdir().ok()?;
            let membership = Membership::with_voters([NodeId(1)]);
            let config = raft_storage::StoreConfig::default();
            drop(raft_storage::RedbLogStore::create(directory.path(), &membership, config).ok()?);
            std::fs::read(directory.path().join(raft_storage::DATABASE_FILE)).ok()
        })
        .as_deref()
}

/// Whether `name` stays inside the store's directory: the harness writes the snapshot
/// file there, and must not let an input make it read or write anywhere else.
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && name.len() < 200
}

/// Writes a store directory from `data` (see [`StoreFiles`]) over a new store's files,
/// then opens it with [`raft_storage::RedbLogStore::open`] and reads it all back with
/// `load_blocking`: each must succeed or fail with an error, never panic, and what loads
/// must be a log that follows its snapshot. Accepted when the store opens and loads.
pub fn storage_files(data: &[u8]) -> bool {
    let files = StoreFiles::parse(data);
    let Some(template) = template_database() else {
        return false;
    };
    let Ok(directory) = tempfile::tempdir() else {
        return false;
    };
    let Some(()) = write_store_files(directory.path(), template, &files) else {
        return false;
    };
    let config = raft_storage::StoreConfig { tail_cache_bytes: 1 << 16 };
    let Ok(mut store) = raft_storage::RedbLogStore::open(directory.path(), config) else {
        return false;
    };
    let reader = store.reader();
    let (compacted, last) = (reader.compacted(), reader.last_log_id());
    assert!(compacted <= last, "the log ends at {last}, before its snapshot {compacted}");
    let Ok(restored) = store.load_blocking() else {
        return false;
    };
    let snapshot_id = restored.snapshot.as_ref().map_or(LogId::ZERO, |s| s.meta.last_log_id);
    assert_eq!(snapshot_id, compacted, "open and load disagree on the snapshot");
    let mut previous = compacted;
    for entry in &restored.entries {
        assert_eq!(entry.log_id.index, previous.index.next(), "the loaded log has a hole");
        assert!(entry.log_id.term >= previous.term, "the loaded log's terms go down");
        previous = entry.log_id;
    }
    assert_eq!(previous, last, "open and load disagree on the last entry");
    let _ = reader.entries(reader.first_index(), last.index.next(), None);
    let _ = reader.term_at(last.index);
    true
}

// ---------------------------------------------------------------------------------------
// wal_segment: the write-ahead log's segment files, read back at every start.

/// The bytes of each segment's header, which the input never replaces: past it, the input
/// stands for the frames (length, CRC, record) the recovery scan reads.
const WAL_SEGMENT_HEADER_BYTES: usize = 16;

/// A segment file: its name and its bytes.
type SegmentFile = (String, Vec<u8>);

/// A small WAL store's segment files, oldest first, built once per process: three writes
/// of a few entries, some spilling into the next 4 KiB segment.
fn template_wal() -> Option<&'static [SegmentFile]> {
    static TEMPLATE: OnceLock<Option<Vec<SegmentFile>>> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let directory = tempfile::tempdir().ok()?;
            let membership = Membership::with_voters([NodeId(1), NodeId(2), NodeId(3)]);
            let mut store =
                raft_storage::WalLogStore::create(directory.path(), &membership, wal_config())
                    .ok()?;
            let entry = |term, index, payload| Entry {
                log_id: LogId::new(Term(term), LogIndex(index)),
                payload,
            };
            let hard_state =
                HardState { term: Term(2), voted_for: Some(NodeId(1)), commit_index: LogIndex(2) };
            let first = vec![
                entry(1, 1, EntryPayload::Empty),
                entry(1, 2, EntryPayload::Command(Bytes::from_static(b"one"))),
            ];
            store.persist_blocking(Some(hard_state), first).ok()?;
            let second = vec![
                entry(2, 3, EntryPayload::Membership(membership.clone())),
                entry(2, 4, EntryPayload::Command(Bytes::from(vec![7_u8; 1500]))),
            ];
            store.persist_blocking(None, second).ok()?;
            let third = vec![entry(2, 5, EntryPayload::Command(Bytes::from(vec![9_u8; 3000])))];
            store.persist_blocking(None, third).ok()?;
            drop(store);
            let wal = directory.path().join(raft_storage::WAL_DIRECTORY);
            let mut segments: Vec<SegmentFile> = std::fs::read_dir(&wal)
                .ok()?
                .filter_map(|item| {
                    let path = item.ok()?.path();
                    let name = path.file_name()?.to_str()?.to_owned();
                    name.ends_with(".wal").then(|| Some((name, std::fs::read(&path).ok()?)))?
                })
                .collect();
            segments.sort();
            Some(segments)
        })
        .as_deref()
}

/// Small segments, made inline: every input's store is deterministic.
fn wal_config() -> raft_storage::WalConfig {
    raft_storage::WalConfig {
        segment_bytes: 4096,
        preallocation: raft_storage::Preallocation::Inline,
    }
}

/// Writes the template store's segments with the newest one's frames replaced by `data`
/// (its header kept), then opens the store and loads it: each must succeed or fail with an
/// error, never panic, and what loads must be a log without holes whose terms never go
/// down. Accepted when the store opens and loads.
pub fn wal_segment(data: &[u8]) -> bool {
    let Some(template) = template_wal() else {
        return false;
    };
    let Ok(directory) = tempfile::tempdir() else {
        return false;
    };
    let wal = directory.path().join(raft_storage::WAL_DIRECTORY);
    if std::fs::create_dir(&wal).is_err() {
        return false;
    }
    for (position, (name, bytes)) in template.iter().enumerate() {
        let mut bytes = bytes.clone();
        if position + 1 == template.len() {
            let end = WAL_SEGMENT_HEADER_BYTES + data.len();
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            bytes[WAL_SEGMENT_HEADER_BYTES..end].copy_from_slice(data);
        }
        if std::fs::write(wal.join(name), bytes).is_err() {
            return false;
        }
    }
    let Ok(mut store) = raft_storage::WalLogStore::open(directory.path(), wal_config()) else {
        return false;
    };
    let Ok(restored) = store.load_blocking() else {
        return false;
    };
    let mut previous = restored.snapshot.as_ref().map_or(LogId::ZERO, |s| s.meta.last_log_id);
    for entry in &restored.entries {
        assert_eq!(entry.log_id.index, previous.index.next(), "the loaded log has a hole");
        assert!(entry.log_id.term >= previous.term, "the loaded log's terms go down");
        previous = entry.log_id;
    }
    assert!(
        restored.hard_state.commit_index <= previous.index,
        "the commit index {} is past the last entry {previous}",
        restored.hard_state.commit_index
    );
    true
}

/// Writes the database and the snapshot file; `None` when the input would make the
/// harness touch a file outside `directory`, or the database cannot be written.
fn write_store_files(directory: &Path, template: &[u8], files: &StoreFiles<'_>) -> Option<()> {
    let [snapshot_file, record, hard_state, bootstrap, first_index, format] =
        files.fields.map(|field| field.map(Field::to_vec));
    let mut snapshot_file = match snapshot_file {
        Some(Some(bytes)) => Some(bytes),
        _ => None,
    };
    if let Some(bytes) = &mut snapshot_file
        && files.flags & 1 != 0
    {
        fix_trailing_crc(bytes);
    }
    let (mut record, mut first_index) = (record, first_index);
    let mut file_name = FALLBACK_SNAPSHOT_FILE.to_string();
    if let Some(Some(bytes)) = &mut record
        && let Ok(mut mirror) = postcard::from_bytes::<SnapshotRecordMirror>(bytes)
    {
        if !is_plain_file_name(&mirror.file_name) {
            return None;
        }
        file_name.clone_from(&mirror.file_name);
        if files.flags & 2 != 0
            && let Some(trailer) = snapshot_file.as_deref().and_then(|file| file.last_chunk::<4>())
        {
            mirror.crc32 = u32::from_le_bytes(*trailer);
            *bytes = postcard::to_allocvec(&mirror).ok()?;
        }
        if files.flags & 4 != 0
            && let Some(next) = mirror.meta.last_log_id.index.0.checked_add(1)
        {
            first_index = Some(Some(next.to_le_bytes().to_vec()));
        }
    }
    if let Some(bytes) = &snapshot_file {
        std::fs::write(directory.join(&file_name), bytes).ok()?;
    }
    let path = directory.join(raft_storage::DATABASE_FILE);
    std::fs::write(&path, template).ok()?;
    let database = redb::Database::open(&path).ok()?;
    let transaction = database.begin_write().ok()?;
    {
        let mut meta = transaction.open_table(META).ok()?;
        let changes = [
            (SNAPSHOT_KEY, record),
            (BOOTSTRAP_KEY, bootstrap),
            (FIRST_INDEX_KEY, first_index),
            (FORMAT_KEY, format),
        ];
        for (key, change) in changes {
            match change {
                Some(Some(bytes)) => drop(meta.insert(key, bytes.as_slice()).ok()?),
                Some(None) => drop(meta.remove(key).ok()?),
                None => {}
            }
        }
        let mut table = transaction.open_table(HARD_STATE).ok()?;
        match hard_state {
            Some(Some(bytes)) => drop(table.insert(HARD_STATE_KEY, bytes.as_slice()).ok()?),
            Some(None) => drop(table.remove(HARD_STATE_KEY).ok()?),
            None => {}
        }
        let mut entries = transaction.open_table(ENTRIES).ok()?;
        for &(key, entry) in &files.entries {
            drop(entries.insert(key, entry).ok()?);
        }
    }
    transaction.commit().ok()?;
    Some(())
}

impl Field<'_> {
    /// The bytes to write, or `None` to remove the record.
    fn to_vec(self) -> Option<Vec<u8>> {
        match self {
            Field::Write(bytes) => Some(bytes.to_vec()),
            Field::Remove => None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// frame_decoder: the transport's frames (the same body as raft-net-quic's own target).

/// The largest frame the decoder accepts here: small, so oversized frames are reached.
const FRAME_BYTES_MAX: u32 = 1 << 16;

/// Feeds `data[1..]` to a [`FrameDecoder`](raft_net_quic::frame::FrameDecoder) in chunks
/// of `data[0]` bytes (at least 1), decoding the frames as Raft messages, handshakes and
/// client payloads in turn; the decoder must never buffer more than it was given.
/// Accepted when some frame type decodes at least one frame and no error.
pub fn frame_decoder(data: &[u8]) -> bool {
    let Some((&first, rest)) = data.split_first() else {
        return false;
    };
    let chunk = usize::from(first).max(1);
    let message = feed_frames::<raft_core::Message>(rest, chunk);
    let hello = feed_frames::<raft_net_quic::Hello>(rest, chunk);
    let payload = feed_frames::<Bytes>(rest, chunk);
    message || hello || payload
}

/// Decodes the frames of `data` as `T`; whether at least one decoded and none failed.
fn feed_frames<T: serde::de::DeserializeOwned>(data: &[u8], chunk: usize) -> bool {
    let mut decoder = raft_net_quic::frame::FrameDecoder::new(FRAME_BYTES_MAX);
    let mut frames = 0_usize;
    for piece in data.chunks(chunk) {
        decoder.push(piece);
        assert!(decoder.buffered() <= data.len(), "the decoder buffered more than it got");
        loop {
            match decoder.next::<T>("fuzz") {
                Ok(Some(_)) => frames += 1,
                Ok(None) => break,
                Err(_) => return false,
            }
        }
    }
    decoder.finish().is_ok() && frames > 0
}

// ---------------------------------------------------------------------------------------
// Seeds.

/// A seed input: its target, its file name, its bytes.
pub type Seed = (&'static str, String, Vec<u8>);

/// Valid inputs for every target, checked in as `fuzz/corpus/<target>/valid-<name>`;
/// each is accepted by its target. `None` when building one fails (a bug: the caller
/// reports it).
pub fn seeds() -> Option<Vec<Seed>> {
    let mut seeds = Vec::new();
    client_request_seeds(&mut seeds)?;
    kv_seeds(&mut seeds)?;
    storage_seeds(&mut seeds)?;
    wal_seeds(&mut seeds)?;
    frame_seeds(&mut seeds)?;
    Some(seeds)
}

fn seed(seeds: &mut Vec<Seed>, target: &'static str, name: &str, bytes: Vec<u8>) {
    seeds.push((target, format!("valid-{name}"), bytes));
}

fn client_request_seeds(seeds: &mut Vec<Seed>) -> Option<()> {
    use kv_client::protocol::{
        Command, Consistency, KeyValue, Request, Response, ServerError, Session, Write,
        WriteOutcome, encode,
    };
    let session = Session { client_id: 7, sequence: 3 };
    let key = Bytes::from_static(b"key");
    let write = |write| Request::Write(Command { session, write });
    let requests = [
        ("put", write(Write::Put { key: key.clone(), value: "v".into(), expect_version: None })),
        ("cas", write(Write::Put { key: key.clone(), value: "w".into(), expect_version: Some(2) })),
        ("delete", write(Write::Delete { key: key.clone(), expect_version: Some(0) })),
        ("get", Request::Get { key: key.clone(), consistency: Consistency::Stale }),
        (
            "range",
            Request::Range {
                prefix: "k".into(),
                limit: 10,
                consistency: Consistency::Linearizable,
            },
        ),
        ("status", Request::Status),
        (
            "member-add",
            Request::MemberAdd { id: NodeId(4), addr: "127.0.0.1:7004".into(), learner: true },
        ),
        ("leader-transfer", Request::LeaderTransfer { target: Some(NodeId(2)) }),
    ];
    for (name, request) in requests {
        seed(seeds, "client_request", &format!("request-{name}"), encode(&request).ok()?.to_vec());
    }
    let meta = kv_store::KeyMeta {
        version: 2,
        create_index: LogIndex(3),
        mod_index: LogIndex(9),
        create_revision: 2,
        mod_revision: 5,
        lease: 0,
    };
    let found = KeyValue { key, value: "v".into(), meta };
    let outcome = WriteOutcome { index: LogIndex(9), version: 2, existed: true, leader: NodeId(1) };
    let leader_addr = std::net::SocketAddr::from(([127, 0, 0, 1], 7002));
    let responses = [
        ("written", Response::Written(outcome)),
        ("value", Response::Value { found: Some(found.clone()), index: LogIndex(9) }),
        ("range", Response::Range { entries: vec![found], more: true, index: LogIndex(9) }),
        (
            "not-leader",
            Response::Error(ServerError::NotLeader {
                leader: Some(NodeId(2)),
                addr: Some(leader_addr),
            }),
        ),
    ];
    for (name, response) in responses {
        seed(
            seeds,
            "client_request",
            &format!("response-{name}"),
            encode(&response).ok()?.to_vec(),
        );
    }
    Some(())
}

/// Commands that exercise a store: creates, a compare-and-set, a delete, a retry, and a
/// member address set and removed.
fn sample_commands() -> Vec<kv_store::Command> {
    use kv_store::{Command, Session, Write};
    let command =
        |client_id, sequence, write| Command { session: Session { client_id, sequence }, write };
    let put = |client_id, sequence, key: &'static str, expect_version| {
        let write = Write::Put { key: key.into(), value: "value".into(), expect_version };
        command(client_id, sequence, write)
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 7002));
    vec![
        put(1, 1, "a", None),
        put(2, 1, "b", Some(0)),
        put(1, 2, "a", Some(1)),
        command(3, 1, Write::Delete { key: "b".into(), expect_version: None }),
        put(4, 1, "c", None),
        put(4, 1, "c", None),
        command(5, 1, Write::SetMemberAddress { node: NodeId(2), addr }),
        command(5, 2, Write::SetMemberAddress { node: NodeId(3), addr }),
        command(5, 3, Write::RemoveMemberAddress { node: NodeId(3) }),
    ]
}

fn kv_seeds(seeds: &mut Vec<Seed>) -> Option<()> {
    let commands = sample_commands();
    let mut stream = Vec::new();
    for (number, command) in commands.iter().enumerate() {
        let encoded = command.encode().ok()?;
        // The creates, compare-and-set and delete, and the member address commands.
        if !(4..6).contains(&number) {
            seed(seeds, "kv_command", &format!("command-{number}"), encoded.to_vec());
        }
        stream.extend_from_slice(&encoded);
    }
    // Not one command, so not accepted: it goes in as a plain corpus entry.
    seeds.push(("kv_command", "stream-of-commands".to_string(), stream));

    let mut store = kv_store::KvStore::new(small_config()).ok()?;
    seed(seeds, "kv_snapshot", "empty", snapshot_seed(&store)?);
    for (number, command) in commands.iter().enumerate() {
        let log_id = LogId::new(Term(2), LogIndex(number as u64 + 1));
        let payload = EntryPayload::Command(command.encode().ok()?);
        let _ = store.apply_entry(&Entry { log_id, payload });
    }
    seed(seeds, "kv_snapshot", "keys-and-sessions", snapshot_seed(&store)?);
    Some(())
}

fn snapshot_seed(store: &kv_store::KvStore) -> Option<Vec<u8>> {
    let mut bytes = vec![0];
    bytes.extend_from_slice(&store.snapshot_bytes().ok()?);
    Some(bytes)
}

fn wal_seeds(seeds: &mut Vec<Seed>) -> Option<()> {
    let (_, newest) = template_wal()?.last()?;
    seed(seeds, "wal_segment", "newest-segment", newest[WAL_SEGMENT_HEADER_BYTES..].to_vec());
    Some(())
}

fn storage_seeds(seeds: &mut Vec<Seed>) -> Option<()> {
    seed(seeds, "storage_files", "new-store", vec![0]);
    let directory = tempfile::tempdir().ok()?;
    let membership = Membership::with_voters([NodeId(1), NodeId(2), NodeId(3)]);
    let config = raft_storage::StoreConfig::default();
    let mut store =
        raft_storage::RedbLogStore::create(directory.path(), &membership, config).ok()?;
    let entry =
        |term, index, payload| Entry { log_id: LogId::new(Term(term), LogIndex(index)), payload };
    let entries = vec![
        entry(1, 1, EntryPayload::Empty),
        entry(1, 2, EntryPayload::Command(Bytes::from_static(b"one"))),
        entry(2, 3, EntryPayload::Membership(membership.clone())),
        entry(2, 4, EntryPayload::Command(Bytes::from_static(b"two"))),
        entry(3, 5, EntryPayload::Command(Bytes::from_static(b"three"))),
    ];
    let hard_state =
        HardState { term: Term(3), voted_for: Some(NodeId(2)), commit_index: LogIndex(4) };
    store.persist_blocking(Some(hard_state), entries).ok()?;
    drop(store);
    seed(seeds, "storage_files", "log-without-snapshot", store_seed(directory.path(), None)?);
    let config = raft_storage::StoreConfig::default();
    let mut store = raft_storage::RedbLogStore::open(directory.path(), config).ok()?;
    let snapshot = Snapshot {
        meta: SnapshotMeta { last_log_id: LogId::new(Term(2), LogIndex(3)), membership },
        data: Bytes::from_static(b"state machine bytes"),
    };
    store.store_snapshot_blocking(&snapshot).ok()?;
    drop(store);
    seed(seeds, "storage_files", "snapshot-and-log", store_seed(directory.path(), None)?);
    seed(seeds, "storage_files", "snapshot-fixed-by-flags", store_seed(directory.path(), Some(7))?);
    Some(())
}

/// Reads a store's files back into the [`StoreFiles`] layout.
fn store_seed(directory: &Path, flags: Option<u8>) -> Option<Vec<u8>> {
    let database = redb::Database::open(directory.join(raft_storage::DATABASE_FILE)).ok()?;
    let transaction = redb::ReadableDatabase::begin_read(&database).ok()?;
    let meta = transaction.open_table(META).ok()?;
    let get = |key: &str| -> Option<Vec<u8>> { Some(meta.get(key).ok()??.value().to_vec()) };
    let record = get(SNAPSHOT_KEY);
    let snapshot_file = match &record {
        Some(bytes) => {
            let mirror = postcard::from_bytes::<SnapshotRecordMirror>(bytes).ok()?;
            Some(std::fs::read(directory.join(mirror.file_name)).ok()?)
        }
        None => None,
    };
    let hard_state = transaction.open_table(HARD_STATE).ok()?;
    let hard_state = hard_state.get(HARD_STATE_KEY).ok()??.value().to_vec();
    let mut out = vec![flags.unwrap_or(0)];
    StoreFiles::push(&mut out, snapshot_file.as_deref());
    StoreFiles::push(&mut out, record.as_deref());
    StoreFiles::push(&mut out, Some(&hard_state));
    StoreFiles::push(&mut out, get(BOOTSTRAP_KEY).as_deref());
    StoreFiles::push(&mut out, get(FIRST_INDEX_KEY).as_deref());
    StoreFiles::push(&mut out, get(FORMAT_KEY).as_deref());
    let entries = transaction.open_table(ENTRIES).ok()?;
    let mut previous = 0_u64;
    for item in redb::ReadableTable::range::<u64>(&entries, ..).ok()? {
        let (key, value) = item.ok()?;
        let delta = u8::try_from(key.value().checked_sub(previous)?).ok()?;
        previous = key.value();
        let mut field = vec![delta];
        field.extend_from_slice(value.value());
        StoreFiles::push(&mut out, Some(&field));
    }
    Some(out)
}

fn frame_seeds(seeds: &mut Vec<Seed>) -> Option<()> {
    use raft_net_quic::frame::encode_frame;
    let hello = raft_net_quic::Hello {
        protocol_version: raft_net_quic::PROTOCOL_VERSION,
        cluster_id: "cluster".into(),
        caller: raft_net_quic::Caller::Node(NodeId(1)),
    };
    let entries = vec![Entry {
        log_id: LogId::new(Term(2), LogIndex(5)),
        payload: EntryPayload::Command(Bytes::from_static(b"payload")),
    }];
    let append = raft_core::Message {
        from: NodeId(1),
        to: NodeId(2),
        term: Term(2),
        body: raft_core::MessageBody::AppendRequest {
            prev_log_id: LogId::new(Term(1), LogIndex(4)),
            entries,
            leader_commit: LogIndex(4),
            answer_wanted: true,
        },
    };
    let payload = Bytes::from_static(b"client request bytes");
    let frames = [
        ("hello", encode_frame(&hello, "hello", FRAME_BYTES_MAX).ok()?),
        ("append", encode_frame(&append, "message", FRAME_BYTES_MAX).ok()?),
        ("payload", encode_frame(&payload, "payload", FRAME_BYTES_MAX).ok()?),
    ];
    for (chunk, (name, frame)) in [1_u8, 7, 255].into_iter().zip(frames) {
        let mut bytes = vec![chunk];
        bytes.extend_from_slice(&frame);
        bytes.extend_from_slice(&frame);
        seed(seeds, "frame_decoder", name, bytes);
    }
    Some(())
}
