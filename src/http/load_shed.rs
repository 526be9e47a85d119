//! Route layer: a bound on requests served at once. Past it, requests are refused at once with
//! 503 instead of queueing: a queue only adds latency when the server is already saturated,
//! and clients (or the gateway's retries) can go elsewhere. Only API routes get it, so health
//! and metrics keep answering under overload.

use std::sync::Arc;

use axum::{Router, extract::Request, response::IntoResponse};
use prometheus::IntCounter;
use tokio::sync::Semaphore;

use super::{
    ApiError,
    layer::{Around, AroundLayer, Inner, ResponseFuture},
};

#[derive(Clone)]
pub struct LoadShedder {
    permits: Arc<Semaphore>,
    shed_total: IntCounter,
}

impl LoadShedder {
    pub fn new(max_concurrent: usize, shed_total: IntCounter) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_concurrent)),
            shed_total,
        }
    }

    /// Applies the limit to every route of `router` (use before merging health routes). An
    /// [`Around`] layer, not `axum::middleware::from_fn`: the latter clones and boxes the
    /// route's service for every request (1.3 % of the gateway's CPU time in perf).
    pub fn apply<S: Clone + Send + Sync + 'static>(self, router: Router<S>) -> Router<S> {
        router.route_layer(AroundLayer(self))
    }
}

impl Around for LoadShedder {
    fn around<S: Inner>(&self, req: Request, inner: &mut S) -> ResponseFuture {
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let response = inner.call(req);
                Box::pin(async move {
                    let response = response.await;
                    drop(permit);
                    response
                })
            }
            Err(_) => {
                self.shed_total.inc();
                Box::pin(std::future::ready(Ok(ApiError::Overloaded.into_response())))
            }
        }
    }
}
