//! Helpers shared by the unit tests of the MVCC layer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use raft_core::{Entry, EntryPayload, LogId, LogIndex, Term};

use crate::command::{Command, Session, Write};
use crate::config::KvConfig;
use crate::mvcc::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, PutRequest, RangeRequest,
    RangeResponse, Txn, TxnOp, TxnOpResponse, TxnResponse,
};
use crate::range::KeyRange;
use crate::response::{Rejection, Response};
use crate::store::KvStore;

/// A store that applies unsessioned writes at the next log index.
pub(crate) struct Harness {
    pub(crate) store: KvStore,
}

impl Harness {
    pub(crate) fn new() -> Harness {
        Harness::with_config(KvConfig::default())
    }

    pub(crate) fn with_config(config: KvConfig) -> Harness {
        Harness { store: KvStore::new(config).unwrap() }
    }

    /// Applies `write` without a session.
    pub(crate) fn apply(&mut self, write: Write) -> Response {
        let index = LogIndex(self.store.applied_index().0 + 1);
        let command = Command { session: Session::UNSESSIONED, write };
        self.store.apply_entry(&Entry {
            log_id: LogId::new(Term(1), index),
            payload: EntryPayload::Command(command.encode().unwrap()),
        })
    }

    /// Applies a transaction and returns the revision after it and its answer.
    pub(crate) fn txn(&mut self, txn: Txn) -> (u64, TxnResponse) {
        match self.apply(Write::Txn(txn)) {
            Response::Txn { revision, result } => (revision, result),
            other => panic!("the transaction was answered with {other:?}"),
        }
    }

    /// Applies `write`, which must be refused, and returns why.
    pub(crate) fn refused(&mut self, write: Write) -> Rejection {
        match self.apply(write) {
            Response::Rejected(rejection) => rejection,
            other => panic!("the write was answered with {other:?}"),
        }
    }

    /// Puts `key` = `value` in a transaction; returns the revision after it.
    pub(crate) fn put(&mut self, key: &str, value: &str) -> u64 {
        self.txn(success(vec![put(key, value)])).0
    }

    /// Puts `key` = `value` attached to `lease`; returns the revision after it.
    pub(crate) fn put_leased(&mut self, key: &str, value: &str, lease: i64) -> u64 {
        let mut request = PutRequest::new(bytes(key), bytes(value));
        request.lease = lease;
        self.txn(success(vec![TxnOp::Put(request)])).0
    }

    /// Deletes `range` in a transaction; returns the revision after it.
    pub(crate) fn delete(&mut self, range: KeyRange) -> u64 {
        self.txn(success(vec![TxnOp::DeleteRange(DeleteRangeRequest::new(range))])).0
    }

    /// Grants lease `id`.
    pub(crate) fn grant(&mut self, id: i64) {
        let response = self.apply(Write::LeaseGrant { id, ttl_seconds: 60 });
        assert!(matches!(response, Response::LeaseGranted { .. }), "{response:?}");
    }

    /// The keys and values of `range` at `revision` (0: now).
    pub(crate) fn read_at(&self, range: KeyRange, revision: u64) -> Vec<(Bytes, Bytes)> {
        let mut request = RangeRequest::new(range);
        request.revision = revision;
        let response = self.store.range_at(&request).unwrap();
        response.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect()
    }
}

pub(crate) fn bytes(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

pub(crate) fn put(key: &str, value: &str) -> TxnOp {
    TxnOp::Put(PutRequest::new(bytes(key), bytes(value)))
}

pub(crate) fn range_op(range: KeyRange) -> TxnOp {
    TxnOp::Range(RangeRequest::new(range))
}

pub(crate) fn delete_op(range: KeyRange) -> TxnOp {
    TxnOp::DeleteRange(DeleteRangeRequest::new(range))
}

/// A transaction with no compares.
pub(crate) fn success(ops: Vec<TxnOp>) -> Txn {
    Txn { compare: Vec::new(), success: ops, failure: Vec::new() }
}

pub(crate) fn compare(range: KeyRange, target: CompareTarget, result: CompareResult) -> Compare {
    Compare { range, target, result }
}

/// The range answer in position `position` of `response`.
pub(crate) fn range_answer(response: &TxnResponse, position: usize) -> &RangeResponse {
    match &response.responses[position] {
        TxnOpResponse::Range(range) => range,
        other => panic!("answer {position} is {other:?}"),
    }
}

/// Key and value pairs, for comparing with [`Harness::read_at`].
pub(crate) fn pairs(items: &[(&str, &str)]) -> Vec<(Bytes, Bytes)> {
    items.iter().map(|(key, value)| (bytes(key), bytes(value))).collect()
}
