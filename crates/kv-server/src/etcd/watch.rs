//! The Watch service: one task per stream delivers each watcher's events in revision
//! order, exactly once, from the store's bounded history.
//!
//! Every applied batch wakes the stream's task ([`EtcdApi`]'s revision channel), which
//! reads `KvStore::events_since` for each watcher from the revision it delivered last.
//! Nothing is copied per watcher ahead of time, so memory is bounded by the store's
//! history (which `history_revisions_max` bounds) plus a small buffer of responses per
//! stream. A client that stops reading holds up only its own stream: its task waits for
//! buffer space, and if the history it still needs is compacted away meanwhile, each
//! affected watcher is cancelled with the compaction revision, as etcd does.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::Duration;

use etcd_client::proto::{PbWatchRequest, PbWatchRequestUnion, PbWatchResponse, PbWatchService};
use kv_store::{EventKind, KeyRange, Rejection};
use tokio::sync::mpsc;
use tokio::sync::watch as tokio_watch;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use tracing::debug;

use super::{EtcdApi, convert, to_i64};

/// Responses buffered per stream before its task waits for the client.
const RESPONSES_BUFFERED: usize = 64;

/// The most events in one response.
const EVENTS_PER_RESPONSE: usize = 256;

/// How often a watcher that asked for progress notifications gets one (etcd's default).
const PROGRESS_NOTIFY_INTERVAL: Duration = Duration::from_secs(600);

/// The watch id etcd puts on a progress response that is for every watcher of a stream.
const ALL_WATCHERS: i64 = -1;

/// etcd's filter values.
const FILTER_NO_PUT: i32 = 0;
const FILTER_NO_DELETE: i32 = 1;

type WatchStream = Pin<Box<dyn Stream<Item = Result<PbWatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl PbWatchService for EtcdApi {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<Streaming<PbWatchRequest>>,
    ) -> Result<Response<WatchStream>, Status> {
        self.check_serving()?;
        let (sender, receiver) = mpsc::channel(RESPONSES_BUFFERED);
        let stream = WatchStreamTask {
            api: self.clone(),
            revisions: self.inner.revisions.clone(),
            watchers: BTreeMap::new(),
            next_id: 0,
            sender,
        };
        tokio::spawn(stream.run(request.into_inner()));
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))))
    }
}

/// One watcher of a stream.
struct Watcher {
    range: KeyRange,
    /// The first revision not yet delivered.
    next: u64,
    prev_kv: bool,
    no_put: bool,
    no_delete: bool,
    progress_notify: bool,
}

/// The client hung up: the stream's task ends.
struct Gone;

struct WatchStreamTask {
    api: EtcdApi,
    revisions: tokio_watch::Receiver<u64>,
    watchers: BTreeMap<i64, Watcher>,
    /// The next id to try for a watcher created without one (etcd counts from 0).
    next_id: i64,
    sender: mpsc::Sender<Result<PbWatchResponse, Status>>,
}

impl WatchStreamTask {
    async fn run(mut self, mut requests: Streaming<PbWatchRequest>) {
        let mut progress = tokio::time::interval(PROGRESS_NOTIFY_INTERVAL);
        progress.tick().await;
        loop {
            let outcome = tokio::select! {
                request = requests.message() => match request {
                    Ok(Some(request)) => self.handle(request).await,
                    Ok(None) => Err(Gone),
                    Err(error) => {
                        debug!(%error, "a watch stream ended");
                        Err(Gone)
                    }
                },
                changed = self.revisions.changed() => match changed {
                    Ok(()) => self.deliver_all().await,
                    Err(_) => Err(Gone),
                },
                _ = progress.tick() => self.notify_progress().await,
            };
            if outcome.is_err() {
                return;
            }
        }
    }

    async fn send(&self, response: PbWatchResponse) -> Result<(), Gone> {
        self.sender.send(Ok(response)).await.map_err(|_| Gone)
    }

    async fn handle(&mut self, request: PbWatchRequest) -> Result<(), Gone> {
        match request.request_union {
            Some(PbWatchRequestUnion::CreateRequest(create)) => {
                let watcher = Watcher {
                    range: convert::key_range(create.key, create.range_end),
                    next: u64::try_from(create.start_revision).unwrap_or(0),
                    prev_kv: create.prev_kv,
                    no_put: create.filters.contains(&FILTER_NO_PUT),
                    no_delete: create.filters.contains(&FILTER_NO_DELETE),
                    progress_notify: create.progress_notify,
                };
                self.create(create.watch_id, watcher).await
            }
            Some(PbWatchRequestUnion::CancelRequest(cancel)) => {
                if self.watchers.remove(&cancel.watch_id).is_some() {
                    self.send(PbWatchResponse {
                        header: self.api.current_header(),
                        watch_id: cancel.watch_id,
                        canceled: true,
                        ..PbWatchResponse::default()
                    })
                    .await?;
                }
                Ok(())
            }
            Some(PbWatchRequestUnion::ProgressRequest(_)) => {
                // Everything up to the current revision is delivered first, so the
                // progress revision is never ahead of an undelivered event.
                let revision = self.deliver_all_at().await?;
                self.send(PbWatchResponse {
                    header: self.api.header(revision),
                    watch_id: ALL_WATCHERS,
                    ..PbWatchResponse::default()
                })
                .await
            }
            None => Ok(()),
        }
    }

    async fn create(&mut self, asked_id: i64, mut watcher: Watcher) -> Result<(), Gone> {
        let id = if asked_id != 0 {
            asked_id
        } else {
            while self.watchers.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            self.next_id
        };
        if self.watchers.contains_key(&id) || id < 0 {
            return self
                .send(PbWatchResponse {
                    header: self.api.current_header(),
                    watch_id: id,
                    created: true,
                    canceled: true,
                    cancel_reason: "etcdserver: duplicate watch ID".to_owned(),
                    ..PbWatchResponse::default()
                })
                .await;
        }
        let current = self.api.service().kv.revision();
        if watcher.next == 0 {
            watcher.next = current + 1;
        }
        self.send(PbWatchResponse {
            header: self.api.header(current),
            watch_id: id,
            created: true,
            ..PbWatchResponse::default()
        })
        .await?;
        self.watchers.insert(id, watcher);
        self.deliver(id).await.map(drop)
    }

    async fn deliver_all(&mut self) -> Result<(), Gone> {
        self.deliver_all_at().await.map(drop)
    }

    /// Delivers every watcher's pending events; returns the revision all are now past.
    async fn deliver_all_at(&mut self) -> Result<u64, Gone> {
        let ids: Vec<i64> = self.watchers.keys().copied().collect();
        let mut synced = self.api.service().kv.revision();
        for id in ids {
            synced = synced.min(self.deliver(id).await?);
        }
        Ok(synced)
    }

    /// Delivers watcher `id`'s events up to the current revision; returns that revision.
    async fn deliver(&mut self, id: i64) -> Result<u64, Gone> {
        loop {
            let Some(watcher) = self.watchers.get_mut(&id) else {
                return Ok(self.api.service().kv.revision());
            };
            let (events, revision) = self.api.service().kv.with_read(|store| {
                let events = store.events_since(&watcher.range, watcher.next, EVENTS_PER_RESPONSE);
                (events, store.revision())
            });
            let events = match events {
                Ok(events) => events,
                Err(rejection) => {
                    self.cancel(id, &rejection).await?;
                    return Ok(revision);
                }
            };
            // Events come in whole revisions; an empty answer means this watcher has
            // seen everything up to `revision`, read under the same lock.
            let Some(last) = events.last().map(kv_store::Event::revision) else {
                watcher.next = watcher.next.max(revision + 1);
                return Ok(revision);
            };
            watcher.next = last + 1;
            let wanted: Vec<_> = events
                .iter()
                .filter(|event| match event.kind {
                    EventKind::Put => !watcher.no_put,
                    EventKind::Delete => !watcher.no_delete,
                })
                .map(|event| convert::event(event, watcher.prev_kv))
                .collect();
            if !wanted.is_empty() {
                self.send(PbWatchResponse {
                    header: self.api.header(revision),
                    watch_id: id,
                    events: wanted,
                    ..PbWatchResponse::default()
                })
                .await?;
            }
        }
    }

    /// Cancels a watcher whose history is gone (or that cannot be served), saying why.
    async fn cancel(&mut self, id: i64, rejection: &Rejection) -> Result<(), Gone> {
        self.watchers.remove(&id);
        let compact_revision = match rejection {
            Rejection::Compacted { compacted, .. } => to_i64(*compacted),
            _ => 0,
        };
        let reason = super::rejection_status(rejection).message().to_owned();
        self.send(PbWatchResponse {
            header: self.api.current_header(),
            watch_id: id,
            canceled: true,
            compact_revision,
            cancel_reason: reason,
            ..PbWatchResponse::default()
        })
        .await
    }

    /// A progress notification for every watcher that asked for them.
    async fn notify_progress(&mut self) -> Result<(), Gone> {
        let revision = self.deliver_all_at().await?;
        let ids: Vec<i64> = self
            .watchers
            .iter()
            .filter(|(_, watcher)| watcher.progress_notify)
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            self.send(PbWatchResponse {
                header: self.api.header(revision),
                watch_id: id,
                ..PbWatchResponse::default()
            })
            .await?;
        }
        Ok(())
    }
}
