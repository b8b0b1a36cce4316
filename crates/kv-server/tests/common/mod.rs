//! A cluster of real `kv-server` processes on 127.0.0.1 for end-to-end tests: temporary
//! directories, certificates, free ports, and a guard that kills every process it started.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kv_client::{ClientConfig, ClientId, KvClient, TransportKind};
use serde_json::Value;

pub const SERVER: &str = env!("CARGO_BIN_EXE_kv-server");
pub const KVCTL: &str = env!("CARGO_BIN_EXE_kvctl");

/// The most any wait in these tests may take.
pub const WAIT_MAX: Duration = Duration::from_secs(30);

/// A port free on loopback for UDP (QUIC) and TCP right now, with the ports a node derives
/// from it free too: HTTP at +100 and etcd's API at +200.
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if port > u16::MAX - 200 {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", port + 100)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", port + 200)).is_ok()
        {
            return port;
        }
    }
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub addrs: BTreeMap<u64, SocketAddr>,
    pub processes: BTreeMap<u64, Child>,
    pub extra_flags: Vec<String>,
}

impl Cluster {
    /// Makes certificates and starts `nodes` processes.
    pub fn start(nodes: u64, extra_flags: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<String> = (1..=nodes).map(|id| id.to_string()).collect();
        let status = Command::new(SERVER)
            .args(["certs", "--out"])
            .arg(dir.path().join("certs"))
            .args(["--nodes", &ids.join(","), "--clients", "1"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "certs were made");
        let addrs =
            (1..=nodes).map(|id| (id, SocketAddr::from(([127, 0, 0, 1], free_port())))).collect();
        let mut cluster = Cluster {
            dir,
            addrs,
            processes: BTreeMap::new(),
            extra_flags: extra_flags.iter().map(|flag| (*flag).to_owned()).collect(),
        };
        for id in 1..=nodes {
            cluster.start_node(id);
        }
        cluster
    }

    pub fn certs_dir(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("data-{id}"))
    }

    pub fn peers(&self) -> String {
        let entries: Vec<String> =
            self.addrs.iter().map(|(id, addr)| format!("{id}={addr}")).collect();
        entries.join(",")
    }

    /// Node `id`'s etcd API address (the default: its QUIC port + 200).
    pub fn etcd_addr(&self, id: u64) -> SocketAddr {
        let quic = self.addrs[&id];
        SocketAddr::new(quic.ip(), quic.port() + 200)
    }

    /// Every node's etcd API address, comma-separated (etcdctl's `--endpoints`).
    pub fn etcd_endpoints(&self) -> String {
        let entries: Vec<String> =
            self.addrs.keys().map(|&id| self.etcd_addr(id).to_string()).collect();
        entries.join(",")
    }

    pub fn endpoints(&self) -> String {
        let entries: Vec<String> = self.addrs.values().map(ToString::to_string).collect();
        entries.join(",")
    }

    /// The command line that starts node `id`.
    pub fn server_command(&self, id: u64) -> Command {
        let mut command = Command::new(SERVER);
        command
            .args(["--id", &id.to_string()])
            .args(["--listen", &self.addrs[&id].to_string()])
            .args(["--peers", &self.peers()])
            .arg("--data-dir")
            .arg(self.data_dir(id))
            .arg("--certs-dir")
            .arg(self.certs_dir())
            .args(&self.extra_flags);
        // Fast elections, unless the test sets its own timing.
        if !self.extra_flags.iter().any(|flag| flag == "--election-timeout-ms") {
            command.args(["--heartbeat-ms", "20", "--election-timeout-ms", "200"]);
        }
        command.env("RUST_LOG", "warn").stdout(Stdio::null()).stderr(Stdio::piped());
        command
    }

    /// Node `id`'s HTTP address (its --listen port + 100).
    pub fn http_addr(&self, id: u64) -> SocketAddr {
        let addr = self.addrs[&id];
        SocketAddr::new(addr.ip(), addr.port() + 100)
    }

    /// Node `id`'s Prometheus metrics, as text.
    pub fn metrics(&self, id: u64) -> String {
        metrics_at(self.http_addr(id))
    }

    /// The value of the sample `name` (no labels) in node `id`'s metrics.
    pub fn metric(&self, id: u64, name: &str) -> f64 {
        let text = self.metrics(id);
        let prefix = format!("{name} ");
        let line = text.lines().find(|line| line.starts_with(&prefix));
        let line = line.unwrap_or_else(|| panic!("{name} missing from node {id}'s metrics"));
        line[prefix.len()..].trim().parse().unwrap()
    }

    /// Starts node `id`; its log goes to [`Cluster::log_path`] (appended across restarts).
    pub fn start_node(&mut self, id: u64) {
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.log_path(id)).unwrap();
        let child = self.server_command(id).stderr(log).spawn().unwrap();
        self.processes.insert(id, child);
    }

    /// Where node `id`'s stderr goes.
    pub fn log_path(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("node-{id}.log"))
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.processes.remove(&id) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the process to exit; returns whether it exited cleanly.
    pub fn terminate(&mut self, id: u64) -> bool {
        let mut child = self.processes.remove(&id).unwrap();
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        assert!(status.unwrap().success());
        let deadline = Instant::now() + WAIT_MAX;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("node {id} did not stop within {WAIT_MAX:?} of SIGTERM");
    }

    /// Runs kvctl against every endpoint with `args`.
    pub fn kvctl(&self, args: &[&str]) -> Output {
        self.kvctl_command(args).output().unwrap()
    }

    /// Runs kvctl against the given endpoints.
    pub fn kvctl_at(&self, endpoints: &str, args: &[&str]) -> Output {
        self.kvctl_command_at(endpoints, args).output().unwrap()
    }

    /// A kvctl command line against every endpoint, to run as the caller likes.
    pub fn kvctl_command(&self, args: &[&str]) -> Command {
        self.kvctl_command_at(&self.endpoints(), args)
    }

    /// A kvctl command line against the given endpoints (on the nodes' transport).
    pub fn kvctl_command_at(&self, endpoints: &str, args: &[&str]) -> Command {
        self.kvctl_command_over(self.transport(), endpoints, args)
    }

    /// Runs kvctl against every endpoint over `transport`, whatever the nodes speak.
    pub fn kvctl_over(&self, transport: TransportKind, args: &[&str]) -> Output {
        self.kvctl_command_over(transport, &self.endpoints(), args).output().unwrap()
    }

    fn kvctl_command_over(
        &self,
        transport: TransportKind,
        endpoints: &str,
        args: &[&str],
    ) -> Command {
        let mut command = Command::new(KVCTL);
        command.args(["--endpoints", endpoints]).arg("--certs-dir").arg(self.certs_dir());
        command.args(["--transport", transport.name()]);
        command.args(args);
        command
    }

    /// The transport the nodes were started with (`--transport` among the extra flags).
    pub fn transport(&self) -> TransportKind {
        let flag = self.extra_flags.iter().position(|flag| flag == "--transport");
        flag.and_then(|at| self.extra_flags.get(at + 1))
            .map_or(TransportKind::Quic, |name| name.parse().unwrap())
    }

    /// Every reachable node's status, by id.
    pub fn statuses(&self) -> BTreeMap<u64, Value> {
        let output = self.kvctl(&["--output", "json", "--timeout", "1000", "status"]);
        let mut statuses = BTreeMap::new();
        if let Ok(json) = serde_json::from_slice::<Value>(&output.stdout) {
            for node in json["nodes"].as_array().cloned().unwrap_or_default() {
                if let Some(id) = node["id"].as_u64() {
                    statuses.insert(id, node);
                }
            }
        }
        statuses
    }

    /// Waits until one running node leads, and returns it.
    pub fn leader(&self) -> u64 {
        let deadline = Instant::now() + WAIT_MAX;
        while Instant::now() < deadline {
            let leaders: Vec<u64> = self
                .statuses()
                .into_iter()
                .filter(|(_, status)| status["role"] == "leader")
                .map(|(id, _)| id)
                .collect();
            if leaders.len() == 1 {
                return leaders[0];
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no single leader within {WAIT_MAX:?}");
    }

    /// Waits until `check` holds for node `id`'s status.
    pub fn wait_for_status(&self, id: u64, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT_MAX;
        while Instant::now() < deadline {
            if let Some(status) = self.statuses().get(&id) {
                if check(status) {
                    return status.clone();
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("node {id}: {what} did not happen within {WAIT_MAX:?}: {:?}", self.statuses());
    }

    /// A library client for bulk work.
    pub fn client(&self) -> KvClient {
        let endpoints = self.addrs.values().copied().collect();
        let mut config =
            ClientConfig::from_certs_dir(endpoints, "kv", &self.certs_dir(), ClientId(1)).unwrap();
        config.transport = self.transport();
        KvClient::new(config).unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, mut child) in std::mem::take(&mut self.processes) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The Prometheus metrics served at `http`, as text (blocking).
pub fn metrics_at(http: SocketAddr) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect_timeout(&http, WAIT_MAX).unwrap();
    stream.set_read_timeout(Some(WAIT_MAX)).unwrap();
    stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

/// The JSON kvctl printed on stdout (success) or stderr (failure).
pub fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {}", String::from_utf8_lossy(bytes)))
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_owned()
}

pub fn path_text(path: &Path) -> String {
    path.display().to_string()
}
