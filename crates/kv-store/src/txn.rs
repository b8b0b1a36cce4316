//! Applying etcd's writes: transactions, compaction, and lease grants and revokes.
//!
//! A transaction applies in etcd's three steps (server/etcdserver/apply.go): decide every
//! compare, at every depth, against the state before the transaction (the [`Plan`]);
//! check the chosen operations against that same state (a put's lease and, for
//! `ignore_value`/`ignore_lease`, its key must exist; a read's revision must be readable);
//! then run them in order. Only the last step changes anything, and it cannot fail, so a
//! refused transaction changes nothing. The static checks (sizes, operation counts,
//! duplicate keys) ran before, in [`KvConfig::check_limits`](crate::KvConfig).

use bytes::Bytes;

use crate::lease::LEASE_TTL_SECONDS_MAX;
use crate::mvcc::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, Txn, TxnOp, TxnOpResponse, TxnResponse,
};
use crate::response::{KeyMeta, Rejection, Response};
use crate::store::{KvStore, Stamp};

/// A transaction with its compares decided: the branch that runs, and the same for every
/// transaction nested in it.
struct Plan<'t> {
    succeeded: bool,
    steps: Vec<Step<'t>>,
}

/// One operation of the branch that runs.
enum Step<'t> {
    Range(&'t RangeRequest),
    Put(&'t PutRequest),
    DeleteRange(&'t DeleteRangeRequest),
    Txn(Plan<'t>),
}

impl KvStore {
    /// Applies a transaction that passed the static checks.
    pub(crate) fn apply_txn(&mut self, stamp: Stamp, txn: &Txn) -> Response {
        let plan = self.plan(txn);
        if let Some(rejection) = self.check_puts(&plan).or_else(|| self.check_ranges(&plan)) {
            return Response::Rejected(rejection);
        }
        let result = self.run(stamp, &plan);
        let revision = self.finish_write(stamp);
        Response::Txn { revision, result }
    }

    /// Decides every compare of `txn` and its nested transactions against the current
    /// state (etcd's `compareToPath`).
    fn plan<'t>(&self, txn: &'t Txn) -> Plan<'t> {
        let succeeded = txn.compare.iter().all(|compare| self.compare_holds(compare));
        let branch = if succeeded { &txn.success } else { &txn.failure };
        let steps = branch
            .iter()
            .map(|op| match op {
                TxnOp::Range(request) => Step::Range(request),
                TxnOp::Put(request) => Step::Put(request),
                TxnOp::DeleteRange(request) => Step::DeleteRange(request),
                TxnOp::Txn(nested) => Step::Txn(self.plan(nested)),
            })
            .collect();
        Plan { succeeded, steps }
    }

    /// Whether `compare` holds for every key of its range; a range with no key compares
    /// as one missing key (all fields 0), except that a value compare is then false.
    fn compare_holds(&self, compare: &Compare) -> bool {
        let mut found = false;
        for (_, record) in self.map_range(&compare.range) {
            if !compare_key(compare, &record.value, &record.meta) {
                return false;
            }
            found = true;
        }
        found
            || (!matches!(compare.target, CompareTarget::Value(_))
                && compare_key(compare, &[], &KeyMeta::default()))
    }

    /// etcd's `checkRequestPut`, over the branches that run.
    fn check_puts(&self, plan: &Plan<'_>) -> Option<Rejection> {
        plan.steps.iter().find_map(|step| match step {
            Step::Put(request) => self.check_put(request),
            Step::Txn(nested) => self.check_puts(nested),
            Step::Range(_) | Step::DeleteRange(_) => None,
        })
    }

    fn check_put(&self, request: &PutRequest) -> Option<Rejection> {
        let keeps_old = request.ignore_value || request.ignore_lease;
        if keeps_old && !self.map.contains_key(&request.key) {
            return Some(Rejection::KeyNotFound);
        }
        (request.lease != 0 && !self.leases.contains(request.lease))
            .then_some(Rejection::LeaseNotFound { id: request.lease })
    }

    /// etcd's `checkRequestRange`, over the branches that run: a read's revision must be
    /// readable before the transaction (so a read can name neither the revision being
    /// written nor a compacted one).
    fn check_ranges(&self, plan: &Plan<'_>) -> Option<Rejection> {
        plan.steps.iter().find_map(|step| match step {
            Step::Range(request) if request.revision != 0 => {
                self.readable_revision(request.revision).err()
            }
            Step::Txn(nested) => self.check_ranges(nested),
            Step::Range(_) | Step::Put(_) | Step::DeleteRange(_) => None,
        })
    }

    /// Runs the planned operations in order; every write gets `stamp`.
    fn run(&mut self, stamp: Stamp, plan: &Plan<'_>) -> TxnResponse {
        let mut responses = Vec::with_capacity(plan.steps.len());
        for step in &plan.steps {
            let response = match step {
                Step::Range(request) => {
                    // Revision 0 reads now, the transaction's own writes included.
                    let revision =
                        if request.revision == 0 { stamp.revision } else { request.revision };
                    TxnOpResponse::Range(self.range_view(request, revision))
                }
                Step::Put(request) => TxnOpResponse::Put(self.run_put(stamp, request)),
                Step::DeleteRange(request) => {
                    TxnOpResponse::DeleteRange(self.run_delete_range(stamp, request))
                }
                Step::Txn(nested) => TxnOpResponse::Txn(self.run(stamp, nested)),
            };
            responses.push(response);
        }
        TxnResponse { succeeded: plan.succeeded, responses }
    }

    fn run_put(&mut self, stamp: Stamp, request: &PutRequest) -> PutResponse {
        let previous = self.get(&request.key);
        // The checks made sure the key exists when the put keeps its value or lease.
        let value = match &previous {
            Some(previous) if request.ignore_value => previous.value.clone(),
            _ => request.value.clone(),
        };
        let lease = match &previous {
            Some(previous) if request.ignore_lease => previous.meta.lease,
            _ => request.lease,
        };
        self.put_key(stamp, request.key.clone(), value, lease);
        // Read before the put: the key's state it replaced.
        PutResponse { prev_kv: previous.filter(|_| request.prev_kv) }
    }

    fn run_delete_range(
        &mut self,
        stamp: Stamp,
        request: &DeleteRangeRequest,
    ) -> DeleteRangeResponse {
        let keys: Vec<Bytes> = self.map_range(&request.range).map(|(key, _)| key.clone()).collect();
        let mut prev_kvs = Vec::new();
        for key in &keys {
            if let Some(previous) = self.remove_key(stamp, key) {
                if request.prev_kv {
                    prev_kvs.push(previous);
                }
            }
        }
        DeleteRangeResponse { deleted: keys.len() as u64, prev_kvs }
    }

    /// Drops the history before `revision` (etcd's compaction).
    pub(crate) fn compact(&mut self, revision: u64) -> Response {
        if revision <= self.compact_revision {
            return Response::Rejected(Rejection::Compacted {
                requested: revision,
                compacted: self.compact_revision,
            });
        }
        if revision > self.revision {
            return Response::Rejected(Rejection::FutureRevision {
                requested: revision,
                current: self.revision,
            });
        }
        self.compact_history(revision);
        Response::Compacted { revision: self.revision }
    }

    /// Grants lease `id`; granting changes no key, so the revision stays.
    pub(crate) fn grant_lease(&mut self, id: i64, ttl_seconds: i64) -> Response {
        if let Some(reason) = invalid_grant(id, ttl_seconds) {
            return Response::Rejected(Rejection::InvalidLease { reason });
        }
        if self.leases.contains(id) {
            return Response::Rejected(Rejection::LeaseExists { id });
        }
        let leases_max = self.config.leases_max;
        if self.leases.len() as u64 >= leases_max {
            return Response::Rejected(Rejection::TooManyLeases { max: leases_max });
        }
        self.leases.grant(id, ttl_seconds);
        Response::LeaseGranted { id, ttl_seconds, revision: self.revision }
    }

    /// Revokes lease `id` and deletes its keys in key order, all at `stamp`.
    pub(crate) fn revoke_lease(&mut self, stamp: Stamp, id: i64) -> Response {
        let Some(lease) = self.leases.remove(id) else {
            return Response::Rejected(Rejection::LeaseNotFound { id });
        };
        for key in &lease.keys {
            self.remove_key(stamp, key);
        }
        let revision = self.finish_write(stamp);
        Response::LeaseRevoked { revision }
    }
}

/// Why a lease grant's id or time to live is refused, if it is.
fn invalid_grant(id: i64, ttl_seconds: i64) -> Option<String> {
    if id <= 0 {
        return Some(format!(
            "lease id {id} is not positive; the server must pick an id for a request of 0"
        ));
    }
    if ttl_seconds <= 0 {
        return Some(format!("a time to live of {ttl_seconds} seconds is not positive"));
    }
    (ttl_seconds > LEASE_TTL_SECONDS_MAX).then(|| {
        format!(
            "a time to live of {ttl_seconds} seconds is over the maximum of \
             {LEASE_TTL_SECONDS_MAX}"
        )
    })
}

/// etcd's `compareKV`: the key's field (left) against the compare's target (right).
fn compare_key(compare: &Compare, value: &[u8], meta: &KeyMeta) -> bool {
    let ordering = match &compare.target {
        CompareTarget::Version(target) => meta.version.cmp(target),
        CompareTarget::CreateRevision(target) => meta.create_revision.cmp(target),
        CompareTarget::ModRevision(target) => meta.mod_revision.cmp(target),
        CompareTarget::Value(target) => value.cmp(target.as_ref()),
        CompareTarget::Lease(target) => meta.lease.cmp(target),
    };
    match compare.result {
        CompareResult::Equal => ordering.is_eq(),
        CompareResult::Greater => ordering.is_gt(),
        CompareResult::Less => ordering.is_lt(),
        CompareResult::NotEqual => ordering.is_ne(),
    }
}

#[cfg(test)]
#[path = "txn_tests.rs"]
mod tests;
