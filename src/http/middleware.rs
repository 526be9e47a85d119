//! The stack every server of this binary runs, composed in one place. Each layer is a file of
//! its own:
//!
//! | outermost first | file |
//! |---|---|
//! | request id in, `X-Request-ID` out | `request_id.rs` |
//! | trace context, span, access log | `access_log.rs` |
//! | RED metrics | `http_metrics.rs` |
//! | JSON for framework-made errors | `json_errors.rs` |
//! | reading the whole body (408 when too slow, 413 when too large) | `whole_body.rs` |
//! | the deadline of handling it | `timeout.rs` |
//! | a panic becomes a JSON 500 | tower-http's `CatchPanicLayer` |
//!
//! API routes also get `load_shed.rs`; health and metrics routes never do, so probes keep
//! answering under overload.

use std::{sync::Arc, time::Duration};

use axum::{Router, body::Body, response::IntoResponse};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;

use super::{
    ApiError, access_log::AccessLog, http_metrics::RecordMetrics, json_errors::json_errors, layer::AroundLayer,
    load_shed::LoadShedder, request_id::SetRequestId, timeout::Deadline, whole_body::ReadWholeBody,
};
use crate::telemetry::metrics::HttpMetrics;

/// What the observing layers need to know about the service they observe.
#[derive(Clone)]
pub struct Observer {
    pub service: &'static str,
    pub metrics: HttpMetrics,
}

/// A service's whole router: `api` behind the load shedder, `always_served` (health, metrics,
/// documents) never shed so probes keep answering under overload, a JSON 404 for anything
/// else, and the common stack around all of it.
pub fn service_router(
    observer: Observer,
    max_concurrent_requests: usize,
    request_timeout: Duration,
    api: Router,
    always_served: Router,
) -> Router {
    let router = LoadShedder::new(max_concurrent_requests, observer.metrics.shed_total.clone())
        .apply(api)
        .merge(always_served)
        .fallback(not_found);
    common_layers(router, observer, request_timeout)
}

/// Adds the common stack to a finished router. `Router::layer` wraps each route (not the
/// router as a whole), so the layers see the matched route template.
pub fn common_layers(router: Router, observer: Observer, request_timeout: Duration) -> Router {
    router.layer(
        ServiceBuilder::new()
            .layer(AroundLayer(SetRequestId))
            .layer(AroundLayer(AccessLog {
                service: observer.service,
            }))
            .layer(AroundLayer(RecordMetrics(Arc::new(observer.metrics))))
            .map_response(json_errors)
            .layer(AroundLayer(ReadWholeBody {
                timeout: request_timeout,
            }))
            .layer(AroundLayer(Deadline(request_timeout)))
            .map_response(|response: axum::http::Response<_>| response.map(Body::new))
            .layer(CatchPanicLayer::custom(|_panic| ApiError::Internal.into_response())),
    )
}

/// Fallback for unmatched paths: a JSON 404 naming what was asked for.
async fn not_found(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::RouteNotFound {
        method: method.to_string(),
        path: truncate_path(uri.path()),
    }
}

/// Echoed paths are bounded so a huge URL cannot make a huge error body.
fn truncate_path(path: &str) -> String {
    path.chars().take(200).collect()
}
