//! Byte budgets for client requests: how many request bytes one connection, and all
//! connections together, may make the node hold at once.
//!
//! Frames may be megabytes and a connection may carry thousands of requests, so without a
//! bound one authenticated client could make the node reserve gigabytes. Every request body
//! held (from its arrival until its answer is ready) and every partial frame buffered
//! takes bytes from its connection's budget and from the node's; a request that does not
//! fit is answered "overloaded" at once instead of being buffered.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A count of bytes in use, never above its maximum.
#[derive(Debug)]
pub(crate) struct ByteBudget {
    used: AtomicU64,
    max: u64,
}

impl ByteBudget {
    /// A budget of `max` bytes, none in use.
    pub(crate) fn new(max: u64) -> ByteBudget {
        ByteBudget { used: AtomicU64::new(0), max }
    }

    /// The bytes in use.
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// Takes `bytes` if they fit.
    fn try_take(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.max)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: u64) {
        let previous = self.used.fetch_sub(bytes, Ordering::AcqRel);
        debug_assert!(previous >= bytes, "gave back more bytes than were taken");
    }
}

/// Bytes taken from a connection's budget and the node's, given back when dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    connection: Arc<ByteBudget>,
    node: Arc<ByteBudget>,
    bytes: u64,
}

impl Reservation {
    /// An empty reservation on the two budgets.
    pub(crate) fn empty(connection: &Arc<ByteBudget>, node: &Arc<ByteBudget>) -> Reservation {
        Reservation { connection: Arc::clone(connection), node: Arc::clone(node), bytes: 0 }
    }

    /// Makes the reservation exactly `bytes`; false (and unchanged) when the growth does
    /// not fit either budget.
    pub(crate) fn resize(&mut self, bytes: u64) -> bool {
        if bytes <= self.bytes {
            let freed = self.bytes - bytes;
            self.connection.give_back(freed);
            self.node.give_back(freed);
            self.bytes = bytes;
            return true;
        }
        let growth = bytes - self.bytes;
        if !self.connection.try_take(growth) {
            return false;
        }
        if !self.node.try_take(growth) {
            self.connection.give_back(growth);
            return false;
        }
        self.bytes = bytes;
        true
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.connection.give_back(self.bytes);
        self.node.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn a_reservation_fits_both_budgets_or_takes_nothing() {
        let node = Arc::new(ByteBudget::new(100));
        let first = Arc::new(ByteBudget::new(60));
        let second = Arc::new(ByteBudget::new(60));
        let mut a = Reservation::empty(&first, &node);
        assert!(a.resize(60));
        assert!(!a.resize(61), "over the connection's budget");
        let mut b = Reservation::empty(&second, &node);
        assert!(!b.resize(50), "over the node's budget");
        assert_eq!((second.used(), node.used()), (0, 60));
        assert!(b.resize(40));
        drop(a);
        assert_eq!((first.used(), node.used()), (0, 40));
        assert!(b.resize(10));
        assert_eq!((second.used(), node.used()), (10, 10));
    }
}
