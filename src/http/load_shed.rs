//! Route layer: a bound on requests served at once. Past it, requests are refused at once with
//! 503 instead of queueing: a queue only adds latency when the server is already saturated,
//! and clients (or the gateway's retries) can go elsewhere. Only API routes get it, so health
//! and metrics keep answering under overload.

use std::sync::Arc;

use axum::{
    Router,
    extract::{Request, State},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use prometheus::IntCounter;
use tokio::sync::Semaphore;

use super::ApiError;

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

    /// Applies the limit to every route of `router` (use before merging health routes).
    pub fn apply<S: Clone + Send + Sync + 'static>(self, router: Router<S>) -> Router<S> {
        router.route_layer(middleware::from_fn_with_state(self, shed_load))
    }
}

async fn shed_load(State(shedder): State<LoadShedder>, req: Request, next: Next) -> Response {
    match shedder.permits.clone().try_acquire_owned() {
        Ok(_permit) => next.run(req).await,
        Err(_) => {
            shedder.shed_total.inc();
            ApiError::Overloaded.into_response()
        }
    }
}
