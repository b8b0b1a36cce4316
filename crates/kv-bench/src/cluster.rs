//! Launching a cluster of `kv-server` or `etcd` processes on loopback, signalling them for
//! the fault schedule, and always killing them at the end (the guard kills on drop).
//! `kv` and `kv-etcd` launch the very same `kv-server` command lines; only the address the
//! workload's client is given differs (QUIC, or the etcd API).

use kv_client::TransportKind;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tracing::{info, warn};

use crate::error::Error;
use crate::metrics::{Samples, http_get};
pub use crate::system::System;
use crate::system::{NodeRole, Protocol, Server};

/// How long a launched cluster may take to serve and elect a leader.
const READY_TIMEOUT: Duration = Duration::from_secs(40);

/// How long a node gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where one node listens.
#[derive(Clone, Debug)]
pub struct NodeEndpoint {
    /// The node's id (1-based).
    pub id: u64,
    /// The address the workload's client connects to: QUIC for `kv`, the etcd v3 gRPC API
    /// (HTTP/2) for `kv-etcd` and etcd.
    pub client_addr: SocketAddr,
    /// The HTTP address serving `/metrics` and `/health`, when known.
    pub metrics_addr: Option<SocketAddr>,
}

/// One launched node process; killed when dropped.
#[derive(Debug)]
pub struct NodeProcess {
    id: u64,
    program: PathBuf,
    args: Vec<String>,
    /// Environment variables set for the process besides the harness's own.
    env: Vec<(String, String)>,
    log_path: PathBuf,
    child: Option<Child>,
    paused: bool,
}

impl NodeProcess {
    /// The running process's id.
    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn start(&mut self) -> Result<(), Error> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|source| Error::io("open", &self.log_path, source))?;
        let log_err =
            log.try_clone().map_err(|source| Error::io("open", &self.log_path, source))?;
        let mut command = Command::new(&self.program);
        command.args(&self.args).stdin(Stdio::null()).stdout(log).stderr(log_err);
        command.envs(self.env.iter().map(|(name, value)| (name, value)));
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "info");
        }
        let child = command.spawn().map_err(|source| Error::Process {
            action: "start",
            program: self.program.display().to_string(),
            source,
        })?;
        info!(node = self.id, pid = child.id(), "node started");
        self.child = Some(child);
        self.paused = false;
        Ok(())
    }

    fn signal(&mut self, signal: Signal) -> Result<(), Error> {
        let Some(child) = &self.child else { return Ok(()) };
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
        kill(pid, signal).map_err(|errno| Error::Process {
            action: "signal",
            program: format!("node {}", self.id),
            source: std::io::Error::from(errno),
        })
    }

    /// SIGKILLs the process and reaps it.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Err(error) = child.kill() {
                warn!(node = self.id, %error, "kill failed");
            }
            let _ = child.wait();
            info!(node = self.id, "node killed");
        }
        self.paused = false;
    }

    /// SIGTERM (after SIGCONT if paused), then SIGKILL after [`STOP_TIMEOUT`].
    fn stop(&mut self) {
        if self.child.is_none() {
            return;
        }
        if self.paused {
            let _ = self.signal(Signal::SIGCONT);
        }
        let _ = self.signal(Signal::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            let exited =
                self.child.as_mut().is_none_or(|child| !matches!(child.try_wait(), Ok(None)));
            if exited {
                self.child = None;
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        warn!(node = self.id, "node ignored SIGTERM; killing it");
        self.kill();
    }

    /// Whether the process exited by itself.
    fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            _ => None,
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The processes of a launched cluster, shared between the fault schedule and the run.
pub type Processes = Arc<Mutex<Vec<NodeProcess>>>;

/// A cluster the harness launched (or `None` processes for `--endpoints`).
#[derive(Debug)]
pub struct Cluster {
    /// Which system runs.
    pub system: System,
    /// Where the nodes listen.
    pub endpoints: Vec<NodeEndpoint>,
    /// The client certificates (ours only).
    pub certs_dir: Option<PathBuf>,
    /// The launched processes, empty for an external cluster.
    pub processes: Processes,
    /// The temporary directory with data and certificates, removed on drop.
    _dir: Option<tempfile::TempDir>,
}

/// What a launch needs.
#[derive(Clone, Debug)]
pub struct LaunchConfig {
    /// Number of nodes (3 or 5).
    pub nodes: u64,
    /// The `kv-server` or `etcd` binary.
    pub program: PathBuf,
    /// The servers' snapshot threshold, as given on the command line (ours only).
    pub snapshot_size: String,
    /// The servers' log engine, `wal` or `redb` (ours only).
    pub storage: String,
    /// Threads per server process (`None`: each server's default).
    pub server_threads: Option<NonZeroUsize>,
    /// The wire our servers speak (ours only).
    pub transport: TransportKind,
    /// Folder for the node logs (`node-N.log`).
    pub log_dir: PathBuf,
}

impl Cluster {
    /// An external cluster: nothing launched, nothing stopped.
    #[must_use]
    pub fn external(
        system: System,
        endpoints: Vec<NodeEndpoint>,
        certs_dir: Option<PathBuf>,
    ) -> Cluster {
        Cluster {
            system,
            endpoints,
            certs_dir,
            processes: Arc::new(Mutex::new(Vec::new())),
            _dir: None,
        }
    }

    /// Launches `config.nodes` processes of `system`'s server in a fresh temporary
    /// directory and waits until they serve and have a leader.
    ///
    /// # Errors
    ///
    /// [`Error::NotReady`] (see the node logs) and process or file errors.
    pub async fn launch(system: System, config: &LaunchConfig) -> Result<Cluster, Error> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("kv-bench-{}-", system.name()))
            .tempdir()
            .map_err(|source| Error::io("create", std::env::temp_dir(), source))?;
        std::fs::create_dir_all(&config.log_dir)
            .map_err(|source| Error::io("create", &config.log_dir, source))?;
        let ids: Vec<u64> = (1..=config.nodes).collect();
        let mut picker = PortPicker::default();
        let ports: Vec<NodePorts> =
            ids.iter().map(|_| NodePorts::pick(&mut picker)).collect::<Result<_, _>>()?;
        let certs_dir = match system.server() {
            Server::KvServer => {
                let certs = dir.path().join("certs");
                make_certs(&config.program, &certs, &ids)?;
                Some(certs)
            }
            Server::Etcd => None,
        };
        let mut endpoints = Vec::new();
        let mut processes = Vec::new();
        for (slot, &id) in ids.iter().enumerate() {
            let (args, endpoint) = match &certs_dir {
                Some(certs) => kv_server_node(system, config, dir.path(), certs, &ports, slot),
                None => etcd_node(dir.path(), &ports, slot),
            };
            let env = server_env(system.server(), config.server_threads);
            let mut process = NodeProcess {
                id,
                program: config.program.clone(),
                args,
                env,
                log_path: config.log_dir.join(format!("{}-node-{id}.log", system.name())),
                child: None,
                paused: false,
            };
            process.start()?;
            processes.push(process);
            endpoints.push(endpoint);
        }
        let cluster = Cluster {
            system,
            endpoints,
            certs_dir,
            processes: Arc::new(Mutex::new(processes)),
            _dir: Some(dir),
        };
        cluster.wait_ready().await?;
        Ok(cluster)
    }

    /// Waits until every node answers `/health` and one of them leads.
    async fn wait_ready(&self) -> Result<(), Error> {
        let started = Instant::now();
        let mut reason = String::from("no check made");
        while started.elapsed() < READY_TIMEOUT {
            if let Some(exit) = self.first_exit() {
                return Err(self.not_ready(started, exit));
            }
            let mut healthy = 0;
            for endpoint in &self.endpoints {
                let Some(addr) = endpoint.metrics_addr else { continue };
                match http_get(addr, "/health", Duration::from_secs(1)).await {
                    Ok((200, _)) => healthy += 1,
                    Ok((status, body)) => {
                        reason = format!("node {} /health: {status} {body}", endpoint.id);
                    }
                    Err(error) => reason = format!("node {} /health: {error}", endpoint.id),
                }
            }
            if healthy == self.endpoints.len() {
                match self.leader().await {
                    Some(leader) => {
                        info!(system = self.system.name(), leader, "cluster ready");
                        return Ok(());
                    }
                    None => reason = "every node serves but none leads yet".to_owned(),
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(self.not_ready(started, reason))
    }

    fn not_ready(&self, started: Instant, reason: String) -> Error {
        Error::NotReady {
            system: self.system.name().to_owned(),
            waited_s: started.elapsed().as_secs(),
            reason,
        }
    }

    fn first_exit(&self) -> Option<String> {
        let mut processes = self.processes.lock().unwrap_or_else(PoisonError::into_inner);
        processes.iter_mut().find_map(|process| {
            let status = process.exited()?;
            Some(format!(
                "node {} exited ({status}); the end of its log {}:\n{}",
                process.id,
                process.log_path.display(),
                log_tail(&process.log_path)
            ))
        })
    }

    /// The id of the node that says it leads, per its `/metrics`.
    pub async fn leader(&self) -> Option<u64> {
        for endpoint in &self.endpoints {
            let Some(addr) = endpoint.metrics_addr else { continue };
            let Ok((200, body)) = http_get(addr, "/metrics", Duration::from_secs(1)).await else {
                continue;
            };
            let samples = Samples::parse(&body);
            if self.system.node_role(&samples) == Some(NodeRole::Leader) {
                return Some(endpoint.id);
            }
        }
        None
    }

    /// Sends a fault to node `id`: kill, restart, pause or resume.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for an unknown node, process errors otherwise.
    pub fn apply(&self, id: u64, action: crate::parse::FaultAction) -> Result<(), Error> {
        use crate::parse::FaultAction;
        let mut processes = self.processes.lock().unwrap_or_else(PoisonError::into_inner);
        let process = processes.iter_mut().find(|process| process.id == id).ok_or_else(|| {
            Error::invalid("fault node", &id.to_string(), "no such launched node")
        })?;
        match action {
            FaultAction::Kill => process.kill(),
            FaultAction::Restart => {
                if process.child.is_some() {
                    process.kill();
                }
                process.start()?;
            }
            FaultAction::Pause => {
                process.signal(Signal::SIGSTOP)?;
                process.paused = true;
            }
            FaultAction::Resume => {
                process.signal(Signal::SIGCONT)?;
                process.paused = false;
            }
        }
        Ok(())
    }

    /// Whether the harness launched the processes (faults need that).
    #[must_use]
    pub fn launched(&self) -> bool {
        !self.processes.lock().unwrap_or_else(PoisonError::into_inner).is_empty()
    }

    /// The process ids of the launched nodes now running (empty for an external cluster).
    #[must_use]
    pub fn server_pids(&self) -> Vec<u32> {
        let processes = self.processes.lock().unwrap_or_else(PoisonError::into_inner);
        processes.iter().filter_map(NodeProcess::pid).collect()
    }

    /// Stops every launched node: SIGTERM, then SIGKILL for those that linger.
    pub fn stop(&self) {
        let mut processes = self.processes.lock().unwrap_or_else(PoisonError::into_inner);
        for process in processes.iter_mut() {
            process.stop();
        }
    }
}

/// The loopback ports of one launched node.
#[derive(Clone, Copy, Debug)]
struct NodePorts {
    /// Ours: the QUIC port, for peers and `kv-client` alike; etcd: the peer port.
    peer: u16,
    /// Ours: the etcd v3 API (`--etcd-listen`); etcd: its client port.
    etcd_api: u16,
    /// Ours: the HTTP port serving `/metrics` and `/health` (etcd serves them on its client
    /// port, so leaves this one unused).
    http: u16,
}

impl NodePorts {
    fn pick(picker: &mut PortPicker) -> Result<NodePorts, Error> {
        Ok(NodePorts { peer: picker.pick()?, etcd_api: picker.pick()?, http: picker.pick()? })
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The command line and endpoint of `kv-server` node `slot` (id `slot + 1`). Every node
/// serves the etcd API on a port picked here, never the QUIC port + 200 default, which
/// another node's picked port could hold; `kv-etcd`'s client connects to it, `kv`'s to
/// the QUIC port. Both systems launch the very same servers.
fn kv_server_node(
    system: System,
    config: &LaunchConfig,
    dir: &Path,
    certs: &Path,
    ports: &[NodePorts],
    slot: usize,
) -> (Vec<String>, NodeEndpoint) {
    let id = slot as u64 + 1;
    let node = ports[slot];
    let peers: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(peer, ports)| format!("{}=127.0.0.1:{}", peer + 1, ports.peer))
        .collect();
    let mut args = vec![
        "--id".into(),
        id.to_string(),
        "--listen".into(),
        loopback(node.peer).to_string(),
        "--peers".into(),
        peers.join(","),
        "--data-dir".into(),
        dir.join(format!("node-{id}")).display().to_string(),
        "--certs-dir".into(),
        certs.display().to_string(),
        "--http".into(),
        loopback(node.http).to_string(),
        "--etcd-listen".into(),
        loopback(node.etcd_api).to_string(),
        "--snapshot-threshold".into(),
        config.snapshot_size.clone(),
        "--storage".into(),
        config.storage.clone(),
        "--cluster-id".into(),
        "kv".into(),
        "--transport".into(),
        config.transport.name().into(),
    ];
    if let Some(threads) = config.server_threads {
        args.extend(["--worker-threads".into(), threads.to_string()]);
    }
    let client_port = match system.protocol() {
        Protocol::KvClient => node.peer,
        Protocol::EtcdClient => node.etcd_api,
    };
    let endpoint = NodeEndpoint {
        id,
        client_addr: loopback(client_port),
        metrics_addr: Some(loopback(node.http)),
    };
    (args, endpoint)
}

/// The environment a server process gets besides the harness's own: Go's runtime takes its
/// thread count from `GOMAXPROCS` (ours takes `--worker-threads` on its command line).
fn server_env(server: Server, threads: Option<NonZeroUsize>) -> Vec<(String, String)> {
    match (server, threads) {
        (Server::Etcd, Some(threads)) => vec![("GOMAXPROCS".to_owned(), threads.to_string())],
        _ => Vec::new(),
    }
}

/// The command line and endpoint of etcd node `slot` (id `slot + 1`).
fn etcd_node(dir: &Path, ports: &[NodePorts], slot: usize) -> (Vec<String>, NodeEndpoint) {
    let id = slot as u64 + 1;
    let node = ports[slot];
    let cluster: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(peer, ports)| format!("n{}=http://127.0.0.1:{}", peer + 1, ports.peer))
        .collect();
    let client_url = format!("http://{}", loopback(node.etcd_api));
    let peer_url = format!("http://{}", loopback(node.peer));
    let args = vec![
        "--name".into(),
        format!("n{id}"),
        "--data-dir".into(),
        dir.join(format!("etcd-{id}")).display().to_string(),
        "--listen-client-urls".into(),
        client_url.clone(),
        "--advertise-client-urls".into(),
        client_url,
        "--listen-peer-urls".into(),
        peer_url.clone(),
        "--initial-advertise-peer-urls".into(),
        peer_url,
        "--initial-cluster".into(),
        cluster.join(","),
        "--initial-cluster-token".into(),
        "kv-bench".into(),
        "--initial-cluster-state".into(),
        "new".into(),
        "--logger".into(),
        "zap".into(),
        "--log-outputs".into(),
        "stderr".into(),
    ];
    let client_addr = loopback(node.etcd_api);
    (args, NodeEndpoint { id, client_addr, metrics_addr: Some(client_addr) })
}

fn make_certs(program: &Path, out: &Path, ids: &[u64]) -> Result<(), Error> {
    let nodes: Vec<String> = ids.iter().map(u64::to_string).collect();
    let output = Command::new(program)
        .arg("certs")
        .arg("--out")
        .arg(out)
        .arg("--nodes")
        .arg(nodes.join(","))
        .arg("--clients")
        .arg("1")
        .output()
        .map_err(|source| Error::Process {
            action: "run",
            program: program.display().to_string(),
            source,
        })?;
    if !output.status.success() {
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        text.truncate(2000);
        return Err(Error::CommandFailed {
            program: format!("{} certs", program.display()),
            status: output.status.to_string(),
            output: text,
        });
    }
    Ok(())
}

fn log_tail(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Picks loopback ports free for both TCP and UDP, never the same one twice.
#[derive(Default)]
struct PortPicker {
    taken: Vec<u16>,
}

impl PortPicker {
    fn pick(&mut self) -> Result<u16, Error> {
        for _ in 0..100 {
            let listener = TcpListener::bind("127.0.0.1:0")
                .map_err(|source| Error::io("bind", "127.0.0.1:0", source))?;
            let port = listener
                .local_addr()
                .map_err(|source| Error::io("bind", "127.0.0.1:0", source))?
                .port();
            let udp_free = UdpSocket::bind(("127.0.0.1", port)).is_ok();
            if udp_free && !self.taken.contains(&port) {
                self.taken.push(port);
                return Ok(port);
            }
        }
        Err(Error::NotFound {
            program: "a free loopback port".to_owned(),
            hint: "too many ports in use".to_owned(),
        })
    }
}

/// Finds the `kv-server` binary: `explicit`, else next to this executable (or its parent
/// folder, for test executables in `target/<profile>/deps`), else on `PATH`.
///
/// # Errors
///
/// [`Error::NotFound`] saying how to build it.
pub fn find_program(explicit: Option<&Path>, name: &str, hint: &str) -> Result<PathBuf, Error> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(Error::NotFound { program: path.display().to_string(), hint: hint.to_owned() })
        };
    }
    if let Ok(exe) = std::env::current_exe() {
        for folder in exe.ancestors().skip(1).take(2) {
            let candidate = folder.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for folder in std::env::split_paths(&paths) {
            let candidate = folder.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(Error::NotFound { program: name.to_owned(), hint: hint.to_owned() })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn launch_config(server_threads: Option<NonZeroUsize>) -> LaunchConfig {
        LaunchConfig {
            nodes: 3,
            program: PathBuf::from("kv-server"),
            snapshot_size: "4MB".to_owned(),
            storage: "wal".to_owned(),
            server_threads,
            transport: TransportKind::Quic,
            log_dir: PathBuf::from("logs"),
        }
    }

    #[test]
    fn server_threads_reach_both_servers_the_way_each_takes_them() {
        let ports = vec![NodePorts { peer: 7001, etcd_api: 7201, http: 7101 }];
        let dir = Path::new("/tmp/run");
        let (args, _) = kv_server_node(System::Kv, &launch_config(None), dir, dir, &ports, 0);
        assert!(!args.contains(&"--worker-threads".to_owned()), "{args:?}");
        let one = NonZeroUsize::new(1);
        let (args, _) = kv_server_node(System::Kv, &launch_config(one), dir, dir, &ports, 0);
        let flag = args.iter().position(|arg| arg == "--worker-threads").unwrap();
        assert_eq!(args[flag + 1], "1");
        assert_eq!(server_env(Server::Etcd, one), vec![("GOMAXPROCS".into(), "1".into())]);
        assert!(server_env(Server::Etcd, None).is_empty());
        assert!(server_env(Server::KvServer, one).is_empty(), "ours takes the flag");
    }
}
