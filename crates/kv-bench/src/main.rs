//! `kv-bench`: see `kv-bench --help`.

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// mimalloc, as `kv-server` uses: the load generator shares the machine's cores with the
/// servers it measures (ours and etcd alike), so its allocations should cost little.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,kv_bench=info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
    let args = kv_bench::cli::Args::parse();
    // Ctrl-C drops the run: the cluster guard kills every launched process.
    tokio::select! {
        result = kv_bench::cli::execute(args) => result?,
        _ = tokio::signal::ctrl_c() => anyhow::bail!(kv_bench::Error::Interrupted),
    }
    Ok(())
}
