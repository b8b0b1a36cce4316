//! The node's configuration: command-line flags, an optional TOML file with the same keys,
//! and the defaults that make `kv-server` with no flags a working single-node cluster.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::{NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use raft_core::NodeId;
use raft_net_quic::TransportKind;
use raft_storage::Engine;
use serde::Deserialize;

use crate::error::Error;

/// The peer and client address (QUIC or TCP) of the single-node default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7001";

/// The data directory of the single-node default, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "kv-data/node-1";

/// The certificates directory of the single-node default; `kvctl` looks here by default.
pub const DEFAULT_CERTS_DIR: &str = "kv-data/certs";

/// The cluster name every node and client must agree on, unless set.
pub const DEFAULT_CLUSTER_ID: &str = "kv";

/// The HTTP port is the listen port plus this, unless `--http` is given (7001 → 7101), so
/// nodes started with only `--listen` do not collide.
pub const HTTP_PORT_OFFSET: u16 = 100;

/// The longest heartbeat interval accepted: ten seconds. Slower heartbeats only delay
/// failure detection, and a bound keeps every derived timeout far from overflowing.
pub const HEARTBEAT_MS_MAX: u64 = 10_000;

/// The default election timeout in milliseconds (why 300: see `resolve`).
const ELECTION_TIMEOUT_MS_DEFAULT: u64 = 300;

/// The longest election timeout accepted: one minute. A cluster that waits longer to
/// replace a failed leader is down for that long.
pub const ELECTION_TIMEOUT_MS_MAX: u64 = 60_000;

/// The largest `snapshot-log-percent`: a log 100 times the snapshot. Beyond that the log,
/// held in memory, dwarfs the state it would replay into.
pub const SNAPSHOT_LOG_PERCENT_MAX: u64 = 10_000;

/// The most async runtime threads `worker-threads` accepts.
pub const WORKER_THREADS_MAX: usize = 1024;

/// Every setting, as the command line or the file gives it; unset fields take defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// This node's id.
    pub id: Option<u64>,
    /// The address for peers and clients (a UDP port for QUIC, a TCP port for TCP).
    pub listen: Option<String>,
    /// Every voter, itself included: `1=HOST:PORT,2=HOST:PORT`.
    pub peers: Option<String>,
    /// Where the log, hard state and snapshots live.
    pub data_dir: Option<PathBuf>,
    /// Where `ca.pem`, `node-N.pem` and `node-N.key` are.
    pub certs_dir: Option<PathBuf>,
    /// The HTTP address for `/metrics` and `/health`.
    pub http: Option<String>,
    /// Snapshot once the log holds this many bytes (`4MB`, `512KiB`, `1000`).
    pub snapshot_threshold: Option<String>,
    /// ... and once the log is also this percentage of the latest snapshot's size (default
    /// 100; 0: the threshold alone), so snapshots write no more than the log they free.
    pub snapshot_log_percent: Option<u64>,
    /// The election timeout in milliseconds (randomized up to twice this).
    pub election_timeout_ms: Option<u64>,
    /// The heartbeat interval in milliseconds.
    pub heartbeat_ms: Option<u64>,
    /// The cluster's name.
    pub cluster_id: Option<String>,
    /// Join a running cluster: start with no membership (no vote, no campaign) and wait
    /// for the leader to add this node (`kvctl member add`).
    pub join: Option<bool>,
    /// The log engine: `wal` or `redb`. The data directory records it, and a node is never
    /// started on another engine's files; unset, the directory's engine is used, and a new
    /// directory gets the write-ahead log.
    pub storage: Option<String>,
    /// Where etcd's v3 gRPC API listens: `HOST:PORT` on a loopback address, or `off`
    /// (default: the listen address's IP with its port + 200, when that is loopback).
    pub etcd_listen: Option<String>,
    /// Serve etcd's API over TLS with the node's certificate, accepting only clients with
    /// a certificate from the cluster's CA; required for a non-loopback `etcd-listen`.
    pub etcd_tls: Option<bool>,
    /// How many revisions of history the store keeps for reads at past revisions and
    /// watches (etcd's `--auto-compaction-retention` in revision mode): older ones are
    /// compacted as writes apply. Every node of a cluster must use the same value.
    pub auto_compaction_retention: Option<u64>,
    /// Threads of the node's async runtime (default: one per CPU). Nodes sharing a
    /// machine's cores run faster with fewer each: every extra runnable thread costs
    /// wake-ups and switches (three nodes and a load generator on 2 cores did a quarter
    /// more writes with one each).
    pub worker_threads: Option<u64>,
    /// The wire for peers and clients: `quic` (default) or `tcp` (TCP with the same mutual
    /// TLS). Every node of a cluster, and its clients, must use the same.
    pub transport: Option<String>,
    /// Whether the node, while a follower, writes on its node task when its persistence
    /// thread is idle (default true: one thread wake-up fewer each way per write, and less
    /// CPU; false: every write goes through the persistence thread, so a stalled disk never
    /// holds up the follower's ticks). raft-runtime's `follower_persist_inline`.
    pub follower_persist_inline: Option<bool>,
}

impl Settings {
    /// Reads a TOML file with the same keys as the flags (`id = 1`, `data-dir = "..."`).
    ///
    /// # Errors
    ///
    /// [`Error::ConfigFile`] naming the file when it cannot be read or parsed (unknown keys
    /// included).
    pub fn from_file(path: &Path) -> Result<Settings, Error> {
        let text = std::fs::read_to_string(path).map_err(|error| Error::ConfigFile {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })?;
        toml::from_str(&text).map_err(|error| Error::ConfigFile {
            path: path.to_path_buf(),
            reason: describe_toml_error(&text, &error),
        })
    }

    /// These settings, with every field `self` leaves unset taken from `fallback`.
    #[must_use]
    pub fn or(self, fallback: Settings) -> Settings {
        Settings {
            id: self.id.or(fallback.id),
            listen: self.listen.or(fallback.listen),
            peers: self.peers.or(fallback.peers),
            data_dir: self.data_dir.or(fallback.data_dir),
            certs_dir: self.certs_dir.or(fallback.certs_dir),
            http: self.http.or(fallback.http),
            snapshot_threshold: self.snapshot_threshold.or(fallback.snapshot_threshold),
            snapshot_log_percent: self.snapshot_log_percent.or(fallback.snapshot_log_percent),
            election_timeout_ms: self.election_timeout_ms.or(fallback.election_timeout_ms),
            heartbeat_ms: self.heartbeat_ms.or(fallback.heartbeat_ms),
            cluster_id: self.cluster_id.or(fallback.cluster_id),
            join: self.join.or(fallback.join),
            storage: self.storage.or(fallback.storage),
            etcd_listen: self.etcd_listen.or(fallback.etcd_listen),
            etcd_tls: self.etcd_tls.or(fallback.etcd_tls),
            auto_compaction_retention: self
                .auto_compaction_retention
                .or(fallback.auto_compaction_retention),
            worker_threads: self.worker_threads.or(fallback.worker_threads),
            transport: self.transport.or(fallback.transport),
            follower_persist_inline: self
                .follower_persist_inline
                .or(fallback.follower_persist_inline),
        }
    }

    /// Checks the settings and fills in defaults.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSetting`] naming the setting, its value and the rule it breaks.
    pub fn resolve(self) -> Result<ServerConfig, Error> {
        let id = NodeId(self.id.unwrap_or(1));
        if id.0 == 0 {
            return Err(invalid("id", "0", "node ids start at 1"));
        }
        let listen_text = self.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = parse_addr("listen", &listen_text)?;
        let peers = match &self.peers {
            Some(text) => parse_peers(text)?,
            None => BTreeMap::from([(id, listen)]),
        };
        match peers.get(&id) {
            None => {
                let rule = "must include this node's own id (--id) with its address";
                return Err(invalid("peers", self.peers.as_deref().unwrap_or(""), rule));
            }
            Some(&own) if own != listen && !listen.ip().is_unspecified() => {
                let rule = "this node's entry must match --listen";
                return Err(invalid("peers", &format!("{id}={own} with --listen {listen}"), rule));
            }
            Some(_) => {}
        }
        let http = match self.http {
            Some(text) => parse_addr("http", &text)?,
            None => {
                let Some(port) = listen.port().checked_add(HTTP_PORT_OFFSET) else {
                    let rule = "the default HTTP port (listen port + 100) overflows; set --http";
                    return Err(invalid("listen", &listen_text, rule));
                };
                SocketAddr::new(listen.ip(), port)
            }
        };
        let snapshot_threshold = match self.snapshot_threshold {
            Some(text) => Some(parse_size("snapshot-threshold", &text)?),
            None => None,
        };
        let snapshot_log_percent = self.snapshot_log_percent.unwrap_or(100);
        if snapshot_log_percent > SNAPSHOT_LOG_PERCENT_MAX {
            let rule =
                format!("must be at most {SNAPSHOT_LOG_PERCENT_MAX} (100 times the snapshot)");
            return Err(invalid("snapshot-log-percent", &snapshot_log_percent.to_string(), &rule));
        }
        let heartbeat_ms = self.heartbeat_ms.unwrap_or(50);
        // 300 ms (elections after 300-600 ms of silence): PreVote makes an early timeout
        // harmless (a node that times out while the others still hear the leader wins no
        // pre-vote and bumps no term), so the default can be short enough that the next
        // write after a leader dies is acknowledged within a second.
        let election_timeout_ms = self.election_timeout_ms.unwrap_or(ELECTION_TIMEOUT_MS_DEFAULT);
        if heartbeat_ms == 0 {
            return Err(invalid("heartbeat-ms", "0", "must be at least 1"));
        }
        if heartbeat_ms > HEARTBEAT_MS_MAX {
            let rule = format!("must be at most {HEARTBEAT_MS_MAX} (ten seconds)");
            return Err(invalid("heartbeat-ms", &heartbeat_ms.to_string(), &rule));
        }
        if election_timeout_ms > ELECTION_TIMEOUT_MS_MAX {
            let rule = format!("must be at most {ELECTION_TIMEOUT_MS_MAX} (one minute)");
            return Err(invalid("election-timeout-ms", &election_timeout_ms.to_string(), &rule));
        }
        if election_timeout_ms < 2 * heartbeat_ms {
            let value = format!("{election_timeout_ms} (heartbeat {heartbeat_ms})");
            return Err(invalid(
                "election-timeout-ms",
                &value,
                "must be at least twice heartbeat-ms",
            ));
        }
        let cluster_id = self.cluster_id.unwrap_or_else(|| DEFAULT_CLUSTER_ID.to_owned());
        if cluster_id.is_empty() {
            return Err(invalid("cluster-id", "", "must not be empty"));
        }
        let storage = match self.storage.as_deref() {
            Some(name) => Some(
                name.parse::<Engine>()
                    .map_err(|_| invalid("storage", name, "must be wal or redb"))?,
            ),
            None => None,
        };
        let etcd_tls = self.etcd_tls.unwrap_or(false);
        let etcd_listen = resolve_etcd_listen(self.etcd_listen.as_deref(), listen, etcd_tls)?;
        if self.auto_compaction_retention == Some(0) {
            return Err(invalid("auto-compaction-retention", "0", "must be at least 1 revision"));
        }
        let worker_threads = match self.worker_threads {
            None => None,
            Some(threads) => Some(
                usize::try_from(threads)
                    .ok()
                    .filter(|&threads| threads <= WORKER_THREADS_MAX)
                    .and_then(NonZeroUsize::new)
                    .ok_or_else(|| {
                        let reason = format!("must be 1 to {WORKER_THREADS_MAX}");
                        invalid("worker-threads", &threads.to_string(), &reason)
                    })?,
            ),
        };
        let transport = match self.transport.as_deref() {
            None => TransportKind::default(),
            Some(name) => {
                name.parse().map_err(|_| invalid("transport", name, "must be quic or tcp"))?
            }
        };
        Ok(ServerConfig {
            transport,
            follower_persist_inline: self.follower_persist_inline.unwrap_or(true),
            etcd_listen,
            etcd_tls,
            history_revisions: self.auto_compaction_retention,
            worker_threads,
            id,
            listen,
            peers,
            data_dir: self.data_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            certs_dir: self.certs_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_CERTS_DIR)),
            http,
            snapshot_threshold,
            snapshot_log_percent,
            heartbeat: Duration::from_millis(heartbeat_ms),
            election_timeout: Duration::from_millis(election_timeout_ms),
            cluster_id,
            join: self.join.unwrap_or(false),
            storage,
        })
    }
}

/// A checked configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// This node's id.
    pub id: NodeId,
    /// The address it binds: UDP for QUIC, TCP for TCP.
    pub listen: SocketAddr,
    /// Every voter's address, this node's included.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The certificates directory.
    pub certs_dir: PathBuf,
    /// The HTTP address.
    pub http: SocketAddr,
    /// The log size that triggers a snapshot (`None`: raft-core's default, 64 MiB).
    pub snapshot_threshold: Option<NonZeroU64>,
    /// How large the log must also be, as a percentage of the latest snapshot, before the
    /// next snapshot (raft-core's `snapshot_log_percent_of_snapshot`; 0: off).
    pub snapshot_log_percent: u64,
    /// The heartbeat interval.
    pub heartbeat: Duration,
    /// The election timeout.
    pub election_timeout: Duration,
    /// The cluster's name.
    pub cluster_id: String,
    /// Start as a node joining a running cluster (see [`Settings::join`]).
    pub join: bool,
    /// The log engine asked for; `None`: the one that wrote the data directory, else
    /// [`Engine::default`] (the write-ahead log) for a new one.
    pub storage: Option<Engine>,
    /// Where etcd's v3 API listens; `None`: it is off.
    pub etcd_listen: Option<SocketAddr>,
    /// Whether etcd's v3 API is served over mutual TLS.
    pub etcd_tls: bool,
    /// The revisions of history kept (`None`: kv-store's default).
    pub history_revisions: Option<u64>,
    /// The async runtime's threads (`None`: one per CPU).
    pub worker_threads: Option<NonZeroUsize>,
    /// The wire peers and clients speak.
    pub transport: TransportKind,
    /// Whether a follower writes on its node task while its persistence thread is idle.
    pub follower_persist_inline: bool,
}

/// The etcd API's address: `off`, a `HOST:PORT`, or by default the QUIC IP with the port +
/// 200 (when that IP is loopback, or with TLS). Without TLS the API is never bound beyond
/// loopback.
fn resolve_etcd_listen(
    text: Option<&str>,
    listen: SocketAddr,
    tls: bool,
) -> Result<Option<SocketAddr>, Error> {
    let addr = match text.map(str::trim) {
        Some("off") => return Ok(None),
        Some(text) => parse_addr("etcd-listen", text)?,
        None => match crate::etcd::default_etcd_addr(listen) {
            Some(addr) if tls || addr.ip().is_loopback() => addr,
            _ => return Ok(None),
        },
    };
    if !tls && !addr.ip().is_loopback() {
        let rule = "without --etcd-tls the etcd API is served in plaintext, so only on a \
                    loopback address; add --etcd-tls, or use `off`";
        return Err(invalid("etcd-listen", &addr.to_string(), rule));
    }
    Ok(Some(addr))
}

impl ServerConfig {
    /// The driver's tick: fine enough that the heartbeat and the election timeout are whole
    /// numbers of ticks, and that the election timeout spans many ticks (its randomization
    /// picks among them, so fewer ticks mean more split votes).
    #[must_use]
    pub fn tick(&self) -> Duration {
        let heartbeat_ms = self.heartbeat.as_millis().max(1);
        Duration::from_millis(u64::try_from(heartbeat_ms.min(10)).unwrap_or(10))
    }

    /// The heartbeat interval in ticks.
    #[must_use]
    pub fn heartbeat_ticks(&self) -> u64 {
        ticks(self.heartbeat, self.tick()).max(1)
    }

    /// The election timeout in ticks.
    #[must_use]
    pub fn election_ticks(&self) -> u64 {
        ticks(self.election_timeout, self.tick()).max(self.heartbeat_ticks() + 1)
    }
}

fn ticks(duration: Duration, tick: Duration) -> u64 {
    let tick_ms = tick.as_millis().max(1);
    u64::try_from(duration.as_millis().div_ceil(tick_ms)).unwrap_or(u64::MAX)
}

/// A TOML error on one line: where, which key, and what is wrong (the `toml` crate's own
/// text spans several lines with a drawing of the input).
fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().lines().collect::<Vec<_>>().join(" ");
    let Some(span) = error.span() else {
        return message;
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line_number = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let line = text.get(line_start..).unwrap_or("").lines().next().unwrap_or("");
    match line.split_once('=') {
        Some((key, _)) if !key.trim().is_empty() => {
            format!("line {line_number}, key `{}`: {message}", key.trim())
        }
        _ => format!("line {line_number}: {message}"),
    }
}

fn invalid(setting: &'static str, value: &str, rule: &str) -> Error {
    Error::InvalidSetting { setting, value: value.to_owned(), rule: rule.to_owned() }
}

fn parse_addr(setting: &'static str, text: &str) -> Result<SocketAddr, Error> {
    text.trim().parse().map_err(|_| {
        invalid(setting, text, "must be HOST:PORT with an IP address, like 127.0.0.1:7001")
    })
}

/// Parses `1=127.0.0.1:7001,2=127.0.0.1:7002`.
///
/// # Errors
///
/// [`Error::InvalidSetting`] for an empty list, a malformed entry, id 0 or a repeated id.
pub fn parse_peers(text: &str) -> Result<BTreeMap<NodeId, SocketAddr>, Error> {
    const RULE: &str =
        "must be ID=HOST:PORT entries separated by commas, like 1=127.0.0.1:7001,2=127.0.0.1:7002";
    let mut peers = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
        let Some((id, addr)) = entry.split_once('=') else {
            return Err(invalid("peers", entry, RULE));
        };
        let id: u64 = id.trim().parse().map_err(|_| invalid("peers", entry, RULE))?;
        if id == 0 {
            return Err(invalid("peers", entry, "node ids start at 1"));
        }
        let addr = addr.trim().parse().map_err(|_| invalid("peers", entry, RULE))?;
        if peers.insert(NodeId(id), addr).is_some() {
            return Err(invalid("peers", entry, "each id may appear once"));
        }
    }
    if peers.is_empty() {
        return Err(invalid("peers", text, RULE));
    }
    Ok(peers)
}

/// Parses a size: a number of bytes with an optional unit (`B`, `KB`/`KiB`, `MB`/`MiB`,
/// `GB`/`GiB`; the decimal units are powers of 1,000, the binary ones of 1,024).
///
/// # Errors
///
/// [`Error::InvalidSetting`] for anything else, and for zero.
pub fn parse_size(setting: &'static str, text: &str) -> Result<NonZeroU64, Error> {
    const RULE: &str = "must be a size like 4MB, 512KiB or 1000000";
    let trimmed = text.trim();
    let split = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let number: u64 = digits.parse().map_err(|_| invalid(setting, text, RULE))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1_000,
        "kib" => 1 << 10,
        "mb" | "m" => 1_000_000,
        "mib" => 1 << 20,
        "gb" | "g" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return Err(invalid(setting, text, RULE)),
    };
    let bytes =
        number.checked_mul(multiplier).ok_or_else(|| invalid(setting, text, "is too large"))?;
    NonZeroU64::new(bytes).ok_or_else(|| invalid(setting, text, "must be above zero"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_settings_give_a_single_node_cluster_on_loopback() {
        let config = Settings::default().resolve().unwrap();
        assert_eq!(config.id, NodeId(1));
        assert_eq!(config.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(config.peers.len(), 1);
        assert_eq!(config.http, "127.0.0.1:7101".parse().unwrap());
        assert_eq!(config.heartbeat_ticks(), 5);
        assert_eq!(config.election_ticks(), 30);
    }

    #[test]
    fn sizes_accept_decimal_and_binary_units() {
        assert_eq!(parse_size("s", "4MB").unwrap().get(), 4_000_000);
        assert_eq!(parse_size("s", "4MiB").unwrap().get(), 4 << 20);
        assert_eq!(parse_size("s", "1000").unwrap().get(), 1000);
        assert!(parse_size("s", "0").is_err());
        assert!(parse_size("s", "4 parsecs").is_err());
        assert!(parse_size("s", "MB").is_err());
    }

    #[test]
    fn malformed_peer_lists_are_refused_with_the_entry() {
        let error = parse_peers("1=127.0.0.1:7001,2:127.0.0.1:7002").unwrap_err();
        assert!(error.to_string().contains("2:127.0.0.1:7002"), "{error}");
        assert!(parse_peers("1=127.0.0.1:7001,1=127.0.0.1:7002").is_err());
        assert!(parse_peers("0=127.0.0.1:7001").is_err());
        assert!(parse_peers("").is_err());
        assert!(parse_peers("1=localhost").is_err());
    }

    #[test]
    fn a_toml_error_is_one_line_naming_the_key() {
        let text = "id = 2\nheartbeat-ms = -1\n";
        let error = toml::from_str::<Settings>(text).unwrap_err();
        let described = describe_toml_error(text, &error);
        assert!(described.starts_with("line 2, key `heartbeat-ms`: "), "{described}");
        assert_eq!(described.lines().count(), 1, "{described}");
    }

    #[test]
    fn timings_past_their_maximum_are_refused_without_overflow() {
        let settings = Settings { heartbeat_ms: Some(u64::MAX), ..Settings::default() };
        let error = settings.resolve().unwrap_err().to_string();
        assert!(error.contains("heartbeat-ms"), "{error}");
        let settings = Settings { election_timeout_ms: Some(u64::MAX), ..Settings::default() };
        let error = settings.resolve().unwrap_err().to_string();
        assert!(error.contains("election-timeout-ms"), "{error}");
    }

    #[test]
    fn a_peer_list_without_this_node_is_refused() {
        let settings = Settings {
            id: Some(3),
            peers: Some("1=127.0.0.1:7001,2=127.0.0.1:7002".to_owned()),
            ..Settings::default()
        };
        let error = settings.resolve().unwrap_err().to_string();
        assert!(error.contains("peers") && error.contains("own id"), "{error}");
    }

    #[test]
    fn file_settings_fill_what_flags_leave_unset() {
        let flags = Settings { id: Some(2), ..Settings::default() };
        let file: Settings = toml::from_str("id = 9\nheartbeat-ms = 20\n").unwrap();
        let merged = flags.or(file);
        assert_eq!(merged.id, Some(2));
        assert_eq!(merged.heartbeat_ms, Some(20));
        assert!(toml::from_str::<Settings>("colour = 1").is_err(), "unknown keys are refused");
    }

    #[test]
    fn storage_engine_comes_from_the_file_is_left_to_the_directory_and_must_be_known() {
        assert_eq!(Settings::default().resolve().unwrap().storage, None);
        let file: Settings = toml::from_str("storage = \"redb\"\n").unwrap();
        assert_eq!(file.resolve().unwrap().storage, Some(Engine::Redb));
        let settings = Settings { storage: Some("rocksdb".to_owned()), ..Settings::default() };
        let error = settings.resolve().unwrap_err().to_string();
        assert!(error.contains("storage") && error.contains("rocksdb"), "{error}");
    }

    #[test]
    fn the_etcd_api_listens_on_loopback_only_by_default_at_the_quic_port_plus_200() {
        let config = Settings::default().resolve().unwrap();
        assert_eq!(config.etcd_listen, Some("127.0.0.1:7201".parse().unwrap()));
        let wide = Settings { listen: Some("0.0.0.0:7001".to_owned()), ..Settings::default() };
        assert_eq!(wide.resolve().unwrap().etcd_listen, None);
        let off = Settings { etcd_listen: Some("off".to_owned()), ..Settings::default() };
        assert_eq!(off.resolve().unwrap().etcd_listen, None);
        let open = Settings { etcd_listen: Some("0.0.0.0:2379".to_owned()), ..Settings::default() };
        let error = open.clone().resolve().unwrap_err().to_string();
        assert!(error.contains("etcd-listen") && error.contains("loopback"), "{error}");
        let secured = Settings { etcd_tls: Some(true), ..open }.resolve().unwrap();
        assert_eq!(secured.etcd_listen, Some("0.0.0.0:2379".parse().unwrap()));
        assert!(secured.etcd_tls);
        let zero = Settings { auto_compaction_retention: Some(0), ..Settings::default() }.resolve();
        assert!(zero.unwrap_err().to_string().contains("auto-compaction-retention"));
    }

    #[test]
    fn transport_is_quic_by_default_tcp_on_request_and_nothing_else() {
        assert_eq!(Settings::default().resolve().unwrap().transport, TransportKind::Quic);
        let tcp = Settings { transport: Some("tcp".to_owned()), ..Settings::default() };
        assert_eq!(tcp.resolve().unwrap().transport, TransportKind::Tcp);
        let error = Settings { transport: Some("udp".to_owned()), ..Settings::default() }
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(error.contains("transport") && error.contains("quic or tcp"), "{error}");
        let file: Settings = toml::from_str("transport = \"tcp\"").unwrap();
        assert_eq!(file.transport.as_deref(), Some("tcp"));
    }

    #[test]
    fn worker_threads_are_one_to_the_maximum_or_the_runtimes_default() {
        assert_eq!(Settings::default().resolve().unwrap().worker_threads, None);
        let one = Settings { worker_threads: Some(1), ..Settings::default() }.resolve();
        assert_eq!(one.unwrap().worker_threads, NonZeroUsize::new(1));
        for bad in [0, WORKER_THREADS_MAX as u64 + 1] {
            let error = Settings { worker_threads: Some(bad), ..Settings::default() }
                .resolve()
                .unwrap_err()
                .to_string();
            assert!(error.contains("worker-threads") && error.contains("1 to"), "{error}");
        }
        let file: Settings = toml::from_str("worker-threads = 2").unwrap();
        assert_eq!(file.worker_threads, Some(2));
    }

    #[test]
    fn snapshot_log_percent_defaults_to_the_snapshots_size_and_is_bounded() {
        assert_eq!(Settings::default().resolve().unwrap().snapshot_log_percent, 100);
        let off = Settings { snapshot_log_percent: Some(0), ..Settings::default() }.resolve();
        assert_eq!(off.unwrap().snapshot_log_percent, 0);
        let error = Settings {
            snapshot_log_percent: Some(SNAPSHOT_LOG_PERCENT_MAX + 1),
            ..Settings::default()
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(error.contains("snapshot-log-percent") && error.contains("at most"), "{error}");
        let file: Settings = toml::from_str("snapshot-log-percent = 250").unwrap();
        assert_eq!(file.snapshot_log_percent, Some(250));
    }

    #[test]
    fn followers_write_on_their_node_task_unless_told_not_to() {
        assert!(Settings::default().resolve().unwrap().follower_persist_inline);
        let file: Settings = toml::from_str("follower-persist-inline = false").unwrap();
        assert!(!file.clone().resolve().unwrap().follower_persist_inline);
        // A flag left unset takes the file's value; a flag set wins.
        let flags = Settings { follower_persist_inline: Some(true), ..Settings::default() };
        assert!(flags.or(file.clone()).resolve().unwrap().follower_persist_inline);
        assert!(!Settings::default().or(file).resolve().unwrap().follower_persist_inline);
        assert!(toml::from_str::<Settings>("follower-persist-inline = 1").is_err());
    }
}
