//! The middleware stack every server of this binary uses, and the pieces it is made of.
//!
//! Outermost first: `observe` (request id, trace context, span, metrics, access log, JSON for
//! any error the framework produced, the request deadline, reading the whole body) → panic to 500.
//! API routes also get `shed_load`; health and metrics routes never do, so probes keep
//! answering under overload.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    extract::{MatchedPath, Request, State},
    http::{
        HeaderValue,
        header::{CONNECTION, CONTENT_TYPE},
    },
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use tokio::sync::Semaphore;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::{Instrument, field::Empty};

use super::{
    ApiError,
    request_id::{self, RequestId},
    trace_context::TraceContext,
};
use crate::telemetry::metrics::HttpMetrics;

/// Label for requests that matched no route, so scanners cannot explode label cardinality.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Request bodies larger than this are refused with 413 (a user is a few hundred bytes).
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct Observer {
    pub service: &'static str,
    pub metrics: HttpMetrics,
}

/// What `observe` needs; shared, since axum clones a middleware's state for every request.
struct ObserveState {
    observer: Observer,
    request_timeout: Duration,
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
    let router = LoadShedder::new(max_concurrent_requests, observer.metrics.clone())
        .apply(api)
        .merge(always_served)
        .fallback(not_found);
    common_layers(router, observer, request_timeout)
}

/// Adds the common stack to a finished router. `Router::layer` wraps every route separately
/// and each `from_fn` layer costs boxed service clones and futures per request, so the request
/// deadline and reading the whole body happen inside `observe` instead of in layers of their own.
pub fn common_layers(router: Router, observer: Observer, request_timeout: Duration) -> Router {
    let state = Arc::new(ObserveState {
        observer,
        request_timeout,
    });
    router
        .layer(CatchPanicLayer::custom(|_panic| ApiError::Internal.into_response()))
        .layer(middleware::from_fn_with_state(state, observe))
}

/// The answer when the request body cannot be read whole. `observe` reads every body before
/// routing: a response sent before the body was read (a 404, 405 or 415, or a DELETE that
/// ignores its body) makes hyper close the connection after it, and a pooling client such as
/// our gateway may already have reused that connection for another request, which then fails.
/// Bodies are bounded, so buffering costs at most the limit.
fn body_error(err: axum::Error) -> Response {
    let too_large = err.into_inner().is::<http_body_util::LengthLimitError>();
    let mut response = if too_large {
        ApiError::PayloadTooLarge
    } else {
        ApiError::BadRequest("could not read the request body".into())
    }
    .into_response();
    // The rest of the body is still on the wire; this connection cannot carry another request.
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

async fn observe(State(state): State<Arc<ObserveState>>, mut req: Request, next: Next) -> Response {
    let observer = &state.observer;
    let started = Instant::now();
    let request_id = RequestId::from_headers(req.headers());
    let trace = TraceContext::from_headers(req.headers());
    let method = req.method().clone();
    // MatchedPath holds an Arc<str>: cloning it allocates nothing.
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
    let span = tracing::info_span!(
        "request",
        service = observer.service,
        request_id = request_id.as_str(),
        trace_id = trace.trace_id(),
        method = method.as_str(),
        route = route,
        status = Empty,
        duration_ms = Empty,
    );
    req.extensions_mut().insert(request_id.clone());
    req.extensions_mut().insert(trace);

    let metrics = &observer.metrics;
    // A guard, not inc/dec around the await: hyper drops this future when the client goes
    // away mid-request, and the gauge must still come down.
    let in_flight = InFlight::enter(&metrics.in_flight);
    let handle = async move {
        // The whole body first: see `body_error`.
        let (parts, body) = req.into_parts();
        match axum::body::to_bytes(body, BODY_LIMIT_BYTES).await {
            Ok(bytes) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
            Err(err) => body_error(err),
        }
    };
    let mut response = match tokio::time::timeout(state.request_timeout, handle.instrument(span.clone())).await {
        Ok(response) => response,
        Err(_) => {
            span.in_scope(|| {
                tracing::warn!(
                    deadline_ms = state.request_timeout.as_millis() as u64,
                    "request exceeded its deadline"
                );
            });
            ApiError::Timeout.into_response()
        }
    };
    drop(in_flight);

    let status = response.status();
    if (status.is_client_error() || status.is_server_error()) && !is_json(&response) {
        // Framework-made errors (405 above all; unmatched paths have a JSON fallback) come
        // with empty or text bodies.
        response = ApiError::from_status(status).into_response();
        // Keep the original status (e.g. 408 stays 408 even though its body says timeout).
        *response.status_mut() = status;
    }
    response
        .headers_mut()
        .insert(request_id::HEADER, request_id.header_value().clone());

    let elapsed = started.elapsed();
    let status_label = status.as_str();
    metrics
        .requests_total
        .with_label_values(&[method.as_str(), route, status_label])
        .inc();
    metrics
        .request_duration
        .with_label_values(&[method.as_str(), route])
        .observe(elapsed.as_secs_f64());
    let duration_ms = (elapsed.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
    span.record("status", status.as_u16());
    span.record("duration_ms", duration_ms);
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::warn!("request completed");
        } else {
            tracing::info!("request completed");
        }
    });
    response
}

/// Counts a request in `http_requests_in_flight` for as long as it lives.
struct InFlight<'a>(&'a prometheus::IntGauge);

impl<'a> InFlight<'a> {
    fn enter(gauge: &'a prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("application/problem+json"))
}

/// A bound on requests served at once. Past it, requests are refused at once with 503 instead
/// of queueing: a queue only adds latency when the server is already saturated, and clients
/// (or the gateway's retries) can go elsewhere.
#[derive(Clone)]
struct LoadShedder {
    permits: Arc<Semaphore>,
    metrics: HttpMetrics,
}

impl LoadShedder {
    fn new(max_concurrent: usize, metrics: HttpMetrics) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_concurrent)),
            metrics,
        }
    }

    /// Applies the limit to every route of `router` (use before merging health routes).
    fn apply<S: Clone + Send + Sync + 'static>(self, router: Router<S>) -> Router<S> {
        router.route_layer(middleware::from_fn_with_state(self, shed_load))
    }
}

async fn shed_load(State(shedder): State<LoadShedder>, req: Request, next: Next) -> Response {
    match shedder.permits.clone().try_acquire_owned() {
        Ok(_permit) => next.run(req).await,
        Err(_) => {
            shedder.metrics.shed_total.inc();
            ApiError::Overloaded.into_response()
        }
    }
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
