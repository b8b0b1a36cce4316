//! The KV service: Range, Put, DeleteRange, Txn and Compact.

use std::pin::Pin;

use etcd_client::proto::{
    PbCompactionRequest, PbCompactionResponse, PbDeleteRequest, PbDeleteResponse, PbKvService,
    PbPutRequest, PbPutResponse, PbRangeRequest, PbRangeResponse, PbRangeStreamResponse,
    PbTxnRequest, PbTxnResponse,
};
use kv_store::{Txn, TxnOp, TxnOpResponse, TxnResponse, Write};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::{EtcdApi, convert, unexpected_answer};

impl EtcdApi {
    /// Proposes a transaction and returns its answer and the revision after it.
    async fn apply_txn(&self, txn: Txn) -> Result<(TxnResponse, u64), Status> {
        match self.apply(Write::Txn(txn)).await? {
            kv_store::Response::Txn { revision, result } => Ok((result, revision)),
            other => Err(unexpected_answer(&other)),
        }
    }

    /// Proposes a single-operation transaction and returns that operation's answer.
    async fn apply_one(&self, op: TxnOp) -> Result<(TxnOpResponse, u64), Status> {
        let txn = Txn { compare: Vec::new(), success: vec![op], failure: Vec::new() };
        let (mut result, revision) = self.apply_txn(txn).await?;
        match result.responses.pop() {
            Some(response) if result.responses.is_empty() => Ok((response, revision)),
            _ => Err(Status::internal("etcdserver: a one-operation txn answered otherwise")),
        }
    }

    async fn range_checked(&self, request: PbRangeRequest) -> Result<PbRangeResponse, Status> {
        let serializable = request.serializable;
        let range = convert::range_request(request)?;
        self.read_barrier(serializable).await?;
        let (result, revision) =
            self.service().kv.with_read(|store| (store.range_at(&range), store.revision()));
        let result = result.map_err(|rejection| super::rejection_status(&rejection))?;
        Ok(convert::range_response(&result, self.header(revision)))
    }
}

type RangeStream = Pin<Box<dyn Stream<Item = Result<PbRangeStreamResponse, Status>> + Send>>;

#[tonic::async_trait]
impl PbKvService for EtcdApi {
    async fn range(
        &self,
        request: Request<PbRangeRequest>,
    ) -> Result<Response<PbRangeResponse>, Status> {
        let call = self.range_checked(request.into_inner());
        self.observed("etcd_range", call).await.map(Response::new)
    }

    type RangeStreamStream = RangeStream;

    /// One chunk: the whole range (etcd 3.7's streaming range, served unstreamed).
    async fn range_stream(
        &self,
        request: Request<PbRangeRequest>,
    ) -> Result<Response<RangeStream>, Status> {
        let response = self.range_checked(request.into_inner()).await?;
        let chunk = PbRangeStreamResponse { range_response: Some(response) };
        Ok(Response::new(Box::pin(tokio_stream::once(Ok(chunk)))))
    }

    async fn put(&self, request: Request<PbPutRequest>) -> Result<Response<PbPutResponse>, Status> {
        self.observed("etcd_put", self.put_checked(request.into_inner())).await.map(Response::new)
    }

    async fn delete_range(
        &self,
        request: Request<PbDeleteRequest>,
    ) -> Result<Response<PbDeleteResponse>, Status> {
        let call = self.delete_checked(request.into_inner());
        self.observed("etcd_delete_range", call).await.map(Response::new)
    }

    async fn txn(&self, request: Request<PbTxnRequest>) -> Result<Response<PbTxnResponse>, Status> {
        self.observed("etcd_txn", self.txn_checked(request.into_inner())).await.map(Response::new)
    }

    async fn compact(
        &self,
        request: Request<PbCompactionRequest>,
    ) -> Result<Response<PbCompactionResponse>, Status> {
        let call = self.compact_checked(request.into_inner());
        self.observed("etcd_compact", call).await.map(Response::new)
    }
}

impl EtcdApi {
    async fn put_checked(&self, request: PbPutRequest) -> Result<PbPutResponse, Status> {
        let put = convert::put_request(request)?;
        match self.apply_one(TxnOp::Put(put)).await? {
            (TxnOpResponse::Put(put), revision) => {
                Ok(convert::put_response(&put, self.header(revision)))
            }
            _ => Err(Status::internal("etcdserver: a put answered as another operation")),
        }
    }

    async fn delete_checked(&self, request: PbDeleteRequest) -> Result<PbDeleteResponse, Status> {
        let delete = convert::delete_request(request)?;
        match self.apply_one(TxnOp::DeleteRange(delete)).await? {
            (TxnOpResponse::DeleteRange(deleted), revision) => {
                Ok(convert::delete_response(&deleted, self.header(revision)))
            }
            _ => Err(Status::internal("etcdserver: a delete answered as another operation")),
        }
    }

    async fn txn_checked(&self, request: PbTxnRequest) -> Result<PbTxnResponse, Status> {
        let txn = convert::txn_request(request)?;
        let (result, revision) = self.apply_txn(txn).await?;
        Ok(convert::txn_response(&result, &self.header(revision)))
    }

    async fn compact_checked(
        &self,
        request: PbCompactionRequest,
    ) -> Result<PbCompactionResponse, Status> {
        let revision = u64::try_from(request.revision).map_err(|_| {
            Status::invalid_argument("etcdserver: the compaction revision must not be negative")
        })?;
        match self.apply(Write::Compact { revision }).await? {
            kv_store::Response::Compacted { .. } => {
                Ok(PbCompactionResponse { header: self.current_header() })
            }
            other => Err(unexpected_answer(&other)),
        }
    }
}
