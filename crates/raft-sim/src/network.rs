//! Who can talk to whom, and how messages fare on the way.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::NetworkFaults;
use raft_core::NodeId;

/// The simulated network's topology and fault rates.
///
/// Two independent mechanisms cut links, mirroring the classic Raft lab tester: a node can be
/// *disconnected* on its own (it hears nobody and nobody hears it), and the cluster can be
/// *partitioned* into groups that only talk among themselves. A message gets through only
/// when both ends are connected and in the same group, checked both when it is sent and when
/// it arrives, so a partition also cuts messages already in flight.
#[derive(Debug)]
pub(crate) struct Network {
    pub(crate) faults: NetworkFaults,
    disconnected: BTreeSet<NodeId>,
    /// The partition group of each node; nodes absent from the map are in group 0.
    groups: BTreeMap<NodeId, u64>,
}

impl Network {
    pub(crate) fn new(faults: NetworkFaults) -> Network {
        Network { faults, disconnected: BTreeSet::new(), groups: BTreeMap::new() }
    }

    /// Whether a message from `from` to `to` gets through the topology (ignoring random loss).
    pub(crate) fn links(&self, from: NodeId, to: NodeId) -> bool {
        !self.disconnected.contains(&from)
            && !self.disconnected.contains(&to)
            && self.group(from) == self.group(to)
    }

    fn group(&self, id: NodeId) -> u64 {
        self.groups.get(&id).copied().unwrap_or(0)
    }

    pub(crate) fn is_disconnected(&self, id: NodeId) -> bool {
        self.disconnected.contains(&id)
    }

    pub(crate) fn disconnect(&mut self, id: NodeId) {
        self.disconnected.insert(id);
    }

    pub(crate) fn reconnect(&mut self, id: NodeId) {
        self.disconnected.remove(&id);
    }

    /// Splits the nodes into `groups`; the nodes no group names form one more group
    /// together (group 0), so `partition(&[&[a]])` cuts `a` off from the rest.
    pub(crate) fn partition(&mut self, groups: &[&[NodeId]]) {
        self.groups.clear();
        for (position, members) in groups.iter().enumerate() {
            for &id in *members {
                let previous = self.groups.insert(id, position as u64 + 1);
                assert!(previous.is_none(), "node {id} is named in two partition groups");
            }
        }
    }

    /// Removes every partition and reconnects every node.
    pub(crate) fn heal(&mut self) {
        self.groups.clear();
        self.disconnected.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_groups_talk_only_among_themselves() {
        let mut network = Network::new(NetworkFaults::reliable());
        network.partition(&[&[NodeId(1), NodeId(2)], &[NodeId(3)]]);
        assert!(network.links(NodeId(1), NodeId(2)));
        assert!(!network.links(NodeId(1), NodeId(3)));
        assert!(!network.links(NodeId(4), NodeId(3)));
        assert!(network.links(NodeId(4), NodeId(5)), "unnamed nodes are together");
        network.heal();
        assert!(network.links(NodeId(4), NodeId(3)));
    }

    #[test]
    fn a_disconnected_node_hears_nobody() {
        let mut network = Network::new(NetworkFaults::reliable());
        network.disconnect(NodeId(2));
        assert!(!network.links(NodeId(1), NodeId(2)));
        assert!(!network.links(NodeId(2), NodeId(1)));
        assert!(network.links(NodeId(1), NodeId(3)));
        network.reconnect(NodeId(2));
        assert!(network.links(NodeId(1), NodeId(2)));
    }
}
