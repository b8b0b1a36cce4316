//! CPU time of processes, read from `/proc/PID/stat`, so a run can report how much CPU the
//! servers (and the load generator) spent per operation.
//!
//! Throughput on a shared 2-core machine says little on its own: both systems are CPU-bound,
//! so the CPU each spends per write is the figure that tells the designs apart.
//!
//! On a virtual machine the host can also take the CPUs away: the machine-wide steal time
//! (`/proc/stat`), read every second, tells a second the host slowed from one the cluster
//! did.

use std::collections::BTreeMap;
use std::path::Path;

use nix::unistd::{SysconfVar, sysconf};
use serde::Serialize;

/// The kernel's clock ticks per second when `sysconf` cannot say (the Linux default).
const CLOCK_TICKS_PER_SECOND_DEFAULT: u64 = 100;

/// CPU time (user + system) per process at one moment, in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuSample {
    /// Microseconds of CPU per process id.
    pub micros: BTreeMap<u32, u64>,
}

impl CpuSample {
    /// Reads every process in `pids`; a process that has exited is left out.
    #[must_use]
    pub fn read(pids: &[u32]) -> CpuSample {
        let ticks = clock_ticks_per_second();
        let micros = pids
            .iter()
            .filter_map(|&pid| {
                let path = Path::new("/proc").join(pid.to_string()).join("stat");
                let stat = std::fs::read_to_string(path).ok()?;
                let ticks_used = parse_cpu_ticks(&stat)?;
                Some((pid, ticks_used.saturating_mul(1_000_000) / ticks))
            })
            .collect();
        CpuSample { micros }
    }

    /// The CPU the processes spent between `earlier` and this sample, in microseconds.
    /// A process started in between counts from zero (all its time is in the window); one
    /// that exited in between is missing from this sample, so its share is lost.
    #[must_use]
    pub fn since(&self, earlier: &CpuSample) -> u64 {
        self.micros
            .iter()
            .map(|(pid, &now)| now.saturating_sub(earlier.micros.get(pid).copied().unwrap_or(0)))
            .sum()
    }
}

/// This process's own CPU time, in microseconds, or `None` where `/proc` cannot tell.
#[must_use]
pub fn own_cpu_micros() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let ticks_used = parse_cpu_ticks(&stat)?;
    Some(ticks_used.saturating_mul(1_000_000) / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> u64 {
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => ticks.unsigned_abs(),
        _ => CLOCK_TICKS_PER_SECOND_DEFAULT,
    }
}

/// utime + stime (fields 14 and 15 of `/proc/PID/stat`), in clock ticks. The command name
/// (field 2) is in parentheses and may hold spaces, so fields are counted after its `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    let mut fields = after_name.split_whitespace();
    // After the name: state (field 3) is the first; utime is field 14, the twelfth here.
    let user: u64 = fields.nth(11)?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// The whole machine's CPU time since boot, summed over its CPUs, in clock ticks: the `cpu`
/// line of `/proc/stat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostCpuSample {
    /// Every kind of time: user, nice, system, idle, iowait, irq, softirq and steal (the
    /// guest columns are already within user and nice).
    pub total: u64,
    /// Time the CPUs ran something: `total` less idle, iowait and steal.
    pub busy: u64,
    /// Time the hypervisor gave this machine's virtual CPUs to someone else while they had
    /// work (0 on bare metal).
    pub steal: u64,
}

impl HostCpuSample {
    /// Reads `/proc/stat`; `None` where it is missing or unparsable (not Linux).
    #[must_use]
    pub fn read() -> Option<HostCpuSample> {
        parse_host_cpu(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// What share of the CPU time between `earlier` and this sample was busy and was
    /// stolen; `None` when no tick passed in between (or the counters went back).
    #[must_use]
    pub fn since(&self, earlier: &HostCpuSample) -> Option<HostShares> {
        let total = self.total.checked_sub(earlier.total).filter(|&total| total > 0)?;
        let share = |now: u64, then: u64| now.saturating_sub(then) as f64 / total as f64;
        Some(HostShares {
            busy_pct: 100.0 * share(self.busy, earlier.busy),
            steal_pct: 100.0 * share(self.steal, earlier.steal),
        })
    }
}

/// The machine's CPU use over an interval, as percentages of all its CPUs' time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct HostShares {
    /// Busy (any process, ours or not).
    pub busy_pct: f64,
    /// Taken by the hypervisor.
    pub steal_pct: f64,
}

/// The `cpu` line of a `/proc/stat` text. Kernels before 2.6.11 print no steal column;
/// those count none.
fn parse_host_cpu(stat: &str) -> Option<HostCpuSample> {
    let line = stat.lines().find(|line| line.split_whitespace().next() == Some("cpu"))?;
    let values: Vec<u64> =
        line.split_whitespace().skip(1).take(8).map(str::parse).collect::<Result<_, _>>().ok()?;
    let [user, nice, system, idle, iowait, irq, softirq] = values.get(..7)?.try_into().ok()?;
    let steal = values.get(7).copied().unwrap_or(0);
    let total = user + nice + system + idle + iowait + irq + softirq + steal;
    Some(HostCpuSample { total, busy: total - idle - iowait - steal, steal })
}

/// CPU per operation in microseconds, or `None` without a measurement or operations.
#[must_use]
pub fn per_op(cpu_micros: Option<u64>, ops: u64) -> Option<f64> {
    match (cpu_micros, ops) {
        (Some(micros), ops) if ops > 0 => Some(micros as f64 / ops as f64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_user_plus_system_even_with_spaces_in_the_name() {
        let stat = "4242 (kv server (x)) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    250 75 0 0 20 0 9 0 12345 1000000 500 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
    }

    #[test]
    fn a_truncated_stat_line_is_no_sample() {
        assert_eq!(parse_cpu_ticks("4242 (kv-server) S 1 2 3"), None);
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn the_window_counts_new_processes_from_zero_and_skips_exited_ones() {
        let earlier = CpuSample { micros: BTreeMap::from([(1, 1_000), (2, 5_000)]) };
        let later = CpuSample { micros: BTreeMap::from([(1, 4_000), (3, 700)]) };
        assert_eq!(later.since(&earlier), 3_000 + 700);
    }

    #[test]
    fn this_process_has_spent_some_cpu() {
        // Burn CPU until even a coarse clock (10 ms ticks) shows some; bounded, so a clock
        // that never moves fails the test rather than hanging it.
        let started = std::time::Instant::now();
        let mut x = 0u64;
        let mut micros = 0;
        while micros == 0 && started.elapsed() < std::time::Duration::from_secs(10) {
            for i in 0..1_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            micros = own_cpu_micros().expect("/proc/self/stat is readable on Linux");
        }
        assert!(micros > 0, "no CPU time after {:?}", started.elapsed());
        let sample = CpuSample::read(&[std::process::id()]);
        assert!(sample.micros[&std::process::id()] > 0);
    }

    #[test]
    fn the_host_line_is_summed_and_steal_set_apart() {
        let stat = "cpu  100 5 30 800 20 1 4 40 7 0\ncpu0 50 2 15 400 10 0 2 20 3 0\nintr 1\n";
        let sample = parse_host_cpu(stat).expect("a cpu line");
        assert_eq!(sample, HostCpuSample { total: 1000, busy: 140, steal: 40 });
        // A kernel too old to print steal.
        let old = parse_host_cpu("cpu 10 0 10 80 0 0 0\n").expect("seven columns");
        assert_eq!(old, HostCpuSample { total: 100, busy: 20, steal: 0 });
        assert_eq!(parse_host_cpu("cpu 1 2 3\n"), None);
        assert_eq!(parse_host_cpu("cpu0 1 2 3 4 5 6 7 8\n"), None, "only the machine's line");
        assert_eq!(parse_host_cpu("cpu 1 x 3 4 5 6 7 8\n"), None);
    }

    #[test]
    fn host_shares_are_of_the_ticks_between_samples() {
        let earlier = HostCpuSample { total: 1_000, busy: 400, steal: 10 };
        let later = HostCpuSample { total: 1_200, busy: 550, steal: 40 };
        let shares = later.since(&earlier).expect("ticks passed");
        assert!((shares.busy_pct - 75.0).abs() < 1e-9, "{shares:?}");
        assert!((shares.steal_pct - 15.0).abs() < 1e-9, "{shares:?}");
        assert_eq!(later.since(&later), None, "no tick passed");
        assert_eq!(earlier.since(&later), None, "counters never go back");
        let read = HostCpuSample::read().expect("/proc/stat is readable on Linux");
        assert!(read.total > 0 && read.busy <= read.total && read.steal <= read.total);
    }

    #[test]
    fn per_op_needs_operations_and_a_measurement() {
        assert_eq!(per_op(Some(2_000), 10), Some(200.0));
        assert_eq!(per_op(Some(2_000), 0), None);
        assert_eq!(per_op(None, 10), None);
    }
}
