//! Layer: the request span and the access log line. Every line logged while the request is
//! served carries the span's fields (`service`, `request_id`, `trace_id`, `method`, `route`);
//! the access line at the end adds `status` and `duration_ms`, at `warn` for 5xx. Probes and
//! scrapes (`/health*`, `/metrics`) that succeed are logged at `debug`: they come every few
//! seconds from kubelet, Prometheus and the gateway's own upstream check, and would bury the
//! requests people look for.

use std::time::Instant;

use axum::extract::Request;
use tracing::{Instrument, field::Empty};

use super::{
    layer::{Around, Inner, ResponseFuture},
    request_id::RequestId,
    route_label::{matched_route, route_label},
    trace_context::TraceContext,
};

#[derive(Clone)]
pub struct AccessLog {
    /// The span's `service` field: in `all` mode two services share one process.
    pub service: &'static str,
}

impl Around for AccessLog {
    fn around<S: Inner>(&self, mut req: Request, inner: &mut S) -> ResponseFuture {
        let started = Instant::now();
        let trace = TraceContext::from_headers(req.headers());
        let route = matched_route(req.extensions());
        let routine = is_probe_or_scrape(route_label(route.as_ref()));
        let span = {
            let request_id = req.extensions().get::<RequestId>().map_or("", RequestId::as_str);
            tracing::info_span!(
                "request",
                service = self.service,
                request_id,
                trace_id = trace.trace_id(),
                method = req.method().as_str(),
                route = route_label(route.as_ref()),
                status = Empty,
                duration_ms = Empty,
            )
        };
        // The gateway forwards it as `traceparent`.
        req.extensions_mut().insert(trace);
        let response = span.in_scope(|| inner.call(req)).instrument(span.clone());
        Box::pin(async move {
            let response = response.await?;
            let status = response.status();
            let duration_ms = (started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
            span.record("status", status.as_u16());
            span.record("duration_ms", duration_ms);
            span.in_scope(|| {
                if status.is_server_error() {
                    tracing::warn!("request completed");
                } else if routine {
                    tracing::debug!("request completed");
                } else {
                    tracing::info!("request completed");
                }
            });
            Ok(response)
        })
    }
}

/// Routes that machines call on a schedule.
fn is_probe_or_scrape(route: &str) -> bool {
    route == "/metrics" || route == "/health" || route.starts_with("/health/")
}
