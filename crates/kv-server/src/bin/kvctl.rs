//! `kvctl`: the command-line client of the replicated key-value store.
//!
//! Exit codes: 0 success; 1 any other error (bad usage included); 2 timeout or no node
//! reachable; 3 not leader (only with `--no-follow`); 4 version conflict; 5 key not found;
//! 6 outcome unknown (the write's session expired: read to find out whether it applied).

use kv_server::cli::{id_parser, one_line, transport_parser};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use kv_client::protocol::Request;
use kv_client::{
    ClientConfig, ClientId, Consistency, Error, KvClient, LogIndex, NodeId, NodeStatus,
    TransportKind,
};
use serde_json::{Value, json};

/// Exit code: a timeout, or no node reachable.
const EXIT_TIMEOUT: u8 = 2;
/// Exit code: the node is not the leader (with `--no-follow`).
const EXIT_NOT_LEADER: u8 = 3;
/// Exit code: a version conflict.
const EXIT_CONFLICT: u8 = 4;
/// Exit code: the key does not exist.
const EXIT_NOT_FOUND: u8 = 5;
/// Exit code: a write's outcome is unknown (its session expired).
const EXIT_OUTCOME_UNKNOWN: u8 = 6;
/// Exit code: bad usage, or any error without a code of its own.
const EXIT_OTHER: u8 = 1;
/// The longest `--timeout`: a day, far past any useful wait and far from overflowing a
/// deadline.
const TIMEOUT_MS_MAX: u64 = 86_400_000;

/// The command-line client of the replicated key-value store.
///
/// Exit codes: 0 success, 1 other errors, 2 timeout or unreachable, 3 not leader (with
/// --no-follow), 4 version conflict, 5 key not found, 6 outcome unknown (session expired).
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// The nodes' addresses (their `--listen`), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:7001", global = true)]
    endpoints: Vec<SocketAddr>,
    /// The certificates directory (with ca.pem and client-N.pem/.key).
    #[arg(long, default_value = "kv-data/certs", global = true)]
    certs_dir: PathBuf,
    /// Which client certificate to use.
    #[arg(long, default_value_t = 1, global = true, allow_negative_numbers = true,
          value_parser = id_parser())]
    client_id: u64,
    /// The cluster's name.
    #[arg(long, default_value = "kv", global = true,
          value_parser = clap::builder::NonEmptyStringValueParser::new())]
    cluster_id: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text, global = true)]
    output: Output,
    /// The most a command may take, in milliseconds, retries included (at most a day).
    #[arg(long, default_value_t = 5000, global = true, allow_negative_numbers = true,
          value_parser = clap::value_parser!(u64).range(1..=TIMEOUT_MS_MAX))]
    timeout: u64,
    /// Report "not leader" (exit 3) instead of following the redirect.
    #[arg(long, global = true)]
    no_follow: bool,
    /// The wire the nodes speak: quic or tcp (their `--transport`).
    #[arg(long, default_value = "quic", global = true, value_parser = transport_parser)]
    transport: TransportKind,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ReadConsistency {
    Linearizable,
    Stale,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Writes VALUE at KEY.
    Put {
        /// The key.
        key: String,
        /// The value; `-` reads it from standard input (for values too large for an argument).
        value: String,
        /// Write only if the key's version is this (0: only if it does not exist).
        #[arg(long, allow_negative_numbers = true)]
        expect_version: Option<u64>,
    },
    /// Prints the value at KEY.
    Get {
        /// The key.
        key: String,
        /// `stale` lets any node answer from what it has applied.
        #[arg(long, value_enum, default_value_t = ReadConsistency::Linearizable)]
        consistency: ReadConsistency,
    },
    /// Deletes KEY.
    Del {
        /// The key.
        key: String,
        /// Delete only if the key's version is this.
        #[arg(long, allow_negative_numbers = true)]
        expect_version: Option<u64>,
    },
    /// Compare-and-set: writes VALUE at KEY only if its version is VERSION.
    Cas {
        /// The key.
        key: String,
        /// The version the key must have (0: it must not exist).
        version: u64,
        /// The new value.
        value: String,
    },
    /// Lists keys starting with PREFIX.
    Range {
        /// The prefix (empty: all keys).
        #[arg(default_value = "")]
        prefix: String,
        /// The most keys listed (at least 1).
        #[arg(long, default_value_t = 100, allow_negative_numbers = true,
              value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        /// `stale` lets any node answer.
        #[arg(long, value_enum, default_value_t = ReadConsistency::Linearizable)]
        consistency: ReadConsistency,
    },
    /// Shows every endpoint's role, term, indexes and snapshot.
    Status,
    /// Lists, adds or removes members.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Hands leadership to another node.
    #[command(subcommand)]
    Leader(LeaderCommand),
    /// Makes every endpoint snapshot its state and compact its log now.
    Snapshot,
}

#[derive(Debug, Subcommand)]
enum MemberCommand {
    /// Lists the members and their addresses.
    List,
    /// Adds node ID listening at ADDR (as a learner, then a voter).
    Add {
        /// The new node's id.
        #[arg(value_parser = id_parser())]
        id: u64,
        /// Its peer and client address (its --listen), IP:PORT.
        addr: SocketAddr,
        /// Keep it a learner (no vote).
        #[arg(long)]
        learner: bool,
    },
    /// Removes node ID.
    Remove {
        /// The node's id.
        #[arg(value_parser = id_parser())]
        id: u64,
    },
}

#[derive(Debug, Subcommand)]
enum LeaderCommand {
    /// Hands leadership to node ID (default: another voter).
    Transfer {
        /// The node to hand leadership to.
        #[arg(value_parser = id_parser())]
        id: Option<u64>,
    },
}

/// What a command printed and how it ended.
struct Outcome {
    text: String,
    json: Value,
}

/// A failure with its exit code.
struct Failure {
    code: u8,
    json: Value,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if error.use_stderr() => {
            eprintln!("{}", json!({"error": "usage", "message": one_line(&error)}));
            return ExitCode::from(EXIT_OTHER);
        }
        Err(error) => {
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{}", json!({"error": "runtime", "message": error.to_string()}));
            return ExitCode::from(1);
        }
    };
    let output = cli.output;
    match runtime.block_on(run(cli)) {
        Ok(outcome) => {
            match output {
                Output::Text => println!("{}", outcome.text),
                Output::Json => println!("{}", outcome.json),
            }
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("{}", failure.json);
            ExitCode::from(failure.code)
        }
    }
}

async fn run(cli: Cli) -> Result<Outcome, Failure> {
    let mut config = ClientConfig::from_certs_dir(
        cli.endpoints.clone(),
        cli.cluster_id.clone(),
        &cli.certs_dir,
        ClientId(cli.client_id),
    )
    .map_err(|error| failure(&error))?;
    config.timeout = Duration::from_millis(cli.timeout.max(1));
    config.transport = cli.transport;
    config.follow_leader = !cli.no_follow;
    let client = KvClient::new(config).map_err(|error| failure(&error))?;
    let result = execute(&client, &cli).await;
    client.close().await;
    result
}

async fn execute(client: &KvClient, cli: &Cli) -> Result<Outcome, Failure> {
    match &cli.command {
        Command::Put { key, value, expect_version } => {
            put(client, key, value, *expect_version).await
        }
        Command::Cas { key, version, value } => put(client, key, value, Some(*version)).await,
        Command::Del { key, expect_version } => {
            let written = client
                .delete(Bytes::from(key.clone()), *expect_version)
                .await
                .map_err(|error| failure(&error))?;
            let text = format!(
                "OK leader={} index={} deleted={}",
                written.leader, written.index, written.existed
            );
            let json = json!({"ok": true, "leader": written.leader, "index": written.index, "deleted": written.existed});
            Ok(Outcome { text, json })
        }
        Command::Get { key, consistency } => {
            let found = client
                .get(Bytes::from(key.clone()), consistency_of(*consistency))
                .await
                .map_err(|error| failure(&error))?;
            let Some(found) = found else {
                let json = json!({"error": "not_found", "key": key, "message": format!("key {key:?} does not exist")});
                return Err(Failure { code: EXIT_NOT_FOUND, json });
            };
            let value = String::from_utf8_lossy(&found.value).into_owned();
            let meta = found.meta;
            let json = json!({
                "key": key, "value": value, "version": meta.version,
                "create_index": meta.create_index, "mod_index": meta.mod_index,
            });
            Ok(Outcome { text: value, json })
        }
        Command::Range { prefix, limit, consistency } => {
            let (entries, more) = client
                .range(Bytes::from(prefix.clone()), *limit, consistency_of(*consistency))
                .await
                .map_err(|error| failure(&error))?;
            let mut lines = Vec::new();
            let mut items = Vec::new();
            for entry in &entries {
                let key = String::from_utf8_lossy(&entry.key).into_owned();
                let value = String::from_utf8_lossy(&entry.value).into_owned();
                let version = entry.meta.version;
                lines.push(format!("{key}={value} (version {version})"));
                items.push(json!({"key": key, "value": value, "version": version}));
            }
            if more {
                lines.push(format!("... more than {limit} keys"));
            }
            Ok(Outcome { text: lines.join("\n"), json: json!({"entries": items, "more": more}) })
        }
        Command::Status => status(client, &cli.endpoints).await,
        Command::Member(MemberCommand::List) => {
            let (members, leader) = client.members().await.map_err(|error| failure(&error))?;
            let mut lines = Vec::new();
            let mut items = Vec::new();
            for member in &members {
                let role = if member.voter { "voter" } else { "learner" };
                let addr = member.addr.map_or_else(|| "?".to_owned(), |addr| addr.to_string());
                let mark = if Some(member.id) == leader { " (leader)" } else { "" };
                lines.push(format!("{} {role} {addr}{mark}", member.id));
                items.push(json!({"id": member.id, "role": role, "addr": member.addr}));
            }
            Ok(Outcome {
                text: lines.join("\n"),
                json: json!({"members": items, "leader": leader}),
            })
        }
        Command::Member(MemberCommand::Add { id, addr, learner }) => {
            let request =
                Request::MemberAdd { id: NodeId(*id), addr: addr.to_string(), learner: *learner };
            admin(client.admin(request).await)
        }
        Command::Member(MemberCommand::Remove { id }) => {
            admin(client.admin(Request::MemberRemove { id: NodeId(*id) }).await)
        }
        Command::Leader(LeaderCommand::Transfer { id }) => {
            let request = Request::LeaderTransfer { target: id.map(NodeId) };
            admin(client.admin(request).await)
        }
        Command::Snapshot => {
            let mut lines = Vec::new();
            let mut items = Vec::new();
            for &endpoint in &cli.endpoints {
                let (_, index) = client
                    .admin_at(endpoint, &Request::Snapshot)
                    .await
                    .map_err(|error| failure(&error))?;
                lines.push(format!("OK {endpoint} snapshot_index={index}"));
                items.push(json!({"endpoint": endpoint.to_string(), "snapshot_index": index}));
            }
            Ok(Outcome { text: lines.join("\n"), json: json!({"ok": true, "snapshots": items}) })
        }
    }
}

async fn put(
    client: &KvClient,
    key: &str,
    value: &str,
    expect_version: Option<u64>,
) -> Result<Outcome, Failure> {
    let value = if value == "-" {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes).map_err(|error| Failure {
            code: 1,
            json: json!({"error": "stdin", "message": format!("cannot read the value from standard input: {error}")}),
        })?;
        Bytes::from(bytes)
    } else {
        Bytes::from(value.to_owned())
    };
    let written = client
        .put_versioned(Bytes::from(key.to_owned()), value, expect_version)
        .await
        .map_err(|error| failure(&error))?;
    let text = format!("OK leader={} index={}", written.leader, written.index);
    let json = json!({"ok": true, "leader": written.leader, "index": written.index, "version": written.version});
    Ok(Outcome { text, json })
}

fn admin(result: Result<(Option<NodeId>, LogIndex), Error>) -> Result<Outcome, Failure> {
    let (leader, index) = result.map_err(|error| failure(&error))?;
    let leader_text = leader.map_or_else(|| "none".to_owned(), |leader| leader.to_string());
    Ok(Outcome {
        text: format!("OK leader={leader_text} index={index}"),
        json: json!({"ok": true, "leader": leader, "index": index}),
    })
}

async fn status(client: &KvClient, endpoints: &[SocketAddr]) -> Result<Outcome, Failure> {
    let mut rows = vec![format!(
        "{:<22} {:>3} {:<13} {:>5} {:>7} {:>7} {:>9} {:>9} {:>9} {:>12}",
        "ENDPOINT",
        "ID",
        "ROLE",
        "TERM",
        "COMMIT",
        "APPLIED",
        "LOG_FIRST",
        "LOG_LAST",
        "SNAP_IDX",
        "SNAP_BYTES"
    )];
    let mut items = Vec::new();
    let mut reachable = 0;
    for &endpoint in endpoints {
        match client.status_of(endpoint).await {
            Ok(status) => {
                reachable += 1;
                rows.push(status_row(endpoint, &status));
                items.push(json!({
                    "endpoint": endpoint.to_string(), "id": status.id, "role": status.role_name(),
                    "term": status.term, "leader": status.leader,
                    "commit_index": status.commit_index, "applied_index": status.applied_index,
                    "log_first_index": status.log_first_index, "log_last_index": status.log_last_index,
                    "snapshot_index": status.snapshot_index, "snapshot_bytes": status.snapshot_bytes,
                    "keys": status.keys,
                }));
            }
            Err(error) => {
                rows.push(format!("{endpoint:<22} unreachable: {error}"));
                items.push(json!({"endpoint": endpoint.to_string(), "error": error.to_string()}));
            }
        }
    }
    if reachable == 0 {
        let json = json!({"error": "unreachable", "endpoints": items});
        return Err(Failure { code: EXIT_TIMEOUT, json });
    }
    Ok(Outcome { text: rows.join("\n"), json: json!({"nodes": items}) })
}

fn status_row(endpoint: SocketAddr, status: &NodeStatus) -> String {
    format!(
        "{:<22} {:>3} {:<13} {:>5} {:>7} {:>7} {:>9} {:>9} {:>9} {:>12}",
        endpoint.to_string(),
        // The bare numbers: the typed ids' Display ignores the column widths.
        status.id.0,
        status.role_name(),
        status.term.0,
        status.commit_index.0,
        status.applied_index.0,
        status.log_first_index.0,
        status.log_last_index.0,
        status.snapshot_index.0,
        status.snapshot_bytes
    )
}

fn consistency_of(consistency: ReadConsistency) -> Consistency {
    match consistency {
        ReadConsistency::Linearizable => Consistency::Linearizable,
        ReadConsistency::Stale => Consistency::Stale,
    }
}

/// The error's JSON and exit code.
fn failure(error: &Error) -> Failure {
    let message = error.to_string();
    let (code, json) = match error {
        Error::Timeout { .. } => (EXIT_TIMEOUT, json!({"error": "timeout", "message": message})),
        Error::NotLeader { leader, addr, .. } => (
            EXIT_NOT_LEADER,
            json!({
                "error": "not_leader",
                "leader": leader.map(|leader| leader.to_string()),
                "addr": addr,
            }),
        ),
        Error::Conflict { current_version } => (
            EXIT_CONFLICT,
            json!({"error": "conflict", "current_version": current_version, "message": message}),
        ),
        Error::TooLarge { what, bytes, max } => (
            1,
            json!({"error": "too_large", "what": what, "bytes": bytes, "max": max, "message": message}),
        ),
        Error::Invalid { .. } => (1, json!({"error": "invalid", "message": message})),
        Error::SessionExpired { .. } => {
            (EXIT_OUTCOME_UNKNOWN, json!({"error": "session_expired", "message": message}))
        }
        Error::Identity { .. } | Error::Config { .. } => {
            (1, json!({"error": "config", "message": message}))
        }
        _ => (1, json!({"error": "failed", "message": message})),
    };
    Failure { code, json }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expired_session_is_an_unknown_outcome_with_exit_code_6() {
        let error = Error::SessionExpired { reason: "client 7 has no session".to_owned() };
        let failure = failure(&error);
        assert_eq!(failure.code, EXIT_OUTCOME_UNKNOWN);
        assert_eq!(failure.json["error"], "session_expired");
    }
}
