//! How even the measured window's throughput was, second by second, and whether the seconds
//! in which nodes stored a snapshot were the slow ones.
//!
//! A run's worst second against its median second is the figure a snapshot's cost shows up
//! in, but on a shared machine the host's own stalls move it as much: so the seconds in
//! which some node stored a snapshot are also set apart from the others. A node stored one
//! in a second when its snapshot index differs from its index in the second before (the
//! last warmup second included). etcd does not report a snapshot index, so its runs have
//! no snapshot seconds.
//!
//! On a virtual machine the host can take the CPUs away for part of a second, and a
//! CPU-bound cluster then does less in it whatever it was doing. So the seconds in which
//! the hypervisor stole at least [`STOLEN_PCT`] of the machine's CPU time are counted, and
//! the worst of the other seconds is given too: a dip there was not the host's.
//!
//! The host's disk can slow down too, which steal does not show: the disk probe's syncs
//! ([`crate::disk_probe`]) time a bare sync every second. The seconds whose probe sync took
//! [`SLOW_SYNC_FACTOR`] times the run's median or more are counted, the correlation of
//! each second's operations with its probe sync is given, and so is the worst second that
//! was neither stolen nor slow-synced: a dip there was the cluster's own.

use serde::Serialize;

use crate::workload::Row;

/// A second in which the hypervisor took at least this share of the machine's CPU time
/// (percent) counts as stolen. A cluster loses at least as much throughput as the host
/// takes, often more (on this project's VM, 18% stolen cost a second 47% of its
/// operations): steal does not show the host's other costs, such as its caches.
pub const STOLEN_PCT: f64 = 5.0;

/// A second whose disk probe's median sync took at least this many times the median of
/// the run's seconds counts as slow-synced. On this project's VM, the seconds in which the
/// servers' own syncs took 1.5 times their usual time were the slow ones.
pub const SLOW_SYNC_FACTOR: f64 = 1.5;

/// The measured seconds' throughput (`summary.json` `seconds`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SecondsSummary {
    /// Measured seconds (after the warmup).
    pub count: usize,
    /// The median second's operations.
    pub median_ops: f64,
    /// The lowest second's operations.
    pub worst_ops: u64,
    /// The lowest second, counted from 0 after the warmup.
    pub worst_second: usize,
    /// `worst_ops / median_ops`.
    pub worst_ratio: f64,
    /// Seconds in which at least one node stored a snapshot.
    pub snapshot_seconds: usize,
    /// Of those, the seconds in which two or more nodes stored one: nodes whose snapshots
    /// coincide, which per-node thresholds are meant to keep apart.
    pub shared_snapshot_seconds: usize,
    /// Those seconds: their mean and their lowest, each as a fraction of the median second
    /// (`None` without such seconds).
    pub snapshot_mean_ratio: Option<f64>,
    /// See `snapshot_mean_ratio`.
    pub snapshot_worst_ratio: Option<f64>,
    /// The other seconds, likewise.
    pub other_mean_ratio: Option<f64>,
    /// See `other_mean_ratio`.
    pub other_worst_ratio: Option<f64>,
    /// The host's steal: the median second's, the worst second's, how many seconds reached
    /// [`STOLEN_PCT`], and the worst of the other seconds against the median (`None` where
    /// `/proc/stat` could not tell).
    pub steal: Option<StealSummary>,
    /// The disk probe's syncs, second by second (`None` without probe readings).
    pub disk_sync: Option<DiskSyncSummary>,
}

/// How fast a bare sync was, second by second (see [`SecondsSummary::disk_sync`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct DiskSyncSummary {
    /// The median of the measured seconds' median probe syncs, in ms.
    pub median_p50_ms: f64,
    /// The worst second's median probe sync, in ms (`None` when it has no reading).
    pub worst_second_p50_ms: Option<f64>,
    /// Seconds whose median probe sync took [`SLOW_SYNC_FACTOR`] times `median_p50_ms` or
    /// more.
    pub slow_seconds: usize,
    /// The correlation (Pearson's r) of the seconds' operations with their median probe
    /// syncs: strongly negative when the disk's speed set the cluster's (`None` for fewer
    /// than three seconds with readings, or when either did not vary).
    pub ops_correlation: Option<f64>,
    /// The fewest operations in a second neither stolen (its steal known and below
    /// [`STOLEN_PCT`]) nor slow-synced (its probe known and below the slow mark), as a
    /// fraction of the median second (`None` without such a second).
    pub quiet_worst_ratio: Option<f64>,
}

/// How much CPU the hypervisor took, second by second (see [`SecondsSummary::steal`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct StealSummary {
    /// The median of the measured seconds' steal, in percent of the machine's CPU time.
    pub median_pct: f64,
    /// The steal in the worst second (the one with the fewest operations).
    pub worst_second_pct: f64,
    /// Seconds with at least [`STOLEN_PCT`] stolen.
    pub stolen_seconds: usize,
    /// The fewest operations in a second with less stolen, as a fraction of the median
    /// second (`None` when every second was stolen).
    pub calm_worst_ratio: Option<f64>,
}

impl SecondsSummary {
    /// The summary of `rows`' measured seconds; `None` without any, or when the median
    /// second did nothing (no ratio is meaningful then).
    #[must_use]
    pub fn of(rows: &[Row]) -> Option<SecondsSummary> {
        let mut seconds = Vec::new();
        let mut previous: Option<&Row> = None;
        let mut shared_snapshot_seconds = 0;
        for row in rows {
            if !row.warmup {
                let storing = previous.map_or(0, |before| nodes_storing(before, row));
                let steal = row.host.map(|host| host.steal_pct);
                let sync_ms = row.disk_sync.map(|sync| sync.p50_ms);
                seconds.push(Second { ops: row.ops, stored: storing > 0, steal, sync_ms });
                shared_snapshot_seconds += usize::from(storing > 1);
            }
            previous = Some(row);
        }
        let median_ops = median(seconds.iter().map(|second| second.ops as f64).collect())?;
        if median_ops <= 0.0 {
            return None;
        }
        let (worst_second, worst) =
            seconds.iter().enumerate().min_by_key(|&(_, second)| second.ops)?;
        let ratios = |keep: &dyn Fn(&Second) -> bool| {
            let ratios: Vec<f64> = seconds
                .iter()
                .filter(|second| keep(second))
                .map(|second| second.ops as f64 / median_ops)
                .collect();
            let mean =
                (!ratios.is_empty()).then(|| ratios.iter().sum::<f64>() / ratios.len() as f64);
            let worst = ratios.iter().copied().reduce(f64::min);
            (ratios.len(), mean, worst)
        };
        let (snapshot_seconds, snapshot_mean_ratio, snapshot_worst_ratio) =
            ratios(&|second| second.stored);
        let (_, other_mean_ratio, other_worst_ratio) = ratios(&|second| !second.stored);
        let steal = worst.steal.and_then(|worst_second_pct| {
            let median_pct = median(seconds.iter().filter_map(|second| second.steal).collect())?;
            let stolen_seconds = seconds.iter().filter(|second| second.stolen()).count();
            let (_, _, calm_worst_ratio) = ratios(&Second::calm);
            Some(StealSummary { median_pct, worst_second_pct, stolen_seconds, calm_worst_ratio })
        });
        let disk_sync = {
            let syncs = seconds.iter().filter_map(|second| second.sync_ms).collect();
            median(syncs).map(|median_p50_ms| {
                let slow_ms = median_p50_ms * SLOW_SYNC_FACTOR;
                let slow = |second: &Second| second.sync_ms.is_some_and(|ms| ms >= slow_ms);
                let pairs: Vec<(f64, f64)> = seconds
                    .iter()
                    .filter_map(|second| Some((second.ops as f64, second.sync_ms?)))
                    .collect();
                let (_, _, quiet_worst_ratio) =
                    ratios(&|second| second.calm() && second.sync_ms.is_some() && !slow(second));
                DiskSyncSummary {
                    median_p50_ms,
                    worst_second_p50_ms: worst.sync_ms,
                    slow_seconds: seconds.iter().filter(|second| slow(second)).count(),
                    ops_correlation: correlation(&pairs),
                    quiet_worst_ratio,
                }
            })
        };
        Some(SecondsSummary {
            count: seconds.len(),
            median_ops,
            worst_ops: worst.ops,
            worst_second,
            worst_ratio: worst.ops as f64 / median_ops,
            snapshot_seconds,
            shared_snapshot_seconds,
            snapshot_mean_ratio,
            snapshot_worst_ratio,
            other_mean_ratio,
            other_worst_ratio,
            steal,
            disk_sync,
        })
    }

    /// One line for the text summary.
    #[must_use]
    pub fn text(&self) -> String {
        let ratio =
            |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}x"));
        format!(
            "per second: median {:.0} ops, worst {} ({:.2}x the median, second {} of {}); \
             seconds with a node storing a snapshot: {} ({} with two or more; mean {}, worst {}), \
             others: mean {}, worst {}",
            self.median_ops,
            self.worst_ops,
            self.worst_ratio,
            self.worst_second,
            self.count,
            self.snapshot_seconds,
            self.shared_snapshot_seconds,
            ratio(self.snapshot_mean_ratio),
            ratio(self.snapshot_worst_ratio),
            ratio(self.other_mean_ratio),
            ratio(self.other_worst_ratio),
        ) + &self.steal.map_or_else(String::new, |steal| {
            format!(
                "; host steal: median {:.1}%, {:.1}% in the worst second, {} seconds at {STOLEN_PCT}% \
                 or more (worst of the others {})",
                steal.median_pct,
                steal.worst_second_pct,
                steal.stolen_seconds,
                ratio(steal.calm_worst_ratio),
            )
        }) + &self.disk_sync.map_or_else(String::new, |sync| {
            let ms = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"));
            let r = sync.ops_correlation.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"));
            format!(
                "; disk probe sync: median {:.3} ms, {} ms in the worst second, {} seconds at \
                 {SLOW_SYNC_FACTOR}x the median or more, r(ops, sync) {r} (worst second neither \
                 stolen nor slow-synced {})",
                sync.median_p50_ms,
                ms(sync.worst_second_p50_ms),
                sync.slow_seconds,
                ratio(sync.quiet_worst_ratio),
            )
        })
    }
}

/// One measured second: its operations, whether a node stored a snapshot in it, the host's
/// steal, and the disk probe's median sync (ms).
struct Second {
    ops: u64,
    stored: bool,
    steal: Option<f64>,
    sync_ms: Option<f64>,
}

impl Second {
    /// At least [`STOLEN_PCT`] stolen.
    fn stolen(&self) -> bool {
        self.steal.is_some_and(|pct| pct >= STOLEN_PCT)
    }

    /// Its steal known and below [`STOLEN_PCT`].
    fn calm(&self) -> bool {
        self.steal.is_some() && !self.stolen()
    }
}

/// Pearson's correlation of `pairs`; `None` for fewer than three, or when either side does
/// not vary.
fn correlation(pairs: &[(f64, f64)]) -> Option<f64> {
    if pairs.len() < 3 {
        return None;
    }
    let count = pairs.len() as f64;
    let mean_x = pairs.iter().map(|pair| pair.0).sum::<f64>() / count;
    let mean_y = pairs.iter().map(|pair| pair.1).sum::<f64>() / count;
    let (mut xy, mut xx, mut yy) = (0.0, 0.0, 0.0);
    for &(x, y) in pairs {
        xy += (x - mean_x) * (y - mean_y);
        xx += (x - mean_x) * (x - mean_x);
        yy += (y - mean_y) * (y - mean_y);
    }
    (xx > 0.0 && yy > 0.0).then(|| xy / (xx * yy).sqrt())
}

/// How many nodes' snapshot indexes moved between `before` and `row`.
fn nodes_storing(before: &Row, row: &Row) -> usize {
    row.nodes
        .iter()
        .zip(&before.nodes)
        .filter(|(now, then)| {
            matches!((then.snapshot_index, now.snapshot_index), (Some(then), Some(now)) if then != now)
        })
        .count()
}

/// The median of `values` (the mean of the middle two for an even count); `None` for none.
pub(crate) fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_unstable_by(f64::total_cmp);
    let middle = values.len() / 2;
    match values.len() {
        0 => None,
        length if length % 2 == 1 => Some(values[middle]),
        _ => Some(f64::midpoint(values[middle - 1], values[middle])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::HostShares;
    use crate::scrape::NodeSample;

    fn row(warmup: bool, ops: u64, snapshot_indexes: &[Option<u64>]) -> Row {
        let nodes = snapshot_indexes
            .iter()
            .map(|&snapshot_index| NodeSample { up: true, snapshot_index, ..NodeSample::default() })
            .collect();
        Row { warmup, ops, nodes, ..Row::default() }
    }

    #[test]
    fn the_worst_second_is_judged_against_the_median_and_snapshot_seconds_are_set_apart() {
        let rows = [
            row(true, 50, &[Some(0), Some(0)]),
            // The first measured second: node 2's index moved since the warmup's last.
            row(false, 80, &[Some(0), Some(10)]),
            row(false, 100, &[Some(0), Some(10)]),
            row(false, 120, &[Some(20), Some(10)]),
            row(false, 60, &[Some(20), Some(10)]),
        ];
        let seconds = SecondsSummary::of(&rows).unwrap();
        assert_eq!(seconds.count, 4);
        assert!((seconds.median_ops - 90.0).abs() < 1e-9, "{seconds:?}");
        assert_eq!((seconds.worst_ops, seconds.worst_second), (60, 3));
        assert!((seconds.worst_ratio - 60.0 / 90.0).abs() < 1e-9);
        assert_eq!(seconds.snapshot_seconds, 2);
        assert_eq!(seconds.shared_snapshot_seconds, 0, "one node at a time");
        assert!((seconds.snapshot_mean_ratio.unwrap() - 100.0 / 90.0).abs() < 1e-9);
        assert!((seconds.snapshot_worst_ratio.unwrap() - 80.0 / 90.0).abs() < 1e-9);
        assert!((seconds.other_mean_ratio.unwrap() - 80.0 / 90.0).abs() < 1e-9);
        assert!((seconds.other_worst_ratio.unwrap() - 60.0 / 90.0).abs() < 1e-9);
        let text = seconds.text();
        assert!(text.contains("worst 60 (0.67x the median, second 3 of 4)"), "{text}");
        assert!(
            text.contains("snapshot: 2 (0 with two or more; mean 1.11x, worst 0.89x)"),
            "{text}"
        );
    }

    #[test]
    fn seconds_in_which_several_nodes_stored_a_snapshot_are_counted() {
        let rows = [
            row(true, 50, &[Some(0), Some(0), Some(0)]),
            // Two nodes at once, then all three, then one, then none.
            row(false, 80, &[Some(5), Some(5), Some(0)]),
            row(false, 90, &[Some(9), Some(9), Some(9)]),
            row(false, 100, &[Some(9), Some(12), Some(9)]),
            row(false, 100, &[Some(9), Some(12), Some(9)]),
        ];
        let seconds = SecondsSummary::of(&rows).unwrap();
        assert_eq!((seconds.snapshot_seconds, seconds.shared_snapshot_seconds), (3, 2));
        assert!(seconds.text().contains("snapshot: 3 (2 with two or more;"), "{}", seconds.text());
    }

    #[test]
    fn a_system_without_snapshot_indexes_has_no_snapshot_seconds() {
        let rows = [row(false, 10, &[None]), row(false, 30, &[None]), row(false, 20, &[None])];
        let seconds = SecondsSummary::of(&rows).unwrap();
        assert_eq!(seconds.median_ops, 20.0);
        assert_eq!(seconds.snapshot_seconds, 0);
        assert_eq!((seconds.snapshot_mean_ratio, seconds.snapshot_worst_ratio), (None, None));
        assert_eq!(seconds.shared_snapshot_seconds, 0);
        let text = seconds.text();
        assert!(text.contains("snapshot: 0 (0 with two or more; mean -, worst -)"), "{text}");
    }

    #[test]
    fn stolen_seconds_are_counted_and_the_worst_calm_second_given() {
        let with_steal = |ops: u64, steal_pct: f64| Row {
            host: Some(HostShares { busy_pct: 100.0, steal_pct }),
            ..row(false, ops, &[])
        };
        let rows = [
            with_steal(100, 0.5),
            with_steal(50, 30.0),
            with_steal(90, 1.0),
            with_steal(110, 5.0),
            with_steal(100, 0.0),
        ];
        let seconds = SecondsSummary::of(&rows).unwrap();
        assert_eq!((seconds.worst_ops, seconds.worst_second), (50, 1));
        let steal = seconds.steal.expect("every second has a host reading");
        assert!((steal.median_pct - 1.0).abs() < 1e-9, "{steal:?}");
        assert!((steal.worst_second_pct - 30.0).abs() < 1e-9, "{steal:?}");
        assert_eq!(steal.stolen_seconds, 2, "30% and exactly 5%");
        assert!((steal.calm_worst_ratio.unwrap() - 0.9).abs() < 1e-9, "{steal:?}");
        let text = seconds.text();
        assert!(text.contains("host steal: median 1.0%, 30.0% in the worst second"), "{text}");
        assert!(text.contains("2 seconds at 5% or more (worst of the others 0.90x)"), "{text}");
        // Every second stolen: no calm second to judge.
        let stolen = [with_steal(10, 50.0), with_steal(20, 60.0)];
        let steal = SecondsSummary::of(&stolen).unwrap().steal.unwrap();
        assert_eq!((steal.stolen_seconds, steal.calm_worst_ratio), (2, None));
        // No host reading: no steal summary, and the line says nothing of it.
        let blind = SecondsSummary::of(&[row(false, 10, &[])]).unwrap();
        assert_eq!(blind.steal, None);
        assert!(!blind.text().contains("steal"), "{}", blind.text());
    }

    #[test]
    fn slow_synced_seconds_are_counted_and_the_worst_quiet_second_given() {
        use crate::disk_probe::SyncSecond;
        let second = |ops: u64, steal_pct: f64, sync_ms: Option<f64>| Row {
            host: Some(HostShares { busy_pct: 100.0, steal_pct }),
            disk_sync: sync_ms.map(|p50_ms| SyncSecond { syncs: 50, p50_ms, max_ms: p50_ms }),
            ..row(false, ops, &[])
        };
        let rows = [
            second(100, 0.0, Some(0.25)),
            // The disk slowed: 0.375 ms is exactly 1.5x the median 0.25 ms.
            second(60, 0.0, Some(0.375)),
            // Stolen, with a normal disk.
            second(70, 20.0, Some(0.25)),
            second(90, 0.0, Some(0.24)),
            second(110, 0.0, Some(0.26)),
            // No probe reading: neither slow nor quiet.
            second(80, 0.0, None),
        ];
        let seconds = SecondsSummary::of(&rows).unwrap();
        let sync = seconds.disk_sync.expect("seconds have probe readings");
        assert!((sync.median_p50_ms - 0.25).abs() < 1e-9, "{sync:?}");
        assert_eq!(sync.worst_second_p50_ms, Some(0.375), "the worst second is the 60");
        assert_eq!(sync.slow_seconds, 1);
        assert!(sync.ops_correlation.unwrap() < -0.5, "{sync:?}");
        assert!((sync.quiet_worst_ratio.unwrap() - 90.0 / 85.0).abs() < 1e-9, "{sync:?}");
        let text = seconds.text();
        assert!(text.contains("disk probe sync: median 0.250 ms, 0.375 ms in the worst"), "{text}");
        assert!(text.contains("1 seconds at 1.5x the median or more, r(ops, sync) -"), "{text}");
        assert!(text.contains("(worst second neither stolen nor slow-synced 1.06x)"), "{text}");
        // Without probe readings: no summary, and the line says nothing of it.
        let blind = SecondsSummary::of(&[second(10, 0.0, None)]).unwrap();
        assert_eq!(blind.disk_sync, None);
        assert!(!blind.text().contains("disk probe"), "{}", blind.text());
    }

    #[test]
    fn correlation_is_pearsons_and_needs_three_varying_pairs() {
        let rising = [(1.0, 2.0), (2.0, 4.0), (3.0, 6.0)];
        assert!((correlation(&rising).unwrap() - 1.0).abs() < 1e-12);
        let falling = [(1.0, 6.0), (2.0, 4.0), (3.0, 2.0), (4.0, 0.0)];
        assert!((correlation(&falling).unwrap() + 1.0).abs() < 1e-12);
        assert_eq!(correlation(&rising[..2]), None, "two pairs");
        assert_eq!(correlation(&[(1.0, 5.0), (2.0, 5.0), (3.0, 5.0)]), None, "flat");
    }

    #[test]
    fn no_measured_second_or_an_idle_median_gives_no_summary() {
        assert_eq!(SecondsSummary::of(&[row(true, 10, &[])]), None);
        assert_eq!(SecondsSummary::of(&[row(false, 0, &[]), row(false, 0, &[])]), None);
    }
}
