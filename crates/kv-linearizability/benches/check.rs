//! Time to check generated 10,000-operation histories: linearizable ones (the common case in
//! a simulation sweep) and one with a planted stale read (search, shrink and explain).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Shape, linearizable_history, rebuild};
use criterion::{Criterion, criterion_group, criterion_main};
use kv_linearizability::{Budget, Call, History, Outcome, check};

const TEN_THOUSAND: Shape =
    Shape { clients: 10, keys: 5, operations: 10_000, timeout_percent: 3, seed: 7 };

/// The generated history with the first read after the midpoint that follows an overwrite made
/// to return the overwritten value.
fn with_stale_read(shape: Shape) -> History<u64, u64> {
    let mut operations = linearizable_history(shape).operations().to_vec();
    let done = |op: &kv_linearizability::Operation<u64, u64>| {
        op.completion.as_ref().map(|d| d.completed_at)
    };
    let n = operations.len();
    for a in n / 2..n {
        let (Call::Write { value: old }, Some(a_done)) =
            (operations[a].call.clone(), done(&operations[a]))
        else {
            continue;
        };
        let overwrite = (a + 1..n).find(|&b| {
            operations[b].key == operations[a].key
                && matches!(operations[b].call, Call::Write { .. })
                && operations[b].invoked_at > a_done
                && done(&operations[b]).is_some()
        });
        let Some(b) = overwrite else { continue };
        let b_done = done(&operations[b]).unwrap();
        let read = (b + 1..n).find(|&r| {
            operations[r].key == operations[a].key
                && operations[r].call == Call::Read
                && operations[r].invoked_at > b_done
                && done(&operations[r]).is_some()
        });
        if let Some(read) = read {
            operations[read].completion.as_mut().unwrap().outcome =
                Outcome::Read { value: Some(old) };
            return rebuild(operations);
        }
    }
    panic!("no place to plant a stale read");
}

fn bench(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("check_10k");
    group.sample_size(10);
    let five_keys = linearizable_history(TEN_THOUSAND);
    group.bench_function("linearizable_5_keys_3pct_timeouts", |bench| {
        bench.iter(|| assert!(check(&five_keys, Budget::default()).verdict.is_linearizable()))
    });
    let one_key = linearizable_history(Shape { keys: 1, ..TEN_THOUSAND });
    group.bench_function("linearizable_1_key_3pct_timeouts", |bench| {
        bench.iter(|| assert!(check(&one_key, Budget::default()).verdict.is_linearizable()))
    });
    let stale = with_stale_read(Shape { timeout_percent: 1, ..TEN_THOUSAND });
    group.bench_function("stale_read_5_keys_1pct_timeouts_with_shrink", |bench| {
        bench.iter(|| assert!(check(&stale, Budget::default()).verdict.violation().is_some()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
