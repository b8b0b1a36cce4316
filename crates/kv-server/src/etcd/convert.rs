//! etcd's protobuf messages to kv-store's vocabulary and back.
//!
//! Requests are checked here (negative limits and revisions, unknown enum values, a
//! compare without a target): bad input is `InvalidArgument` before anything is proposed.

use bytes::Bytes;
use etcd_client::proto::{
    PbCompare, PbCompareTarget, PbDeleteRequest, PbDeleteResponse, PbEvent, PbKeyValue,
    PbPutRequest, PbPutResponse, PbRangeRequest, PbRangeResponse, PbResponseHeader, PbResponseOp,
    PbTargetUnion, PbTxnOpRequest, PbTxnOpResponse, PbTxnRequest, PbTxnRequestOp, PbTxnResponse,
};
use kv_store::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, DeleteRangeResponse, Event,
    EventKind, KeyRange, KeyValue, PutRequest, PutResponse, RangeRequest, RangeResponse, SortOrder,
    SortTarget, Txn, TxnOp, TxnOpResponse, TxnResponse,
};
use tonic::Status;

use super::to_i64;

/// etcd's key and range end as a kv-store range (same meaning: empty end = one key,
/// `\0` = from the key on, otherwise half-open).
pub(super) fn key_range(key: Vec<u8>, range_end: Vec<u8>) -> KeyRange {
    KeyRange { key: Bytes::from(key), range_end: Bytes::from(range_end) }
}

/// etcd refuses an empty key before anything else.
fn check_key(key: &[u8]) -> Result<(), Status> {
    if key.is_empty() {
        return Err(Status::invalid_argument("etcdserver: key is not provided"));
    }
    Ok(())
}

fn non_negative(value: i64, what: &str) -> Result<u64, Status> {
    u64::try_from(value).map_err(|_| {
        Status::invalid_argument(format!("etcdserver: {what} must not be negative, got {value}"))
    })
}

/// A range request, checked.
pub(super) fn range_request(request: PbRangeRequest) -> Result<RangeRequest, Status> {
    check_key(&request.key)?;
    let sort_order = match request.sort_order {
        0 => SortOrder::None,
        1 => SortOrder::Ascend,
        2 => SortOrder::Descend,
        other => return Err(Status::invalid_argument(format!("unknown sort order {other}"))),
    };
    let sort_target = match request.sort_target {
        0 => SortTarget::Key,
        1 => SortTarget::Version,
        2 => SortTarget::Create,
        3 => SortTarget::Mod,
        4 => SortTarget::Value,
        other => return Err(Status::invalid_argument(format!("unknown sort target {other}"))),
    };
    // etcd: sorting by anything but the key without an order means ascending.
    let sort_order = match (sort_order, sort_target) {
        (SortOrder::None, target) if target != SortTarget::Key => SortOrder::Ascend,
        (order, _) => order,
    };
    Ok(RangeRequest {
        limit: non_negative(request.limit, "limit")?,
        revision: non_negative(request.revision, "revision")?,
        sort_order,
        sort_target,
        keys_only: request.keys_only,
        count_only: request.count_only,
        min_mod_revision: non_negative(request.min_mod_revision, "min_mod_revision")?,
        max_mod_revision: non_negative(request.max_mod_revision, "max_mod_revision")?,
        min_create_revision: non_negative(request.min_create_revision, "min_create_revision")?,
        max_create_revision: non_negative(request.max_create_revision, "max_create_revision")?,
        range: key_range(request.key, request.range_end),
    })
}

/// A key with its value and metadata, as etcd sends it.
pub(super) fn key_value(kv: &KeyValue) -> PbKeyValue {
    PbKeyValue {
        key: kv.key.to_vec(),
        create_revision: to_i64(kv.meta.create_revision),
        mod_revision: to_i64(kv.meta.mod_revision),
        version: to_i64(kv.meta.version),
        value: kv.value.to_vec(),
        lease: kv.meta.lease,
    }
}

pub(super) fn range_response(
    response: &RangeResponse,
    header: Option<PbResponseHeader>,
) -> PbRangeResponse {
    PbRangeResponse {
        header,
        kvs: response.kvs.iter().map(key_value).collect(),
        more: response.more,
        count: to_i64(response.count),
    }
}

/// A put, checked as etcd does: a key, and no value or lease given alongside
/// `ignore_value` or `ignore_lease`.
pub(super) fn put_request(request: PbPutRequest) -> Result<PutRequest, Status> {
    check_key(&request.key)?;
    if request.ignore_value && !request.value.is_empty() {
        return Err(Status::invalid_argument("etcdserver: value is provided"));
    }
    if request.ignore_lease && request.lease != 0 {
        return Err(Status::invalid_argument("etcdserver: lease is provided"));
    }
    Ok(PutRequest {
        key: Bytes::from(request.key),
        value: Bytes::from(request.value),
        lease: request.lease,
        prev_kv: request.prev_kv,
        ignore_value: request.ignore_value,
        ignore_lease: request.ignore_lease,
    })
}

pub(super) fn put_response(
    response: &PutResponse,
    header: Option<PbResponseHeader>,
) -> PbPutResponse {
    PbPutResponse { header, prev_kv: response.prev_kv.as_ref().map(key_value) }
}

pub(super) fn delete_request(request: PbDeleteRequest) -> Result<DeleteRangeRequest, Status> {
    check_key(&request.key)?;
    let range = key_range(request.key, request.range_end);
    Ok(DeleteRangeRequest { range, prev_kv: request.prev_kv })
}

pub(super) fn delete_response(
    response: &DeleteRangeResponse,
    header: Option<PbResponseHeader>,
) -> PbDeleteResponse {
    PbDeleteResponse {
        header,
        deleted: to_i64(response.deleted),
        prev_kvs: response.prev_kvs.iter().map(key_value).collect(),
    }
}

fn compare(compare: PbCompare) -> Result<Compare, Status> {
    let result = match compare.result {
        0 => CompareResult::Equal,
        1 => CompareResult::Greater,
        2 => CompareResult::Less,
        3 => CompareResult::NotEqual,
        other => return Err(Status::invalid_argument(format!("unknown compare result {other}"))),
    };
    let revision = |value: i64, what| non_negative(value, what);
    // etcd's clients set both the target and its value; the value decides.
    let target = match (compare.target_union, PbCompareTarget::try_from(compare.target)) {
        (Some(PbTargetUnion::Version(version)), _) => {
            CompareTarget::Version(revision(version, "version")?)
        }
        (Some(PbTargetUnion::CreateRevision(value)), _) => {
            CompareTarget::CreateRevision(revision(value, "create_revision")?)
        }
        (Some(PbTargetUnion::ModRevision(value)), _) => {
            CompareTarget::ModRevision(revision(value, "mod_revision")?)
        }
        (Some(PbTargetUnion::Value(value)), _) => CompareTarget::Value(Bytes::from(value)),
        (Some(PbTargetUnion::Lease(lease)), _) => CompareTarget::Lease(lease),
        // No value: protobuf dropped a zero; the target says what it compares.
        (None, Ok(PbCompareTarget::Version)) => CompareTarget::Version(0),
        (None, Ok(PbCompareTarget::Create)) => CompareTarget::CreateRevision(0),
        (None, Ok(PbCompareTarget::Mod)) => CompareTarget::ModRevision(0),
        (None, Ok(PbCompareTarget::Value)) => CompareTarget::Value(Bytes::new()),
        (None, Ok(PbCompareTarget::Lease)) => CompareTarget::Lease(0),
        (None, Err(_)) => {
            let message = format!("unknown compare target {}", compare.target);
            return Err(Status::invalid_argument(message));
        }
    };
    Ok(Compare { range: key_range(compare.key, compare.range_end), target, result })
}

fn txn_op(op: PbTxnRequestOp) -> Result<TxnOp, Status> {
    match op.request {
        Some(PbTxnOpRequest::RequestRange(range)) => Ok(TxnOp::Range(range_request(range)?)),
        Some(PbTxnOpRequest::RequestPut(put)) => Ok(TxnOp::Put(put_request(put)?)),
        Some(PbTxnOpRequest::RequestDeleteRange(delete)) => {
            Ok(TxnOp::DeleteRange(delete_request(delete)?))
        }
        Some(PbTxnOpRequest::RequestTxn(txn)) => Ok(TxnOp::Txn(txn_request(txn)?)),
        None => Err(Status::invalid_argument("etcdserver: a txn operation names no request")),
    }
}

/// A transaction, checked (nested ones included).
pub(super) fn txn_request(request: PbTxnRequest) -> Result<Txn, Status> {
    Ok(Txn {
        compare: request.compare.into_iter().map(compare).collect::<Result<_, _>>()?,
        success: request.success.into_iter().map(txn_op).collect::<Result<_, _>>()?,
        failure: request.failure.into_iter().map(txn_op).collect::<Result<_, _>>()?,
    })
}

/// A transaction's answer; nested answers carry the same header, as etcd's do.
pub(super) fn txn_response(
    response: &TxnResponse,
    header: &Option<PbResponseHeader>,
) -> PbTxnResponse {
    let responses = response
        .responses
        .iter()
        .map(|op| {
            let response = match op {
                TxnOpResponse::Range(range) => {
                    PbTxnOpResponse::ResponseRange(range_response(range, *header))
                }
                TxnOpResponse::Put(put) => PbTxnOpResponse::ResponsePut(put_response(put, *header)),
                TxnOpResponse::DeleteRange(delete) => {
                    PbTxnOpResponse::ResponseDeleteRange(delete_response(delete, *header))
                }
                TxnOpResponse::Txn(txn) => PbTxnOpResponse::ResponseTxn(txn_response(txn, header)),
            };
            PbResponseOp { response: Some(response) }
        })
        .collect();
    PbTxnResponse { header: *header, succeeded: response.succeeded, responses }
}

/// A watch event, as etcd sends it.
pub(super) fn event(event: &Event, with_prev_kv: bool) -> PbEvent {
    PbEvent {
        r#type: match event.kind {
            EventKind::Put => 0,
            EventKind::Delete => 1,
        },
        kv: Some(key_value(&event.kv)),
        prev_kv: if with_prev_kv { event.prev_kv.as_ref().map(key_value) } else { None },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn negative_limits_and_unknown_sort_orders_are_refused() {
        let request = PbRangeRequest { key: b"a".to_vec(), limit: -1, ..Default::default() };
        let error = range_request(request).unwrap_err();
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
        assert!(error.message().contains("limit"), "{}", error.message());
        let request = PbRangeRequest { key: b"a".to_vec(), sort_order: 9, ..Default::default() };
        assert_eq!(range_request(request).unwrap_err().code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn empty_keys_and_contradicting_put_flags_are_refused_as_etcd_does() {
        let empty = PbPutRequest { value: b"v".to_vec(), ..Default::default() };
        assert_eq!(put_request(empty).unwrap_err().message(), "etcdserver: key is not provided");
        let both = PbPutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ignore_value: true,
            ..Default::default()
        };
        assert_eq!(put_request(both).unwrap_err().message(), "etcdserver: value is provided");
        let both =
            PbPutRequest { key: b"k".to_vec(), lease: 7, ignore_lease: true, ..Default::default() };
        assert_eq!(put_request(both).unwrap_err().message(), "etcdserver: lease is provided");
        let delete = PbDeleteRequest::default();
        assert_eq!(delete_request(delete).unwrap_err().code(), tonic::Code::InvalidArgument);
        let range = PbRangeRequest::default();
        assert_eq!(range_request(range).unwrap_err().code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn sorting_by_value_without_an_order_sorts_ascending() {
        let request = PbRangeRequest { key: b"a".to_vec(), sort_target: 4, ..Default::default() };
        let converted = range_request(request).unwrap();
        assert_eq!(
            (converted.sort_order, converted.sort_target),
            (SortOrder::Ascend, SortTarget::Value)
        );
    }

    #[test]
    fn a_compare_whose_zero_value_protobuf_dropped_compares_with_zero() {
        let pb = PbCompare {
            target: PbCompareTarget::Version as i32,
            key: b"k".to_vec(),
            ..Default::default()
        };
        let converted = compare(pb).unwrap();
        assert_eq!(converted.target, CompareTarget::Version(0));
        assert_eq!(converted.result, CompareResult::Equal);
        let unknown = PbCompare { target: 42, ..Default::default() };
        assert_eq!(compare(unknown).unwrap_err().code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn a_txn_op_without_a_request_is_refused() {
        let request =
            PbTxnRequest { success: vec![PbTxnRequestOp { request: None }], ..Default::default() };
        assert_eq!(txn_request(request).unwrap_err().code(), tonic::Code::InvalidArgument);
    }
}
