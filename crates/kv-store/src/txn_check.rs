//! The checks of a transaction that do not depend on the store's state: sizes, operation
//! counts, nesting, and keys written twice. The server runs them before proposing
//! ([`KvConfig::validate_write`]) and the state machine again before applying.
//!
//! The duplicate-key rule is etcd's `checkIntervals` (server/etcdserver/api/v3rpc/key.go):
//! it looks at both branches of every level, statically, so a transaction is refused
//! whatever its compares decide. Within one list of operations, two puts of a key, or a
//! put of a key that a delete range of the list holds, are duplicates; a nested
//! transaction's puts count as the list's, except that its success and failure branches
//! may put the same key (only one of them runs). Two delete ranges may overlap.
//!
//! One deviation: etcd's interval test misses a put inside a from-key delete (`range_end`
//! `\0`); here the delete's range is exactly what it deletes, so that put is refused.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::config::KvConfig;
use crate::mvcc::{Compare, CompareTarget, TXN_NESTING_MAX, Txn, TxnOp};
use crate::range::KeyRange;
use crate::response::Rejection;

/// How many times `txn_ops_max` the whole tree of a transaction may hold, compares and
/// operations of every branch at every depth together. etcd's per-level rule alone lets
/// nested transactions multiply (each level may hold `txn_ops_max` more), so a small entry
/// could make every replica build a huge answer; three times the limit admits every flat
/// transaction etcd admits (up to `txn_ops_max` compares, success and failure operations).
pub(crate) const TXN_TREE_OPS_FACTOR: u64 = 3;

/// The rejection `txn` earns before it is applied, if any.
pub(crate) fn check_txn(config: &KvConfig, txn: &Txn) -> Option<Rejection> {
    if let Some(rejection) = check_level(config, txn, config.txn_ops_max, 1) {
        return Some(rejection);
    }
    let tree_ops = tree_ops(txn);
    let tree_ops_max = config.txn_ops_max.saturating_mul(TXN_TREE_OPS_FACTOR);
    if tree_ops > tree_ops_max {
        return Some(Rejection::TooManyOps { ops: tree_ops, max: tree_ops_max });
    }
    written_keys(&txn.success).and_then(|_| written_keys(&txn.failure)).err()
}

/// Checks one level against what it may hold (`ops_max`), then its contents.
fn check_level(config: &KvConfig, txn: &Txn, ops_max: u64, depth: u64) -> Option<Rejection> {
    if depth > TXN_NESTING_MAX {
        return Some(Rejection::TxnNestedTooDeep { depth, max: TXN_NESTING_MAX });
    }
    let ops = level_ops(txn);
    if ops > ops_max {
        return Some(Rejection::TooManyOps { ops, max: ops_max });
    }
    let left = ops_max - ops;
    txn.compare.iter().find_map(|compare| check_compare(config, compare)).or_else(|| {
        txn.success.iter().chain(&txn.failure).find_map(|op| check_op(config, op, left, depth))
    })
}

/// etcd's count of one level: the most of its compares, success and failure operations.
fn level_ops(txn: &Txn) -> u64 {
    txn.compare.len().max(txn.success.len()).max(txn.failure.len()) as u64
}

/// Every compare and operation of the tree, nested transactions included.
fn tree_ops(txn: &Txn) -> u64 {
    let own = (txn.compare.len() + txn.success.len() + txn.failure.len()) as u64;
    txn.success.iter().chain(&txn.failure).fold(own, |total, op| match op {
        TxnOp::Txn(nested) => total.saturating_add(tree_ops(nested)),
        TxnOp::Range(_) | TxnOp::Put(_) | TxnOp::DeleteRange(_) => total,
    })
}

fn check_compare(config: &KvConfig, compare: &Compare) -> Option<Rejection> {
    check_range(config, &compare.range).or_else(|| match &compare.target {
        CompareTarget::Value(value) => config.check_value(value),
        CompareTarget::Version(_)
        | CompareTarget::CreateRevision(_)
        | CompareTarget::ModRevision(_)
        | CompareTarget::Lease(_) => None,
    })
}

fn check_op(config: &KvConfig, op: &TxnOp, ops_max: u64, depth: u64) -> Option<Rejection> {
    match op {
        TxnOp::Range(request) => check_range(config, &request.range),
        TxnOp::Put(request) => {
            config.check_key(&request.key).or_else(|| config.check_value(&request.value))
        }
        TxnOp::DeleteRange(request) => check_range(config, &request.range),
        TxnOp::Txn(nested) => check_level(config, nested, ops_max, depth + 1),
    }
}

fn check_range(config: &KvConfig, range: &KeyRange) -> Option<Rejection> {
    config.check_key(&range.key).or_else(|| config.check_key(&range.range_end))
}

/// What a list of operations writes, for etcd's duplicate-key rule.
#[derive(Default)]
struct WrittenKeys {
    /// Keys put, by this list or its nested transactions.
    puts: BTreeSet<Bytes>,
    /// Ranges deleted, by this list or its nested transactions.
    deletes: Vec<KeyRange>,
}

impl WrittenKeys {
    fn deleted(&self, key: &[u8]) -> bool {
        self.deletes.iter().any(|range| range.contains(key))
    }
}

fn duplicate(key: &Bytes) -> Rejection {
    Rejection::DuplicateKey { key: key.clone() }
}

/// etcd's `checkIntervals`: what `ops` write, or the first key written twice.
fn written_keys(ops: &[TxnOp]) -> Result<WrittenKeys, Rejection> {
    let mut written = WrittenKeys::default();
    for op in ops {
        if let TxnOp::DeleteRange(request) = op {
            written.deletes.push(request.range.clone());
        }
    }
    for op in ops {
        let TxnOp::Txn(nested) = op else { continue };
        let then = written_keys(&nested.success)?;
        let otherwise = written_keys(&nested.failure)?;
        for key in &then.puts {
            if written.puts.contains(key) || written.deleted(key) {
                return Err(duplicate(key));
            }
            written.puts.insert(key.clone());
        }
        for key in &otherwise.puts {
            // A key both branches put is written once, whichever runs.
            let from_then = then.puts.contains(key);
            if (written.puts.contains(key) && !from_then) || written.deleted(key) {
                return Err(duplicate(key));
            }
            written.puts.insert(key.clone());
        }
        written.deletes.extend(then.deletes);
        written.deletes.extend(otherwise.deletes);
    }
    for op in ops {
        let TxnOp::Put(request) = op else { continue };
        if written.puts.contains(&request.key) || written.deleted(&request.key) {
            return Err(duplicate(&request.key));
        }
        written.puts.insert(request.key.clone());
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::mvcc::{CompareResult, DeleteRangeRequest, PutRequest, RangeRequest};

    fn put(key: &'static str) -> TxnOp {
        TxnOp::Put(PutRequest::new(key, "v"))
    }

    fn delete(range: KeyRange) -> TxnOp {
        TxnOp::DeleteRange(DeleteRangeRequest::new(range))
    }

    fn nested(success: Vec<TxnOp>, failure: Vec<TxnOp>) -> TxnOp {
        TxnOp::Txn(Txn { compare: Vec::new(), success, failure })
    }

    fn check(success: Vec<TxnOp>) -> Option<Rejection> {
        check_txn(&KvConfig::default(), &Txn { compare: Vec::new(), success, failure: Vec::new() })
    }

    fn duplicate_of(key: &'static str) -> Option<Rejection> {
        Some(Rejection::DuplicateKey { key: Bytes::from_static(key.as_bytes()) })
    }

    #[test]
    fn two_puts_of_one_key_are_duplicates() {
        assert_eq!(check(vec![put("a"), put("b"), put("a")]), duplicate_of("a"));
    }

    #[test]
    fn a_put_inside_a_deleted_range_is_a_duplicate_wherever_the_delete_stands() {
        assert_eq!(check(vec![put("ab"), delete(KeyRange::prefix("a"))]), duplicate_of("ab"));
        assert_eq!(check(vec![delete(KeyRange::from_key("a")), put("z")]), duplicate_of("z"));
        assert_eq!(check(vec![delete(KeyRange::single("b")), put("a")]), None);
    }

    #[test]
    fn overlapping_deletes_are_allowed() {
        assert_eq!(check(vec![delete(KeyRange::all()), delete(KeyRange::single("a"))]), None);
    }

    #[test]
    fn the_two_branches_of_a_nested_txn_may_put_the_same_key() {
        assert_eq!(check(vec![nested(vec![put("a")], vec![put("a")])]), None);
    }

    #[test]
    fn a_nested_put_clashes_with_the_parents_put_or_delete() {
        assert_eq!(check(vec![put("a"), nested(vec![put("a")], vec![])]), duplicate_of("a"));
        assert_eq!(check(vec![put("a"), nested(vec![], vec![put("a")])]), duplicate_of("a"));
        let deletes_parent_put =
            vec![delete(KeyRange::single("a")), nested(vec![put("a")], vec![])];
        assert_eq!(check(deletes_parent_put), duplicate_of("a"));
        let nested_delete = vec![nested(vec![delete(KeyRange::prefix("a"))], vec![]), put("ab")];
        assert_eq!(check(nested_delete), duplicate_of("ab"));
    }

    #[test]
    fn success_and_failure_are_checked_apart() {
        let txn = Txn { compare: Vec::new(), success: vec![put("a")], failure: vec![put("a")] };
        assert_eq!(check_txn(&KvConfig::default(), &txn), None);
    }

    #[test]
    fn a_level_with_more_ops_than_allowed_is_refused() {
        let config = KvConfig { txn_ops_max: 2, ..KvConfig::default() };
        let txn = Txn { success: vec![put("a"), put("b"), put("c")], ..Txn::default() };
        assert_eq!(check_txn(&config, &txn), Some(Rejection::TooManyOps { ops: 3, max: 2 }));
        let compares = Compare {
            range: KeyRange::single("a"),
            target: CompareTarget::Version(0),
            result: CompareResult::Equal,
        };
        let txn = Txn { compare: vec![compares; 3], ..Txn::default() };
        assert_eq!(check_txn(&config, &txn), Some(Rejection::TooManyOps { ops: 3, max: 2 }));
    }

    #[test]
    fn a_nested_txn_gets_what_its_parent_left() {
        let config = KvConfig { txn_ops_max: 3, ..KvConfig::default() };
        // The outer level counts 2 (its success list), leaving 1 for the nested one.
        let inner = nested(vec![put("a"), put("b")], vec![]);
        let txn = Txn { success: vec![inner, put("c")], ..Txn::default() };
        assert_eq!(check_txn(&config, &txn), Some(Rejection::TooManyOps { ops: 2, max: 1 }));
    }

    #[test]
    fn a_tree_of_nested_txns_is_bounded_in_total() {
        let config = KvConfig { txn_ops_max: 4, ..KvConfig::default() };
        // Every level stays within its allowance (2 of 4, 1 of 2, 1 of 1), but the tree
        // holds 4 + 4 * (2 + 2) = 20 compares and operations, over 3 * 4.
        let leaf =
            |key| nested(vec![TxnOp::Range(RangeRequest::new(KeyRange::single(key)))], vec![]);
        let middle = nested(vec![leaf("a")], vec![leaf("b")]);
        let txn = Txn {
            compare: Vec::new(),
            success: vec![middle.clone(), middle.clone()],
            failure: vec![middle.clone(), middle],
        };
        assert_eq!(check_txn(&config, &txn), Some(Rejection::TooManyOps { ops: 20, max: 12 }));
    }

    #[test]
    fn nesting_deeper_than_the_maximum_is_refused() {
        let config = KvConfig { txn_ops_max: 1_000, ..KvConfig::default() };
        let mut txn = Txn::default();
        for _ in 0..TXN_NESTING_MAX {
            txn = Txn { success: vec![TxnOp::Txn(txn)], ..Txn::default() };
        }
        let refusal =
            Rejection::TxnNestedTooDeep { depth: TXN_NESTING_MAX + 1, max: TXN_NESTING_MAX };
        assert_eq!(check_txn(&config, &txn), Some(refusal));
    }

    #[test]
    fn sizes_are_checked_at_every_depth() {
        let config = KvConfig { key_bytes_max: 2, value_bytes_max: 2, ..KvConfig::default() };
        let long_key = nested(vec![], vec![nested(vec![put("abc")], vec![])]);
        let txn = Txn { success: vec![long_key], ..Txn::default() };
        assert_eq!(check_txn(&config, &txn), Some(Rejection::KeyTooLarge { bytes: 3, max: 2 }));
        let compare = Compare {
            range: KeyRange::single("a"),
            target: CompareTarget::Value(Bytes::from_static(b"long")),
            result: CompareResult::Equal,
        };
        let txn = Txn { compare: vec![compare], ..Txn::default() };
        assert_eq!(check_txn(&config, &txn), Some(Rejection::ValueTooLarge { bytes: 4, max: 2 }));
        let long_end =
            KeyRange { key: Bytes::from_static(b"a"), range_end: Bytes::from_static(b"abc") };
        let txn =
            Txn { success: vec![TxnOp::Range(RangeRequest::new(long_end))], ..Txn::default() };
        assert_eq!(check_txn(&config, &txn), Some(Rejection::KeyTooLarge { bytes: 3, max: 2 }));
    }
}
