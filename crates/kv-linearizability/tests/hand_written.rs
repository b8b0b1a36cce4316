//! Hand-written histories with known verdicts: the classic anomalies (stale read, lost write,
//! compare-and-set applied twice), unknown outcomes, versions, and recording mistakes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::num::NonZeroU64;

use kv_linearizability::{
    Budget, Call, CasResult, ClientId, Error, Expect, History, OpId, Outcome, Verdict, Violation,
    check,
};

type Kv = History<&'static str, u64>;

/// Records a completed operation on key "x".
fn done(
    history: &mut Kv,
    client: u64,
    call: Call<u64>,
    at: (u64, u64),
    outcome: Outcome<u64>,
) -> OpId {
    history.record(ClientId(client), "x", call, at.0, Some((outcome, at.1))).unwrap()
}

/// Records an operation on key "x" whose outcome is unknown.
fn timed_out(history: &mut Kv, client: u64, call: Call<u64>, invoked_at: u64) -> OpId {
    history.invoke(ClientId(client), "x", call, invoked_at)
}

fn write(value: u64) -> Call<u64> {
    Call::Write { value }
}

fn read(value: Option<u64>) -> Outcome<u64> {
    Outcome::Read { value }
}

fn cas(expect: u64, new: u64) -> Call<u64> {
    Call::Cas { expect: Expect::Value(Some(expect)), new: Some(new) }
}

const APPLIED: Outcome<u64> = Outcome::Cas(CasResult::Applied);
const CONFLICT: Outcome<u64> = Outcome::Cas(CasResult::Conflict);

fn violation(history: &Kv) -> Violation<&'static str, u64> {
    match check(history, Budget::default()).verdict {
        Verdict::NotLinearizable(violation) => *violation,
        other => panic!("expected a violation, got {other}"),
    }
}

fn ids(violation: &Violation<&'static str, u64>) -> Vec<OpId> {
    let mut ids: Vec<OpId> = violation.minimal.iter().map(|op| op.id).collect();
    ids.sort();
    ids
}

fn assert_linearizable(history: &Kv) {
    let report = check(history, Budget::default());
    assert!(report.verdict.is_linearizable(), "{}", report.verdict);
}

#[test]
fn empty_history_is_linearizable() {
    assert_linearizable(&History::new());
}

#[test]
fn sequential_write_then_read_of_it_is_linearizable() {
    let mut history = Kv::new();
    done(&mut history, 1, write(1), (0, 10), Outcome::Written);
    done(&mut history, 2, Call::Read, (20, 30), read(Some(1)));
    assert_linearizable(&history);
}

#[test]
fn stale_read_after_an_overwrite_is_not_linearizable() {
    let mut history = Kv::new();
    let first = done(&mut history, 1, write(1), (0, 10), Outcome::Written);
    let second = done(&mut history, 1, write(2), (20, 30), Outcome::Written);
    done(&mut history, 3, Call::Read, (5, 8), read(Some(1)));
    let stale = done(&mut history, 2, Call::Read, (40, 50), read(Some(1)));
    let violation = violation(&history);
    assert_eq!(violation.key, "x");
    assert_eq!(ids(&violation), vec![first, second, stale]);
    assert!(violation.minimal_proven);
    assert_eq!(violation.key_operations, 4);
}

#[test]
fn lost_write_is_not_linearizable() {
    let mut history = Kv::new();
    done(&mut history, 3, Call::Read, (0, 1), read(None));
    let acknowledged = done(&mut history, 1, write(1), (2, 10), Outcome::Written);
    let lost = done(&mut history, 2, Call::Read, (20, 30), read(None));
    assert_eq!(ids(&violation(&history)), vec![acknowledged, lost]);
}

#[test]
fn compare_and_set_applied_twice_is_not_linearizable() {
    let mut history = Kv::new();
    let initial = done(&mut history, 1, write(0), (0, 5), Outcome::Written);
    let winner = done(&mut history, 1, cas(0, 1), (10, 20), APPLIED);
    let also_winner = done(&mut history, 2, cas(0, 2), (12, 22), APPLIED);
    assert_eq!(ids(&violation(&history)), vec![initial, winner, also_winner]);
}

#[test]
fn concurrent_compare_and_sets_with_one_winner_are_linearizable() {
    let mut history = Kv::new();
    done(&mut history, 1, write(0), (0, 5), Outcome::Written);
    done(&mut history, 1, cas(0, 1), (10, 20), CONFLICT);
    done(&mut history, 2, cas(0, 2), (12, 22), APPLIED);
    done(&mut history, 3, Call::Read, (30, 31), read(Some(2)));
    assert_linearizable(&history);
}

#[test]
fn compare_and_set_conflict_when_the_value_matched_is_not_linearizable() {
    let mut history = Kv::new();
    done(&mut history, 1, write(0), (0, 5), Outcome::Written);
    done(&mut history, 1, cas(0, 1), (10, 20), CONFLICT);
    assert_eq!(violation(&history).minimal.len(), 2);
}

#[test]
fn concurrent_writes_may_be_read_in_either_order() {
    for (early, late) in [(1, 2), (2, 1)] {
        let mut history = Kv::new();
        done(&mut history, 1, write(1), (0, 100), Outcome::Written);
        done(&mut history, 2, write(2), (0, 100), Outcome::Written);
        done(&mut history, 3, Call::Read, (10, 20), read(Some(early)));
        done(&mut history, 3, Call::Read, (30, 40), read(Some(late)));
        assert_linearizable(&history);
    }
}

#[test]
fn reads_flipping_back_between_two_concurrent_writes_are_not_linearizable() {
    let mut history = Kv::new();
    done(&mut history, 1, write(1), (0, 100), Outcome::Written);
    done(&mut history, 2, write(2), (0, 100), Outcome::Written);
    done(&mut history, 3, Call::Read, (10, 20), read(Some(1)));
    done(&mut history, 3, Call::Read, (30, 40), read(Some(2)));
    done(&mut history, 3, Call::Read, (50, 60), read(Some(1)));
    let violation = violation(&history);
    assert_eq!(violation.minimal.len(), 5, "{violation}");
}

#[test]
fn timed_out_write_may_have_taken_effect() {
    let mut history = Kv::new();
    timed_out(&mut history, 1, write(1), 0);
    done(&mut history, 2, Call::Read, (10, 20), read(Some(1)));
    assert_linearizable(&history);
}

#[test]
fn timed_out_write_may_never_take_effect() {
    let mut history = Kv::new();
    timed_out(&mut history, 1, write(1), 0);
    done(&mut history, 2, Call::Read, (10, 20), read(None));
    done(&mut history, 2, Call::Read, (1_000, 1_010), read(None));
    assert_linearizable(&history);
}

#[test]
fn timed_out_write_may_take_effect_long_after_it_was_sent() {
    let mut history = Kv::new();
    timed_out(&mut history, 1, write(1), 0);
    done(&mut history, 2, Call::Read, (10, 20), read(None));
    done(&mut history, 2, Call::Read, (1_000, 1_010), read(Some(1)));
    assert_linearizable(&history);
}

#[test]
fn timed_out_write_takes_effect_at_most_once() {
    let mut history = Kv::new();
    timed_out(&mut history, 1, write(1), 0);
    done(&mut history, 2, Call::Read, (10, 20), read(Some(1)));
    done(&mut history, 3, write(2), (30, 40), Outcome::Written);
    done(&mut history, 2, Call::Read, (50, 60), read(Some(1)));
    violation(&history);
}

#[test]
fn timed_out_write_cannot_take_effect_before_it_was_sent() {
    let mut history = Kv::new();
    done(&mut history, 2, Call::Read, (0, 10), read(Some(1)));
    timed_out(&mut history, 1, write(1), 20);
    violation(&history);
}

#[test]
fn timed_out_compare_and_set_applies_only_when_its_condition_holds() {
    let mut history = Kv::new();
    done(&mut history, 1, write(5), (0, 1), Outcome::Written);
    timed_out(&mut history, 2, cas(0, 7), 2);
    done(&mut history, 3, Call::Read, (10, 20), read(Some(7)));
    violation(&history);

    let mut history = Kv::new();
    done(&mut history, 1, write(0), (0, 1), Outcome::Written);
    timed_out(&mut history, 2, cas(0, 7), 2);
    done(&mut history, 3, Call::Read, (10, 20), read(Some(7)));
    assert_linearizable(&history);
}

#[test]
fn timed_out_read_constrains_nothing() {
    let mut history = Kv::new();
    timed_out(&mut history, 1, Call::Read, 0);
    done(&mut history, 2, Call::Read, (10, 20), read(None));
    assert_linearizable(&history);
}

#[test]
fn operations_that_touch_in_time_are_concurrent() {
    let mut history = Kv::new();
    done(&mut history, 1, write(1), (0, 10), Outcome::Written);
    done(&mut history, 2, Call::Read, (10, 20), read(None));
    assert_linearizable(&history);
}

#[test]
fn delete_leaves_the_key_absent() {
    let mut history = Kv::new();
    done(&mut history, 1, write(1), (0, 10), Outcome::Written);
    done(&mut history, 1, Call::Delete, (20, 30), Outcome::Deleted);
    done(&mut history, 2, Call::Read, (40, 50), read(None));
    assert_linearizable(&history);

    let mut history = Kv::new();
    let written = done(&mut history, 1, write(1), (0, 10), Outcome::Written);
    let deleted = done(&mut history, 1, Call::Delete, (20, 30), Outcome::Deleted);
    let resurrected = done(&mut history, 2, Call::Read, (40, 50), read(Some(1)));
    assert_eq!(ids(&violation(&history)), vec![written, deleted, resurrected]);
}

#[test]
fn compare_and_set_by_version_counts_writes_since_creation() {
    let version = |version| Call::Cas { expect: Expect::Version(version), new: Some(9) };
    let mut history = Kv::new();
    done(&mut history, 1, version(0), (0, 1), APPLIED); // create: version 1
    done(&mut history, 1, write(2), (2, 3), Outcome::Written); // version 2
    done(&mut history, 1, version(1), (4, 5), CONFLICT);
    done(&mut history, 1, version(2), (6, 7), APPLIED); // version 3
    done(&mut history, 1, Call::Delete, (8, 9), Outcome::Deleted); // absent: version 0
    done(&mut history, 1, version(0), (10, 11), APPLIED);
    assert_linearizable(&history);

    let mut history = Kv::new();
    done(&mut history, 1, version(0), (0, 1), APPLIED);
    done(&mut history, 2, version(0), (2, 3), APPLIED); // created twice
    violation(&history);
}

#[test]
fn conditional_delete_removes_the_key_only_when_its_condition_holds() {
    let delete_if = |value| Call::Cas { expect: Expect::Value(Some(value)), new: None };
    let mut history = Kv::new();
    done(&mut history, 1, write(1), (0, 1), Outcome::Written);
    done(&mut history, 1, delete_if(2), (2, 3), CONFLICT);
    done(&mut history, 1, delete_if(1), (4, 5), APPLIED);
    done(&mut history, 1, Call::Read, (6, 7), read(None));
    assert_linearizable(&history);
}

#[test]
fn violation_names_the_failing_key_among_healthy_ones() {
    let mut history = Kv::new();
    for (client, key) in [(1, "a"), (2, "b"), (3, "c")] {
        history.record(ClientId(client), key, write(1), 0, Some((Outcome::Written, 10))).unwrap();
        let seen = if key == "b" { None } else { Some(1) };
        history.record(ClientId(client), key, Call::Read, 20, Some((read(seen), 30))).unwrap();
    }
    let report = check(&history, Budget::default());
    let violation = report.verdict.violation().expect("key b lost its write");
    assert_eq!(violation.key, "b");
    assert!(violation.minimal.iter().all(|op| op.key == "b"));
    assert_eq!(report.stats.keys, 3);
    assert_eq!(report.stats.keys_not_linearizable, 1);
    assert_eq!(report.stats.operations, 6);
}

#[test]
fn violation_display_shows_operations_with_times_and_a_reason() {
    let mut history = Kv::new();
    done(&mut history, 1, write(1), (0, 10), Outcome::Written);
    done(&mut history, 2, Call::Read, (20, 30), read(None));
    let text = violation(&history).to_string();
    assert!(text.contains("key \"x\" is not linearizable"), "{text}");
    assert!(text.contains("[0, 10] client 1 key \"x\": write 1 -> ok"), "{text}");
    assert!(text.contains("[20, 30] client 2 key \"x\": read -> None"), "{text}");
    assert!(text.contains("#1 (read) must take effect before it completed at 30"), "{text}");
}

#[test]
fn exhausted_budget_gives_unknown_rather_than_a_verdict() {
    let mut history = Kv::new();
    for client in 0..20 {
        done(&mut history, client, write(client), (0, 100), Outcome::Written);
    }
    done(&mut history, 99, Call::Read, (200, 300), read(Some(1_000)));
    let budget = Budget { steps_max_per_key: NonZeroU64::new(50).unwrap(), ..Budget::default() };
    let report = check(&history, budget);
    assert_eq!(report.verdict, Verdict::Unknown { key: "x", steps: 51 });
    assert_eq!(report.stats.keys_unknown, 1);
}

#[test]
fn recording_mistakes_are_refused_and_leave_the_history_unchanged() {
    let mut history = Kv::new();
    let id = timed_out(&mut history, 1, write(1), 10);
    assert_eq!(
        history.complete(OpId(7), Outcome::Written, 20),
        Err(Error::UnknownOperation { id: OpId(7), operations: 1 })
    );
    assert_eq!(
        history.complete(id, read(None), 20),
        Err(Error::OutcomeMismatch { id, call: "write", outcome: "read" })
    );
    assert_eq!(
        history.complete(id, Outcome::Written, 5),
        Err(Error::CompletedBeforeInvoked { id, invoked_at: 10, completed_at: 5 })
    );
    assert_eq!(history.operations()[0].completion, None);
    history.complete(id, Outcome::Written, 20).unwrap();
    assert_eq!(history.complete(id, Outcome::Written, 30), Err(Error::AlreadyCompleted { id }));
    let refused = history.record(ClientId(1), "x", Call::Read, 40, Some((Outcome::Deleted, 50)));
    assert!(refused.is_err());
    assert_eq!(history.len(), 1);
}
