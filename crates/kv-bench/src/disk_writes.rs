//! Bytes processes sent to the storage layer, read from `/proc/PID/io`, so a run can report
//! how many bytes the servers wrote per operation.
//!
//! Two log engines (or two systems) can reach the same throughput while one writes several
//! times the bytes of the other; on a real disk that difference is what wears it out and
//! what saturates first. `write_bytes` counts bytes when pages are dirtied, so writes later
//! cancelled by a truncation are included (the kernel's `cancelled_write_bytes` is not
//! subtracted: it is charged to whoever truncates, not to whoever wrote).
//!
//! It is what the process *caused*, not what reached the disk: a page dirtied again after an
//! fsync cleaned it counts again, and on kernels whose page cache uses large folios a small
//! append may count a whole folio. Compare engines on the same kernel only, and check a
//! surprising figure against `/proc/diskstats`.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::Path;

/// `write_bytes` per process at one moment, or the knowledge that `/proc` would not tell.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBytesSample {
    /// Bytes written so far per process id.
    pub bytes: BTreeMap<u32, u64>,
    /// A process's `/proc/PID/io` existed but could not be read or parsed (permissions, or
    /// a kernel without I/O accounting): the sample says nothing about the total.
    pub unreadable: bool,
}

impl WriteBytesSample {
    /// Reads every process in `pids`; a process that has exited is left out.
    #[must_use]
    pub fn read(pids: &[u32]) -> WriteBytesSample {
        let mut sample = WriteBytesSample::default();
        for &pid in pids {
            let path = Path::new("/proc").join(pid.to_string()).join("io");
            match std::fs::read_to_string(path) {
                Ok(text) => match parse_write_bytes(&text) {
                    Some(bytes) => {
                        sample.bytes.insert(pid, bytes);
                    }
                    None => sample.unreadable = true,
                },
                Err(error) if error.kind() == ErrorKind::NotFound => {}
                Err(_) => sample.unreadable = true,
            }
        }
        sample
    }

    /// The bytes the processes wrote between `earlier` and this sample, or `None` when
    /// either sample could not read a process or this one found none. A process started in
    /// between counts from zero; one that exited in between is lost, as for CPU time.
    #[must_use]
    pub fn since(&self, earlier: &WriteBytesSample) -> Option<u64> {
        if self.unreadable || earlier.unreadable || self.bytes.is_empty() {
            return None;
        }
        let written = self
            .bytes
            .iter()
            .map(|(pid, &now)| now.saturating_sub(earlier.bytes.get(pid).copied().unwrap_or(0)))
            .sum();
        Some(written)
    }
}

/// The `write_bytes:` line of a `/proc/PID/io` text.
fn parse_write_bytes(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("write_bytes:"))
        .and_then(|value| value.trim().parse().ok())
}

/// Bytes written per operation, or `None` without a measurement or operations.
#[must_use]
pub fn per_op(bytes: Option<u64>, ops: u64) -> Option<f64> {
    crate::cpu::per_op(bytes, ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/proc/PID/io` of a kv-server, as Linux prints it.
    const PROC_IO: &str = "rchar: 4015903\nwchar: 272461\nsyscr: 12946\nsyscw: 394\n\
                           read_bytes: 176128\nwrite_bytes: 421888\n\
                           cancelled_write_bytes: 249856\n";

    #[test]
    fn write_bytes_is_read_not_wchar_or_cancelled_write_bytes() {
        assert_eq!(parse_write_bytes(PROC_IO), Some(421_888));
    }

    #[test]
    fn a_text_without_write_bytes_is_no_sample() {
        assert_eq!(parse_write_bytes("rchar: 1\nwchar: 2\n"), None);
        assert_eq!(parse_write_bytes("write_bytes: lots\n"), None);
        assert_eq!(parse_write_bytes(""), None);
    }

    #[test]
    fn the_window_counts_new_processes_from_zero_and_skips_exited_ones() {
        let earlier = WriteBytesSample {
            bytes: BTreeMap::from([(1, 4096), (2, 8192)]),
            ..WriteBytesSample::default()
        };
        let later = WriteBytesSample {
            bytes: BTreeMap::from([(1, 12_288), (3, 4096)]),
            ..WriteBytesSample::default()
        };
        assert_eq!(later.since(&earlier), Some(8192 + 4096));
    }

    #[test]
    fn an_unreadable_sample_is_absent_never_zero() {
        let readable =
            WriteBytesSample { bytes: BTreeMap::from([(1, 4096)]), ..WriteBytesSample::default() };
        let unreadable = WriteBytesSample { unreadable: true, ..readable.clone() };
        assert_eq!(unreadable.since(&readable), None);
        assert_eq!(readable.since(&unreadable), None);
        assert_eq!(readable.since(&WriteBytesSample::default()), Some(4096));
        assert_eq!(WriteBytesSample::default().since(&readable), None, "no process found");
        assert_eq!(per_op(None, 10), None);
        assert_eq!(per_op(Some(40_960), 10), Some(4096.0));
    }

    #[test]
    fn this_process_can_be_sampled_and_a_missing_one_is_left_out() {
        let sample = WriteBytesSample::read(&[std::process::id(), u32::MAX]);
        assert!(!sample.unreadable, "/proc/self/io is readable by its own process");
        assert!(sample.bytes.contains_key(&std::process::id()));
        assert_eq!(sample.bytes.len(), 1, "a pid that does not exist is not an error");
    }
}
