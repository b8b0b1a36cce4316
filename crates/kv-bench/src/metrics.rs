//! Scraping a node's Prometheus `/metrics` over a tiny HTTP/1.0 client, and reading
//! gauges and histogram quantiles out of the text.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most bytes one scrape reads: a node's metrics page is a few tens of kilobytes.
const RESPONSE_BYTES_MAX: usize = 4 << 20;

/// Fetches `path` from `addr` with HTTP/1.0 and returns the status code and body.
///
/// # Errors
///
/// A description when the node does not answer within `timeout` or answers garbage.
pub async fn http_get(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|error| error.to_string())?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.map_err(|error| error.to_string())?;
        let mut body = Vec::new();
        let mut limited = (&mut stream).take(RESPONSE_BYTES_MAX as u64);
        limited.read_to_end(&mut body).await.map_err(|error| error.to_string())?;
        let text = String::from_utf8_lossy(&body).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| format!("no HTTP status line from {addr}"))?;
        Ok((status, body.to_owned()))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("{addr} did not answer within {timeout:?}")))
}

/// One scrape of a Prometheus text page: every sample by its full name with labels.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    values: BTreeMap<String, f64>,
}

impl Samples {
    /// Parses the Prometheus text format (comments and malformed lines are skipped).
    #[must_use]
    pub fn parse(text: &str) -> Samples {
        let mut values = BTreeMap::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // The value follows the name (and its labels); a timestamp may follow it.
            let name_end = match line.find('{') {
                Some(open) => match line[open..].find('}') {
                    Some(close) => open + close + 1,
                    None => continue,
                },
                None => line.find(char::is_whitespace).unwrap_or(line.len()),
            };
            let (name, rest) = line.split_at(name_end);
            let Some(value) = rest.split_whitespace().next() else { continue };
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                other => match other.parse::<f64>() {
                    Ok(value) => value,
                    Err(_) => continue,
                },
            };
            values.insert(name.replace(' ', ""), value);
        }
        Samples { values }
    }

    /// The sample `name` (exactly, labels included as written), if present.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values.get(name).copied()
    }

    /// The sum of every sample of the metric `name` whatever its labels.
    #[must_use]
    pub fn sum(&self, name: &str) -> Option<f64> {
        let mut total = None;
        for (key, value) in self.values.range(name.to_owned()..) {
            let matches = key == name || key.strip_prefix(name).is_some_and(|r| r.starts_with('{'));
            if !key.starts_with(name) {
                break;
            }
            if matches {
                *total.get_or_insert(0.0) += value;
            }
        }
        total
    }

    /// The cumulative buckets of histogram `name` as (upper bound, count), sorted by bound.
    #[must_use]
    pub fn buckets(&self, name: &str) -> Vec<(f64, f64)> {
        let prefix = format!("{name}_bucket{{");
        let mut buckets: Vec<(f64, f64)> = Vec::new();
        for (key, count) in self.values.range(prefix.clone()..) {
            let Some(labels) = key.strip_prefix(&prefix) else { break };
            let Some(le) = label_value(labels, "le") else { continue };
            let bound = match le {
                "+Inf" => f64::INFINITY,
                other => match other.parse::<f64>() {
                    Ok(bound) => bound,
                    Err(_) => continue,
                },
            };
            // Histograms with other labels are summed bucket by bucket.
            match buckets.iter_mut().find(|(existing, _)| *existing == bound) {
                Some(entry) => entry.1 += count,
                None => buckets.push((bound, *count)),
            }
        }
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        buckets
    }
}

fn label_value<'a>(labels: &'a str, label: &str) -> Option<&'a str> {
    let labels = labels.trim_end_matches('}');
    labels.split(',').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key.trim() == label).then(|| value.trim().trim_matches('"'))
    })
}

/// The `quantile` (0..1) of the observations between two scrapes of the same cumulative
/// histogram, interpolated linearly inside the bucket as Prometheus' `histogram_quantile`
/// does; `None` when nothing was observed in between.
#[must_use]
pub fn quantile_between(before: &[(f64, f64)], after: &[(f64, f64)], quantile: f64) -> Option<f64> {
    let deltas: Vec<(f64, f64)> = after
        .iter()
        .map(|&(bound, count)| {
            let earlier =
                before.iter().find(|(other, _)| *other == bound).map_or(0.0, |&(_, count)| count);
            // A restarted node starts its counters again: count everything since then.
            let delta = if count >= earlier { count - earlier } else { count };
            (bound, delta)
        })
        .collect();
    quantile_of(&deltas, quantile)
}

/// The `quantile` of one cumulative histogram.
#[must_use]
pub fn quantile_of(buckets: &[(f64, f64)], quantile: f64) -> Option<f64> {
    let total = buckets.last().map(|&(_, count)| count)?;
    if total <= 0.0 {
        return None;
    }
    let rank = quantile * total;
    let mut lower_bound = 0.0;
    let mut lower_count = 0.0;
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(lower_bound);
            }
            let in_bucket = count - lower_count;
            let fraction = if in_bucket > 0.0 { (rank - lower_count) / in_bucket } else { 1.0 };
            return Some(lower_bound + (bound - lower_bound) * fraction);
        }
        lower_bound = bound;
        lower_count = count;
    }
    Some(lower_bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
# HELP raft_term The current term.
# TYPE raft_term gauge
raft_term 7
raft_role 3
raft_log_first_index 1201
raft_elections_total 2
raft_persist_duration_seconds_bucket{le=\"0.001\"} 10
raft_persist_duration_seconds_bucket{le=\"0.002\"} 90
raft_persist_duration_seconds_bucket{le=\"0.004\"} 100
raft_persist_duration_seconds_bucket{le=\"+Inf\"} 100
raft_persist_duration_seconds_sum 0.15
raft_persist_duration_seconds_count 100
kv_request_duration_seconds_count{command=\"put\"} 5
kv_request_duration_seconds_count{command=\"get\"} 6
";

    #[test]
    fn gauges_and_counters_are_read() {
        let samples = Samples::parse(SAMPLE);
        assert_eq!(samples.get("raft_term"), Some(7.0));
        assert_eq!(samples.get("raft_role"), Some(3.0));
        assert_eq!(samples.get("raft_log_first_index"), Some(1201.0));
        assert_eq!(samples.get("raft_missing"), None);
        assert_eq!(samples.sum("kv_request_duration_seconds_count"), Some(11.0));
    }

    #[test]
    fn histogram_quantiles_interpolate_inside_buckets() {
        let samples = Samples::parse(SAMPLE);
        let buckets = samples.buckets("raft_persist_duration_seconds");
        assert_eq!(buckets.len(), 4);
        let p50 = quantile_of(&buckets, 0.5).unwrap();
        assert!((p50 - 0.0015).abs() < 1e-9, "p50 {p50}");
        let p99 = quantile_of(&buckets, 0.99).unwrap();
        assert!(p99 > 0.002 && p99 <= 0.004, "p99 {p99}");
    }

    #[test]
    fn deltas_between_scrapes_ignore_older_observations() {
        let before = vec![(0.001, 10.0), (0.002, 10.0), (f64::INFINITY, 10.0)];
        let after = vec![(0.001, 10.0), (0.002, 20.0), (f64::INFINITY, 20.0)];
        let p50 = quantile_between(&before, &after, 0.5).unwrap();
        assert!(p50 > 0.001 && p50 <= 0.002);
        assert_eq!(quantile_between(&after, &after, 0.5), None);
    }
}
