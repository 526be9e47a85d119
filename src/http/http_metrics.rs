//! Layer: the RED metrics of every request (`http_requests_total`,
//! `http_request_duration_seconds`, `http_requests_in_flight`), labelled by matched route and a
//! bounded method (`route_label.rs`).

use std::{sync::Arc, time::Instant};

use axum::extract::Request;

use super::{
    layer::{Around, Inner, ResponseFuture},
    route_label::{matched_route, method_label, route_label},
};
use crate::telemetry::metrics::HttpMetrics;

#[derive(Clone)]
pub struct RecordMetrics(pub Arc<HttpMetrics>);

impl Around for RecordMetrics {
    fn around<S: Inner>(&self, req: Request, inner: &mut S) -> ResponseFuture {
        let started = Instant::now();
        let metrics = self.0.clone();
        let method = method_label(req.method());
        let route = matched_route(req.extensions());
        // A guard, not inc/dec around the await: hyper drops this future when the client goes
        // away mid-request, and the gauge must still come down.
        let in_flight = InFlight::enter(metrics.in_flight.clone());
        let response = inner.call(req);
        Box::pin(async move {
            let response = response.await?;
            drop(in_flight);
            let route = route_label(route.as_ref());
            metrics
                .requests_total
                .with_label_values(&[method, route, response.status().as_str()])
                .inc();
            metrics
                .request_duration
                .with_label_values(&[method, route])
                .observe(started.elapsed().as_secs_f64());
            Ok(response)
        })
    }
}

/// Counts a request in `http_requests_in_flight` for as long as it lives.
struct InFlight(prometheus::IntGauge);

impl InFlight {
    fn enter(gauge: prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
