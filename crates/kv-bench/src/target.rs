//! The systems under test behind one interface: ours through `kv-client`; etcd, and ours
//! through its etcd API, through `etcd-client`. The workload only sees [`Target`].

use kv_client::TransportKind;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp, TxnOpResponse, WatchOptions};
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

/// One event a watcher received: the revision that made it and the value written then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchedEvent {
    /// The revision of the write (etcd: the event's mod revision).
    pub revision: u64,
    /// The value written (empty for a delete).
    pub value: Bytes,
}

/// The events of one watch, in the order the server sent them.
pub trait WatchEvents: Send + 'static {
    /// The next response's events (possibly none: a progress notification); `Ok(None)`
    /// when the server closed the stream.
    ///
    /// # Errors
    ///
    /// A description when the stream failed or the server cancelled the watch.
    fn next_events(
        &mut self,
    ) -> impl Future<Output = Result<Option<Vec<WatchedEvent>>, String>> + Send;
}

/// A system the workload can drive. Clones share the connections.
pub trait Target: Clone + Send + Sync + 'static {
    /// A watch's event stream.
    type Watch: WatchEvents;

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

    /// Watches every key starting with `prefix` from the next revision on. Returns the
    /// stream and the first revision it can deliver, once the server confirmed the watch.
    ///
    /// # Errors
    ///
    /// A description when the system cannot watch or refused this watch.
    fn watch_prefix(
        &self,
        prefix: Bytes,
    ) -> impl Future<Output = Result<(Self::Watch, u64), String>> + Send;
}

/// The watch of a client that cannot watch: it never exists, as
/// [`KvTarget::watch_prefix`] refuses every watch.
#[derive(Debug)]
pub enum NoWatch {}

impl WatchEvents for NoWatch {
    async fn next_events(&mut self) -> Result<Option<Vec<WatchedEvent>>, String> {
        match *self {}
    }
}

/// Our store through one shared [`KvClient`]: one QUIC connection per node, every worker's
/// requests multiplexed over it as streams.
#[derive(Clone, Debug)]
pub struct KvTarget {
    client: KvClient,
}

impl KvTarget {
    /// A client for the nodes at `endpoints` over `transport`, with client certificate 1
    /// from `certs_dir`.
    ///
    /// # Errors
    ///
    /// [`Error::KvClient`] when the certificates cannot be loaded.
    pub fn new(
        endpoints: Vec<SocketAddr>,
        certs_dir: &Path,
        transport: TransportKind,
    ) -> Result<KvTarget, Error> {
        let mut config = ClientConfig::from_certs_dir(endpoints, "kv", certs_dir, ClientId(1))?;
        config.transport = transport;
        Ok(KvTarget { client: KvClient::new(config)? })
    }

    /// Closes the connections.
    pub async fn close(&self) {
        self.client.close().await;
    }
}

impl Target for KvTarget {
    type Watch = NoWatch;
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

    async fn watch_prefix(&self, _prefix: Bytes) -> Result<(NoWatch, u64), String> {
        Err("kv-client has no watch; watch through the etcd API (--system kv-etcd)".to_owned())
    }
}

/// etcd (or ours through its etcd API) through one `etcd-client` channel (one HTTP/2
/// connection per endpoint given, every worker's requests multiplexed over it; each watch
/// is one more gRPC stream on it). Versions are mod revisions.
#[derive(Clone)]
pub struct EtcdTarget {
    kv: etcd_client::KvClient,
    watch: etcd_client::WatchClient,
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
        Ok(EtcdTarget { kv: client.kv_client(), watch: client.watch_client() })
    }
}

fn revision(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// One `etcd-client` watch stream carrying a single watcher.
#[derive(Debug)]
pub struct EtcdWatch {
    /// Kept so the request half stays open: dropping it ends the watch.
    stream: etcd_client::WatchStream,
}

impl WatchEvents for EtcdWatch {
    async fn next_events(&mut self) -> Result<Option<Vec<WatchedEvent>>, String> {
        let Some(response) = self.stream.message().await.map_err(|error| error.to_string())? else {
            return Ok(None);
        };
        if response.canceled() {
            return Err(format!(
                "the server cancelled the watch: {:?} (compact revision {})",
                response.cancel_reason(),
                response.compact_revision()
            ));
        }
        // Events are read through `kv()` only: `etcd-client`'s `event_type()` panics on a
        // type it does not know, and every write of the watch workload is a put.
        let events = response
            .events()
            .iter()
            .filter_map(|event| event.kv())
            .map(|kv| WatchedEvent {
                revision: revision(kv.mod_revision()),
                value: Bytes::copy_from_slice(kv.value()),
            })
            .collect();
        Ok(Some(events))
    }
}

impl Target for EtcdTarget {
    type Watch = EtcdWatch;

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

    async fn watch_prefix(&self, prefix: Bytes) -> Result<(EtcdWatch, u64), String> {
        let mut client = self.watch.clone();
        let options = WatchOptions::new().with_prefix();
        let mut stream = client
            .watch(prefix.to_vec(), Some(options))
            .await
            .map_err(|error| error.to_string())?;
        let created = stream
            .message()
            .await
            .map_err(|error| error.to_string())?
            .ok_or_else(|| "the watch stream closed before the watch was created".to_owned())?;
        if !created.created() || created.canceled() {
            return Err(format!(
                "the watch was not created (created {}, cancelled {}: {:?})",
                created.created(),
                created.canceled(),
                created.cancel_reason()
            ));
        }
        // Without a start revision a watch starts after the revision its creation saw.
        let current = created.header().map_or(0, |header| revision(header.revision()));
        Ok((EtcdWatch { stream }, current + 1))
    }
}
