//! The gateway's client for the user-service: pooled keep-alive connections (hyper-util), a
//! connect timeout, one deadline per request (retries included), and retries of idempotent
//! GETs on connect errors only, with backoff and a retry budget so retries cannot multiply
//! load on a struggling upstream.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri, header},
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use prometheus::{HistogramVec, IntCounter, Registry};
use tower::retry::budget::{Budget, TpsBudget};

use crate::{config::UpstreamConfig, http::ApiError, telemetry::metrics};

/// Largest upstream response the gateway relays (a 1000-user page is ~250 KB).
const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;
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
            retries: metrics::counter(registry, "upstream_retries_total", "GETs retried after a connect error"),
        }
    }
}

#[derive(Clone)]
pub struct Upstream {
    client: Client<HttpConnector, Full<Bytes>>,
    base: Uri,
    authority: HeaderValue,
    timeout: Duration,
    budget: Arc<TpsBudget>,
    metrics: UpstreamMetrics,
}

/// What the gateway knows about the request it forwards.
pub struct Forward<'a> {
    pub method: Method,
    /// Path and query on the upstream, e.g. `/users/42?x=1`.
    pub path_and_query: &'a str,
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
    /// Anything after the request may have been sent.
    Other(String),
}

impl Upstream {
    pub fn new(config: &UpstreamConfig, metrics: UpstreamMetrics) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        connector.set_keepalive(Some(Duration::from_secs(60)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(512)
            .build(connector);
        let authority = config
            .base_url
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            .unwrap_or_else(|| HeaderValue::from_static("localhost"));
        Self {
            client,
            base: config.base_url.clone(),
            authority,
            timeout: config.timeout,
            // Retries may add at most 20 % to the request rate, plus 10/s so a quiet
            // gateway can still retry.
            budget: Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2)),
            metrics,
        }
    }

    fn uri(&self, path_and_query: &str) -> Result<Uri, ApiError> {
        let mut parts = self.base.clone().into_parts();
        parts.path_and_query = Some(
            path_and_query
                .parse()
                .map_err(|_| ApiError::BadRequest("invalid request path".into()))?,
        );
        Uri::from_parts(parts).map_err(|_| ApiError::BadRequest("invalid request path".into()))
    }

    /// Sends the request and relays the upstream's status, headers and body.
    pub async fn forward(&self, forward: Forward<'_>) -> Result<Response<Body>, ApiError> {
        let started = Instant::now();
        let uri = self.uri(forward.path_and_query)?;
        let result = tokio::time::timeout(self.timeout, self.attempts(&forward, uri)).await;
        let (outcome, result) = match result {
            Ok(Ok(response)) => ("ok", Ok(response)),
            Ok(Err(AttemptError::Connect(detail))) => {
                tracing::warn!(error = %detail, "user-service unreachable");
                ("error", Err(ApiError::UpstreamUnavailable))
            }
            Ok(Err(AttemptError::Other(detail))) => {
                tracing::warn!(error = %detail, "user-service request failed");
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
            .with_label_values(&[forward.method.as_str(), forward.route, outcome])
            .observe(started.elapsed().as_secs_f64());
        result
    }

    /// Whether the user-service answers its liveness endpoint (used by readiness).
    pub async fn is_live(&self) -> bool {
        let Ok(uri) = self.uri("/health/live") else {
            return false;
        };
        let Ok(request) = Request::get(uri)
            .header(header::HOST, self.authority.clone())
            .body(Full::new(Bytes::new()))
        else {
            return false;
        };
        match self.client.request(request).await {
            Ok(response) => response.status().is_success(),
            Err(_) => false,
        }
    }

    async fn attempts(&self, forward: &Forward<'_>, uri: Uri) -> Result<Response<Body>, AttemptError> {
        self.budget.deposit();
        let retryable = forward.method == Method::GET;
        let mut backoff = FIRST_BACKOFF;
        let mut retries = 0;
        loop {
            match self.attempt(forward, uri.clone()).await {
                Err(AttemptError::Connect(detail)) if retryable && retries < MAX_RETRIES && self.budget.withdraw() => {
                    retries += 1;
                    self.metrics.retries.inc();
                    tracing::debug!(error = %detail, retry = retries, "retrying GET after connect error");
                    // Jitter spreads retries of many requests that failed together.
                    let jitter = rand::random_range(0..=backoff.as_millis() as u64 / 2);
                    tokio::time::sleep(backoff + Duration::from_millis(jitter)).await;
                    backoff *= 2;
                }
                other => return other,
            }
        }
    }

    async fn attempt(&self, forward: &Forward<'_>, uri: Uri) -> Result<Response<Body>, AttemptError> {
        let mut request = Request::builder()
            .method(forward.method.clone())
            .uri(uri)
            .body(Full::new(forward.body.clone()))
            .map_err(|err| AttemptError::Other(err.to_string()))?;
        let headers = request.headers_mut();
        copy_end_to_end_headers(forward.headers, headers);
        headers.insert(header::HOST, self.authority.clone());
        headers.insert(crate::http::request_id::HEADER, forward.request_id.clone());
        headers.insert(crate::http::trace_context::HEADER, forward.traceparent.clone());

        let response = self.client.request(request).await.map_err(|err| {
            if err.is_connect() {
                AttemptError::Connect(format!("{err:?}"))
            } else {
                AttemptError::Other(format!("{err:?}"))
            }
        })?;
        let (mut parts, body) = response.into_parts();
        let body = http_body_util::Limited::new(body, MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|err| AttemptError::Other(format!("reading upstream body: {err}")))?
            .to_bytes();
        let mut relayed = HeaderMap::with_capacity(parts.headers.len());
        copy_end_to_end_headers(&parts.headers, &mut relayed);
        // The gateway sets its own request id on the way out.
        relayed.remove(crate::http::request_id::HEADER);
        parts.headers = relayed;
        Ok(Response::from_parts(parts, Body::from(body)))
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
