//! Fault injection for tests: per-peer drop, delay and partition, switched at run time.
//!
//! Compiled in only with the `fault-injection` feature; without it the hooks are constant
//! and cost nothing.

#[cfg(not(feature = "fault-injection"))]
use std::time::Duration;

#[cfg(not(feature = "fault-injection"))]
use raft_core::NodeId;

#[cfg(feature = "fault-injection")]
pub use enabled::{FaultInjector, PeerFault};

#[cfg(feature = "fault-injection")]
mod enabled {
    use std::collections::HashMap;
    use std::sync::{Arc, PoisonError, RwLock};
    use std::time::Duration;

    use raft_core::NodeId;

    /// What is done to one peer's traffic.
    #[derive(Clone, Copy, Debug, Default, PartialEq)]
    pub struct PeerFault {
        /// The chance, 0.0 to 1.0, that a message to the peer is dropped.
        pub drop_probability: f64,
        /// Added before each message to the peer is written.
        pub delay: Duration,
        /// Every message to and from the peer is dropped.
        pub partitioned: bool,
    }

    /// The switchboard for one node's faults; clones share it.
    #[derive(Clone, Debug, Default)]
    pub struct FaultInjector {
        peers: Arc<RwLock<HashMap<NodeId, PeerFault>>>,
    }

    impl FaultInjector {
        /// Sets the faults for traffic with `peer`.
        pub fn set(&self, peer: NodeId, fault: PeerFault) {
            let mut peers = self.peers.write().unwrap_or_else(PoisonError::into_inner);
            peers.insert(peer, fault);
        }

        /// The faults set for `peer` (none by default).
        #[must_use]
        pub fn get(&self, peer: NodeId) -> PeerFault {
            let peers = self.peers.read().unwrap_or_else(PoisonError::into_inner);
            peers.get(&peer).copied().unwrap_or_default()
        }

        /// Cuts traffic with `peer` both ways (`true`) or restores it (`false`), leaving
        /// the other faults as they are.
        pub fn partition(&self, peer: NodeId, partitioned: bool) {
            let fault = PeerFault { partitioned, ..self.get(peer) };
            self.set(peer, fault);
        }

        /// Removes every fault.
        pub fn clear(&self) {
            self.peers.write().unwrap_or_else(PoisonError::into_inner).clear();
        }

        pub(crate) fn drops_outgoing(&self, peer: NodeId) -> bool {
            let fault = self.get(peer);
            fault.partitioned
                || (fault.drop_probability > 0.0
                    && rand::random_bool(fault.drop_probability.clamp(0.0, 1.0)))
        }

        pub(crate) fn drops_incoming(&self, peer: NodeId) -> bool {
            self.get(peer).partitioned
        }

        pub(crate) fn delay(&self, peer: NodeId) -> Duration {
            self.get(peer).delay
        }
    }
}

/// Without the feature: nothing is ever dropped or delayed.
#[cfg(not(feature = "fault-injection"))]
#[derive(Clone, Debug, Default)]
pub(crate) struct FaultInjector;

#[cfg(not(feature = "fault-injection"))]
impl FaultInjector {
    #[allow(clippy::unused_self)]
    pub(crate) fn drops_outgoing(&self, _peer: NodeId) -> bool {
        false
    }

    #[allow(clippy::unused_self)]
    pub(crate) fn drops_incoming(&self, _peer: NodeId) -> bool {
        false
    }

    #[allow(clippy::unused_self)]
    pub(crate) fn delay(&self, _peer: NodeId) -> Duration {
        Duration::ZERO
    }
}
