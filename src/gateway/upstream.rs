//! The gateway's client for the user-service: pooled keep-alive connections ([`super::pool`]),
//! a connect timeout, one deadline per request (retries included), and retries only where the
//! failure proves the user-service never processed the request, with backoff and a retry
//! budget so retries cannot multiply load on a struggling upstream:
//!
//! - no connection could be made: any method, up to [`MAX_RETRIES`] times;
//! - the connection closed before any response byte (a replica stopping, a keep-alive
//!   connection closed under us): GET once more on another connection; POST, PATCH and
//!   DELETE only when hyper reports the request was never written.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::body::HttpBody as _;
use axum::{
    body::Body,
    http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri, header, uri::PathAndQuery},
};
use bytes::Bytes;
use http_body_util::BodyExt;
use prometheus::{HistogramVec, IntCounter, Registry};
use tower::retry::budget::{Budget, TpsBudget};
use tower_http::timeout::TimeoutBody;

use super::pool::{self, Pool, SendError};
use crate::{
    config::UpstreamConfig,
    http::{ApiError, route_label::method_label},
    telemetry::metrics,
};

/// Largest upstream response the gateway relays (a 1000-user page is ~250 KB).
const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;
/// Upstream responses up to this size are read whole before the gateway answers; larger ones
/// are streamed (see `Upstream::attempt`).
const BUFFERED_RESPONSE_BYTES: usize = 64 * 1024;
/// Retries after the first attempt, and the first backoff (doubled each time).
const MAX_RETRIES: u32 = 2;
const FIRST_BACKOFF: Duration = Duration::from_millis(25);

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1): never forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

#[derive(Clone)]
pub struct UpstreamMetrics {
    duration: HistogramVec,
    retries: IntCounter,
}

impl UpstreamMetrics {
    pub fn register(registry: &Registry) -> Self {
        Self {
            duration: metrics::histogram(
                registry,
                "upstream_request_duration_seconds",
                "Calls from the gateway to the user-service, by gateway route and outcome",
                &["method", "route", "outcome"],
            ),
            retries: metrics::counter(
                registry,
                "upstream_retries_total",
                "Upstream requests sent again after a failure that proves the first never reached the user-service",
            ),
        }
    }
}

#[derive(Clone)]
pub struct Upstream {
    pool: Pool,
    /// The `Host` header of every upstream request.
    authority: HeaderValue,
    timeout: Duration,
    budget: Arc<TpsBudget>,
    metrics: UpstreamMetrics,
}

/// What the gateway knows about the request it forwards.
pub struct Forward<'a> {
    pub method: Method,
    /// Path and query on the upstream, e.g. `/users/42?x=1`.
    pub path_and_query: PathAndQuery,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
    /// The gateway route template, for metrics.
    pub route: &'a str,
    pub request_id: &'a HeaderValue,
    pub traceparent: HeaderValue,
}

enum AttemptError {
    /// No connection could be made: the request never reached the upstream, retry is safe.
    Connect(String),
    /// The connection closed before any byte of a response; `written` says whether the
    /// request may have reached the user-service.
    ClosedBeforeResponse { written: bool, detail: String },
    /// Anything after the request may have been processed.
    Other(String),
}

impl AttemptError {
    fn from_hyper(err: &hyper::Error) -> Self {
        let detail = format!("{err:?}");
        if err.is_canceled() {
            // Dropped before it was written (the pooled connection was found closed).
            AttemptError::ClosedBeforeResponse { written: false, detail }
        } else if err.is_incomplete_message() || is_reset(err) {
            // EOF or a reset where the status line should have been.
            AttemptError::ClosedBeforeResponse { written: true, detail }
        } else {
            AttemptError::Other(detail)
        }
    }

    /// Whether sending `method` again cannot apply it twice.
    fn retry_is_safe(&self, method: &Method) -> bool {
        match self {
            AttemptError::Connect(_) | AttemptError::ClosedBeforeResponse { written: false, .. } => true,
            AttemptError::ClosedBeforeResponse { written: true, .. } => method == Method::GET,
            AttemptError::Other(_) => false,
        }
    }

    fn detail(&self) -> &str {
        match self {
            AttemptError::Connect(detail)
            | AttemptError::ClosedBeforeResponse { detail, .. }
            | AttemptError::Other(detail) => detail,
        }
    }
}

/// A reset or broken pipe on the connection, before a response was read.
fn is_reset(err: &hyper::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionAborted
            );
        }
        source = cause.source();
    }
    false
}

impl Upstream {
    pub fn new(config: &UpstreamConfig, metrics: UpstreamMetrics) -> Self {
        let base = &config.base_url;
        let host = base.host().unwrap_or("localhost");
        // `Host` is host and port only: the URL's user-info may hold a password.
        let authority = match base.port_u16() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let authority = HeaderValue::from_str(&authority).unwrap_or_else(|_| HeaderValue::from_static("localhost"));
        let address = pool::Address {
            // An IPv6 literal comes bracketed in a URL, and bare to the resolver.
            host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
            port: base.port_u16().unwrap_or(80),
        };
        Self {
            pool: Pool::new(address, config.connect_timeout),
            authority,
            timeout: config.timeout,
            // Retries may add at most 20 % to the request rate, plus 10/s so a quiet
            // gateway can still retry.
            budget: Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2)),
            metrics,
        }
    }

    /// Sends the request and relays the upstream's status, headers and body.
    pub async fn forward(&self, forward: Forward<'_>) -> Result<Response<Body>, ApiError> {
        let started = Instant::now();
        // Origin form: the connection already goes to the user-service.
        let uri = Uri::from(forward.path_and_query.clone());
        let result = tokio::time::timeout(self.timeout, self.attempts(&forward, uri)).await;
        let (outcome, result) = match result {
            Ok(Ok(response)) => ("ok", Ok(response)),
            Ok(Err(AttemptError::Connect(detail))) => {
                tracing::warn!(error = %detail, "user-service unreachable");
                ("error", Err(ApiError::UpstreamUnavailable))
            }
            Ok(Err(err)) => {
                tracing::warn!(error = %err.detail(), "user-service request failed");
                ("error", Err(ApiError::UpstreamUnavailable))
            }
            Err(_) => {
                tracing::warn!(
                    timeout_ms = self.timeout.as_millis() as u64,
                    "user-service did not answer in time"
                );
                ("timeout", Err(ApiError::UpstreamTimeout))
            }
        };
        self.metrics
            .duration
            .with_label_values(&[method_label(&forward.method), forward.route, outcome])
            .observe(started.elapsed().as_secs_f64());
        result
    }

    /// Whether the user-service answers its liveness endpoint (used by readiness).
    pub async fn is_live(&self) -> bool {
        let Ok(request) = Request::get("/health/live")
            .header(header::HOST, self.authority.clone())
            .body(Body::empty())
        else {
            return false;
        };
        let Ok((connection, response)) = self.pool.send(request).await else {
            return false;
        };
        let live = response.status().is_success();
        // Read to the end, so the connection can serve the next request.
        if response.into_body().collect().await.is_ok() {
            self.pool.give_back(connection);
        }
        live
    }

    async fn attempts(&self, forward: &Forward<'_>, uri: Uri) -> Result<Response<Body>, AttemptError> {
        // The upstream request's headers, built once and cloned per attempt (a copy of the
        // map's two vectors and a reference count per value) rather than filtered again.
        let mut headers = HeaderMap::with_capacity(forward.headers.len() + 3);
        copy_end_to_end_headers(forward.headers, &mut headers);
        headers.insert(header::HOST, self.authority.clone());
        headers.insert(crate::http::request_id::HEADER, forward.request_id.clone());
        headers.insert(crate::http::trace_context::HEADER, forward.traceparent.clone());
        self.budget.deposit();
        let mut backoff = FIRST_BACKOFF;
        let mut connect_retries = 0;
        let mut retried_closed = false;
        loop {
            let err = match self.attempt(forward, uri.clone(), headers.clone()).await {
                Err(err) if err.retry_is_safe(&forward.method) => err,
                other => return other,
            };
            match &err {
                // A connection closed under us: the next checkout gets another one (the
                // closed one left the pool), at once, and only once.
                AttemptError::ClosedBeforeResponse { .. } if !retried_closed && self.budget.withdraw() => {
                    retried_closed = true;
                }
                AttemptError::Connect(_) if connect_retries < MAX_RETRIES && self.budget.withdraw() => {
                    connect_retries += 1;
                    // Jitter spreads retries of many requests that failed together.
                    let jitter = rand::random_range(0..=backoff.as_millis() as u64 / 2);
                    tokio::time::sleep(backoff + Duration::from_millis(jitter)).await;
                    backoff *= 2;
                }
                _ => return Err(err),
            }
            self.metrics.retries.inc();
            tracing::debug!(error = %err.detail(), "retrying the upstream request");
        }
    }

    async fn attempt(
        &self,
        forward: &Forward<'_>,
        uri: Uri,
        headers: HeaderMap,
    ) -> Result<Response<Body>, AttemptError> {
        let mut request = Request::new(Body::from(forward.body.clone()));
        *request.method_mut() = forward.method.clone();
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;

        let (connection, response) = self.pool.send(request).await.map_err(|err| match err {
            SendError::Connect(err) => AttemptError::Connect(err.to_string()),
            SendError::Http(err) => AttemptError::from_hyper(&err),
        })?;
        let (mut parts, body) = response.into_parts();
        // hyper's size hint is the response's `Content-Length`, validated (a conflicting or
        // unparsable one is already an error), and none for a chunked body.
        let declared = body.size_hint().exact().and_then(|length| usize::try_from(length).ok());
        if declared.is_some_and(|length| length > MAX_RESPONSE_BYTES) {
            return Err(AttemptError::Other(format!(
                "upstream response of {} bytes is over the relay limit",
                declared.unwrap_or_default()
            )));
        }
        let mut relayed = HeaderMap::with_capacity(parts.headers.len());
        copy_end_to_end_headers(&parts.headers, &mut relayed);
        // The gateway sets its own request id on the way out.
        relayed.remove(crate::http::request_id::HEADER);
        let body = match declared {
            // A small body (a user, an error, a short page): read whole within the upstream
            // deadline, so a failure while reading it is still a JSON 502/504. It usually
            // arrives with the headers, so this costs no more than relaying it frame by frame.
            Some(length) if length <= BUFFERED_RESPONSE_BYTES => {
                let bytes = http_body_util::Limited::new(body, BUFFERED_RESPONSE_BYTES)
                    .collect()
                    .await
                    .map_err(|err| AttemptError::Other(format!("reading upstream body: {err}")))?
                    .to_bytes();
                self.pool.give_back(connection);
                Body::from(bytes)
            }
            // Anything larger (pages of hundreds of users) or of unknown length is relayed as
            // it arrives, so a request holds at most a few frames instead of the whole body
            // (docs/performance.md, "Full pages"): bounded in size, and aborted if the
            // user-service stalls for a whole upstream timeout. Its status and headers are
            // already sent by then, so a failure past this point can only cut the response
            // short, which the client sees against `Content-Length`.
            _ => {
                if let Some(length) = parts.headers.get(header::CONTENT_LENGTH) {
                    relayed.insert(header::CONTENT_LENGTH, length.clone());
                }
                self.pool.give_back(connection);
                Body::new(TimeoutBody::new(
                    self.timeout,
                    http_body_util::Limited::new(body, MAX_RESPONSE_BYTES),
                ))
            }
        };
        parts.headers = relayed;
        Ok(Response::from_parts(parts, body))
    }
}

/// Copies headers except hop-by-hop ones, those named in `Connection`, and `Host`.
fn copy_end_to_end_headers(from: &HeaderMap, to: &mut HeaderMap) {
    let named_in_connection: Vec<String> = from
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    for (name, value) in from {
        if HOP_BY_HOP.contains(name)
            || name == header::HOST
            || name == header::CONTENT_LENGTH
            || named_in_connection.iter().any(|n| n == name.as_str())
        {
            continue;
        }
        to.append(name.clone(), value.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_dropped() {
        let mut from = HeaderMap::new();
        from.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-secret-hop"));
        from.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        from.insert("x-secret-hop", HeaderValue::from_static("1"));
        from.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        from.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        from.insert(header::HOST, HeaderValue::from_static("public.example"));
        let mut to = HeaderMap::new();
        copy_end_to_end_headers(&from, &mut to);
        assert_eq!(to.len(), 1, "{to:?}");
        assert_eq!(to[header::CONTENT_TYPE], "application/json");
    }
}
