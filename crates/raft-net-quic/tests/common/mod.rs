//! Shared test helpers: certificates, a capture of log lines, a small Raft application and
//! clusters of real QUIC nodes on 127.0.0.1.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use raft_core::{
    Config, Entry, EntryPayload, LogIndex, Membership, Message, MessageBody, NodeId, Role,
    Snapshot, Term,
};
use raft_net_quic::certs::CertificateAuthority;
use raft_net_quic::{NetConfig, PeerTransport, QuicNode, TransportKind};
use raft_runtime::{
    Error as RaftError, MemLogStore, MessageSender, Raft, RaftHandle, RuntimeConfig, StateMachine,
    Transport,
};

/// The most any test may take.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A tick short enough for quick elections (10 ticks: 100–200 ms).
pub const TICK: Duration = Duration::from_millis(10);

/// Loopback with an OS-assigned port.
pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Runs a test body under the timeout.
pub async fn bounded<F: Future<Output = ()>>(body: F) {
    capture_logs();
    tokio::time::timeout(TEST_TIMEOUT, body).await.expect("the test finished in time");
}

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends every log line of this test binary (INFO and up) to a buffer the tests read.
pub fn capture_logs() {
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(Arc::clone(&buffer));
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            // Plain text whatever features the workspace unifies (kv-server turns on
            // tracing-subscriber's `ansi`, whose escape codes would split the fields the
            // tests look for).
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buffer
    });
}

/// The captured log lines containing every one of `needles`.
pub fn log_lines(needles: &[&str]) -> Vec<String> {
    let logs = LOGS.get().expect("capture_logs was called");
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    text.lines()
        .filter(|line| needles.iter().all(|needle| line.contains(needle)))
        .map(str::to_owned)
        .collect()
}

/// Waits until a log line contains all of `needles`, and returns it.
pub async fn wait_for_log(needles: &[&str]) -> String {
    loop {
        if let Some(line) = log_lines(needles).into_iter().next() {
            return line;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Records every command it applies, in order; its snapshot carries `padding_bytes` extra
/// bytes, to make large snapshots.
#[derive(Clone, Default)]
pub struct Recording {
    pub applied: Arc<Mutex<Vec<Bytes>>>,
    pub restores: Arc<Mutex<u64>>,
    pub padding_bytes: usize,
}

impl Recording {
    pub fn commands(&self) -> Vec<Bytes> {
        self.applied.lock().unwrap().clone()
    }
}

impl StateMachine for Recording {
    type Response = u64;

    fn apply(&mut self, entries: &[Entry]) -> Vec<u64> {
        let mut applied = self.applied.lock().unwrap();
        entries
            .iter()
            .map(|entry| {
                if let EntryPayload::Command(command) = &entry.payload {
                    applied.push(command.clone());
                }
                applied.len() as u64
            })
            .collect()
    }

    fn snapshot(&mut self) -> impl Future<Output = Result<Bytes, RaftError>> + Send + 'static {
        let mut data = BytesMut::new();
        let applied = self.applied.lock().unwrap();
        data.put_u32(applied.len() as u32);
        for command in applied.iter() {
            data.put_u32(command.len() as u32);
            data.put_slice(command);
        }
        data.put_bytes(0xAB, self.padding_bytes);
        std::future::ready(Ok(data.freeze()))
    }

    async fn restore(&mut self, snapshot: &Snapshot) -> Result<(), RaftError> {
        let mut data = snapshot.data.clone();
        let count = data.get_u32();
        let mut applied = Vec::new();
        for _ in 0..count {
            let length = data.get_u32() as usize;
            applied.push(data.split_to(length));
        }
        *self.applied.lock().unwrap() = applied;
        *self.restores.lock().unwrap() += 1;
        Ok(())
    }
}

/// Binds node `id` on `addr` with a certificate from `ca`.
pub fn bind(
    ca: &CertificateAuthority,
    cluster: &str,
    id: u64,
    addr: SocketAddr,
) -> (QuicNode, PeerTransport) {
    bind_over(TransportKind::Quic, ca, cluster, id, addr)
}

/// A heartbeat from `from` to `to` in term 1.
pub fn heartbeat(from: u64, to: u64, round: u64) -> Message {
    Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(1),
        body: MessageBody::Heartbeat { commit_index: LogIndex(0), round },
    }
}

/// Sends heartbeats from `from` until `to` receives one.
pub async fn exchange(sender: &PeerTransport, receiver: &mut PeerTransport, from: u64, to: u64) {
    let sender = sender.sender();
    for round in 1.. {
        sender.send(heartbeat(from, to, round));
        let wait = tokio::time::timeout(Duration::from_millis(50), receiver.recv()).await;
        if let Ok(Some(message)) = wait {
            assert_eq!(message.from, NodeId(from));
            return;
        }
    }
}

/// Runs the async fn `$test(transport: TransportKind)` as two tests, `$test::quic` and
/// `$test::tcp`.
#[macro_export]
macro_rules! on_both_transports {
    ($test:ident) => {
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn quic() {
                super::$test(raft_net_quic::TransportKind::Quic).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn tcp() {
                super::$test(raft_net_quic::TransportKind::Tcp).await;
            }
        }
    };
}

/// Binds node `id` on `addr` over `transport` with a certificate from `ca`.
pub fn bind_over(
    transport: TransportKind,
    ca: &CertificateAuthority,
    cluster: &str,
    id: u64,
    addr: SocketAddr,
) -> (QuicNode, PeerTransport) {
    let identity = ca.issue_node(NodeId(id)).unwrap().identity;
    let mut config = NetConfig::new(cluster, NodeId(id), addr);
    config.transport = transport;
    config.reconnect_backoff_max = Duration::from_millis(200);
    QuicNode::bind(config, &identity).unwrap()
}

/// Binds `addr`, retrying while the previous socket on it is still being released.
pub async fn bind_again(
    ca: &CertificateAuthority,
    cluster: &str,
    id: u64,
    addr: SocketAddr,
    transport: TransportKind,
) -> (QuicNode, PeerTransport) {
    let identity = ca.issue_node(NodeId(id)).unwrap().identity;
    let mut config = NetConfig::new(cluster, NodeId(id), addr);
    config.reconnect_backoff_max = Duration::from_millis(200);
    config.transport = transport;
    loop {
        match QuicNode::bind(config.clone(), &identity) {
            Ok(bound) => return bound,
            Err(raft_net_quic::Error::Bind { .. } | raft_net_quic::Error::BindTcp { .. }) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("{error}"),
        }
    }
}

pub struct TestNode {
    pub store: MemLogStore,
    pub application: Recording,
    pub quic: Option<QuicNode>,
    pub handle: Option<RaftHandle<u64>>,
    pub addr: SocketAddr,
}

/// A Raft cluster whose nodes talk over real QUIC (or TCP) on 127.0.0.1.
pub struct Cluster {
    pub transport: TransportKind,
    pub ca: CertificateAuthority,
    pub cluster_id: String,
    pub nodes: BTreeMap<NodeId, TestNode>,
    pub tweak: fn(&mut Config),
    pub padding_bytes: usize,
}

pub fn no_tweak(_: &mut Config) {}

impl Cluster {
    /// Binds every node on QUIC, then starts `started` of them (the rest stay down).
    pub async fn start(
        count: u64,
        started: &[u64],
        tweak: fn(&mut Config),
        padding_bytes: usize,
    ) -> Cluster {
        Cluster::start_over(TransportKind::Quic, count, started, tweak, padding_bytes).await
    }

    /// Binds every node on `transport`, then starts `started` of them.
    pub async fn start_over(
        transport: TransportKind,
        count: u64,
        started: &[u64],
        tweak: fn(&mut Config),
        padding_bytes: usize,
    ) -> Cluster {
        let ca = CertificateAuthority::new("test CA").unwrap();
        let ids: Vec<NodeId> = (1..=count).map(NodeId).collect();
        let membership = Membership::with_voters(ids.iter().copied());
        // Reserve an address per node: bind, note the port, release it.
        let mut nodes = BTreeMap::new();
        for &id in &ids {
            let addr = match transport {
                TransportKind::Quic => std::net::UdpSocket::bind(loopback()).unwrap().local_addr(),
                TransportKind::Tcp => std::net::TcpListener::bind(loopback()).unwrap().local_addr(),
            }
            .unwrap();
            let node = TestNode {
                store: MemLogStore::new(membership.clone()),
                application: Recording { padding_bytes, ..Recording::default() },
                quic: None,
                handle: None,
                addr,
            };
            nodes.insert(id, node);
        }
        let cluster_id = "test-cluster".to_owned();
        let mut cluster = Cluster { transport, ca, cluster_id, nodes, tweak, padding_bytes };
        for &id in started {
            cluster.start_node(NodeId(id)).await;
        }
        cluster
    }

    /// Starts (or restarts) `id` from its store, with a fresh application.
    pub async fn start_node(&mut self, id: NodeId) {
        let mut config = Config::new(id);
        (self.tweak)(&mut config);
        let runtime = RuntimeConfig { tick: TICK, seed: 7, ..RuntimeConfig::default() };
        let addresses: Vec<(NodeId, SocketAddr)> =
            self.nodes.iter().map(|(&peer, node)| (peer, node.addr)).collect();
        let (quic, transport) =
            bind_again(&self.ca, &self.cluster_id, id.0, self.nodes[&id].addr, self.transport)
                .await;
        for (peer, addr) in addresses {
            quic.set_peer(peer, addr);
        }
        let node = self.nodes.get_mut(&id).unwrap();
        node.application = Recording { padding_bytes: self.padding_bytes, ..Recording::default() };
        let raft =
            Raft::new(config, runtime, node.store.clone(), transport, node.application.clone());
        node.handle = Some(raft.start().await.unwrap());
        node.quic = Some(quic);
    }

    pub fn handle(&self, id: NodeId) -> RaftHandle<u64> {
        self.nodes[&id].handle.clone().expect("the node is running")
    }

    pub async fn stop_node(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).unwrap();
        let handle = node.handle.take().unwrap();
        handle.shutdown().await.unwrap();
        let quic = node.quic.take().unwrap();
        quic.shutdown().await;
    }

    pub fn running(&self) -> Vec<NodeId> {
        self.nodes.iter().filter(|(_, node)| node.handle.is_some()).map(|(&id, _)| id).collect()
    }

    /// Waits until exactly one node among `among` leads, in a term all of them agree on.
    pub async fn leader_among(&self, among: &[NodeId]) -> NodeId {
        loop {
            let mut leaders = BTreeSet::new();
            let mut views = BTreeSet::new();
            for &id in among {
                let status = self.handle(id).status().await.unwrap();
                if status.role == Role::Leader {
                    leaders.insert(id);
                }
                views.insert((status.term, status.leader));
            }
            if leaders.len() == 1 && views.len() == 1 {
                return *leaders.first().unwrap();
            }
            tokio::time::sleep(TICK).await;
        }
    }

    pub async fn leader(&self) -> NodeId {
        self.leader_among(&self.running()).await
    }

    /// Waits until node `id` has applied `count` commands.
    pub async fn wait_applied(&self, id: NodeId, count: usize) -> Vec<Bytes> {
        loop {
            let commands = self.nodes[&id].application.commands();
            if commands.len() >= count {
                return commands;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub async fn shutdown(mut self) {
        for id in self.running() {
            self.stop_node(id).await;
        }
    }
}
