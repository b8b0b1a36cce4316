//! `kv-server`: runs one node of the replicated key-value store, or makes certificates.
//!
//! With no flags it runs a single-node cluster on 127.0.0.1:7001 with its data in
//! `./kv-data`, making certificates on first start, and prints how to talk to it.
//!
//! Exit codes: 0 after a clean stop; 2 for bad usage or a malformed setting (a flag or a
//! configuration file value), reported on one line naming it; 1 when the node cannot
//! start or stops on a failure.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use kv_server::cli::{id_parser, one_line};
use kv_server::{Server, Settings};
use raft_core::NodeId;
use raft_net_quic::{ClientId, certs};
use tracing::{error, info};

/// mimalloc rather than glibc's malloc: the write path allocates and frees small buffers
/// (requests, entries, responses) at every hop, and glibc's allocator took about a sixth of
/// the servers' CPU in a 256-client profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One node of the replicated key-value store.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    node: NodeFlags,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Makes a cluster CA and certificates for nodes and clients.
    Certs {
        /// The directory to write them to (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Node ids, comma-separated: `1,2,3`.
        #[arg(long, value_delimiter = ',', required = true, value_parser = id_parser())]
        nodes: Vec<u64>,
        /// Client ids, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1", value_parser = id_parser())]
        clients: Vec<u64>,
        /// IP addresses or DNS names the nodes are reached at, comma-separated, named in
        /// every node certificate (besides localhost, 127.0.0.1 and ::1) so that TLS clients
        /// checking host names (etcd's, with --etcd-tls) accept them.
        #[arg(long, value_delimiter = ',')]
        hosts: Vec<String>,
    },
}

/// The node's settings; a `--config` TOML file may set the same keys (flags win).
#[derive(Debug, Args)]
struct NodeFlags {
    /// A TOML file with the same keys as these flags (`id = 2`, `data-dir = "..."`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// This node's id (default 1).
    #[arg(long, allow_negative_numbers = true)]
    id: Option<u64>,
    /// The address for peers and clients, UDP for QUIC or TCP (default 127.0.0.1:7001).
    #[arg(long)]
    listen: Option<String>,
    /// Every voter, itself included: `1=127.0.0.1:7001,2=127.0.0.1:7002,...` (default: just
    /// this node).
    #[arg(long)]
    peers: Option<String>,
    /// The data directory (default ./kv-data/node-1).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The certificates directory (default ./kv-data/certs).
    #[arg(long)]
    certs_dir: Option<PathBuf>,
    /// The HTTP address for /metrics and /health (default: the --listen port + 100).
    #[arg(long)]
    http: Option<String>,
    /// Snapshot when the log passes this size: `4MB`, `512KiB` (default 64 MiB).
    #[arg(long, allow_negative_numbers = true)]
    snapshot_threshold: Option<String>,
    /// ... and once the log is also this percentage of the latest snapshot's size, so a
    /// snapshot writes no more than the log it frees (default 100; 0: the threshold alone;
    /// at most 10000).
    #[arg(long)]
    snapshot_log_percent: Option<u64>,
    /// The election timeout in milliseconds (default 300, at most 60000).
    #[arg(long, allow_negative_numbers = true)]
    election_timeout_ms: Option<u64>,
    /// The heartbeat interval in milliseconds (default 50, at most 10000).
    #[arg(long, allow_negative_numbers = true)]
    heartbeat_ms: Option<u64>,
    /// The cluster's name; nodes and clients must agree (default `kv`).
    #[arg(long)]
    cluster_id: Option<String>,
    /// Join a running cluster: start with no membership and wait for the leader to add
    /// this node (`kvctl member add ID HOST:PORT`). Only on a fresh data directory.
    #[arg(long)]
    join: bool,
    /// The log engine, `wal` or `redb` (default: the one that wrote the data directory,
    /// else wal). Recorded in the data directory: a directory written by one engine is
    /// refused by the other.
    #[arg(long)]
    storage: Option<String>,
    /// Where etcd's v3 gRPC API listens, on a loopback address (it has no TLS), or `off`
    /// (default: the --listen port + 200 when --listen is loopback, else off).
    #[arg(long)]
    etcd_listen: Option<String>,
    /// Serve etcd's API with TLS: the node's certificate from --certs-dir, and only
    /// clients with a certificate from the cluster's CA (`kv-server certs --clients`).
    /// Needed for an --etcd-listen address beyond loopback.
    #[arg(long)]
    etcd_tls: bool,
    /// Revisions of history kept for watches and reads at past revisions; older ones are
    /// compacted automatically (default 10000). The same on every node.
    #[arg(long)]
    auto_compaction_retention: Option<u64>,
    /// Threads of the node's async runtime (default: one per CPU). Several nodes sharing
    /// a machine's cores run faster with 1 each.
    #[arg(long, allow_negative_numbers = true)]
    worker_threads: Option<u64>,
    /// The wire for peers and clients: quic (default) or tcp (TCP with the same mutual
    /// TLS, cheaper per message). Every node and client of a cluster must use the same.
    #[arg(long)]
    transport: Option<String>,
    /// While a follower, write on the node task when the persistence thread is idle
    /// (default true: a thread wake-up fewer each way per write; false: every write goes
    /// through the persistence thread, so a stalled disk never holds up the ticks).
    #[arg(long, value_name = "true|false")]
    follower_persist_inline: Option<bool>,
}

/// Exit code: bad usage or a malformed setting.
const EXIT_USAGE: u8 = 2;

impl NodeFlags {
    fn settings(self) -> Result<Settings, kv_server::Error> {
        let flags = Settings {
            id: self.id,
            listen: self.listen,
            peers: self.peers,
            data_dir: self.data_dir,
            certs_dir: self.certs_dir,
            http: self.http,
            snapshot_threshold: self.snapshot_threshold,
            snapshot_log_percent: self.snapshot_log_percent,
            election_timeout_ms: self.election_timeout_ms,
            heartbeat_ms: self.heartbeat_ms,
            cluster_id: self.cluster_id,
            join: self.join.then_some(true),
            storage: self.storage,
            etcd_listen: self.etcd_listen,
            etcd_tls: self.etcd_tls.then_some(true),
            auto_compaction_retention: self.auto_compaction_retention,
            worker_threads: self.worker_threads,
            transport: self.transport,
            follower_persist_inline: self.follower_persist_inline,
        };
        Ok(match self.config {
            Some(path) => flags.or(Settings::from_file(&path)?),
            None => flags,
        })
    }
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if error.use_stderr() => {
            eprintln!("kv-server: {}", one_line(&error));
            return ExitCode::from(EXIT_USAGE);
        }
        Err(error) => {
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
    };
    let result = match cli.command {
        Some(Command::Certs { out, nodes, clients, hosts }) => {
            make_certs(&out, &nodes, &clients, &hosts)
        }
        None => match cli.node.settings().and_then(Settings::resolve) {
            Ok(config) => run(config),
            Err(error) => {
                eprintln!("kv-server: {error}");
                return ExitCode::from(EXIT_USAGE);
            }
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kv-server: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn make_certs(
    out: &std::path::Path,
    nodes: &[u64],
    clients: &[u64],
    hosts: &[String],
) -> anyhow::Result<()> {
    let nodes: Vec<NodeId> = nodes.iter().copied().map(NodeId).collect();
    let clients: Vec<ClientId> = clients.iter().copied().map(ClientId).collect();
    certs::generate_for_hosts(out, &nodes, &clients, hosts)?;
    println!(
        "wrote a CA, {} node and {} client certificates to {}",
        nodes.len(),
        clients.len(),
        out.display()
    );
    Ok(())
}

fn run(config: kv_server::ServerConfig) -> anyhow::Result<()> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = config.worker_threads {
        builder.worker_threads(threads.get());
    }
    let runtime = builder.enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let single = config.peers.len() == 1;
        let mut server = Server::start(config).await?;
        let config = server.config().clone();
        print_banner(&config, server.http_addr(), single);
        let reason = tokio::select! {
            signal = shutdown_signal() => signal?,
            failure = server.failure() => {
                error!(%failure, "stopping");
                let _ = server.shutdown().await;
                anyhow::bail!("the raft node stopped: {failure}");
            }
        };
        info!(reason, "stopping");
        server.shutdown().await?;
        Ok(())
    })
}

fn print_banner(config: &kv_server::ServerConfig, http: std::net::SocketAddr, single: bool) {
    let endpoints: Vec<String> = config.peers.values().map(ToString::to_string).collect();
    let endpoints = endpoints.join(",");
    let certs = config.certs_dir.display();
    println!(
        "kv-server node {} serving on {} (metrics: http://{http}/metrics)",
        config.id, config.listen
    );
    println!("  data: {}   certificates: {certs}", config.data_dir.display());
    if single {
        println!("  try:  cargo run -p kv-server --bin kvctl -- put x 1");
        println!("        cargo run -p kv-server --bin kvctl -- get x");
    } else {
        println!("  try:  kvctl --endpoints {endpoints} --certs-dir {certs} status");
    }
}

/// Waits for Ctrl-C or SIGTERM; returns which.
async fn shutdown_signal() -> anyhow::Result<&'static str> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => {
            result.context("cannot listen for Ctrl-C")?;
            Ok("interrupt")
        }
        _ = terminate.recv() => Ok("terminate"),
    }
}
