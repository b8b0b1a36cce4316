//! etcd's write semantics: revisions, key metadata, transactions, leases and compaction.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use raft_core::LogIndex;

use crate::command::{Session, Write};
use crate::config::KvConfig;
use crate::mvcc::{
    CompareResult, CompareTarget, DeleteRangeRequest, PutRequest, PutResponse, RangeRequest, Txn,
    TxnOp, TxnOpResponse, TxnResponse,
};
use crate::range::KeyRange;
use crate::response::{KeyMeta, Rejection, Response};
use crate::test_support::{
    Harness, bytes, compare, delete_op, pairs, put, range_answer, range_op, success,
};

fn single(key: &str) -> KeyRange {
    KeyRange::single(bytes(key))
}

// ---------------------------------------------------------------------------------------
// Revisions

#[test]
fn an_empty_store_is_at_revision_1_and_never_compacted() {
    let harness = Harness::new();
    assert_eq!((harness.store.revision(), harness.store.compact_revision()), (1, 0));
}

#[test]
fn every_write_that_changes_keys_moves_the_revision_by_one() {
    let mut harness = Harness::new();
    assert_eq!(harness.put("a", "1"), 2);
    assert_eq!(harness.put("a", "2"), 3);
    let legacy_put = Write::Put { key: bytes("b"), value: bytes("1"), expect_version: None };
    assert!(matches!(harness.apply(legacy_put), Response::Written(_)));
    assert_eq!(harness.store.revision(), 4);
    let legacy_delete = Write::Delete { key: bytes("b"), expect_version: None };
    assert!(matches!(harness.apply(legacy_delete), Response::Deleted(_)));
    assert_eq!(harness.store.revision(), 5);
    assert_eq!(harness.delete(single("a")), 6);
}

#[test]
fn writes_that_change_nothing_keep_the_revision() {
    let mut harness = Harness::new();
    harness.put("a", "1");
    // Deleting missing keys, a transaction that only reads, a conflicting compare-and-set,
    // a refused transaction, a lease grant, a revoke of a lease without keys, a
    // compaction and a member address change.
    assert_eq!(harness.delete(single("missing")), 2);
    assert_eq!(harness.delete(KeyRange::prefix("zz")), 2);
    assert_eq!(harness.txn(success(vec![range_op(KeyRange::all())])).0, 2);
    let cas = Write::Put { key: bytes("a"), value: bytes("x"), expect_version: Some(9) };
    assert!(matches!(harness.apply(cas), Response::Conflict { .. }));
    let duplicate = success(vec![put("k", "1"), put("k", "2")]);
    assert!(matches!(harness.refused(Write::Txn(duplicate)), Rejection::DuplicateKey { .. }));
    harness.grant(5);
    assert_eq!(harness.apply(Write::LeaseRevoke { id: 5 }), Response::LeaseRevoked { revision: 2 });
    assert_eq!(harness.apply(Write::Compact { revision: 2 }), Response::Compacted { revision: 2 });
    let addr = "127.0.0.1:7000".parse().unwrap();
    harness.apply(Write::SetMemberAddress { node: raft_core::NodeId(1), addr });
    assert_eq!(harness.store.revision(), 2);
    assert_eq!(harness.store.get(b"a").unwrap().meta.mod_revision, 2);
}

#[test]
fn all_writes_of_one_transaction_share_one_revision() {
    let mut harness = Harness::new();
    harness.put("old", "x");
    let txn = success(vec![put("a", "1"), put("b", "2"), delete_op(single("old"))]);
    let (revision, _) = harness.txn(txn);
    assert_eq!(revision, 3);
    assert_eq!(harness.store.get(b"a").unwrap().meta.mod_revision, 3);
    assert_eq!(harness.store.get(b"b").unwrap().meta.mod_revision, 3);
    let events = harness.store.events_since(&KeyRange::all(), 3, 10).unwrap();
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|event| event.revision() == 3));
}

// ---------------------------------------------------------------------------------------
// Key metadata

#[test]
fn a_new_key_is_created_at_version_1_and_the_new_revision() {
    let mut harness = Harness::new();
    harness.put("other", "x");
    harness.put("a", "1");
    let meta = harness.store.get(b"a").unwrap().meta;
    let expected = KeyMeta {
        version: 1,
        create_index: LogIndex(2),
        mod_index: LogIndex(2),
        create_revision: 3,
        mod_revision: 3,
        lease: 0,
    };
    assert_eq!(meta, expected);
}

#[test]
fn a_put_over_a_key_keeps_its_create_revision_and_bumps_its_version() {
    let mut harness = Harness::new();
    harness.put("a", "1");
    harness.put("b", "x");
    harness.put("a", "2");
    let meta = harness.store.get(b"a").unwrap().meta;
    assert_eq!((meta.version, meta.create_revision, meta.mod_revision), (2, 2, 4));
    assert_eq!((meta.create_index, meta.mod_index), (LogIndex(1), LogIndex(3)));
}

#[test]
fn a_deleted_key_put_again_starts_over_at_version_1() {
    let mut harness = Harness::new();
    harness.put("a", "1");
    harness.put("a", "2");
    harness.delete(single("a"));
    assert_eq!(harness.store.get(b"a"), None);
    harness.put("a", "3");
    let meta = harness.store.get(b"a").unwrap().meta;
    assert_eq!((meta.version, meta.create_revision, meta.mod_revision), (1, 5, 5));
}

// ---------------------------------------------------------------------------------------
// Unsessioned writes

#[test]
fn unsessioned_writes_apply_every_time_and_record_no_session() {
    let mut harness = Harness::new();
    let write = Write::Put { key: bytes("a"), value: bytes("1"), expect_version: None };
    harness.apply(write.clone());
    harness.apply(write);
    assert_eq!(harness.store.session_count(), 0);
    assert_eq!(harness.store.get(b"a").unwrap().meta.version, 2, "no exactly-once");
    assert!(Session::UNSESSIONED.is_unsessioned());
    assert!(!Session { client_id: 1, sequence: 1 }.is_unsessioned());
}

// ---------------------------------------------------------------------------------------
// Compares

/// Whether a transaction with this one compare takes its success branch.
fn holds(
    harness: &mut Harness,
    range: KeyRange,
    target: CompareTarget,
    result: CompareResult,
) -> bool {
    let txn = Txn { compare: vec![compare(range, target, result)], ..Txn::default() };
    harness.txn(txn).1.succeeded
}

#[test]
fn compares_relate_the_keys_field_to_the_target() {
    let mut harness = Harness::new();
    harness.put("a", "m");
    harness.put("a", "m"); // version 2, create 2, mod 3
    let a = || single("a");
    use CompareResult::{Equal, Greater, Less, NotEqual};
    use CompareTarget::{CreateRevision, Lease, ModRevision, Value, Version};
    assert!(holds(&mut harness, a(), Version(2), Equal));
    assert!(holds(&mut harness, a(), Version(1), Greater));
    assert!(holds(&mut harness, a(), Version(3), Less));
    assert!(!holds(&mut harness, a(), Version(2), NotEqual));
    assert!(holds(&mut harness, a(), CreateRevision(2), Equal));
    assert!(holds(&mut harness, a(), ModRevision(3), Equal));
    assert!(holds(&mut harness, a(), ModRevision(2), Greater));
    assert!(holds(&mut harness, a(), Value(bytes("m")), Equal));
    assert!(holds(&mut harness, a(), Value(bytes("l")), Greater));
    assert!(holds(&mut harness, a(), Value(bytes("mm")), Less));
    assert!(holds(&mut harness, a(), Value(bytes("x")), NotEqual));
    assert!(holds(&mut harness, a(), Lease(0), Equal));
}

#[test]
fn a_missing_key_compares_as_zero_but_its_value_compares_false() {
    let mut harness = Harness::new();
    let missing = || single("missing");
    use CompareResult::{Equal, Greater, Less, NotEqual};
    use CompareTarget::{CreateRevision, Lease, ModRevision, Value, Version};
    assert!(holds(&mut harness, missing(), Version(0), Equal));
    assert!(holds(&mut harness, missing(), CreateRevision(0), Equal));
    assert!(holds(&mut harness, missing(), ModRevision(1), Less));
    assert!(holds(&mut harness, missing(), Lease(0), Equal));
    assert!(!holds(&mut harness, missing(), Version(0), Greater));
    for result in [Equal, Greater, Less, NotEqual] {
        assert!(!holds(&mut harness, missing(), Value(Bytes::new()), result), "{result:?}");
        assert!(!holds(&mut harness, missing(), Value(bytes("x")), result), "{result:?}");
    }
}

#[test]
fn a_compare_over_a_range_must_hold_for_every_key_in_it() {
    let mut harness = Harness::new();
    harness.put("p/1", "x");
    harness.put("p/2", "x");
    harness.put("p/2", "y"); // p/2 at version 2
    let prefix = || KeyRange::prefix(bytes("p/"));
    use CompareResult::{Equal, Greater};
    use CompareTarget::{Value, Version};
    assert!(holds(&mut harness, prefix(), Version(0), Greater));
    assert!(!holds(&mut harness, prefix(), Version(1), Equal), "p/2 is at version 2");
    assert!(!holds(&mut harness, prefix(), Value(bytes("x")), Equal), "p/2 holds y");
    // A range with no key compares as a missing key.
    assert!(holds(&mut harness, KeyRange::prefix(bytes("q/")), Version(0), Equal));
    assert!(!holds(&mut harness, KeyRange::prefix(bytes("q/")), Value(bytes("")), Equal));
}

#[test]
fn the_failure_branch_runs_when_a_compare_fails() {
    let mut harness = Harness::new();
    let create_once = || Txn {
        compare: vec![compare(
            single("lock"),
            CompareTarget::CreateRevision(0),
            CompareResult::Equal,
        )],
        success: vec![put("lock", "me")],
        failure: vec![range_op(single("lock"))],
    };
    let (revision, first) = harness.txn(create_once());
    assert!(first.succeeded);
    assert_eq!(first.responses, vec![TxnOpResponse::Put(PutResponse { prev_kv: None })]);
    let (again, second) = harness.txn(create_once());
    assert!(!second.succeeded);
    assert_eq!(again, revision, "the failure branch only read");
    assert_eq!(range_answer(&second, 0).kvs[0].value, bytes("me"));
}

#[test]
fn compares_of_nested_transactions_see_the_state_before_the_outer_one() {
    let mut harness = Harness::new();
    // The outer transaction creates a; the nested one checks that a does not exist, which
    // held before the outer transaction began, so its success branch runs.
    let nested = Txn {
        compare: vec![compare(single("a"), CompareTarget::Version(0), CompareResult::Equal)],
        success: vec![put("b", "saw no a")],
        failure: vec![put("b", "saw a")],
    };
    let (_, result) = harness.txn(success(vec![put("a", "1"), TxnOp::Txn(nested)]));
    let TxnOpResponse::Txn(nested_result) = &result.responses[1] else { panic!("{result:?}") };
    assert!(nested_result.succeeded);
    assert_eq!(harness.store.get(b"b").unwrap().value, bytes("saw no a"));
}

#[test]
fn nested_transactions_answer_in_place_and_share_the_revision() {
    let mut harness = Harness::new();
    harness.put("x", "1");
    let inner = Txn {
        compare: vec![compare(single("x"), CompareTarget::Value(bytes("2")), CompareResult::Equal)],
        success: vec![put("never", "1")],
        failure: vec![put("y", "2"), range_op(single("x"))],
    };
    let (revision, result) = harness.txn(success(vec![put("z", "3"), TxnOp::Txn(inner)]));
    assert_eq!(revision, 3);
    let TxnOpResponse::Txn(inner_result) = &result.responses[1] else { panic!("{result:?}") };
    assert!(!inner_result.succeeded);
    assert_eq!(inner_result.responses.len(), 2);
    assert_eq!(range_answer(inner_result, 1).kvs[0].value, bytes("1"));
    assert_eq!(harness.store.get(b"y").unwrap().meta.mod_revision, 3);
    assert_eq!(harness.store.get(b"never"), None);
}

// ---------------------------------------------------------------------------------------
// Duplicate keys and limits

#[test]
fn a_transaction_writing_a_key_twice_is_refused_and_changes_nothing() {
    let mut harness = Harness::new();
    harness.put("a", "0");
    let before = harness.store.clone();
    let nested_clash = success(vec![
        put("a", "1"),
        TxnOp::Txn(Txn { success: vec![put("a", "2")], ..Txn::default() }),
    ]);
    let delete_clash = success(vec![delete_op(KeyRange::prefix(bytes("a"))), put("ab", "1")]);
    for txn in [nested_clash, delete_clash] {
        let rejection = harness.refused(Write::Txn(txn.clone()));
        assert!(matches!(rejection, Rejection::DuplicateKey { .. }), "{rejection:?}");
        let error = harness.store.validate_write(&Write::Txn(txn)).unwrap_err();
        assert!(error.to_string().contains("duplicate key"), "{error}");
    }
    assert_eq!(harness.store.get(b"a"), before.get(b"a"));
    assert_eq!(harness.store.revision(), before.revision());
}

#[test]
fn a_transaction_over_the_operation_limit_is_refused_at_apply() {
    let config = KvConfig { txn_ops_max: 2, ..KvConfig::default() };
    let mut harness = Harness::with_config(config);
    let txn = success(vec![put("a", "1"), put("b", "1"), put("c", "1")]);
    assert_eq!(harness.refused(Write::Txn(txn)), Rejection::TooManyOps { ops: 3, max: 2 });
    assert!(harness.store.is_empty());
}

#[test]
fn oversized_values_inside_a_transaction_are_refused() {
    let config = KvConfig { value_bytes_max: 2, ..KvConfig::default() };
    let mut harness = Harness::with_config(config);
    let nested = Txn { failure: vec![put("k", "toolong")], ..Txn::default() };
    let txn = success(vec![TxnOp::Txn(nested)]);
    assert_eq!(harness.refused(Write::Txn(txn)), Rejection::ValueTooLarge { bytes: 7, max: 2 });
}

// ---------------------------------------------------------------------------------------
// Reads inside a transaction

#[test]
fn reads_in_a_transaction_see_its_earlier_writes_in_order() {
    let mut harness = Harness::new();
    harness.put("a", "old");
    harness.put("b", "doomed");
    let txn = success(vec![
        range_op(single("a")),
        put("a", "new"),
        range_op(single("a")),
        range_op(single("b")),
        delete_op(single("b")),
        range_op(single("b")),
    ]);
    let (_, result) = harness.txn(txn);
    assert_eq!(range_answer(&result, 0).kvs[0].value, bytes("old"));
    let after_put = &range_answer(&result, 2).kvs[0];
    assert_eq!((after_put.value.clone(), after_put.meta.version), (bytes("new"), 2));
    assert_eq!(range_answer(&result, 3).count, 1);
    assert_eq!(range_answer(&result, 5).count, 0);
}

#[test]
fn a_read_at_a_revision_in_a_transaction_sees_history_not_the_transactions_writes() {
    let mut harness = Harness::new();
    harness.put("a", "1"); // revision 2
    harness.put("a", "2"); // revision 3
    let at = |revision| {
        let mut request = RangeRequest::new(single("a"));
        request.revision = revision;
        TxnOp::Range(request)
    };
    let (_, result) = harness.txn(success(vec![put("a", "3"), at(3), at(2)]));
    assert_eq!(range_answer(&result, 1).kvs[0].value, bytes("2"));
    assert_eq!(range_answer(&result, 2).kvs[0].value, bytes("1"));
    // The revision being written cannot be named (etcd checks reads against the state
    // before the transaction), and neither can a compacted one.
    let refusal = harness.refused(Write::Txn(success(vec![put("b", "1"), at(5)])));
    assert_eq!(refusal, Rejection::FutureRevision { requested: 5, current: 4 });
    harness.apply(Write::Compact { revision: 3 });
    let refusal = harness.refused(Write::Txn(success(vec![put("b", "1"), at(2)])));
    assert_eq!(refusal, Rejection::Compacted { requested: 2, compacted: 3 });
    assert_eq!(harness.store.get(b"b"), None, "a refused transaction wrote nothing");
}

// ---------------------------------------------------------------------------------------
// Put and delete options

#[test]
fn prev_kv_answers_what_a_put_or_delete_replaced() {
    let mut harness = Harness::new();
    harness.put("a", "1");
    harness.put("b", "2");
    let mut put_a = PutRequest::new(bytes("a"), bytes("new"));
    put_a.prev_kv = true;
    let mut put_c = PutRequest::new(bytes("c"), bytes("new"));
    put_c.prev_kv = true;
    let delete = DeleteRangeRequest { range: single("b"), prev_kv: true };
    let txn = success(vec![TxnOp::Put(put_a), TxnOp::Put(put_c), TxnOp::DeleteRange(delete)]);
    let (_, result) = harness.txn(txn);
    let TxnOpResponse::Put(answer) = &result.responses[0] else { panic!() };
    assert_eq!(answer.prev_kv.as_ref().unwrap().value, bytes("1"));
    assert_eq!(result.responses[1], TxnOpResponse::Put(PutResponse { prev_kv: None }));
    let TxnOpResponse::DeleteRange(deleted) = &result.responses[2] else { panic!() };
    assert_eq!(deleted.deleted, 1);
    assert_eq!(deleted.prev_kvs[0].value, bytes("2"));
    // Without prev_kv, nothing is answered.
    let (_, result) = harness.txn(success(vec![put("a", "x"), delete_op(single("c"))]));
    assert_eq!(result.responses[0], TxnOpResponse::Put(PutResponse { prev_kv: None }));
    let TxnOpResponse::DeleteRange(deleted) = &result.responses[1] else { panic!() };
    assert_eq!((deleted.deleted, deleted.prev_kvs.len()), (1, 0));
}

#[test]
fn ignore_value_and_ignore_lease_keep_what_the_key_had() {
    let mut harness = Harness::new();
    harness.grant(7);
    harness.grant(8);
    harness.put_leased("k", "kept", 7);
    let mut keep_value = PutRequest::new(bytes("k"), Bytes::new());
    keep_value.ignore_value = true;
    keep_value.lease = 8;
    harness.txn(success(vec![TxnOp::Put(keep_value)]));
    let found = harness.store.get(b"k").unwrap();
    assert_eq!((found.value, found.meta.lease, found.meta.version), (bytes("kept"), 8, 2));
    let mut keep_lease = PutRequest::new(bytes("k"), bytes("changed"));
    keep_lease.ignore_lease = true;
    harness.txn(success(vec![TxnOp::Put(keep_lease)]));
    let found = harness.store.get(b"k").unwrap();
    assert_eq!((found.value, found.meta.lease), (bytes("changed"), 8));
}

#[test]
fn ignore_value_or_ignore_lease_on_a_missing_key_is_refused() {
    let mut harness = Harness::new();
    for (ignore_value, ignore_lease) in [(true, false), (false, true)] {
        let mut request = PutRequest::new(bytes("missing"), bytes("v"));
        request.ignore_value = ignore_value;
        request.ignore_lease = ignore_lease;
        // The write before it in the transaction does not happen either.
        let txn = success(vec![put("other", "v"), TxnOp::Put(request)]);
        assert_eq!(harness.refused(Write::Txn(txn)), Rejection::KeyNotFound);
    }
    assert!(harness.store.is_empty());
    assert_eq!(harness.store.revision(), 1);
}

// ---------------------------------------------------------------------------------------
// Leases

#[test]
fn lease_grants_refuse_bad_ids_times_to_live_and_duplicates() {
    let mut harness = Harness::new();
    for (id, ttl_seconds) in [(0, 10), (-3, 10), (1, 0), (1, -5), (1, i64::MAX)] {
        let rejection = harness.refused(Write::LeaseGrant { id, ttl_seconds });
        assert!(matches!(rejection, Rejection::InvalidLease { .. }), "{id} {ttl_seconds}");
    }
    let granted = harness.apply(Write::LeaseGrant { id: 1, ttl_seconds: 10 });
    assert_eq!(granted, Response::LeaseGranted { id: 1, ttl_seconds: 10, revision: 1 });
    assert_eq!(
        harness.refused(Write::LeaseGrant { id: 1, ttl_seconds: 5 }),
        Rejection::LeaseExists { id: 1 }
    );
}

#[test]
fn no_more_leases_than_the_limit_are_granted() {
    let mut harness = Harness::with_config(KvConfig { leases_max: 2, ..KvConfig::default() });
    harness.grant(1);
    harness.grant(2);
    assert_eq!(
        harness.refused(Write::LeaseGrant { id: 3, ttl_seconds: 5 }),
        Rejection::TooManyLeases { max: 2 }
    );
    harness.apply(Write::LeaseRevoke { id: 1 });
    harness.grant(3);
}

#[test]
fn a_put_with_a_missing_lease_is_refused() {
    let mut harness = Harness::new();
    let mut request = PutRequest::new(bytes("k"), bytes("v"));
    request.lease = 42;
    let refusal = harness.refused(Write::Txn(success(vec![TxnOp::Put(request)])));
    assert_eq!(refusal, Rejection::LeaseNotFound { id: 42 });
}

#[test]
fn a_put_moves_its_key_between_leases_and_a_delete_detaches_it() {
    let mut harness = Harness::new();
    harness.grant(1);
    harness.grant(2);
    harness.put_leased("a", "v", 1);
    harness.put_leased("b", "v", 1);
    let keys = |harness: &Harness, id| harness.store.lease(id).unwrap().keys;
    assert_eq!(keys(&harness, 1), vec![bytes("a"), bytes("b")]);
    harness.put_leased("a", "v", 2);
    assert_eq!((keys(&harness, 1), keys(&harness, 2)), (vec![bytes("b")], vec![bytes("a")]));
    // A put without a lease, through either write path, detaches the key.
    harness.put("a", "v");
    let legacy = Write::Put { key: bytes("b"), value: bytes("v"), expect_version: None };
    harness.apply(legacy);
    assert!(keys(&harness, 1).is_empty() && keys(&harness, 2).is_empty());
    harness.put_leased("a", "v", 2);
    harness.delete(single("a"));
    assert!(keys(&harness, 2).is_empty());
}

#[test]
fn a_revoke_deletes_the_leases_keys_at_one_revision_and_forgets_it() {
    let mut harness = Harness::new();
    harness.grant(1);
    harness.put_leased("b", "1", 1);
    harness.put_leased("a", "2", 1);
    harness.put("free", "3");
    let revision = harness.store.revision();
    let answer = harness.apply(Write::LeaseRevoke { id: 1 });
    assert_eq!(answer, Response::LeaseRevoked { revision: revision + 1 });
    assert_eq!(harness.read_at(KeyRange::all(), 0), pairs(&[("free", "3")]));
    assert_eq!(harness.store.lease(1), None);
    let events = harness.store.events_since(&KeyRange::all(), revision + 1, 10).unwrap();
    let deleted: Vec<Bytes> = events.iter().map(|event| event.kv.key.clone()).collect();
    assert_eq!(deleted, vec![bytes("a"), bytes("b")], "deleted in key order");
    assert_eq!(harness.refused(Write::LeaseRevoke { id: 1 }), Rejection::LeaseNotFound { id: 1 });
}

#[test]
fn leases_are_listed_in_id_order_without_keys() {
    let mut harness = Harness::new();
    for id in [30, 10, 20] {
        harness.grant(id);
    }
    harness.put_leased("k", "v", 20);
    let ids: Vec<i64> = harness.store.leases().iter().map(|lease| lease.id).collect();
    assert_eq!(ids, vec![10, 20, 30]);
    assert!(harness.store.leases().iter().all(|lease| lease.keys.is_empty()));
    let lease = harness.store.lease(20).unwrap();
    assert_eq!((lease.ttl_seconds, lease.keys), (60, vec![bytes("k")]));
}

// ---------------------------------------------------------------------------------------
// Compaction

#[test]
fn compaction_is_refused_at_or_below_the_compact_revision_and_above_the_revision() {
    let mut harness = Harness::new();
    harness.put("a", "1");
    harness.put("a", "2");
    assert_eq!(
        harness.refused(Write::Compact { revision: 4 }),
        Rejection::FutureRevision { requested: 4, current: 3 }
    );
    assert_eq!(harness.apply(Write::Compact { revision: 3 }), Response::Compacted { revision: 3 });
    assert_eq!(harness.store.compact_revision(), 3);
    for revision in [2, 3] {
        assert_eq!(
            harness.refused(Write::Compact { revision }),
            Rejection::Compacted { requested: revision, compacted: 3 }
        );
    }
}

#[test]
fn new_responses_keep_their_encoding_positions() {
    // Response variants 6 to 9 and the new rejections follow the old ones.
    let txn = Response::Txn { revision: 1, result: TxnResponse::default() };
    assert_eq!(txn.encode().unwrap()[0], 6);
    assert_eq!(Response::Compacted { revision: 1 }.encode().unwrap()[0], 7);
    let revoked = Response::LeaseRevoked { revision: 1 };
    assert_eq!(revoked.encode().unwrap()[0], 9);
    let compacted = Response::Rejected(Rejection::Compacted { requested: 1, compacted: 2 });
    assert_eq!(compacted.encode().unwrap()[..2], [4, 7]);
    for response in [txn, revoked, compacted] {
        assert_eq!(Response::decode(&response.encode().unwrap()).unwrap(), response);
    }
}
