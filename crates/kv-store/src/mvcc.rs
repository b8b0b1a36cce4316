//! The vocabulary of etcd's v3 KV API: ranges, puts, deletes, transactions, watch events
//! and leases, as the store applies and answers them.
//!
//! The types mirror etcd's `etcdserverpb` messages field for field where the semantics
//! are the store's (what a key range holds, which revision a read sees, how a compare on
//! a missing key evaluates), and leave out what belongs to the server (response headers,
//! member ids, gRPC errors). A [`Txn`] travels the log inside [`Write::Txn`]; its field
//! and variant order are part of the log's encoding, so new fields or variants go at the
//! end, as for [`Write`].
//!
//! [`Write`]: crate::Write
//! [`Write::Txn`]: crate::Write::Txn

use std::cell::Cell;

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize};

use crate::range::KeyRange;
use crate::response::KeyValue;

/// The deepest nesting of transactions inside transactions the store accepts (the outer
/// transaction is depth 1). etcd bounds nesting only through `--max-txn-ops`; this bound
/// also protects the decoder, which recurses once per level: a crafted entry nested a
/// million deep would otherwise overflow the stack of every replica that applies it.
/// 64 levels cost a few hundred KB of stack at most and are far beyond any real use.
pub const TXN_NESTING_MAX: u64 = 64;

/// How a range's results are ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SortOrder {
    /// Key order, unless the sort target is not the key (then ascending, as etcd).
    #[default]
    None,
    /// Ascending by the sort target.
    Ascend,
    /// Descending by the sort target.
    Descend,
}

/// What a range's results are sorted by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SortTarget {
    /// The key.
    #[default]
    Key,
    /// The key's version.
    Version,
    /// The key's create revision.
    Create,
    /// The key's mod revision.
    Mod,
    /// The value, compared as bytes.
    Value,
}

/// A read of a key range, at the current or a past revision (etcd's `RangeRequest`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeRequest {
    /// The keys to read.
    pub range: KeyRange,
    /// The most keys to return; 0 for no limit. Either way the store returns at most its
    /// `range_entries_max`.
    pub limit: u64,
    /// The revision to read at; 0 for the current one.
    pub revision: u64,
    /// The order of the results.
    pub sort_order: SortOrder,
    /// What the results are sorted by.
    pub sort_target: SortTarget,
    /// Return keys and metadata without values.
    pub keys_only: bool,
    /// Return only the count of matching keys.
    pub count_only: bool,
    /// Leave out keys whose mod revision is below this; 0 for no bound.
    pub min_mod_revision: u64,
    /// Leave out keys whose mod revision is above this; 0 for no bound.
    pub max_mod_revision: u64,
    /// Leave out keys whose create revision is below this; 0 for no bound.
    pub min_create_revision: u64,
    /// Leave out keys whose create revision is above this; 0 for no bound.
    pub max_create_revision: u64,
}

impl RangeRequest {
    /// A read of `range` at the current revision, with no limit, filter or sorting.
    #[must_use]
    pub fn new(range: KeyRange) -> RangeRequest {
        RangeRequest {
            range,
            limit: 0,
            revision: 0,
            sort_order: SortOrder::None,
            sort_target: SortTarget::Key,
            keys_only: false,
            count_only: false,
            min_mod_revision: 0,
            max_mod_revision: 0,
            min_create_revision: 0,
            max_create_revision: 0,
        }
    }
}

/// The answer to a [`RangeRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeResponse {
    /// The matching keys, sorted and limited as asked; empty for `count_only`, values empty
    /// for `keys_only`.
    pub kvs: Vec<KeyValue>,
    /// Whether more keys passed the filters than were returned.
    pub more: bool,
    /// How many keys lie in the range at that revision, before the limit and before the
    /// mod/create revision filters (as etcd counts).
    pub count: u64,
}

/// Sets a key (etcd's `PutRequest`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutRequest {
    /// The key.
    pub key: Bytes,
    /// The new value (ignored with `ignore_value`).
    pub value: Bytes,
    /// The lease to attach the key to; 0 for none. A lease that does not exist refuses the
    /// write ([`Rejection::LeaseNotFound`](crate::Rejection::LeaseNotFound)).
    pub lease: i64,
    /// Answer with the key's previous value and metadata.
    pub prev_kv: bool,
    /// Keep the key's current value; refused when the key does not exist.
    pub ignore_value: bool,
    /// Keep the key's current lease; refused when the key does not exist.
    pub ignore_lease: bool,
}

impl PutRequest {
    /// Sets `key` to `value`, with no lease and no options.
    #[must_use]
    pub fn new(key: impl Into<Bytes>, value: impl Into<Bytes>) -> PutRequest {
        PutRequest {
            key: key.into(),
            value: value.into(),
            lease: 0,
            prev_kv: false,
            ignore_value: false,
            ignore_lease: false,
        }
    }
}

/// The answer to a [`PutRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutResponse {
    /// The key before the put, when `prev_kv` was asked and the key existed.
    pub prev_kv: Option<KeyValue>,
}

/// Deletes every key in a range (etcd's `DeleteRangeRequest`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRangeRequest {
    /// The keys to delete.
    pub range: KeyRange,
    /// Answer with the deleted keys' values and metadata.
    pub prev_kv: bool,
}

impl DeleteRangeRequest {
    /// Deletes the keys of `range`, without answering their values.
    #[must_use]
    pub fn new(range: KeyRange) -> DeleteRangeRequest {
        DeleteRangeRequest { range, prev_kv: false }
    }
}

/// The answer to a [`DeleteRangeRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRangeResponse {
    /// How many keys were deleted.
    pub deleted: u64,
    /// The deleted keys in key order, when `prev_kv` was asked.
    pub prev_kvs: Vec<KeyValue>,
}

/// What a [`Compare`] checks, and the value it compares with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareTarget {
    /// The key's version (0 when missing).
    Version(u64),
    /// The key's create revision (0 when missing).
    CreateRevision(u64),
    /// The key's mod revision (0 when missing).
    ModRevision(u64),
    /// The key's value, as bytes; a compare of the value of a missing key is false.
    Value(Bytes),
    /// The key's lease (0 when none or missing).
    Lease(i64),
}

/// How a [`Compare`] relates the key's field (left) to the target (right).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CompareResult {
    /// field == target.
    Equal,
    /// field > target.
    Greater,
    /// field < target.
    Less,
    /// field != target.
    NotEqual,
}

/// A condition of a [`Txn`], evaluated against the state before the transaction.
///
/// Over a range (`range_end` set) every key in the range must satisfy it; a range with no
/// key compares as one missing key would (etcd's rules).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    /// The keys checked.
    pub range: KeyRange,
    /// The field and the value it is compared with.
    pub target: CompareTarget,
    /// The relation that must hold.
    pub result: CompareResult,
}

/// One operation of a [`Txn`] branch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOp {
    /// A read; it sees the transaction's earlier writes unless it names a past revision.
    Range(RangeRequest),
    /// A put.
    Put(PutRequest),
    /// A delete of a range.
    DeleteRange(DeleteRangeRequest),
    /// A nested transaction; its compares also see the state before the outer one.
    Txn(Txn),
}

/// The answer to one [`TxnOp`], in the same position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOpResponse {
    /// A read's answer.
    Range(RangeResponse),
    /// A put's answer.
    Put(PutResponse),
    /// A delete's answer.
    DeleteRange(DeleteRangeResponse),
    /// A nested transaction's answer.
    Txn(TxnResponse),
}

/// An atomic transaction (etcd's `TxnRequest`): if every compare holds, run `success`,
/// otherwise `failure`.
///
/// The chosen branch's operations run in order and all of its writes share one revision.
/// A transaction is refused whole (and changes nothing) when it names a key twice among its
/// writes (see [`Rejection::DuplicateKey`](crate::Rejection::DuplicateKey)), has more
/// operations than the store's `txn_ops_max`, nests deeper than [`TXN_NESTING_MAX`], puts
/// with a lease that does not exist, or reads a compacted or future revision.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Txn {
    /// The conditions.
    pub compare: Vec<Compare>,
    /// The operations run when every condition holds.
    pub success: Vec<TxnOp>,
    /// The operations run otherwise.
    pub failure: Vec<TxnOp>,
}

/// The answer to a [`Txn`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TxnResponse {
    /// Whether every compare held (so `success` ran).
    pub succeeded: bool,
    /// The answers to the operations of the branch that ran, in order.
    pub responses: Vec<TxnOpResponse>,
}

/// What an [`Event`] did to its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// The key was created or changed.
    Put,
    /// The key was deleted.
    Delete,
}

/// One change to one key, as a watcher sees it (etcd's `mvccpb.Event`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// For a put, the key as written. For a delete, the key with an empty value and
    /// metadata that is all zero but `mod_revision`, the delete's revision (as etcd).
    pub kv: KeyValue,
    /// The key before the change; `None` when a put created it.
    pub prev_kv: Option<KeyValue>,
}

impl Event {
    /// The revision of the write that made the event.
    #[must_use]
    pub fn revision(&self) -> u64 {
        self.kv.meta.mod_revision
    }
}

/// A lease: keys attached to it are deleted when it is revoked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseInfo {
    /// The lease's id (positive).
    pub id: i64,
    /// The time to live it was granted with, in seconds. The store keeps no clock: the
    /// leader of the server revokes the lease when it runs out.
    pub ttl_seconds: i64,
    /// The keys attached to it, in key order (left empty by [`KvStore::leases`]).
    ///
    /// [`KvStore::leases`]: crate::KvStore::leases
    pub keys: Vec<Bytes>,
}

thread_local! {
    /// How many transactions the decoder of this thread is inside.
    static TXN_DECODE_DEPTH: Cell<u64> = const { Cell::new(0) };
}

/// One level of transaction nesting in the decoder; leaving it (even on error) steps back.
struct DecodeDepthGuard;

impl DecodeDepthGuard {
    /// Enters one more level; `None` past [`TXN_NESTING_MAX`].
    fn enter() -> Option<DecodeDepthGuard> {
        TXN_DECODE_DEPTH.with(|depth| {
            let inside = depth.get();
            (inside < TXN_NESTING_MAX).then(|| {
                depth.set(inside + 1);
                DecodeDepthGuard
            })
        })
    }
}

impl Drop for DecodeDepthGuard {
    fn drop(&mut self) {
        TXN_DECODE_DEPTH.with(|depth| depth.set(depth.get().saturating_sub(1)));
    }
}

fn too_deep<E: serde::de::Error>() -> E {
    E::custom(format_args!("transactions nested deeper than {TXN_NESTING_MAX} levels"))
}

/// [`Txn`]'s fields, decoded as the derived implementation would.
#[derive(Deserialize)]
#[serde(rename = "Txn")]
struct TxnFields {
    compare: Vec<Compare>,
    success: Vec<TxnOp>,
    failure: Vec<TxnOp>,
}

impl<'de> Deserialize<'de> for Txn {
    /// Decodes like the derived implementation, but refuses nesting deeper than
    /// [`TXN_NESTING_MAX`] before it can exhaust the stack.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Txn, D::Error> {
        let _depth = DecodeDepthGuard::enter().ok_or_else(too_deep::<D::Error>)?;
        let TxnFields { compare, success, failure } = TxnFields::deserialize(deserializer)?;
        Ok(Txn { compare, success, failure })
    }
}

/// [`TxnResponse`]'s fields, decoded as the derived implementation would.
#[derive(Deserialize)]
#[serde(rename = "TxnResponse")]
struct TxnResponseFields {
    succeeded: bool,
    responses: Vec<TxnOpResponse>,
}

impl<'de> Deserialize<'de> for TxnResponse {
    /// Decodes like the derived implementation, but refuses nesting deeper than
    /// [`TXN_NESTING_MAX`] before it can exhaust the stack.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TxnResponse, D::Error> {
        let _depth = DecodeDepthGuard::enter().ok_or_else(too_deep::<D::Error>)?;
        let TxnResponseFields { succeeded, responses } =
            TxnResponseFields::deserialize(deserializer)?;
        Ok(TxnResponse { succeeded, responses })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn nested(depth: u64) -> Txn {
        let mut txn = Txn::default();
        for _ in 1..depth {
            txn = Txn { success: vec![TxnOp::Txn(txn)], ..Txn::default() };
        }
        txn
    }

    #[test]
    fn a_transaction_survives_encode_and_decode() {
        let txn = Txn {
            compare: vec![Compare {
                range: KeyRange::prefix("a"),
                target: CompareTarget::Value(Bytes::from_static(b"v")),
                result: CompareResult::NotEqual,
            }],
            success: vec![
                TxnOp::Put(PutRequest::new("a", "1")),
                TxnOp::Range(RangeRequest::new(KeyRange::all())),
            ],
            failure: vec![TxnOp::DeleteRange(DeleteRangeRequest::new(KeyRange::single("b")))],
        };
        let bytes = postcard::to_allocvec(&txn).unwrap();
        assert_eq!(postcard::from_bytes::<Txn>(&bytes).unwrap(), txn);
    }

    #[test]
    fn nesting_up_to_the_maximum_decodes_and_deeper_is_refused() {
        let deepest = nested(TXN_NESTING_MAX);
        let bytes = postcard::to_allocvec(&deepest).unwrap();
        assert_eq!(postcard::from_bytes::<Txn>(&bytes).unwrap(), deepest);
        let too_deep = postcard::to_allocvec(&nested(TXN_NESTING_MAX + 1)).unwrap();
        // postcard keeps no custom message: the refusal is a plain deserialization error.
        assert!(postcard::from_bytes::<Txn>(&too_deep).is_err());
        // The depth count steps back after a refusal: the next decode starts at zero.
        assert_eq!(postcard::from_bytes::<Txn>(&bytes).unwrap(), deepest);
    }

    #[test]
    fn a_crafted_million_deep_transaction_is_refused_without_overflowing_the_stack() {
        // Each level: no compares, one success op (variant 3, Txn), then the nested txn;
        // its failure list (0) comes after. Only the prefix matters: decoding stops early.
        let mut bytes = Vec::new();
        for _ in 0..1_000_000 {
            bytes.extend_from_slice(&[0, 1, 3]);
        }
        assert!(postcard::from_bytes::<Txn>(&bytes).is_err());
    }

    #[test]
    fn deep_transaction_responses_are_refused_too() {
        let mut response = TxnResponse::default();
        for _ in 0..TXN_NESTING_MAX {
            response =
                TxnResponse { succeeded: true, responses: vec![TxnOpResponse::Txn(response)] };
        }
        let bytes = postcard::to_allocvec(&response).unwrap();
        assert!(postcard::from_bytes::<TxnResponse>(&bytes).is_err());
    }
}
