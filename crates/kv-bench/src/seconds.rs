//! How even the measured window's throughput was, second by second, and whether the seconds
//! in which nodes stored a snapshot were the slow ones.
//!
//! A run's worst second against its median second is the figure a snapshot's cost shows up
//! in, but on a shared machine the host's own stalls move it as much: so the seconds in
//! which some node stored a snapshot are also set apart from the others. A node stored one
//! in a second when its snapshot index differs from its index in the second before (the
//! last warmup second included). etcd does not report a snapshot index, so its runs have
//! no snapshot seconds.

use serde::Serialize;

use crate::workload::Row;

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
    /// Those seconds: their mean and their lowest, each as a fraction of the median second
    /// (`None` without such seconds).
    pub snapshot_mean_ratio: Option<f64>,
    /// See `snapshot_mean_ratio`.
    pub snapshot_worst_ratio: Option<f64>,
    /// The other seconds, likewise.
    pub other_mean_ratio: Option<f64>,
    /// See `other_mean_ratio`.
    pub other_worst_ratio: Option<f64>,
}

impl SecondsSummary {
    /// The summary of `rows`' measured seconds; `None` without any, or when the median
    /// second did nothing (no ratio is meaningful then).
    #[must_use]
    pub fn of(rows: &[Row]) -> Option<SecondsSummary> {
        let mut seconds = Vec::new();
        let mut previous: Option<&Row> = None;
        for row in rows {
            if !row.warmup {
                seconds
                    .push((row.ops, previous.is_some_and(|before| stored_snapshot(before, row))));
            }
            previous = Some(row);
        }
        let mut sorted: Vec<u64> = seconds.iter().map(|&(ops, _)| ops).collect();
        sorted.sort_unstable();
        let median_ops = median(&sorted)?;
        if median_ops <= 0.0 {
            return None;
        }
        let (worst_second, worst_ops) = seconds
            .iter()
            .enumerate()
            .min_by_key(|&(_, &(ops, _))| ops)
            .map(|(second, &(ops, _))| (second, ops))?;
        let group = |snapshot: bool| {
            let ratios: Vec<f64> = seconds
                .iter()
                .filter(|&&(_, stored)| stored == snapshot)
                .map(|&(ops, _)| ops as f64 / median_ops)
                .collect();
            let mean =
                (!ratios.is_empty()).then(|| ratios.iter().sum::<f64>() / ratios.len() as f64);
            let worst = ratios.iter().copied().reduce(f64::min);
            (ratios.len(), mean, worst)
        };
        let (snapshot_seconds, snapshot_mean_ratio, snapshot_worst_ratio) = group(true);
        let (_, other_mean_ratio, other_worst_ratio) = group(false);
        Some(SecondsSummary {
            count: seconds.len(),
            median_ops,
            worst_ops,
            worst_second,
            worst_ratio: worst_ops as f64 / median_ops,
            snapshot_seconds,
            snapshot_mean_ratio,
            snapshot_worst_ratio,
            other_mean_ratio,
            other_worst_ratio,
        })
    }

    /// One line for the text summary.
    #[must_use]
    pub fn text(&self) -> String {
        let ratio =
            |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}x"));
        format!(
            "per second: median {:.0} ops, worst {} ({:.2}x the median, second {} of {}); \
             seconds with a node storing a snapshot: {} (mean {}, worst {}), others: mean {}, \
             worst {}",
            self.median_ops,
            self.worst_ops,
            self.worst_ratio,
            self.worst_second,
            self.count,
            self.snapshot_seconds,
            ratio(self.snapshot_mean_ratio),
            ratio(self.snapshot_worst_ratio),
            ratio(self.other_mean_ratio),
            ratio(self.other_worst_ratio),
        )
    }
}

/// Whether some node's snapshot index moved between `before` and `row`.
fn stored_snapshot(before: &Row, row: &Row) -> bool {
    row.nodes.iter().zip(&before.nodes).any(|(now, then)| {
        matches!((then.snapshot_index, now.snapshot_index), (Some(then), Some(now)) if then != now)
    })
}

/// The median of sorted `values`; `None` for none.
fn median(sorted: &[u64]) -> Option<f64> {
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        length if length % 2 == 1 => Some(sorted[middle] as f64),
        _ => Some((sorted[middle - 1] + sorted[middle]) as f64 / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert!((seconds.snapshot_mean_ratio.unwrap() - 100.0 / 90.0).abs() < 1e-9);
        assert!((seconds.snapshot_worst_ratio.unwrap() - 80.0 / 90.0).abs() < 1e-9);
        assert!((seconds.other_mean_ratio.unwrap() - 80.0 / 90.0).abs() < 1e-9);
        assert!((seconds.other_worst_ratio.unwrap() - 60.0 / 90.0).abs() < 1e-9);
        let text = seconds.text();
        assert!(text.contains("worst 60 (0.67x the median, second 3 of 4)"), "{text}");
        assert!(text.contains("snapshot: 2 (mean 1.11x, worst 0.89x)"), "{text}");
    }

    #[test]
    fn a_system_without_snapshot_indexes_has_no_snapshot_seconds() {
        let rows = [row(false, 10, &[None]), row(false, 30, &[None]), row(false, 20, &[None])];
        let seconds = SecondsSummary::of(&rows).unwrap();
        assert_eq!(seconds.median_ops, 20.0);
        assert_eq!(seconds.snapshot_seconds, 0);
        assert_eq!((seconds.snapshot_mean_ratio, seconds.snapshot_worst_ratio), (None, None));
        assert!(seconds.text().contains("snapshot: 0 (mean -, worst -)"), "{}", seconds.text());
    }

    #[test]
    fn no_measured_second_or_an_idle_median_gives_no_summary() {
        assert_eq!(SecondsSummary::of(&[row(true, 10, &[])]), None);
        assert_eq!(SecondsSummary::of(&[row(false, 0, &[]), row(false, 0, &[])]), None);
    }
}
