//! Large histories generated from a real register map: linearizable by construction, and
//! detected once corrupted. Only correctness is asserted here; `cargo bench` measures time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Shape, linearizable_history, rebuild};
use kv_linearizability::{Budget, Call, Outcome, Verdict, check};

const TEN_THOUSAND: Shape =
    Shape { clients: 10, keys: 5, operations: 10_000, timeout_percent: 3, seed: 7 };

#[test]
fn ten_thousand_operation_register_history_is_linearizable() {
    let history = linearizable_history(TEN_THOUSAND);
    assert_eq!(history.len(), 10_000);
    let report = check(&history, Budget::default());
    assert!(report.verdict.is_linearizable(), "{}", report.verdict);
    assert_eq!(report.stats.keys, 5);
}

#[test]
fn ten_thousand_operations_on_one_key_are_linearizable() {
    let history = linearizable_history(Shape { keys: 1, ..TEN_THOUSAND });
    let report = check(&history, Budget::default());
    assert!(report.verdict.is_linearizable(), "{}", report.verdict);
}

#[test]
fn generated_histories_with_many_timeouts_are_linearizable() {
    for seed in 0..20 {
        let shape = Shape { clients: 6, keys: 2, operations: 500, timeout_percent: 30, seed };
        let report = check(&linearizable_history(shape), Budget::default());
        assert!(report.verdict.is_linearizable(), "seed {seed}: {}", report.verdict);
    }
}

/// Makes a read late in the history return a value that was overwritten before the read
/// began: values are unique, so no linearization can explain it.
#[test]
fn stale_read_planted_in_ten_thousand_operations_is_found_and_shrunk() {
    // Few timeouts: a failing search must rule out every placement of every timed-out
    // conditional write before the corruption, which grows fast with their number.
    let shape = Shape { timeout_percent: 1, ..TEN_THOUSAND };
    let mut operations = linearizable_history(shape).operations().to_vec();
    let completed_at = |index: usize| operations[index].completion.as_ref().map(|d| d.completed_at);
    // Find a completed write A, then a completed write B invoked after A completed, then a
    // completed read invoked after B completed, all on the same key, in the second half.
    let mut plant = None;
    'search: for a in operations.len() / 2..operations.len() {
        let (Call::Write { value: old }, Some(a_done)) = (&operations[a].call, completed_at(a))
        else {
            continue;
        };
        for b in a + 1..operations.len() {
            let same_key = operations[b].key == operations[a].key;
            let Some(b_done) = completed_at(b) else { continue };
            if !same_key || operations[b].invoked_at <= a_done {
                continue;
            }
            if !matches!(operations[b].call, Call::Write { .. }) {
                continue;
            }
            for read in b + 1..operations.len() {
                let op = &operations[read];
                if op.key == operations[a].key
                    && op.call == Call::Read
                    && op.completion.is_some()
                    && op.invoked_at > b_done
                {
                    plant = Some((a, b, read, *old));
                    break 'search;
                }
            }
        }
    }
    let (a, b, read, old) = plant.expect("the generated history has a write, overwrite, read");
    operations[read].completion.as_mut().unwrap().outcome = Outcome::Read { value: Some(old) };
    let (stale_id, old_write_id, overwrite_id) =
        (operations[read].id, operations[a].id, operations[b].id);

    let report = check(&rebuild(operations), Budget::default());
    let Verdict::NotLinearizable(violation) = &report.verdict else {
        panic!("the stale read went unnoticed: {}", report.verdict);
    };
    assert!(violation.minimal_proven, "{violation}");
    let ids: Vec<_> = violation.minimal.iter().map(|op| op.id).collect();
    assert!(ids.contains(&stale_id), "{violation}");
    assert!(ids.contains(&old_write_id), "{violation}");
    assert!(violation.minimal.len() <= 4, "{violation}");
    let _ = overwrite_id; // another overwrite of the key may be the one kept
    assert_eq!(report.stats.keys_not_linearizable, 1);
}
