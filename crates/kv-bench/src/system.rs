//! The system under test: ours (`kv-server`) through its own client or its etcd API, or
//! etcd, as the command line names it; which server each launches and which client drives
//! it; and the role a node of either server reports in its metrics.

use kv_client::TransportKind;
use serde::{Serialize, Serializer};

use crate::metrics::Samples;

/// The system under test: a server program driven through one client protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum System {
    /// Our store: `kv-server` processes, reached with `kv-client` over QUIC.
    #[value(alias = "ours")]
    Kv,
    /// Our store: the same `kv-server` processes, reached through their etcd v3 API with
    /// `etcd-client`, the very client and connection model used for etcd.
    KvEtcd,
    /// etcd, reached with `etcd-client`.
    Etcd,
}

/// The server program a system launches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    /// Ours: `kv-server`.
    KvServer,
    /// `etcd`.
    Etcd,
}

/// The client library (and so the protocol) the workload drives a system with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `kv-client`: our protocol over QUIC with mutual TLS.
    KvClient,
    /// `etcd-client`: etcd's v3 gRPC API over plaintext HTTP/2.
    EtcdClient,
}

impl System {
    /// The name used on the command line, in reports and in folder names.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            System::Kv => "kv",
            System::KvEtcd => "kv-etcd",
            System::Etcd => "etcd",
        }
    }

    /// The server program the harness launches for this system.
    #[must_use]
    pub fn server(self) -> Server {
        match self {
            System::Kv | System::KvEtcd => Server::KvServer,
            System::Etcd => Server::Etcd,
        }
    }

    /// The client the workload drives this system with.
    #[must_use]
    pub fn protocol(self) -> Protocol {
        match self {
            System::Kv => Protocol::KvClient,
            System::KvEtcd | System::Etcd => Protocol::EtcdClient,
        }
    }

    /// The role a node reports in its metrics, decoded once for every later use: ours
    /// exports its role in `raft_role`, etcd only whether it leads (`etcd_server_is_leader`),
    /// so an etcd node is a leader or a follower. `None` when the metric is missing or holds
    /// a value the server does not export.
    #[must_use]
    pub fn node_role(self, samples: &Samples) -> Option<NodeRole> {
        match self.server() {
            Server::KvServer => samples.get("raft_role").and_then(NodeRole::from_code),
            Server::Etcd => samples
                .get("etcd_server_is_leader")
                .map(|leads| if leads >= 1.0 { NodeRole::Leader } else { NodeRole::Follower }),
        }
    }
}

impl Server {
    /// The program's name, as reports show it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Server::KvServer => "kv-server",
            Server::Etcd => "etcd",
        }
    }
}

impl Protocol {
    /// The client and protocol, as reports show them (kv-client's over `transport`).
    #[must_use]
    pub fn description(self, transport: TransportKind) -> String {
        match (self, transport) {
            (Protocol::KvClient, TransportKind::Quic) => {
                "kv-client: our protocol over QUIC with mutual TLS".to_owned()
            }
            (Protocol::KvClient, TransportKind::Tcp) => {
                "kv-client: our protocol over TCP with mutual TLS".to_owned()
            }
            (Protocol::EtcdClient, _) => {
                "etcd-client 0.21 (Rust): etcd's v3 gRPC API over plaintext HTTP/2".to_owned()
            }
        }
    }
}

/// A node's Raft role at one scrape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeRole {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asks for pre-votes before starting an election.
    PreCandidate,
    /// Runs an election.
    Candidate,
    /// Leads the cluster.
    Leader,
    /// Receives the log without voting.
    Learner,
}

impl NodeRole {
    /// The number `kv-server` exports in its `raft_role` gauge, which `timeseries.csv` and
    /// `summary.json` also show: 0 follower, 1 pre-candidate, 2 candidate, 3 leader,
    /// 4 learner.
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            NodeRole::Follower => 0,
            NodeRole::PreCandidate => 1,
            NodeRole::Candidate => 2,
            NodeRole::Leader => 3,
            NodeRole::Learner => 4,
        }
    }

    /// The role a `raft_role` gauge value stands for (see [`NodeRole::code`]); `None` for a
    /// value `kv-server` does not export.
    #[must_use]
    pub fn from_code(value: f64) -> Option<NodeRole> {
        // The gauge holds whole numbers; `as` drops any fraction, as the scraper always did.
        match value as u8 {
            0 => Some(NodeRole::Follower),
            1 => Some(NodeRole::PreCandidate),
            2 => Some(NodeRole::Candidate),
            3 => Some(NodeRole::Leader),
            4 => Some(NodeRole::Learner),
            _ => None,
        }
    }
}

/// Written as its [`NodeRole::code`], so `summary.json` keeps its numeric `role` field.
impl Serialize for NodeRole {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(self.code())
    }
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    #[test]
    fn command_line_names_match_report_names() {
        for system in System::value_variants() {
            let parsed = System::from_str(system.name(), false).unwrap();
            assert_eq!(parsed, *system);
        }
        assert_eq!(System::from_str("ours", false).unwrap(), System::Kv);
        assert_eq!(System::from_str("kv-etcd", false).unwrap(), System::KvEtcd);
        assert!(System::from_str("redis", false).is_err());
    }

    #[test]
    fn kv_etcd_launches_our_server_and_speaks_etcds_protocol() {
        assert_eq!(System::KvEtcd.server(), System::Kv.server());
        assert_eq!(System::KvEtcd.protocol(), System::Etcd.protocol());
        assert_eq!(System::Kv.protocol(), Protocol::KvClient);
        assert_eq!(System::Etcd.server(), Server::Etcd);
    }

    #[test]
    fn every_role_code_decodes_to_its_role() {
        for code in 0..=4_u8 {
            let role = NodeRole::from_code(f64::from(code)).unwrap();
            assert_eq!(role.code(), code);
        }
        assert_eq!(NodeRole::from_code(5.0), None);
    }

    #[test]
    fn each_system_reads_the_role_from_its_own_metric() {
        let ours = Samples::parse("raft_role 3\netcd_server_is_leader 0\n");
        assert_eq!(System::Kv.node_role(&ours), Some(NodeRole::Leader));
        assert_eq!(System::Etcd.node_role(&ours), Some(NodeRole::Follower));
        let etcd = Samples::parse("etcd_server_is_leader 1\n");
        assert_eq!(System::Etcd.node_role(&etcd), Some(NodeRole::Leader));
        assert_eq!(System::Kv.node_role(&etcd), None);
        assert_eq!(System::KvEtcd.node_role(&ours), Some(NodeRole::Leader), "our metrics");
    }
}
