//! Parsers for the command line's sizes, durations, client lists and fault schedules.

use std::time::Duration;

use crate::error::Error;

/// Parses a byte size: `4096`, `256B`, `64KB`, `4MB`, `1GB` (powers of 1024, as the
/// servers read them; `KiB`/`MiB`/`GiB` are accepted too).
///
/// # Errors
///
/// [`Error::Invalid`] for anything else.
pub fn parse_size(text: &str) -> Result<u64, Error> {
    let trimmed = text.trim();
    let split = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| Error::invalid("size", text, "expected a number such as 4MB or 4096"))?;
    let multiplier: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return Err(Error::invalid("size", text, "the unit must be B, KB, MB or GB")),
    };
    number.checked_mul(multiplier).ok_or_else(|| Error::invalid("size", text, "too large"))
}

/// Parses a duration: `30s`, `500ms`, `2m`, `1.5s`, or plain seconds (`30`).
///
/// # Errors
///
/// [`Error::Invalid`] for anything else.
pub fn parse_duration(text: &str) -> Result<Duration, Error> {
    let trimmed = text.trim();
    let split = trimmed.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let number: f64 = digits
        .parse()
        .map_err(|_| Error::invalid("duration", text, "expected a duration such as 30s"))?;
    let seconds = match unit {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(Error::invalid("duration", text, "the unit must be ms, s, m or h")),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(Error::invalid("duration", text, "must be zero or more"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses a list of client counts: `20` or `20,56,64`.
///
/// # Errors
///
/// [`Error::Invalid`] for an empty list, a zero or a non-number.
pub fn parse_clients(text: &str) -> Result<Vec<usize>, Error> {
    let mut counts = Vec::new();
    for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
        let count: usize = part
            .parse()
            .map_err(|_| Error::invalid("client count", part, "expected a positive number"))?;
        if count == 0 {
            return Err(Error::invalid("client count", part, "must be at least 1"));
        }
        counts.push(count);
    }
    if counts.is_empty() {
        return Err(Error::invalid("client list", text, "name at least one count"));
    }
    Ok(counts)
}

/// What a fault does to a node's process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// SIGKILL the node.
    Kill,
    /// Start the node again on its data directory.
    Restart,
    /// SIGSTOP the node.
    Pause,
    /// SIGCONT the node.
    Resume,
}

impl FaultAction {
    /// The action's name as written in a schedule.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            FaultAction::Kill => "kill",
            FaultAction::Restart => "restart",
            FaultAction::Pause => "pause",
            FaultAction::Resume => "resume",
        }
    }
}

/// Which node a fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultNode {
    /// The node with this id (1-based).
    Id(u64),
    /// Whichever node leads when the fault fires.
    Leader,
}

/// One scheduled fault: `kill:2@10s`, `kill-leader@40s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// What to do.
    pub action: FaultAction,
    /// To which node.
    pub node: FaultNode,
    /// When, counted from the start of the workload (warmup included).
    pub at: Duration,
}

/// Parses a fault schedule such as
/// `kill:2@10s,restart:2@20s,pause:1@30s,resume:1@35s,kill-leader@40s`, sorted by time.
///
/// # Errors
///
/// [`Error::Invalid`] naming the item that cannot be read.
pub fn parse_faults(text: &str) -> Result<Vec<Fault>, Error> {
    let mut faults = Vec::new();
    for item in text.split(',').map(str::trim).filter(|item| !item.is_empty()) {
        let (what, at) = item
            .split_once('@')
            .ok_or_else(|| Error::invalid("fault", item, "expected ACTION:NODE@TIME"))?;
        let at = parse_duration(at)?;
        let (action, node) = match what.split_once(':') {
            Some((action, node)) => {
                let id: u64 = node
                    .parse()
                    .map_err(|_| Error::invalid("fault", item, "the node must be a number"))?;
                if id == 0 {
                    return Err(Error::invalid("fault", item, "node ids start at 1"));
                }
                (action, FaultNode::Id(id))
            }
            None => match what.strip_suffix("-leader") {
                Some(action) => (action, FaultNode::Leader),
                None => return Err(Error::invalid("fault", item, "expected ACTION:NODE@TIME")),
            },
        };
        let action = match action {
            "kill" => FaultAction::Kill,
            "restart" => FaultAction::Restart,
            "pause" => FaultAction::Pause,
            "resume" => FaultAction::Resume,
            _ => {
                return Err(Error::invalid(
                    "fault",
                    item,
                    "the action must be kill, restart, pause or resume",
                ));
            }
        };
        if node == FaultNode::Leader && matches!(action, FaultAction::Restart | FaultAction::Resume)
        {
            return Err(Error::invalid("fault", item, "restart and resume need a node id"));
        }
        faults.push(Fault { action, node, at });
    }
    faults.sort_by_key(|fault| fault.at);
    Ok(faults)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(parse_size("4MB").unwrap(), 4 << 20);
        assert_eq!(parse_size("256").unwrap(), 256);
        assert_eq!(parse_size("64kb").unwrap(), 64 << 10);
        assert!(parse_size("4XB").is_err());
        assert!(parse_size("MB").is_err());
    }

    #[test]
    fn durations_accept_common_units() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("3 days").is_err());
    }

    #[test]
    fn client_lists_sweep() {
        assert_eq!(parse_clients("20,56, 64").unwrap(), vec![20, 56, 64]);
        assert!(parse_clients("0").is_err());
        assert!(parse_clients("").is_err());
    }

    #[test]
    fn the_issue_schedule_parses_in_time_order() {
        let faults =
            parse_faults("kill-leader@40s,kill:2@10s,restart:2@20s,pause:1@30s,resume:1@35s")
                .unwrap();
        assert_eq!(faults.len(), 5);
        assert_eq!(
            faults[0],
            Fault {
                action: FaultAction::Kill,
                node: FaultNode::Id(2),
                at: Duration::from_secs(10)
            }
        );
        assert_eq!(faults[4].node, FaultNode::Leader);
    }

    #[test]
    fn malformed_faults_are_refused() {
        assert!(parse_faults("kill:x@1s").is_err());
        assert!(parse_faults("explode:1@1s").is_err());
        assert!(parse_faults("kill:1").is_err());
        assert!(parse_faults("restart-leader@3s").is_err());
        assert!(parse_faults("kill:0@3s").is_err());
    }
}
