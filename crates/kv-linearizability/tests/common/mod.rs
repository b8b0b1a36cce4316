//! Generates histories of a real register map under random concurrency, for tests and benches.

#![allow(dead_code)]

use std::collections::HashMap;

use kv_linearizability::{Call, CasResult, ClientId, Expect, History, Operation, Outcome};

/// The shape of a generated history.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub clients: u64,
    pub keys: u64,
    pub operations: usize,
    /// Out of 100: how often a write, delete or compare-and-set times out (and then takes
    /// effect or not, at random).
    pub timeout_percent: u64,
    pub seed: u64,
}

/// A small deterministic PRNG (splitmix64), so tests need no RNG crate.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound > 0`).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

struct Planned {
    client: u64,
    key: u64,
    call: Call<u64>,
    invoked_at: u64,
    /// When it takes effect; `None`: a timed-out operation that never did.
    effect_at: Option<u64>,
    completed_at: Option<u64>,
    outcome: Option<Outcome<u64>>,
}

/// A history that is linearizable by construction: every operation takes effect on a real
/// register map at a point inside its interval, and its outcome is what the map answered.
/// Written values are unique.
pub fn linearizable_history(shape: Shape) -> History<u64, u64> {
    let mut rng = Rng::new(shape.seed);
    let mut free_at = vec![0_u64; shape.clients as usize];
    let mut written: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut next_value = 1_u64;
    let mut planned = Vec::with_capacity(shape.operations);
    for _ in 0..shape.operations {
        let (client, _) = free_at.iter().enumerate().min_by_key(|(_, at)| **at).unwrap();
        let key = rng.below(shape.keys);
        let invoked_at = free_at[client] + rng.below(4);
        let effect_at = invoked_at + rng.below(12);
        let completed_at = effect_at + rng.below(12);
        free_at[client] = completed_at + 1;
        let call = match rng.below(10) {
            0..=3 => Call::Read,
            4..=6 => {
                next_value += 1;
                written.entry(key).or_default().push(next_value);
                Call::Write { value: next_value }
            }
            7 => Call::Delete,
            _ => {
                let recent = written.get(&key).and_then(|values| values.last().copied());
                let expect = match rng.below(3) {
                    0 => Expect::Value(recent),
                    1 => Expect::Value(None),
                    _ => Expect::Version(rng.below(3)),
                };
                next_value += 1;
                written.entry(key).or_default().push(next_value);
                Call::Cas { expect, new: Some(next_value) }
            }
        };
        let times_out = !matches!(call, Call::Read) && rng.below(100) < shape.timeout_percent;
        let (effect_at, completed_at) = match times_out {
            true if rng.below(2) == 0 => (None, None),
            true => (Some(effect_at), None),
            false => (Some(effect_at), Some(completed_at)),
        };
        planned.push(Planned {
            client: client as u64,
            key,
            call,
            invoked_at,
            effect_at,
            completed_at,
            outcome: None,
        });
    }
    apply_in_effect_order(&mut planned);
    planned.sort_by_key(|op| op.invoked_at);
    let mut history = History::new();
    for op in planned {
        let completion = op.outcome.zip(op.completed_at);
        history.record(ClientId(op.client), op.key, op.call, op.invoked_at, completion).unwrap();
    }
    history
}

fn apply_in_effect_order(planned: &mut [Planned]) {
    let mut order: Vec<usize> =
        (0..planned.len()).filter(|&i| planned[i].effect_at.is_some()).collect();
    order.sort_by_key(|&i| (planned[i].effect_at, planned[i].client));
    let mut store: HashMap<u64, (u64, u64)> = HashMap::new();
    for index in order {
        let op = &mut planned[index];
        let current = store.get(&op.key).copied();
        let outcome = match &op.call {
            Call::Read => Outcome::Read { value: current.map(|(value, _)| value) },
            Call::Write { value } => {
                store.insert(op.key, (*value, current.map_or(1, |(_, version)| version + 1)));
                Outcome::Written
            }
            Call::Delete => {
                store.remove(&op.key);
                Outcome::Deleted
            }
            Call::Cas { expect, new } => {
                let holds = match expect {
                    Expect::Value(value) => current.map(|(current, _)| current) == *value,
                    Expect::Version(version) => current.map_or(0, |(_, v)| v) == *version,
                };
                if holds {
                    match new {
                        Some(value) => {
                            let version = current.map_or(1, |(_, version)| version + 1);
                            store.insert(op.key, (*value, version));
                        }
                        None => {
                            store.remove(&op.key);
                        }
                    }
                    Outcome::Cas(CasResult::Applied)
                } else {
                    Outcome::Cas(CasResult::Conflict)
                }
            }
        };
        op.outcome = Some(outcome);
    }
}

/// Records `operations` again, in the given order, into a new history.
pub fn rebuild(operations: Vec<Operation<u64, u64>>) -> History<u64, u64> {
    let mut history = History::new();
    for op in operations {
        let completion = op.completion.map(|done| (done.outcome, done.completed_at));
        history.record(op.client, op.key, op.call, op.invoked_at, completion).unwrap();
    }
    history
}
