//! What snapshot formats 1 to 3 stored that this build no longer writes: session responses
//! whose key metadata had no revisions or lease, and (format 1) the answers to reads.
//!
//! Keys restored from those formats, and the metadata inside their session responses, get
//! [`LEGACY_REVISION`] as their create and mod revisions and no lease: the store counted no
//! revisions then, and everything it held exists at the restored store's revision.

use raft_core::LogIndex;
use serde::Deserialize;

use crate::command::decode_exact;
use crate::error::Error;
use crate::response::{DeleteResult, KeyMeta, Rejection, Response, WriteResult};
use crate::store::REVISION_INITIAL;

/// The revision a store restored from format 1 to 3 is at, and that its keys were written
/// at: the revision of an empty store, since those formats kept no history to count.
pub(crate) const LEGACY_REVISION: u64 = REVISION_INITIAL;

/// [`KeyMeta`] before revisions and leases.
#[derive(Clone, Copy, Debug, Deserialize)]
pub(crate) struct KeyMetaV3 {
    pub(crate) version: u64,
    pub(crate) create_index: LogIndex,
    pub(crate) mod_index: LogIndex,
}

impl KeyMetaV3 {
    /// The same metadata today: written at [`LEGACY_REVISION`], no lease.
    pub(crate) fn upgrade(self) -> KeyMeta {
        KeyMeta {
            version: self.version,
            create_index: self.create_index,
            mod_index: self.mod_index,
            create_revision: LEGACY_REVISION,
            mod_revision: LEGACY_REVISION,
            lease: 0,
        }
    }
}

/// [`WriteResult`] with [`KeyMetaV3`].
#[derive(Deserialize)]
struct WriteResultV3 {
    index: LogIndex,
    version: u64,
    previous: Option<KeyMetaV3>,
}

impl WriteResultV3 {
    fn upgrade(self) -> WriteResult {
        WriteResult {
            index: self.index,
            version: self.version,
            previous: self.previous.map(KeyMetaV3::upgrade),
        }
    }
}

/// [`DeleteResult`] with [`KeyMetaV3`].
#[derive(Deserialize)]
struct DeleteResultV3 {
    index: LogIndex,
    previous: Option<KeyMetaV3>,
}

impl DeleteResultV3 {
    fn upgrade(self) -> DeleteResult {
        DeleteResult { index: self.index, previous: self.previous.map(KeyMetaV3::upgrade) }
    }
}

/// A key and value with [`KeyMetaV3`], as format 1's read answers held them.
#[derive(Deserialize)]
#[allow(dead_code)]
struct KeyValueV3 {
    key: bytes::Bytes,
    value: bytes::Bytes,
    meta: KeyMetaV3,
}

/// [`Response`] as formats 2 and 3 encoded it. Only the variants' order matters to
/// postcard. Its rejections decode as today's [`Rejection`], whose old variants kept
/// their positions.
#[derive(Deserialize)]
enum ResponseV3 {
    Written(WriteResultV3),
    Deleted(DeleteResultV3),
    Conflict { current_version: Option<u64> },
    NoOp,
    Rejected(Rejection),
    MemberAddressUpdated { index: LogIndex },
}

impl ResponseV3 {
    fn upgrade(self) -> Response {
        match self {
            ResponseV3::Written(written) => Response::Written(written.upgrade()),
            ResponseV3::Deleted(deleted) => Response::Deleted(deleted.upgrade()),
            ResponseV3::Conflict { current_version } => Response::Conflict { current_version },
            ResponseV3::NoOp => Response::NoOp,
            ResponseV3::Rejected(rejection) => Response::Rejected(rejection),
            ResponseV3::MemberAddressUpdated { index } => Response::MemberAddressUpdated { index },
        }
    }
}

/// [`Response`] as format 1 encoded it: it also had the answers to reads, which no session
/// ever remembered.
#[derive(Deserialize)]
enum ResponseV1 {
    Written(WriteResultV3),
    Deleted(DeleteResultV3),
    Conflict { current_version: Option<u64> },
    Value(#[allow(dead_code)] Option<KeyValueV3>),
    Range(#[allow(dead_code)] (Vec<KeyValueV3>, bool)),
    NoOp,
    Rejected(Rejection),
}

impl ResponseV1 {
    /// The same response today; `None` for a read's answer.
    fn upgrade(self) -> Option<Response> {
        match self {
            ResponseV1::Written(written) => Some(Response::Written(written.upgrade())),
            ResponseV1::Deleted(deleted) => Some(Response::Deleted(deleted.upgrade())),
            ResponseV1::Conflict { current_version } => {
                Some(Response::Conflict { current_version })
            }
            ResponseV1::NoOp => Some(Response::NoOp),
            ResponseV1::Rejected(rejection) => Some(Response::Rejected(rejection)),
            ResponseV1::Value(_) | ResponseV1::Range(_) => None,
        }
    }
}

/// Decodes a session's remembered response as format 1 wrote it.
pub(crate) fn decode_response_v1(bytes: &[u8]) -> Result<Response, Error> {
    let response: ResponseV1 = decode_exact(bytes, "session response")?;
    response.upgrade().ok_or_else(|| Error::Decode {
        what: "session response",
        bytes: bytes.len(),
        reason: "a read's answer is not the answer to a write".to_owned(),
    })
}

/// Decodes a session's remembered response as formats 2 and 3 wrote it.
pub(crate) fn decode_response_v3(bytes: &[u8]) -> Result<Response, Error> {
    decode_exact::<ResponseV3>(bytes, "session response").map(ResponseV3::upgrade)
}
