//! Differential test: on random small histories our verdict must match an independent checker
//! (porcupine-rs, a port of Porcupine), and every minimal counterexample we report must itself be
//! non-linearizable according to it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use kv_linearizability::{
    Budget, Call, CasResult, ClientId, Expect, History, Operation, Outcome, Verdict, check,
};
use porcupine_rs::{CheckResult, Model};
use proptest::prelude::*;

/// One operation with its outcome as porcupine sees it; `None` outcomes are unknown.
#[derive(Debug, Clone)]
enum RegisterOp {
    Read(Option<Option<u64>>),
    Write(u64),
    Delete,
    Cas { expect: Expect<u64>, new: Option<u64>, applied: Option<bool> },
}

/// An independent, obviously correct register model with versions.
#[derive(Debug, Clone)]
struct Register;

impl Model for Register {
    type State = (Option<u64>, u64);
    type Op = RegisterOp;
    type Metadata = ();

    fn init() -> Self::State {
        (None, 0)
    }

    fn step(state: &Self::State, op: &RegisterOp) -> (bool, Self::State) {
        let set = |value: Option<u64>| match value {
            Some(value) => (Some(value), state.1 + 1),
            None => (None, 0),
        };
        match op {
            RegisterOp::Read(None) => (true, *state),
            RegisterOp::Read(Some(value)) => (*value == state.0, *state),
            RegisterOp::Write(value) => (true, set(Some(*value))),
            RegisterOp::Delete => (true, (None, 0)),
            RegisterOp::Cas { expect, new, applied } => {
                let holds = match expect {
                    Expect::Value(value) => *value == state.0,
                    Expect::Version(version) => *version == state.1,
                };
                match applied {
                    Some(true) => (holds, if holds { set(*new) } else { *state }),
                    Some(false) => (!holds, *state),
                    None => (true, if holds { set(*new) } else { *state }),
                }
            }
        }
    }
}

fn porcupine_verdict(operations: &[Operation<u8, u64>]) -> CheckResult {
    let mut by_key: std::collections::BTreeMap<u8, Vec<porcupine_rs::Operation<Register>>> =
        Default::default();
    for op in operations {
        let outcome = op.completion.as_ref().map(|done| &done.outcome);
        let register_op = match (&op.call, outcome) {
            (Call::Read, Some(Outcome::Read { value })) => RegisterOp::Read(Some(*value)),
            (Call::Read, _) => RegisterOp::Read(None),
            (Call::Write { value }, _) => RegisterOp::Write(*value),
            (Call::Delete, _) => RegisterOp::Delete,
            (Call::Cas { expect, new }, outcome) => RegisterOp::Cas {
                expect: expect.clone(),
                new: *new,
                applied: match outcome {
                    Some(Outcome::Cas(result)) => Some(*result == CasResult::Applied),
                    _ => None,
                },
            },
        };
        by_key.entry(op.key).or_default().push(porcupine_rs::Operation {
            client_id: Some(op.client.0 as u32),
            call_time: op.invoked_at as i64,
            return_time: op.completion.as_ref().map_or(i64::MAX, |done| done.completed_at as i64),
            op: register_op,
            metadata: None,
        });
    }
    for history in by_key.values() {
        let result = porcupine_rs::check_operations_timeout::<Register>(
            history,
            std::time::Duration::from_secs(10),
        );
        if result != CheckResult::Ok {
            return result;
        }
    }
    CheckResult::Ok
}

fn value() -> impl Strategy<Value = u64> {
    0..3_u64
}

fn call() -> impl Strategy<Value = Call<u64>> {
    let expect = prop_oneof![
        proptest::option::of(value()).prop_map(Expect::Value),
        (0..3_u64).prop_map(Expect::Version),
    ];
    prop_oneof![
        3 => Just(Call::Read),
        3 => value().prop_map(|value| Call::Write { value }),
        1 => Just(Call::Delete),
        2 => (expect, proptest::option::weighted(0.8, value()))
            .prop_map(|(expect, new)| Call::Cas { expect, new }),
    ]
}

fn outcome_for(call: &Call<u64>, read: Option<u64>, applied: bool) -> Outcome<u64> {
    match call {
        Call::Read => Outcome::Read { value: read },
        Call::Write { .. } => Outcome::Written,
        Call::Delete => Outcome::Deleted,
        Call::Cas { .. } => {
            Outcome::Cas(if applied { CasResult::Applied } else { CasResult::Conflict })
        }
    }
}

/// Random small histories on up to two keys: intervals, calls and outcomes all random, with
/// some outcomes unknown.
fn random_history() -> impl Strategy<Value = History<u8, u64>> {
    let operation = (
        0..2_u8,
        call(),
        0..20_u64,
        0..10_u64,
        proptest::option::of(value()),
        any::<bool>(),
        proptest::bool::weighted(0.2),
    );
    proptest::collection::vec(operation, 0..9).prop_map(|operations| {
        let mut history = History::new();
        for (client, (key, call, invoked_at, length, read, applied, unknown)) in
            operations.into_iter().enumerate()
        {
            let outcome = outcome_for(&call, read, applied);
            let completion = (!unknown).then_some((outcome, invoked_at + length));
            history.record(ClientId(client as u64), key, call, invoked_at, completion).unwrap();
        }
        history
    })
}

fn assert_agrees(history: &History<u8, u64>) {
    let ours = check(history, Budget::default());
    let theirs = porcupine_verdict(history.operations());
    match &ours.verdict {
        Verdict::Linearizable => assert_eq!(theirs, CheckResult::Ok, "{history:#?}"),
        Verdict::NotLinearizable(violation) => {
            assert_eq!(theirs, CheckResult::Illegal, "{history:#?}\n{violation}");
            let minimal = porcupine_verdict(&violation.minimal);
            assert_eq!(minimal, CheckResult::Illegal, "minimal is linearizable:\n{violation}");
        }
        Verdict::Unknown { .. } => panic!("a tiny history ran out of budget: {history:#?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn verdict_matches_porcupine_on_random_histories(history in random_history()) {
        assert_agrees(&history);
    }

    #[test]
    fn verdict_matches_porcupine_on_register_histories_with_one_outcome_flipped(
        seed in any::<u64>(),
        flip in any::<prop::sample::Index>(),
        timeout_percent in 0..40_u64,
    ) {
        let shape = common::Shape { clients: 4, keys: 1, operations: 12, timeout_percent, seed };
        let history = common::linearizable_history(shape);
        let mut operations: Vec<Operation<u64, u64>> = history.operations().to_vec();
        let target = &mut operations[flip.index(12)];
        if let Some(done) = target.completion.as_mut() {
            done.outcome = match &done.outcome {
                Outcome::Read { value } => Outcome::Read { value: value.map_or(Some(2), |_| None) },
                Outcome::Cas(CasResult::Applied) => Outcome::Cas(CasResult::Conflict),
                Outcome::Cas(CasResult::Conflict) => Outcome::Cas(CasResult::Applied),
                other => other.clone(),
            };
        }
        let mut narrowed = History::new();
        for op in operations {
            let completion = op.completion.map(|done| (done.outcome, done.completed_at));
            narrowed.record(op.client, op.key as u8, op.call, op.invoked_at, completion).unwrap();
        }
        assert_agrees(&narrowed);
    }
}
