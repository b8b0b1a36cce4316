//! Command-line helpers the two binaries (`kv-server`, `kvctl`) share.

/// A clap value parser for node and client ids, which start at 1.
#[must_use]
pub fn id_parser() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(1..)
}

/// A clap value parser for `--transport`: `quic` or `tcp`.
///
/// # Errors
///
/// The transport's own message for any other name.
pub fn transport_parser(text: &str) -> Result<raft_net_quic::TransportKind, String> {
    text.parse().map_err(|error: raft_net_quic::UnknownTransport| error.to_string())
}

/// A clap error on one line: its message and any context lines, without the usage and
/// help hints that follow (a malformed flag gets a one-line error naming it).
#[must_use]
pub fn one_line(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    rendered
        .lines()
        .map(str::trim)
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more"))
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
