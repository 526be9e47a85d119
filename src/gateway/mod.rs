//! The api-gateway: the public `/api/users` API in front of the user-service.

use std::sync::Arc;

use axum::{Json, Router, routing::get};
use prometheus::Registry;

use crate::{
    config::GatewayConfig,
    http::{
        health::{Dependency, Health},
        middleware::{Observer, service_router},
        shutdown::Shutdown,
    },
    service_name::API_GATEWAY as SERVICE_NAME,
    telemetry::metrics::{self, DependencyGauge, HttpMetrics},
};

pub mod openapi;
mod pool;
pub mod routes;
pub mod upstream;

use upstream::{Upstream, UpstreamMetrics};

/// Handler state. axum clones the state for every request: behind an `Arc` that is one
/// reference count, not a clone of the hyper client, URI, budget and metric handles.
#[derive(Clone)]
pub struct Gateway {
    upstream: Arc<Upstream>,
}

/// A built gateway: its router, and what start-up and tests do with it.
pub struct GatewayApp {
    router: Router,
    registry: Registry,
    health: Health,
}

impl GatewayApp {
    /// The router to serve (cheap to clone: routes are shared).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Starts the background dependency check, which ends with the server.
    pub fn spawn_background_work(&self) {
        self.health.spawn_background_check();
    }
}

pub fn build(config: &GatewayConfig, shutdown: Shutdown) -> GatewayApp {
    let registry = metrics::new_registry();
    let http_metrics = HttpMetrics::register(&registry);
    let upstream = Upstream::new(&config.upstream, UpstreamMetrics::register(&registry));
    let dependency = UserServiceDependency {
        probe: upstream.clone(),
    };
    let gauge = DependencyGauge::register(&registry, "user-service");
    let health = Health::new(SERVICE_NAME, Arc::new(dependency), gauge, shutdown);

    let api = Router::new()
        .route("/api/users", get(routes::list_users).post(routes::create_user))
        .route(
            "/api/users/{id}",
            get(routes::get_user)
                .patch(routes::update_user)
                .delete(routes::delete_user),
        )
        .with_state(Gateway {
            upstream: Arc::new(upstream),
        });
    let openapi = Arc::new(openapi::document());
    let always_served = health.clone().routes().merge(metrics::route(registry.clone())).route(
        "/openapi.json",
        get(move || std::future::ready(Json(openapi.as_ref().clone()))),
    );
    let router = service_router(
        Observer {
            service: SERVICE_NAME,
            metrics: http_metrics,
        },
        config.server.max_concurrent_requests,
        config.server.request_timeout,
        api,
        always_served,
    );
    GatewayApp {
        router,
        registry,
        health,
    }
}

/// The gateway is ready when the user-service answers its liveness endpoint. Not its
/// readiness: if Redis is down, the gateway should still answer clients with a clear 503
/// rather than vanish from its Service.
struct UserServiceDependency {
    probe: Upstream,
}

#[async_trait::async_trait]
impl Dependency for UserServiceDependency {
    fn name(&self) -> &'static str {
        "userService"
    }

    async fn is_up(&self) -> bool {
        self.probe.is_live().await
    }
}
