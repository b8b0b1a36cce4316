//! Recording a history: operations on keys, each invoked and maybe completed.

use std::fmt;

use crate::Error;

/// Names one operation of a [`History`]: its position in invocation-recording order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub usize);

impl fmt::Display for OpId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "#{}", self.0)
    }
}

/// Names the client (a thread of sequential calls) that issued an operation.
///
/// The checker does not rely on it; it is shown in reports so a failure can be traced back to
/// the client's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub u64);

impl fmt::Display for ClientId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "client {}", self.0)
    }
}

/// What a compare-and-set compares the key's current state with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Expect<V> {
    /// The current value: `None` matches an absent key.
    Value(Option<V>),
    /// The key's version, counted as `kv-store` counts it: the writes since the key was last
    /// created, starting at 1; an absent key has version 0 (so `Version(0)` means "create").
    Version(u64),
}

/// What a client asked for on one key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Call<V> {
    /// Read the key's value.
    Read,
    /// Set the key's value unconditionally.
    Write {
        /// The value written.
        value: V,
    },
    /// Remove the key unconditionally (a no-op on an absent key).
    Delete,
    /// Set (or remove) the key only if its state matches `expect`.
    Cas {
        /// The condition.
        expect: Expect<V>,
        /// The value to set when it holds; `None` removes the key (a conditional delete).
        new: Option<V>,
    },
}

impl<V> Call<V> {
    /// The call's kind as a word, for reports and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Call::Read => "read",
            Call::Write { .. } => "write",
            Call::Delete => "delete",
            Call::Cas { .. } => "compare-and-set",
        }
    }
}

/// Whether a compare-and-set took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CasResult {
    /// The condition held and the new state was set.
    Applied,
    /// The condition did not hold and nothing changed.
    Conflict,
}

/// What the client was told when a call completed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Outcome<V> {
    /// A read returned this value (`None`: the key was absent).
    Read {
        /// The value returned.
        value: Option<V>,
    },
    /// A write was acknowledged.
    Written,
    /// A delete was acknowledged.
    Deleted,
    /// A compare-and-set answered.
    Cas(CasResult),
}

impl<V> Outcome<V> {
    /// The kind of call this outcome answers, as a word.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Read { .. } => "read",
            Outcome::Written => "write",
            Outcome::Deleted => "delete",
            Outcome::Cas(_) => "compare-and-set",
        }
    }

    fn fits<W>(&self, call: &Call<W>) -> bool {
        matches!(
            (call, self),
            (Call::Read, Outcome::Read { .. })
                | (Call::Write { .. }, Outcome::Written)
                | (Call::Delete, Outcome::Deleted)
                | (Call::Cas { .. }, Outcome::Cas(_))
        )
    }
}

/// How and when an operation completed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Completion<V> {
    /// What the client was told.
    pub outcome: Outcome<V>,
    /// When the client was told, on the clock `invoked_at` uses.
    pub completed_at: u64,
}

/// One operation of a history.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Operation<K, V> {
    /// Its id in the history.
    pub id: OpId,
    /// Who issued it.
    pub client: ClientId,
    /// The key it touched.
    pub key: K,
    /// What was asked.
    pub call: Call<V>,
    /// When it was sent, on any monotonic clock (ticks, nanoseconds) shared by all clients.
    pub invoked_at: u64,
    /// How it ended; `None` when the outcome is unknown (a timeout, a crash, a lost reply): it
    /// may have taken effect at any time after `invoked_at`, or never.
    pub completion: Option<Completion<V>>,
}

impl<K, V> Operation<K, V> {
    /// Whether `self` completed strictly before `other` was invoked, so that every
    /// linearization must order `self` first. Equal times count as concurrent.
    pub fn precedes(&self, other: &Self) -> bool {
        self.completion.as_ref().is_some_and(|done| done.completed_at < other.invoked_at)
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Display for Operation<K, V> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let completed_at = self.completion.as_ref().map(|done| done.completed_at);
        match completed_at {
            Some(at) => write!(formatter, "{:>4} [{}, {}]", self.id, self.invoked_at, at)?,
            None => write!(formatter, "{:>4} [{}, ?]", self.id, self.invoked_at)?,
        }
        write!(formatter, " {} key {:?}: ", self.client, self.key)?;
        match &self.call {
            Call::Read => write!(formatter, "read")?,
            Call::Write { value } => write!(formatter, "write {value:?}")?,
            Call::Delete => write!(formatter, "delete")?,
            Call::Cas { expect, new } => {
                match expect {
                    Expect::Value(value) => write!(formatter, "cas(if value = {value:?}")?,
                    Expect::Version(version) => write!(formatter, "cas(if version = {version}")?,
                }
                match new {
                    Some(value) => write!(formatter, ", set {value:?})")?,
                    None => write!(formatter, ", delete)")?,
                }
            }
        }
        match self.completion.as_ref().map(|done| &done.outcome) {
            None => write!(formatter, " -> unknown (timed out)"),
            Some(Outcome::Read { value }) => write!(formatter, " -> {value:?}"),
            Some(Outcome::Written | Outcome::Deleted) => write!(formatter, " -> ok"),
            Some(Outcome::Cas(CasResult::Applied)) => write!(formatter, " -> applied"),
            Some(Outcome::Cas(CasResult::Conflict)) => write!(formatter, " -> conflict"),
        }
    }
}

/// A concurrent history of key-value operations, recorded as clients invoke and complete them.
///
/// Invoke an operation when the client sends it and complete it when the client hears back;
/// an operation never completed has an unknown outcome (see [`Operation::completion`]). An
/// operation that certainly failed without effect (refused before it was proposed) should not
/// be recorded at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History<K, V> {
    operations: Vec<Operation<K, V>>,
}

impl<K, V> Default for History<K, V> {
    fn default() -> Self {
        Self { operations: Vec::new() }
    }
}

impl<K, V> History<K, V> {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `client` sent `call` on `key` at time `invoked_at`; its outcome is unknown
    /// until [`complete`](Self::complete) is called.
    pub fn invoke(&mut self, client: ClientId, key: K, call: Call<V>, invoked_at: u64) -> OpId {
        let id = OpId(self.operations.len());
        self.operations.push(Operation { id, client, key, call, invoked_at, completion: None });
        id
    }

    /// Records that operation `id` completed with `outcome` at time `completed_at`.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownOperation`] for an id this history did not hand out,
    /// [`Error::AlreadyCompleted`] for a second completion, [`Error::OutcomeMismatch`] for an
    /// outcome of another kind than the call, and [`Error::CompletedBeforeInvoked`] when
    /// `completed_at` is before the invocation. The history is unchanged on error.
    pub fn complete(
        &mut self,
        id: OpId,
        outcome: Outcome<V>,
        completed_at: u64,
    ) -> Result<(), Error> {
        let operations = self.operations.len();
        let operation =
            self.operations.get_mut(id.0).ok_or(Error::UnknownOperation { id, operations })?;
        if operation.completion.is_some() {
            return Err(Error::AlreadyCompleted { id });
        }
        if !outcome.fits(&operation.call) {
            return Err(Error::OutcomeMismatch {
                id,
                call: operation.call.kind(),
                outcome: outcome.kind(),
            });
        }
        if completed_at < operation.invoked_at {
            return Err(Error::CompletedBeforeInvoked {
                id,
                invoked_at: operation.invoked_at,
                completed_at,
            });
        }
        operation.completion = Some(Completion { outcome, completed_at });
        Ok(())
    }

    /// Records a whole operation at once: [`invoke`](Self::invoke) then, when `completion` is
    /// given, [`complete`](Self::complete).
    ///
    /// # Errors
    ///
    /// As [`complete`](Self::complete); on error the operation is not recorded.
    pub fn record(
        &mut self,
        client: ClientId,
        key: K,
        call: Call<V>,
        invoked_at: u64,
        completion: Option<(Outcome<V>, u64)>,
    ) -> Result<OpId, Error> {
        let id = self.invoke(client, key, call, invoked_at);
        if let Some((outcome, completed_at)) = completion {
            if let Err(error) = self.complete(id, outcome, completed_at) {
                self.operations.pop();
                return Err(error);
            }
        }
        Ok(id)
    }

    /// The operations, in the order they were invoked in this history (`OpId` order).
    pub fn operations(&self) -> &[Operation<K, V>] {
        &self.operations
    }

    /// How many operations were recorded.
    pub fn len(&self) -> usize {
        self.operations.len()
    }

    /// Whether no operation was recorded.
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }
}
