//! The systems under test behind one interface: ours through `kv-client`; etcd, and ours
//! through its etcd API, through `etcd-client`. The workload only sees [`Target`].

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp, TxnOpResponse};
use kv_client::{ClientConfig, ClientId, Consistency, KvClient};

use crate::error::Error;

/// The outcome of a (possibly conditional) write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutResult {
    /// Written; the key's new version (ours: the key's version; etcd: its mod revision).
    Written {
        /// The version to expect on a later read.
        version: u64,
    },
    /// The expected version did not match.
    Conflict {
        /// The key's version now, if the answer carried it.
        current: Option<u64>,
    },
}

/// A key's value and version as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadValue {
    /// The value.
    pub value: Bytes,
    /// Its version (comparable with [`PutResult::Written`]'s).
    pub version: u64,
}

/// A system the workload can drive. Clones share the connections.
pub trait Target: Clone + Send + Sync + 'static {
    /// Writes `value` at `key`; with `expect`, only if the key is at that version (0: only if
    /// the key does not exist).
    fn put(
        &self,
        key: Bytes,
        value: Bytes,
        expect: Option<u64>,
    ) -> impl Future<Output = Result<PutResult, String>> + Send;

    /// Reads `key`, linearizably or from any node (`linearizable == false`).
    fn get(
        &self,
        key: Bytes,
        linearizable: bool,
    ) -> impl Future<Output = Result<Option<ReadValue>, String>> + Send;
}

/// Our store through one shared [`KvClient`]: one QUIC connection per node, every worker's
/// requests multiplexed over it as streams.
#[derive(Clone, Debug)]
pub struct KvTarget {
    client: KvClient,
}

impl KvTarget {
    /// A client for the nodes at `endpoints`, with client certificate 1 from `certs_dir`.
    ///
    /// # Errors
    ///
    /// [`Error::KvClient`] when the certificates cannot be loaded.
    pub fn new(endpoints: Vec<SocketAddr>, certs_dir: &Path) -> Result<KvTarget, Error> {
        let config = ClientConfig::from_certs_dir(endpoints, "kv", certs_dir, ClientId(1))?;
        Ok(KvTarget { client: KvClient::new(config)? })
    }

    /// Closes the connections.
    pub async fn close(&self) {
        self.client.close().await;
    }
}

impl Target for KvTarget {
    async fn put(
        &self,
        key: Bytes,
        value: Bytes,
        expect: Option<u64>,
    ) -> Result<PutResult, String> {
        match self.client.put_versioned(key, value, expect).await {
            Ok(outcome) => Ok(PutResult::Written { version: outcome.version }),
            Err(kv_client::Error::Conflict { current_version }) => {
                Ok(PutResult::Conflict { current: current_version })
            }
            Err(error) => Err(error.to_string()),
        }
    }

    async fn get(&self, key: Bytes, linearizable: bool) -> Result<Option<ReadValue>, String> {
        let consistency = if linearizable { Consistency::Linearizable } else { Consistency::Stale };
        match self.client.get(key, consistency).await {
            Ok(found) => {
                Ok(found.map(|entry| ReadValue { value: entry.value, version: entry.meta.version }))
            }
            Err(error) => Err(error.to_string()),
        }
    }
}

/// etcd (or ours through its etcd API) through one `etcd-client` channel (one HTTP/2
/// connection per endpoint given, every worker's requests multiplexed over it). Versions
/// are mod revisions.
#[derive(Clone)]
pub struct EtcdTarget {
    kv: etcd_client::KvClient,
}

impl std::fmt::Debug for EtcdTarget {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("EtcdTarget")
    }
}

impl EtcdTarget {
    /// Connects to the etcd nodes at `endpoints`.
    ///
    /// # Errors
    ///
    /// [`Error::Etcd`] when no connection can be made.
    pub async fn connect(endpoints: &[SocketAddr]) -> Result<EtcdTarget, Error> {
        let urls: Vec<String> = endpoints.iter().map(|addr| format!("http://{addr}")).collect();
        let options = etcd_client::ConnectOptions::new()
            .with_timeout(std::time::Duration::from_secs(5))
            .with_connect_timeout(std::time::Duration::from_secs(2));
        let client = etcd_client::Client::connect(urls, Some(options)).await?;
        Ok(EtcdTarget { kv: client.kv_client() })
    }
}

fn revision(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl Target for EtcdTarget {
    async fn put(
        &self,
        key: Bytes,
        value: Bytes,
        expect: Option<u64>,
    ) -> Result<PutResult, String> {
        let mut kv = self.kv.clone();
        let Some(expect) = expect else {
            let response = kv.put(key.to_vec(), value.to_vec(), None).await;
            let response = response.map_err(|error| error.to_string())?;
            let version = response.header().map_or(0, |header| revision(header.revision()));
            return Ok(PutResult::Written { version });
        };
        let expect = i64::try_from(expect).unwrap_or(i64::MAX);
        let txn = Txn::new()
            .when(vec![Compare::mod_revision(key.to_vec(), CompareOp::Equal, expect)])
            .and_then(vec![TxnOp::put(key.to_vec(), value.to_vec(), None)])
            .or_else(vec![TxnOp::get(key.to_vec(), None)]);
        let response = kv.txn(txn).await.map_err(|error| error.to_string())?;
        if response.succeeded() {
            let version = response.header().map_or(0, |header| revision(header.revision()));
            return Ok(PutResult::Written { version });
        }
        let current = response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => {
                Some(get.kvs().first().map_or(0, |entry| revision(entry.mod_revision())))
            }
            _ => None,
        });
        Ok(PutResult::Conflict { current })
    }

    async fn get(&self, key: Bytes, linearizable: bool) -> Result<Option<ReadValue>, String> {
        let mut kv = self.kv.clone();
        let options = if linearizable { None } else { Some(GetOptions::new().with_serializable()) };
        let response = kv.get(key.to_vec(), options).await.map_err(|error| error.to_string())?;
        Ok(response.kvs().first().map(|entry| ReadValue {
            value: Bytes::copy_from_slice(entry.value()),
            version: revision(entry.mod_revision()),
        }))
    }
}
