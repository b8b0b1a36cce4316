//! The command line and what it runs: one run, a client-count sweep, or a comparison
//! of two systems (ours and etcd, or ours through two clients).

use kv_client::TransportKind;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use clap::Parser;

use crate::cluster::find_program;
use crate::comparison::{StorageComparison, StorageRow};
use crate::error::Error;
use crate::parse::{parse_clients, parse_duration, parse_faults, parse_size};
use crate::report::{self, Summary};
use crate::run::{RunConfig, run_compare, run_one};
use crate::system::{Protocol, Server, System};
use crate::watch::WATCH_VALUE_BYTES_MIN;
use crate::workload::{WorkloadConfig, WorkloadKind};

/// Watchers of the watch workload when `--watchers` is not given.
const WATCHERS_DEFAULT: usize = 16;

/// Load-test harness: launches a cluster of `kv-server` (or `etcd`) processes on loopback,
/// runs a workload, and writes a report folder with JSON, CSV, HdrHistogram files, charts
/// and an HTML page.
#[derive(Debug, Parser)]
#[command(name = "kv-bench", version)]
pub struct Args {
    /// `write`: clients read and write random keys; `watch`: clients put random keys while
    /// `--watchers` watchers watch them all (through etcd's API: `--system kv-etcd` or
    /// `etcd`), measuring events delivered per second and delivery latency.
    #[arg(long, value_enum, default_value_t = WorkloadKind::Write)]
    pub workload: WorkloadKind,
    /// Watchers of `--workload watch`, each on its own watch stream (default 16).
    #[arg(long)]
    pub watchers: Option<usize>,
    /// Concurrent clients; a list (`20,56,64`) runs one benchmark per count.
    #[arg(long, default_value = "20")]
    pub clients: String,
    /// Fraction of operations that are reads (0 = all writes).
    #[arg(long, default_value_t = 0.0)]
    pub read_ratio: f64,
    /// Bytes per value.
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 10_000)]
    pub keys: u64,
    /// Measured time (after the warmup): `30s`, `2m`.
    #[arg(long, default_value = "30s")]
    pub duration: String,
    /// Time run before measuring.
    #[arg(long, default_value = "3s")]
    pub warmup: String,
    /// Nodes to launch (3 or 5).
    #[arg(long, default_value_t = 3)]
    pub nodes: u64,
    /// The servers' snapshot threshold (`4MB`).
    #[arg(long, default_value = "4MB")]
    pub snapshot_size: String,
    /// Our servers' log engine, `wal` or `redb`; a list (`wal,redb`) runs one benchmark per
    /// engine (reports in `storage-<engine>/`).
    #[arg(long, default_value = "wal")]
    pub storage: String,
    /// Threads each server process runs on: `kv-server --worker-threads N`, and
    /// `GOMAXPROCS=N` for etcd, so a comparison gives both the same (default: each
    /// server's own, one per CPU).
    #[arg(long)]
    pub server_threads: Option<NonZeroUsize>,
    /// The wire our servers and kv-client speak: `quic` or `tcp` (`kv-server
    /// --transport`). etcd is unaffected.
    #[arg(long, default_value = "quic", value_parser = transport_parser)]
    pub transport: TransportKind,
    /// Writes are put-with-expected-version; on a conflict, read and retry.
    #[arg(long)]
    pub occ: bool,
    /// `linearizable` or `stale` reads.
    #[arg(long, default_value = "linearizable")]
    pub consistency: String,
    /// Fault schedule: `kill:2@10s,restart:2@20s,pause:1@30s,resume:1@35s,kill-leader@40s`
    /// (times from the start of the workload, warmup included).
    #[arg(long, default_value = "")]
    pub fault: String,
    /// Report folder (default `bench-results/<timestamp>/`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seed of the workers' random choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// `kv` (ours through kv-client over QUIC), `kv-etcd` (ours through its etcd API with
    /// etcd-client, exactly as etcd is driven) or `etcd`.
    #[arg(long, value_enum, default_value_t = System::Kv)]
    pub system: System,
    /// Also run this system with the same parameters and compare (`etcd`; or `kv` /
    /// `kv-etcd` to compare our two clients). etcd is always the reference of the ratios.
    #[arg(long, value_enum)]
    pub compare: Option<System>,
    /// Target an already running cluster: its client addresses, comma-separated.
    #[arg(long)]
    pub endpoints: Option<String>,
    /// With `--endpoints`: the nodes' HTTP metrics addresses, in the same order.
    #[arg(long)]
    pub metrics_endpoints: Option<String>,
    /// With `--endpoints` (ours): the folder with `ca.pem` and `client-1.pem/.key`.
    #[arg(long)]
    pub certs_dir: Option<PathBuf>,
    /// The `kv-server` binary (default: next to this executable, else on PATH).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// The `etcd` binary (default: on PATH).
    #[arg(long)]
    pub etcd_bin: Option<PathBuf>,
    /// Hide the progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// The engines `--storage` names, in order.
/// Parses `--transport` with the transport's own message for anything else.
fn transport_parser(text: &str) -> Result<TransportKind, String> {
    text.parse().map_err(|error: kv_client::UnknownTransport| error.to_string())
}

fn parse_storage(text: &str) -> Result<Vec<&str>, Error> {
    let engines: Vec<&str> =
        text.split(',').map(str::trim).filter(|part| !part.is_empty()).collect();
    if let Some(unknown) = engines.iter().find(|engine| !matches!(**engine, "wal" | "redb")) {
        return Err(Error::invalid("--storage", unknown, "use wal or redb (or a list of them)"));
    }
    if engines.is_empty() {
        return Err(Error::invalid("--storage", text, "name at least one engine"));
    }
    Ok(engines)
}

fn parse_addrs(what: &'static str, text: &str) -> Result<Vec<SocketAddr>, Error> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            let part = part.trim_start_matches("http://").trim_start_matches("etcd://");
            part.parse().map_err(|_| Error::invalid(what, part, "expected HOST:PORT"))
        })
        .collect()
}

/// The server binary for `system`.
fn program_for(args: &Args, system: System) -> Result<PathBuf, Error> {
    if args.endpoints.is_some() {
        return Ok(PathBuf::new());
    }
    match system.server() {
        Server::KvServer => {
            let hint = "build it with `cargo build -p kv-server` (or pass --server-bin PATH)";
            match find_program(args.server_bin.as_deref(), "kv-server", hint) {
                Err(Error::NotFound { .. }) if args.server_bin.is_none() => build_server(hint),
                found => found,
            }
        }
        Server::Etcd => find_program(
            args.etcd_bin.as_deref(),
            "etcd",
            "install it (Debian: `apt-get install etcd-server`) or pass --etcd-bin PATH",
        ),
    }
}

/// Under `cargo run` without a `kv-server` next to this executable: builds it with the
/// same profile, so `cargo run --release -p kv-bench` needs no build by hand.
fn build_server(hint: &str) -> Result<PathBuf, Error> {
    let not_found = || Error::NotFound { program: "kv-server".to_owned(), hint: hint.to_owned() };
    let (Some(cargo), Ok(exe)) = (std::env::var_os("CARGO"), std::env::current_exe()) else {
        return Err(not_found());
    };
    let release = exe.parent().is_some_and(|folder| folder.ends_with("release"));
    let mut command = std::process::Command::new(cargo);
    command.args(["build", "-p", "kv-server", "--bin", "kv-server"]);
    if release {
        command.arg("--release");
    }
    tracing::info!(release, "kv-server not built yet: building it");
    let status = command.status().map_err(|source| Error::Process {
        action: "run",
        program: "cargo build -p kv-server".to_owned(),
        source,
    })?;
    let built = exe.with_file_name("kv-server");
    if status.success() && built.is_file() { Ok(built) } else { Err(not_found()) }
}

/// The workload `--workload` and `--watchers` ask for: its kind and number of watchers.
///
/// # Errors
///
/// [`Error::Invalid`] for a watch workload a system cannot serve (ours through kv-client
/// has no watch) or knobs it cannot honour, and for `--watchers` without it.
fn workload_kind(args: &Args) -> Result<(WorkloadKind, usize), Error> {
    if args.workload == WorkloadKind::Write {
        return match args.watchers {
            Some(count) => Err(Error::invalid(
                "--watchers",
                &count.to_string(),
                "watchers need --workload watch",
            )),
            None => Ok((WorkloadKind::Write, 0)),
        };
    }
    let systems = std::iter::once(args.system).chain(args.compare);
    if let Some(unwatchable) = systems.into_iter().find(|s| s.protocol() == Protocol::KvClient) {
        return Err(Error::invalid(
            "--workload",
            "watch",
            format!(
                "--system/--compare {} drives kv-client, which has no watch; watch through \
                 the etcd API with --system kv-etcd (or etcd)",
                unwatchable.name()
            ),
        ));
    }
    let refusals = [
        (args.read_ratio > 0.0, "--read-ratio", "the watch workload's clients only write: use 0"),
        (args.occ, "--occ", "the watch workload's clients put unconditionally"),
        (!args.fault.is_empty(), "--fault", "faults would end the watch streams"),
        (
            args.value_size < WATCH_VALUE_BYTES_MIN,
            "--value-size",
            "the watch workload's values start with an 18-byte send time",
        ),
    ];
    if let Some((_, what, reason)) = refusals.into_iter().find(|(refused, ..)| *refused) {
        return Err(Error::invalid(what, "", format!("not with --workload watch: {reason}")));
    }
    let watchers = args.watchers.unwrap_or(WATCHERS_DEFAULT);
    if watchers == 0 {
        return Err(Error::invalid("--watchers", "0", "watch with at least one watcher"));
    }
    Ok((WorkloadKind::Watch, watchers))
}

/// The two systems of `--system A --compare B` as (subject, reference): etcd is always the
/// reference, so ratios read ours / etcd; between our two clients `--compare` names the
/// reference.
///
/// # Errors
///
/// [`Error::Invalid`] when both name the same system.
fn comparison_order(system: System, other: System) -> Result<(System, System), Error> {
    if system == other {
        return Err(Error::invalid("--compare", other.name(), "compare with another system"));
    }
    if system.server() == Server::Etcd { Ok((other, system)) } else { Ok((system, other)) }
}

/// Runs what the command line asks for and prints the text summaries.
///
/// # Errors
///
/// Invalid arguments and every run error.
pub async fn execute(args: Args) -> Result<(), Error> {
    let counts = parse_clients(&args.clients)?;
    let engines = parse_storage(&args.storage)?;
    let (system, compare) = (args.system, args.compare);
    if compare.is_some() && args.endpoints.is_some() {
        return Err(Error::invalid("--compare", "", "comparisons launch both clusters"));
    }
    let order = compare.map(|other| comparison_order(system, other)).transpose()?;
    let (kind, watchers) = workload_kind(&args)?;
    if !(0.0..=1.0).contains(&args.read_ratio) {
        return Err(Error::invalid("--read-ratio", &args.read_ratio.to_string(), "use 0..1"));
    }
    if !matches!(args.nodes, 1..=7) {
        return Err(Error::invalid("--nodes", &args.nodes.to_string(), "use 3 or 5"));
    }
    let linearizable = match args.consistency.as_str() {
        "linearizable" => true,
        "stale" => false,
        other => return Err(Error::invalid("--consistency", other, "linearizable or stale")),
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("bench-results").join(report::timestamp()));
    let base = RunConfig {
        system,
        workload: WorkloadConfig {
            kind,
            watchers,
            clients: counts[0],
            read_ratio: args.read_ratio,
            value_size: args.value_size,
            keys: args.keys.max(1),
            duration: parse_duration(&args.duration)?,
            warmup: parse_duration(&args.warmup)?,
            occ: args.occ,
            linearizable,
            seed: args.seed,
        },
        nodes: args.nodes,
        snapshot_bytes: parse_size(&args.snapshot_size)?,
        snapshot_size: args.snapshot_size.clone(),
        storage: engines[0].to_owned(),
        server_threads: args.server_threads,
        transport: args.transport,
        faults: parse_faults(&args.fault)?,
        endpoints: args.endpoints.as_deref().map(|t| parse_addrs("--endpoints", t)).transpose()?,
        metrics_endpoints: args
            .metrics_endpoints
            .as_deref()
            .map(|text| parse_addrs("--metrics-endpoints", text))
            .transpose()?,
        certs_dir: args.certs_dir.clone(),
        program: program_for(&args, system)?,
        out: out.clone(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        progress: !args.no_progress,
    };
    let other_program = compare.map(|other| program_for(&args, other)).transpose()?;
    let runs = engines.iter().flat_map(|engine| counts.iter().map(move |&count| (engine, count)));
    let mut storage = StorageComparison::default();
    for (engine, clients) in runs {
        let mut config = base.clone();
        config.workload.clients = clients;
        config.storage = (*engine).to_owned();
        let engine_out =
            if engines.len() > 1 { out.join(format!("storage-{engine}")) } else { out.clone() };
        config.out = engine_out.clone();
        if counts.len() > 1 {
            config.out = engine_out.join(format!("clients-{clients}"));
        }
        match (order, &other_program) {
            (Some((subject, _)), Some(program)) => {
                let mut second = config.clone();
                second.system = compare.unwrap_or(system);
                second.program = program.clone();
                let (subject, reference) =
                    if subject == system { (config, second) } else { (second, config) };
                let comparison = run_compare(&subject, &reference).await?;
                eprintln!("{}", comparison.text_line(&subject.out));
                storage.rows.push(storage_row(engine, &comparison.subject, &out, &subject.out));
            }
            _ => {
                let summary = run_one(&config).await?;
                eprint!("{}", report::text_summary(&summary, &config.out));
                storage.rows.push(storage_row(engine, &summary, &out, &config.out));
            }
        }
    }
    if engines.len() > 1 {
        storage.write(&out, &base.command)?;
        eprint!("{}", storage.text_table(&out));
    }
    Ok(())
}

/// The storage table's row of a run whose report (or comparison page) is in `run_out`,
/// linked relative to the sweep's folder `out`.
fn storage_row(engine: &str, summary: &Summary, out: &Path, run_out: &Path) -> StorageRow {
    let run_dir = run_out.strip_prefix(out).unwrap_or(run_out);
    StorageRow::new(engine, summary, &run_dir.join("report.html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Args {
        Args::try_parse_from(std::iter::once("kv-bench").chain(line.split_whitespace())).unwrap()
    }

    fn refusal(line: &str) -> String {
        workload_kind(&args(line)).unwrap_err().to_string()
    }

    #[test]
    fn kv_etcd_parses_as_a_system_and_a_comparison() {
        let parsed = args("--system kv-etcd --compare etcd --clients 20,256");
        assert_eq!(parsed.system, System::KvEtcd);
        assert_eq!(parsed.compare, Some(System::Etcd));
        assert_eq!(parsed.workload, WorkloadKind::Write, "write stays the default");
        assert_eq!(workload_kind(&parsed).unwrap(), (WorkloadKind::Write, 0));
        assert!(Args::try_parse_from(["kv-bench", "--system", "kvetcd"]).is_err());
    }

    #[test]
    fn etcd_is_always_the_reference_of_a_comparison() {
        let ordered = comparison_order(System::KvEtcd, System::Etcd).unwrap();
        assert_eq!(ordered, (System::KvEtcd, System::Etcd));
        let ordered = comparison_order(System::Etcd, System::KvEtcd).unwrap();
        assert_eq!(ordered, (System::KvEtcd, System::Etcd));
        assert_eq!(comparison_order(System::Etcd, System::Kv).unwrap(), (System::Kv, System::Etcd));
        let ours = comparison_order(System::Kv, System::KvEtcd).unwrap();
        assert_eq!(ours, (System::Kv, System::KvEtcd), "--compare names the reference");
        let error = comparison_order(System::Etcd, System::Etcd).unwrap_err().to_string();
        assert!(error.contains("another system"), "{error}");
    }

    #[test]
    fn the_watch_workload_defaults_to_sixteen_watchers() {
        let parsed = args("--system kv-etcd --compare etcd --workload watch --clients 4");
        assert_eq!(workload_kind(&parsed).unwrap(), (WorkloadKind::Watch, 16));
        let parsed = args("--system etcd --workload watch --watchers 3");
        assert_eq!(workload_kind(&parsed).unwrap(), (WorkloadKind::Watch, 3));
    }

    #[test]
    fn watching_through_kv_client_is_refused_with_the_way_out() {
        let error = refusal("--system kv --workload watch");
        assert!(error.contains("kv-client, which has no watch"), "{error}");
        assert!(error.contains("--system kv-etcd"), "{error}");
        let error = refusal("--system kv-etcd --compare kv --workload watch");
        assert!(error.contains("--compare kv drives kv-client"), "{error}");
    }

    #[test]
    fn watch_knobs_it_cannot_honour_are_refused() {
        let base = "--system kv-etcd --workload watch";
        assert!(refusal(&format!("{base} --read-ratio 0.5")).contains("--read-ratio"));
        assert!(refusal(&format!("{base} --occ")).contains("--occ"));
        assert!(refusal(&format!("{base} --fault kill:1@3s")).contains("--fault"));
        assert!(refusal(&format!("{base} --value-size 8")).contains("--value-size"));
        assert!(refusal(&format!("{base} --watchers 0")).contains("at least one watcher"));
        let error = refusal("--system kv-etcd --watchers 4");
        assert!(error.contains("watchers need --workload watch"), "{error}");
    }

    #[test]
    fn storage_lists_name_known_engines_in_order() {
        assert_eq!(parse_storage("wal,redb").unwrap(), vec!["wal", "redb"]);
        assert_eq!(parse_storage(" redb ").unwrap(), vec!["redb"]);
        let error = parse_storage("wal,rocksdb").unwrap_err().to_string();
        assert!(error.contains("rocksdb"), "{error}");
        assert!(parse_storage(",").is_err());
    }
}
