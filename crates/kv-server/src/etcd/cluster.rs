//! The Cluster and Maintenance services: enough for `etcdctl member list`, `endpoint
//! status`, `endpoint health`, `snapshot save` and `move-leader`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::PoisonError;

use etcd_client::proto::{
    PbAlarmRequest, PbAlarmResponse, PbClusterService, PbDefragmentRequest, PbDefragmentResponse,
    PbDowngradeRequest, PbDowngradeResponse, PbHashKvRequest, PbHashKvResponse, PbHashRequest,
    PbHashResponse, PbMaintenanceService, PbMember, PbMemberAddRequest, PbMemberAddResponse,
    PbMemberListRequest, PbMemberListResponse, PbMemberPromoteRequest, PbMemberPromoteResponse,
    PbMemberRemoveRequest, PbMemberRemoveResponse, PbMemberUpdateRequest, PbMemberUpdateResponse,
    PbMoveLeaderRequest, PbMoveLeaderResponse, PbSnapshotRequest, PbSnapshotResponse,
    PbStatusRequest, PbStatusResponse,
};
use raft_core::{NodeId, Role};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::{API_VERSION, EtcdApi, default_etcd_addr, to_i64};

/// The bytes of a snapshot sent per message.
const SNAPSHOT_CHUNK_BYTES: usize = 64 << 10;

/// etcd's alarm action that lists alarms.
const ALARM_GET: i32 = 0;

fn unimplemented(what: &str, instead: &str) -> Status {
    Status::unimplemented(format!("{what} is not implemented by this server; {instead}"))
}

impl EtcdApi {
    /// The member list as this node knows it: ids, the QUIC peer address, and the etcd
    /// address (this node's own; the others' by the default port rule).
    async fn member_list(&self) -> Result<Vec<PbMember>, Status> {
        self.check_serving()?;
        let status = self
            .service()
            .raft
            .status()
            .await
            .map_err(|error| super::server_status(self.service().raft_error(error)))?;
        let addresses =
            self.service().addresses.read().unwrap_or_else(PoisonError::into_inner).clone();
        let member = |id: NodeId, is_learner: bool| {
            let peer = addresses.get(&id).copied();
            let client = if id == self.id() {
                Some(self.inner.listen)
            } else {
                peer.and_then(default_etcd_addr)
            };
            PbMember {
                id: id.0,
                name: format!("node-{id}"),
                peer_ur_ls: peer.map(|addr| vec![url("quic", addr)]).unwrap_or_default(),
                client_ur_ls: client.map(|addr| vec![url("http", addr)]).unwrap_or_default(),
                is_learner,
            }
        };
        let voters = status.membership.voters.iter().map(|&id| member(id, false));
        let learners = status.membership.learners.iter().map(|&id| member(id, true));
        Ok(voters.chain(learners).collect())
    }
}

/// etcd's snapshot layout around `snapshot`: zeros up to a multiple of 512 bytes, then the
/// SHA-256 of everything before it (etcd's clients check that the length is a multiple
/// of 512 plus 32). kv-store's snapshot records its own length, so the padding is
/// ignored when it is read back.
fn with_etcd_trailer(snapshot: &[u8]) -> Vec<u8> {
    let padded = snapshot.len().div_ceil(512) * 512;
    let mut bytes = Vec::with_capacity(padded + 32);
    bytes.extend_from_slice(snapshot);
    bytes.resize(padded, 0);
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    bytes.extend_from_slice(digest.as_ref());
    bytes
}

fn url(scheme: &str, addr: SocketAddr) -> String {
    format!("{scheme}://{addr}")
}

#[tonic::async_trait]
impl PbClusterService for EtcdApi {
    async fn member_add(
        &self,
        _request: Request<PbMemberAddRequest>,
    ) -> Result<Response<PbMemberAddResponse>, Status> {
        Err(unimplemented("MemberAdd", "use `kvctl member add`"))
    }

    async fn member_remove(
        &self,
        _request: Request<PbMemberRemoveRequest>,
    ) -> Result<Response<PbMemberRemoveResponse>, Status> {
        Err(unimplemented("MemberRemove", "use `kvctl member remove`"))
    }

    async fn member_update(
        &self,
        _request: Request<PbMemberUpdateRequest>,
    ) -> Result<Response<PbMemberUpdateResponse>, Status> {
        Err(unimplemented("MemberUpdate", "members' addresses change with `kvctl member add`"))
    }

    async fn member_list(
        &self,
        _request: Request<PbMemberListRequest>,
    ) -> Result<Response<PbMemberListResponse>, Status> {
        let members = self.member_list().await?;
        Ok(Response::new(PbMemberListResponse { header: self.current_header(), members }))
    }

    async fn member_promote(
        &self,
        _request: Request<PbMemberPromoteRequest>,
    ) -> Result<Response<PbMemberPromoteResponse>, Status> {
        Err(unimplemented("MemberPromote", "use `kvctl member add` without --learner"))
    }
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<PbSnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl PbMaintenanceService for EtcdApi {
    /// No alarms are ever raised (the store has no space quota): listing answers none.
    async fn alarm(
        &self,
        request: Request<PbAlarmRequest>,
    ) -> Result<Response<PbAlarmResponse>, Status> {
        if request.into_inner().action != ALARM_GET {
            return Err(unimplemented("activating or deactivating alarms", "no alarms exist"));
        }
        Ok(Response::new(PbAlarmResponse { header: self.current_header(), alarms: Vec::new() }))
    }

    async fn status(
        &self,
        _request: Request<PbStatusRequest>,
    ) -> Result<Response<PbStatusResponse>, Status> {
        self.check_serving()?;
        let status = self
            .service()
            .raft
            .status()
            .await
            .map_err(|error| super::server_status(self.service().raft_error(error)))?;
        let data_bytes = self.service().kv.with_read(|store| store.data_bytes());
        let is_learner = status.membership.learners.contains(&status.node);
        Ok(Response::new(PbStatusResponse {
            header: self.current_header(),
            version: API_VERSION.to_owned(),
            db_size: to_i64(data_bytes),
            leader: status.leader.map_or(0, |leader| leader.0),
            raft_index: status.commit_index.0,
            raft_term: status.term.0,
            raft_applied_index: status.applied_index.0,
            errors: Vec::new(),
            db_size_in_use: to_i64(data_bytes),
            is_learner,
            storage_version: String::new(),
            db_size_quota: 0,
            downgrade_info: None,
        }))
    }

    async fn defragment(
        &self,
        _request: Request<PbDefragmentRequest>,
    ) -> Result<Response<PbDefragmentResponse>, Status> {
        Err(unimplemented("Defragment", "the log engines reclaim space on their own"))
    }

    async fn hash(
        &self,
        _request: Request<PbHashRequest>,
    ) -> Result<Response<PbHashResponse>, Status> {
        Err(unimplemented("Hash", "compare `kvctl status` across nodes"))
    }

    async fn hash_kv(
        &self,
        _request: Request<PbHashKvRequest>,
    ) -> Result<Response<PbHashKvResponse>, Status> {
        Err(unimplemented("HashKV", "compare `kvctl status` across nodes"))
    }

    type SnapshotStream = SnapshotStream;

    /// Streams this node's state machine snapshot (kv-store's format, not etcd's bolt
    /// database): a consistent copy of every key, its history and leases, laid out as
    /// etcd lays out its own so `etcdctl snapshot save` accepts it (see
    /// [`with_etcd_trailer`]).
    async fn snapshot(
        &self,
        _request: Request<PbSnapshotRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        self.read_barrier(false).await?;
        let bytes = self
            .service()
            .kv
            .with_read(|store| store.snapshot_bytes())
            .map_err(|error| Status::internal(format!("cannot take a snapshot: {error}")))?;
        let bytes = with_etcd_trailer(&bytes);
        let header = self.current_header();
        let total = bytes.len();
        let chunks: Vec<Result<PbSnapshotResponse, Status>> = bytes
            .chunks(SNAPSHOT_CHUNK_BYTES)
            .scan(total, |remaining, chunk| {
                *remaining -= chunk.len();
                Some(Ok(PbSnapshotResponse {
                    header,
                    remaining_bytes: *remaining as u64,
                    blob: chunk.to_vec(),
                    version: API_VERSION.to_owned(),
                }))
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    async fn move_leader(
        &self,
        request: Request<PbMoveLeaderRequest>,
    ) -> Result<Response<PbMoveLeaderResponse>, Status> {
        self.check_serving()?;
        let target = NodeId(request.into_inner().target_id);
        let status = self
            .service()
            .raft
            .status()
            .await
            .map_err(|error| super::server_status(self.service().raft_error(error)))?;
        if status.role != Role::Leader {
            return Err(Status::failed_precondition("etcdserver: not leader"));
        }
        self.service()
            .raft
            .transfer_leader(target)
            .await
            .map_err(|error| super::server_status(self.service().raft_error(error)))?;
        Ok(Response::new(PbMoveLeaderResponse { header: self.current_header() }))
    }

    async fn downgrade(
        &self,
        _request: Request<PbDowngradeRequest>,
    ) -> Result<Response<PbDowngradeResponse>, Status> {
        Err(unimplemented("Downgrade", "there is one storage version"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn a_snapshot_has_etcds_length_and_checksum_trailer() {
        for length in [0, 1, 511, 512, 513, 5000] {
            let snapshot = vec![7_u8; length];
            let bytes = with_etcd_trailer(&snapshot);
            assert_eq!(bytes.len() % 512, 32, "length {length}");
            let (body, checksum) = bytes.split_at(bytes.len() - 32);
            assert_eq!(&body[..length], snapshot.as_slice());
            assert!(body[length..].iter().all(|&byte| byte == 0));
            assert_eq!(checksum, ring::digest::digest(&ring::digest::SHA256, body).as_ref());
        }
    }
}
