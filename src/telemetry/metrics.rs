//! Prometheus metrics. Each app builds its own [`Registry`] (no global default registry), so
//! tests can run many apps in one process and `all` mode exports each service separately.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets in seconds: fine below 10 ms where this service lives, coarse above.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A fresh registry with the process collector and `build_info`.
pub fn new_registry() -> Registry {
    let registry = Registry::new();
    // Registration of these fixed collectors only fails on a name clash, which cannot happen
    // in an empty registry.
    registry
        .register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))
        .expect("process collector registers in an empty registry");
    let build_info = IntGaugeVec::new(
        Opts::new("build_info", "Build of the running binary; always 1"),
        &["version", "revision"],
    )
    .expect("valid metric");
    registered(&registry, build_info)
        .with_label_values(&[crate::VERSION, crate::REVISION])
        .set(1);
    registry
}

/// Adds `metric` to `registry` and hands it back. Every definition in this crate is a
/// constant registered once per fresh registry, so failing is a programming error.
fn registered<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registers once per registry");
    metric
}

/// Renders the registry in the text exposition format.
pub fn encode(registry: &Registry) -> String {
    let mut buffer = Vec::with_capacity(8 * 1024);
    // Encoding into a Vec cannot fail for well-formed metric families.
    let _ = TextEncoder::new().encode(&registry.gather(), &mut buffer);
    String::from_utf8(buffer).unwrap_or_default()
}

pub(crate) fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let metric = HistogramVec::new(HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()), labels)
        .expect("valid metric definition");
    registered(registry, metric)
}

pub(crate) fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    registered(registry, IntCounter::new(name, help).expect("valid metric definition"))
}

pub(crate) fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    registered(registry, IntGauge::new(name, help).expect("valid metric definition"))
}

/// RED metrics of one HTTP server.
#[derive(Clone)]
pub struct HttpMetrics {
    pub requests_total: IntCounterVec,
    pub request_duration: HistogramVec,
    pub in_flight: IntGauge,
    pub shed_total: IntCounter,
}

impl HttpMetrics {
    pub fn register(registry: &Registry) -> Self {
        let requests_total = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests served, by matched route and status",
            ),
            &["method", "route", "status"],
        )
        .expect("valid metric definition");
        Self {
            requests_total: registered(registry, requests_total),
            request_duration: histogram(
                registry,
                "http_request_duration_seconds",
                "Time from request received to response headers sent",
                &["method", "route"],
            ),
            in_flight: gauge(registry, "http_requests_in_flight", "Requests being served now"),
            shed_total: counter(
                registry,
                "http_requests_shed_total",
                "Requests rejected with 503 because the concurrency limit was reached",
            ),
        }
    }
}

/// `dependency_up{dependency}`: the last result of the background dependency check.
#[derive(Clone)]
pub struct DependencyGauge(IntGauge);

impl DependencyGauge {
    pub fn register(registry: &Registry, dependency: &str) -> Self {
        let vec = IntGaugeVec::new(
            Opts::new("dependency_up", "1 when the last check of the dependency succeeded"),
            &["dependency"],
        )
        .expect("valid metric definition");
        Self(registered(registry, vec).with_label_values(&[dependency]))
    }

    pub fn set(&self, up: bool) {
        self.0.set(i64::from(up));
    }
}

/// `GET /metrics` for a registry, with the exposition format's content type.
pub fn route(registry: Registry) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let body = encode(&registry);
            std::future::ready((
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                body,
            ))
        }),
    )
}
