//! What a run did: message counts by kind, and a hash of the whole trace.

use std::collections::BTreeMap;

/// How many messages nodes sent, by kind ([`raft_core::MessageBody::kind`]).
///
/// A message counts when a node hands it to the network, whether or not the network then
/// drops, duplicates or delivers it: this measures the protocol's cost, not the network's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageCounts {
    by_kind: BTreeMap<&'static str, u64>,
}

impl MessageCounts {
    pub(crate) fn record(&mut self, kind: &'static str) {
        *self.by_kind.entry(kind).or_insert(0) += 1;
    }

    /// How many messages of `kind` were sent (0 for a kind never sent).
    #[must_use]
    pub fn get(&self, kind: &str) -> u64 {
        self.by_kind.get(kind).copied().unwrap_or(0)
    }

    /// How many messages were sent in all.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.by_kind.values().sum()
    }

    /// The kinds sent at least once, with their counts, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.by_kind.iter().map(|(&kind, &count)| (kind, count))
    }
}

/// A running FNV-1a style hash over the values that describe each step, so two runs can be
/// compared for exact equality without storing their traces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TraceHash(u64);

impl TraceHash {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    pub(crate) fn new() -> TraceHash {
        TraceHash(Self::OFFSET)
    }

    pub(crate) fn mix(&mut self, value: u64) {
        self.0 = (self.0 ^ value).wrapping_mul(Self::PRIME);
    }

    pub(crate) fn value(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_by_kind() {
        let mut counts = MessageCounts::default();
        counts.record("heartbeat");
        counts.record("heartbeat");
        counts.record("append_request");
        assert_eq!(counts.get("heartbeat"), 2);
        assert_eq!(counts.get("vote_request"), 0);
        assert_eq!(counts.total(), 3);
        assert_eq!(counts.iter().count(), 2);
    }

    #[test]
    fn trace_hash_depends_on_order() {
        let mut first = TraceHash::new();
        first.mix(1);
        first.mix(2);
        let mut second = TraceHash::new();
        second.mix(2);
        second.mix(1);
        assert_ne!(first, second);
    }
}
