//! The watch workload's watchers: each watches the writers' whole key prefix on its own
//! stream, times every event's delivery from the send time the writer put in the value,
//! and keeps a ledger of the revisions it received, so that at the end every acknowledged
//! write can be checked to have reached every watcher exactly once, in revision order.
//!
//! ```text
//!  writer ──put key-…  value "t<send ns, hex>-w…"──> server ──event (revision, value)──> watcher
//!    └─ acknowledged revision ─┐                        now - send ns ─> delivery latency
//!                              └──> end of run: each watcher's ledger ⊇ acknowledged, once
//! ```

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use serde::Serialize;
use tracing::{info, warn};

use crate::error::Error;
use crate::target::{Target, WatchEvents, WatchedEvent};
use crate::workload::{Percentiles, new_histogram, record_micros};

/// The prefix every watcher watches: every key the writers write (`key-00000042`).
pub const WATCH_PREFIX: &str = "key-";

/// The send-time header at the start of every watch workload value: `t`, 16 hex digits of
/// nanoseconds since the run started, `-`.
const TIMESTAMP_BYTES: usize = 18;

/// The smallest `--value-size` the watch workload accepts: room for the send time.
pub const WATCH_VALUE_BYTES_MIN: usize = TIMESTAMP_BYTES;

/// The most revisions one ledger tracks past its first: one bit each, so at most 16 MiB
/// per watcher, far more than a run writes (a minute at 100,000 writes/s is 6 million).
const REVISIONS_TRACKED_MAX: u64 = 1 << 27;

/// How long the watchers may take, after the writers stop, to deliver the last
/// acknowledged write before the harness stops waiting and counts what is missing.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the drain checks whether every watcher has caught up.
const DRAIN_POLL: Duration = Duration::from_millis(10);

/// Distinct stream failures kept for the report.
const FAILURES_MAX: usize = 5;

/// A watch workload value: the send time (`sent_nanos` since the run started), then the
/// writer and its sequence so that every value differs, padded with `x` to `size` bytes
/// (never below [`WATCH_VALUE_BYTES_MIN`], which the command line enforces).
#[must_use]
pub fn timestamped_value(sent_nanos: u64, worker: usize, sequence: u64, size: usize) -> Bytes {
    let mut value = format!("t{sent_nanos:016x}-w{worker}-s{sequence}-").into_bytes();
    value.resize(size.max(TIMESTAMP_BYTES), b'x');
    Bytes::from(value)
}

/// The send time [`timestamped_value`] wrote into `value`, in nanoseconds since the run
/// started; `None` for a value without one.
#[must_use]
pub fn sent_nanos(value: &[u8]) -> Option<u64> {
    let header = value.get(..TIMESTAMP_BYTES)?;
    let digits = header.strip_prefix(b"t")?.strip_suffix(b"-")?;
    let digits = std::str::from_utf8(digits).ok()?;
    u64::from_str_radix(digits, 16).ok()
}

/// One watcher's record of the revisions it received: a bit per revision from the first
/// its watch could deliver, plus counts of what arrived twice or out of order.
#[derive(Clone, Debug)]
pub struct DeliveryLedger {
    first_revision: u64,
    seen: Vec<u64>,
    highest_revision: Option<u64>,
    events: u64,
    duplicates: u64,
    out_of_order: u64,
    untracked: u64,
}

impl DeliveryLedger {
    /// An empty ledger for a watch whose first deliverable revision is `first_revision`.
    #[must_use]
    pub fn new(first_revision: u64) -> DeliveryLedger {
        DeliveryLedger {
            first_revision,
            seen: Vec::new(),
            highest_revision: None,
            events: 0,
            duplicates: 0,
            out_of_order: 0,
            untracked: 0,
        }
    }

    /// Notes an event at `revision`. The writers issue single puts, so a revision holds one
    /// event: a revision seen before is a duplicate, one below the highest seen so far came
    /// out of order.
    pub fn record(&mut self, revision: u64) {
        self.events += 1;
        if self.highest_revision.is_some_and(|highest| revision < highest) {
            self.out_of_order += 1;
        }
        self.highest_revision = self.highest_revision.max(Some(revision));
        let Some(offset) = self.offset(revision) else {
            self.untracked += 1;
            return;
        };
        let (word, bit) = (offset / 64, 1u64 << (offset % 64));
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & bit != 0 {
            self.duplicates += 1;
        } else {
            self.seen[word] |= bit;
        }
    }

    /// The highest revision received, if any.
    #[must_use]
    pub fn highest_revision(&self) -> Option<u64> {
        self.highest_revision
    }

    /// Whether `revision` was received (at least once).
    #[must_use]
    pub fn received(&self, revision: u64) -> bool {
        let Some(offset) = self.offset(revision) else { return false };
        self.seen.get(offset / 64).is_some_and(|word| word & (1u64 << (offset % 64)) != 0)
    }

    fn offset(&self, revision: u64) -> Option<usize> {
        let offset = revision.checked_sub(self.first_revision)?;
        if offset >= REVISIONS_TRACKED_MAX {
            return None;
        }
        usize::try_from(offset).ok()
    }

    /// Checks the ledger against the acknowledged writes' revisions (sorted, each once).
    #[must_use]
    pub fn check(&self, acknowledged: &[u64]) -> DeliveryCheck {
        debug_assert!(acknowledged.windows(2).all(|pair| pair[0] < pair[1]));
        let delivered = acknowledged.iter().filter(|&&revision| self.received(revision)).count();
        let delivered = delivered as u64;
        let distinct: u64 = self.seen.iter().map(|word| u64::from(word.count_ones())).sum();
        DeliveryCheck {
            expected: acknowledged.len() as u64,
            delivered,
            missing: acknowledged.len() as u64 - delivered,
            duplicates: self.duplicates,
            out_of_order: self.out_of_order,
            unacknowledged: distinct.saturating_sub(delivered),
            untracked: self.untracked,
            events: self.events,
        }
    }
}

/// What the ledgers say about the acknowledged writes, summed over watchers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryCheck {
    /// Acknowledged writes times watchers: the events that had to arrive.
    pub expected: u64,
    /// Of those, the ones that arrived.
    pub delivered: u64,
    /// Of those, the ones that never arrived.
    pub missing: u64,
    /// Events that arrived again for a revision already received.
    pub duplicates: u64,
    /// Events that arrived after an event of a higher revision.
    pub out_of_order: u64,
    /// Revisions received that no writer saw acknowledged (a put that failed or timed out
    /// on the client, yet was applied).
    pub unacknowledged: u64,
    /// Events outside the revisions a ledger tracks (before its watch started, or too far
    /// past it): counted, not checked.
    pub untracked: u64,
    /// Every event received, the whole run long.
    pub events: u64,
}

impl DeliveryCheck {
    fn add(&mut self, other: &DeliveryCheck) {
        self.expected += other.expected;
        self.delivered += other.delivered;
        self.missing += other.missing;
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
        self.unacknowledged += other.unacknowledged;
        self.untracked += other.untracked;
        self.events += other.events;
    }
}

/// When the measured window is, in nanoseconds since the run started: a write sent inside
/// it counts towards the delivery latency, whenever its events arrive.
#[derive(Clone, Copy, Debug)]
pub struct MeasuredWindow {
    /// The instant the send times count from.
    pub started: Instant,
    /// The warmup: the window opens at its end.
    pub warmup: Duration,
    /// The window closes at warmup + duration.
    pub end: Duration,
}

impl MeasuredWindow {
    fn contains(&self, sent_nanos: u64) -> bool {
        let sent = Duration::from_nanos(sent_nanos);
        sent >= self.warmup && sent < self.end
    }
}

/// Events received in one second, summed over watchers, and their delivery latency.
#[derive(Debug)]
pub struct WatchInterval {
    /// Events received.
    pub events: u64,
    /// Their delivery latency, in µs.
    pub latency: Histogram<u64>,
}

impl WatchInterval {
    fn new() -> WatchInterval {
        WatchInterval { events: 0, latency: new_histogram() }
    }
}

/// One watcher's books, shared between its task and the sampler.
struct WatcherBook {
    interval: WatchInterval,
    ledger: DeliveryLedger,
    /// Delivery latency of the writes sent in the measured window, in µs.
    measured: Histogram<u64>,
    /// Events whose value carried no send time.
    unparsable: u64,
    /// Why the stream ended early, if it did.
    failure: Option<String>,
}

impl WatcherBook {
    fn receive(&mut self, event: &WatchedEvent, now_nanos: u64, window: &MeasuredWindow) {
        self.ledger.record(event.revision);
        self.interval.events += 1;
        let Some(sent) = sent_nanos(&event.value) else {
            self.unparsable += 1;
            return;
        };
        let latency = Duration::from_nanos(now_nanos.saturating_sub(sent));
        record_micros(&mut self.interval.latency, latency);
        if window.contains(sent) {
            record_micros(&mut self.measured, latency);
        }
    }
}

type Book = Arc<Mutex<WatcherBook>>;

fn lock(book: &Book) -> std::sync::MutexGuard<'_, WatcherBook> {
    book.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Aborts a watcher's task when dropped, which drops its stream and so ends the watch.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The running watchers.
pub struct Watchers {
    books: Vec<Book>,
    _tasks: Vec<AbortOnDrop>,
}

impl std::fmt::Debug for Watchers {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Watchers").field("count", &self.books.len()).finish()
    }
}

/// What the watchers saw, the whole run long.
#[derive(Debug)]
pub struct WatchOutcome {
    /// Watchers that ran.
    pub watchers: usize,
    /// Events received in the measured window, summed over watchers.
    pub measured_events: u64,
    /// Delivery latency of the writes sent in the measured window, in µs.
    pub latency: Histogram<u64>,
    /// The ledgers checked against the acknowledged writes, summed over watchers.
    pub check: DeliveryCheck,
    /// Acknowledged writes (each had to reach every watcher).
    pub acknowledged_writes: u64,
    /// Events whose value carried no send time.
    pub unparsable: u64,
    /// Seconds from the writers' stop until every watcher had the last acknowledged write
    /// (or the drain gave up).
    pub drain_s: f64,
    /// Whether every watcher caught up before [`DRAIN_TIMEOUT`].
    pub caught_up: bool,
    /// Watchers whose stream ended early, and a few of their reasons.
    pub failed_watchers: usize,
    /// A few distinct reasons streams ended early.
    pub failures: Vec<String>,
}

impl Watchers {
    /// Creates `count` watchers of [`WATCH_PREFIX`] through `target`, one stream each, and
    /// returns once the server confirmed every one (so no write is sent before a watch
    /// exists).
    ///
    /// # Errors
    ///
    /// [`Error::Watch`] when a watch cannot be created.
    pub async fn start<T: Target>(
        target: &T,
        count: usize,
        window: MeasuredWindow,
    ) -> Result<Watchers, Error> {
        let mut books = Vec::with_capacity(count);
        let mut tasks = Vec::with_capacity(count);
        for watcher in 0..count {
            let prefix = Bytes::from_static(WATCH_PREFIX.as_bytes());
            let (events, first_revision) = target
                .watch_prefix(prefix)
                .await
                .map_err(|reason| Error::Watch { watcher, reason })?;
            let book = Arc::new(Mutex::new(WatcherBook {
                interval: WatchInterval::new(),
                ledger: DeliveryLedger::new(first_revision),
                measured: new_histogram(),
                unparsable: 0,
                failure: None,
            }));
            let task = tokio::spawn(watch_loop(events, Arc::clone(&book), window));
            books.push(book);
            tasks.push(AbortOnDrop(task));
        }
        info!(watchers = count, prefix = WATCH_PREFIX, "watchers created");
        Ok(Watchers { books, _tasks: tasks })
    }

    /// The events received since the last call, summed over watchers.
    #[must_use]
    pub fn take_interval(&self) -> WatchInterval {
        let mut total = WatchInterval::new();
        for book in &self.books {
            let interval = std::mem::replace(&mut lock(book).interval, WatchInterval::new());
            total.events += interval.events;
            let _ = total.latency.add(&interval.latency);
        }
        total
    }

    /// Waits (at most [`DRAIN_TIMEOUT`]) until every watcher received the highest
    /// acknowledged revision, stops the watchers, and checks each ledger against
    /// `acknowledged` (the acknowledged writes' revisions, in any order).
    pub async fn finish(self, mut acknowledged: Vec<u64>, measured_events: u64) -> WatchOutcome {
        acknowledged.sort_unstable();
        acknowledged.dedup();
        let drain_started = Instant::now();
        let caught_up = self.drain(acknowledged.last().copied()).await;
        let drain_s = drain_started.elapsed().as_secs_f64();
        let Watchers { books, _tasks: tasks } = self;
        drop(tasks);
        let mut outcome = WatchOutcome {
            watchers: books.len(),
            measured_events,
            latency: new_histogram(),
            check: DeliveryCheck::default(),
            acknowledged_writes: acknowledged.len() as u64,
            unparsable: 0,
            drain_s,
            caught_up,
            failed_watchers: 0,
            failures: Vec::new(),
        };
        for book in &books {
            let book = lock(book);
            outcome.check.add(&book.ledger.check(&acknowledged));
            let _ = outcome.latency.add(&book.measured);
            outcome.unparsable += book.unparsable;
            if let Some(failure) = &book.failure {
                outcome.failed_watchers += 1;
                if outcome.failures.len() < FAILURES_MAX && !outcome.failures.contains(failure) {
                    outcome.failures.push(failure.clone());
                }
            }
        }
        if !caught_up {
            warn!(drain_s, "watchers did not catch up with the last acknowledged write");
        }
        outcome
    }

    /// Whether every watcher reached `last` (or ended) before [`DRAIN_TIMEOUT`].
    async fn drain(&self, last: Option<u64>) -> bool {
        let Some(last) = last else { return true };
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        loop {
            let pending = self.books.iter().any(|book| {
                let book = lock(book);
                book.failure.is_none() && book.ledger.highest_revision() < Some(last)
            });
            if !pending {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }
}

/// One watcher: books every event until the stream ends or the task is aborted.
async fn watch_loop<W: WatchEvents>(mut events: W, book: Book, window: MeasuredWindow) {
    loop {
        let failure = match events.next_events().await {
            Ok(Some(batch)) => {
                let now_nanos = nanos_since(window.started);
                let mut book = lock(&book);
                for event in &batch {
                    book.receive(event, now_nanos, &window);
                }
                continue;
            }
            Ok(None) => "the server closed the watch stream".to_owned(),
            Err(reason) => reason,
        };
        warn!(%failure, "a watch stream ended early");
        lock(&book).failure = Some(failure);
        return;
    }
}

/// Nanoseconds since `started`, as the writers stamp them.
#[must_use]
pub fn nanos_since(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The watch figures of `summary.json`.
#[derive(Clone, Debug, Serialize)]
pub struct WatchSummary {
    /// Watchers, each on its own stream over the shared connection.
    pub watchers: usize,
    /// The key prefix each watched.
    pub prefix: String,
    /// Events received in the measured window, summed over watchers.
    pub events: u64,
    /// The same per second.
    pub events_per_sec: f64,
    /// Delivery latency (receipt time minus the send time in the value) of the writes
    /// sent in the measured window, over every watcher, in ms.
    pub delivery_latency_ms: Percentiles,
    /// Server CPU per event received, in µs; `None` for a cluster the harness did not
    /// launch.
    pub server_cpu_us_per_event: Option<f64>,
    /// Acknowledged writes over the whole run (warmup included): each had to reach every
    /// watcher exactly once.
    pub acknowledged_writes: u64,
    /// Acknowledged writes times watchers.
    pub expected_events: u64,
    /// Of those, the ones that arrived.
    pub delivered: u64,
    /// Of those, the ones that never arrived.
    pub missing: u64,
    /// Events received again for a revision a watcher already had.
    pub duplicates: u64,
    /// Events received after one of a higher revision.
    pub out_of_order: u64,
    /// Revisions received that no writer saw acknowledged.
    pub unacknowledged_events: u64,
    /// Events outside the revisions the ledgers track.
    pub untracked_events: u64,
    /// Events whose value carried no send time.
    pub unparsable_events: u64,
    /// Seconds from the writers' stop until every watcher had the last acknowledged write.
    pub drain_s: f64,
    /// Whether every watcher caught up within the drain timeout.
    pub caught_up: bool,
    /// Watchers whose stream ended early.
    pub failed_watchers: usize,
    /// A few reasons streams ended early.
    pub failures: Vec<String>,
}

impl WatchSummary {
    /// The summary of `outcome` over `measured_s` seconds, with the servers' CPU over the
    /// window when known.
    #[must_use]
    pub fn new(outcome: &WatchOutcome, measured_s: f64, server_cpu_micros: Option<u64>) -> Self {
        let check = outcome.check;
        WatchSummary {
            watchers: outcome.watchers,
            prefix: WATCH_PREFIX.to_owned(),
            events: outcome.measured_events,
            events_per_sec: if measured_s > 0.0 {
                outcome.measured_events as f64 / measured_s
            } else {
                0.0
            },
            delivery_latency_ms: Percentiles::of(&outcome.latency),
            server_cpu_us_per_event: crate::cpu::per_op(server_cpu_micros, outcome.measured_events),
            acknowledged_writes: outcome.acknowledged_writes,
            expected_events: check.expected,
            delivered: check.delivered,
            missing: check.missing,
            duplicates: check.duplicates,
            out_of_order: check.out_of_order,
            unacknowledged_events: check.unacknowledged,
            untracked_events: check.untracked,
            unparsable_events: outcome.unparsable,
            drain_s: outcome.drain_s,
            caught_up: outcome.caught_up,
            failed_watchers: outcome.failed_watchers,
            failures: outcome.failures.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_send_time_survives_the_value_and_padding() {
        let value = timestamped_value(0x1234_5678_9abc, 3, 17, 256);
        assert_eq!(value.len(), 256);
        assert_eq!(sent_nanos(&value), Some(0x1234_5678_9abc));
        assert_ne!(value, timestamped_value(0x1234_5678_9abc, 3, 18, 256), "values differ");
        let smallest = timestamped_value(u64::MAX, 0, 0, WATCH_VALUE_BYTES_MIN);
        assert_eq!(smallest.len(), WATCH_VALUE_BYTES_MIN);
        assert_eq!(sent_nanos(&smallest), Some(u64::MAX));
    }

    #[test]
    fn values_without_a_send_time_are_not_read_as_one() {
        assert_eq!(sent_nanos(b""), None);
        assert_eq!(sent_nanos(b"w1-s1-xxxxxxxxxxxxxxxxxxxx"), None);
        assert_eq!(sent_nanos(b"t00000000000000zz-w1"), None);
        assert_eq!(sent_nanos(b"t0000000000000001"), None, "cut short");
    }

    #[test]
    fn every_acknowledged_revision_received_once_in_order_checks_clean() {
        let mut ledger = DeliveryLedger::new(10);
        for revision in 10..20 {
            ledger.record(revision);
        }
        let check = ledger.check(&[10, 12, 15, 19]);
        assert_eq!(check.expected, 4);
        assert_eq!(check.delivered, 4);
        assert_eq!(check.missing, 0);
        assert_eq!(check.duplicates, 0);
        assert_eq!(check.out_of_order, 0);
        assert_eq!(check.unacknowledged, 6, "the writes no client saw acknowledged");
        assert_eq!(check.events, 10);
        assert_eq!(ledger.highest_revision(), Some(19));
    }

    #[test]
    fn a_missing_acknowledged_revision_is_counted() {
        let mut ledger = DeliveryLedger::new(1);
        ledger.record(1);
        ledger.record(3);
        let check = ledger.check(&[1, 2, 3, 4]);
        assert_eq!((check.delivered, check.missing), (2, 2));
    }

    #[test]
    fn a_repeated_revision_is_a_duplicate_and_an_older_one_is_out_of_order() {
        let mut ledger = DeliveryLedger::new(100);
        for revision in [100, 101, 101, 103, 102, 100] {
            ledger.record(revision);
        }
        let check = ledger.check(&[100, 101, 102, 103]);
        assert_eq!(check.missing, 0);
        assert_eq!(check.duplicates, 2, "101 and 100 again");
        assert_eq!(check.out_of_order, 2, "102 after 103, 100 after 103");
        assert_eq!(check.events, 6);
    }

    #[test]
    fn revisions_before_the_watch_or_too_far_past_it_are_untracked() {
        let mut ledger = DeliveryLedger::new(50);
        ledger.record(49);
        ledger.record(50 + REVISIONS_TRACKED_MAX);
        let check = ledger.check(&[49]);
        assert_eq!(check.untracked, 2);
        assert_eq!(check.missing, 1, "an acknowledged revision before the watch never arrives");
        assert!(!ledger.received(49));
    }

    #[test]
    fn checks_add_up_over_watchers() {
        let mut total = DeliveryCheck::default();
        let one = DeliveryCheck { expected: 3, delivered: 2, missing: 1, ..Default::default() };
        total.add(&one);
        total.add(&one);
        assert_eq!((total.expected, total.delivered, total.missing), (6, 4, 2));
    }

    #[test]
    fn latency_counts_towards_the_measure_only_for_writes_sent_in_the_window() {
        let window = MeasuredWindow {
            started: Instant::now(),
            warmup: Duration::from_secs(1),
            end: Duration::from_secs(3),
        };
        let mut book = WatcherBook {
            interval: WatchInterval::new(),
            ledger: DeliveryLedger::new(1),
            measured: new_histogram(),
            unparsable: 0,
            failure: None,
        };
        let second = 1_000_000_000;
        let event = |revision, sent| WatchedEvent {
            revision,
            value: timestamped_value(sent, 0, revision, 64),
        };
        // Sent in the warmup, in the window (delivered 2 ms later, after it closed too),
        // after the window, and one without a send time.
        book.receive(&event(1, second / 2), second / 2 + 1_000_000, &window);
        book.receive(&event(2, 2 * second), 2 * second + 2_000_000, &window);
        book.receive(&event(3, 3 * second - 1), 3 * second + 2_000_000, &window);
        book.receive(&event(4, 3 * second), 3 * second + 5_000_000, &window);
        let bare = WatchedEvent { revision: 5, value: Bytes::from_static(b"plain") };
        book.receive(&bare, 4 * second, &window);
        assert_eq!(book.interval.events, 5);
        assert_eq!(book.interval.latency.len(), 4);
        assert_eq!(book.measured.len(), 2);
        let p50 = Percentiles::of(&book.measured).p50;
        assert!((p50 - 2.0).abs() < 0.01, "{p50}");
        assert_eq!(book.unparsable, 1);
        assert_eq!(book.ledger.check(&[1, 2, 3, 4, 5]).missing, 0);
    }
}
