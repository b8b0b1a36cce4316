//! The trait a node's request server calls for each client request, and its type-erased
//! form kept in [`crate::shared::Shared`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

use crate::handshake::Caller;

/// Serves client requests on a node.
pub trait RequestHandler: Send + Sync + 'static {
    /// Answers one request from `caller` (authenticated by its certificate).
    ///
    /// # Correctness
    ///
    /// Runs concurrently with other requests, each on its own task; it must bound its own
    /// waiting (the client gives up at its timeout).
    fn handle(&self, caller: Caller, request: Bytes) -> impl Future<Output = Bytes> + Send;
}

type BoxedResponse = Pin<Box<dyn Future<Output = Bytes> + Send>>;

/// A [`RequestHandler`] behind a pointer.
pub(crate) trait ErasedHandler: Send + Sync {
    fn call(self: Arc<Self>, caller: Caller, request: Bytes) -> BoxedResponse;
}

impl<H: RequestHandler> ErasedHandler for H {
    fn call(self: Arc<Self>, caller: Caller, request: Bytes) -> BoxedResponse {
        Box::pin(async move { self.handle(caller, request).await })
    }
}
