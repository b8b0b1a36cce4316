//! `kv-bench`: the load-test harness. It launches a cluster of `kv-server` (or `etcd`)
//! processes on loopback, drives a workload through a [`target::Target`] (ours through
//! `kv-client` or through its etcd API, etcd through `etcd-client`), injects faults, and
//! writes a report folder.
//!
//! ```text
//!  CLI ──> cluster (N processes, certs, ports) ──> workers (one shared client) ──> Target
//!            │  faults: SIGKILL/SIGSTOP/SIGCONT/restart      │ per-second rows
//!            └─> /metrics scraper (role, term, log, fsync) ──┴─> summary.json, timeseries.csv,
//!                                                                 *.hdr, charts, report.html
//! ```
//!
//! Every acknowledged write is remembered (version and value hash per key) and read back
//! linearizably at the end; `summary.json` counts the keys verified and missing. The watch
//! workload also checks that every acknowledged write reached every watcher exactly once.
//!
//! # Example
//!
//! ```
//! use kv_bench::parse::{parse_faults, parse_size};
//!
//! let faults = parse_faults("kill:2@10s,restart:2@20s").unwrap();
//! assert_eq!(faults.len(), 2);
//! assert_eq!(parse_size("4MB").unwrap(), 4 << 20);
//! ```

pub mod charts;
pub mod cli;
pub mod cluster;
pub mod comparison;
pub mod cpu;
pub mod disk_probe;
pub mod disk_writes;
mod error;
pub mod floor;
pub mod metrics;
pub mod parse;
pub mod report;
pub mod run;
pub mod scrape;
pub mod seconds;
pub mod system;
pub mod target;
pub mod watch;
pub mod workload;

pub use error::Error;
