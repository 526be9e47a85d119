//! Health endpoints with separate jobs: `/health/live` says the process serves HTTP (it never
//! looks at dependencies: restarting this process does not fix Redis), `/health/ready` says
//! this instance should get traffic (its dependency answers and it is not draining).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use axum::{Json, Router, extract::State, routing::get};
use serde::Serialize;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use utoipa::ToSchema;

use super::{ApiError, shutdown::Shutdown};
use crate::telemetry::metrics::DependencyGauge;

/// How long readiness waits for a dependency before calling it down.
pub const CHECK_DEADLINE: Duration = Duration::from_millis(500);
/// How often the background check refreshes `dependency_up`.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Something this service needs in order to be useful.
#[async_trait::async_trait]
pub trait Dependency: Send + Sync {
    /// The key in the readiness body, e.g. `redis` or `userService`.
    fn name(&self) -> &'static str;
    /// Whether it answers now; implementations bound their own wait.
    async fn is_up(&self) -> bool;
    /// Why it is down, for the log line when it goes down.
    async fn diagnose(&self) -> Option<String> {
        None
    }
    /// Facts about it for the readiness body, e.g. which Redis node is the primary.
    fn details(&self) -> BTreeMap<&'static str, String> {
        BTreeMap::new()
    }
}

#[derive(Clone)]
pub struct Health {
    service: &'static str,
    dependency: Arc<dyn Dependency>,
    gauge: DependencyGauge,
    shutdown: Shutdown,
}

#[derive(Serialize, ToSchema)]
pub struct HealthBody {
    #[schema(example = "healthy")]
    pub status: &'static str,
    #[schema(example = "api-gateway")]
    pub service: &'static str,
    pub version: &'static str,
    /// RFC 3339
    pub timestamp: String,
}

#[derive(Serialize, ToSchema)]
pub struct LiveBody {
    #[schema(example = "alive")]
    pub status: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct ReadyBody {
    #[schema(example = "ready")]
    pub status: &'static str,
    /// Dependency name -> `up`.
    pub dependencies: BTreeMap<&'static str, &'static str>,
    /// What the dependency reports about itself (user-service on Redis: `redisPrimary`,
    /// the `host:port` writes go to); absent when there is nothing to say.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(example = json!({"redisPrimary": "redis-0.redis-headless:6379"}))]
    pub details: BTreeMap<&'static str, String>,
}

impl Health {
    pub fn new(
        service: &'static str,
        dependency: Arc<dyn Dependency>,
        gauge: DependencyGauge,
        shutdown: Shutdown,
    ) -> Self {
        Self {
            service,
            dependency,
            gauge,
            shutdown,
        }
    }

    pub fn routes(self) -> Router {
        Router::new()
            .route("/health", get(health))
            .route("/health/live", get(live))
            .route("/health/ready", get(ready))
            .with_state(self)
    }

    async fn check(&self) -> bool {
        let up = tokio::time::timeout(CHECK_DEADLINE, self.dependency.is_up())
            .await
            .unwrap_or(false);
        self.gauge.set(up);
        up
    }

    /// Keeps `dependency_up` fresh even when nobody probes readiness, so an alert sees an
    /// outage without waiting for traffic. Ends with the server.
    pub fn spawn_background_check(&self) {
        let health = self.clone();
        tokio::spawn(async move {
            let mut ticks = health.shutdown.every(CHECK_INTERVAL);
            let mut last = None;
            while ticks.next().await {
                let up = health.check().await;
                if last.replace(up) != Some(up) {
                    let dependency = health.dependency.name();
                    if up {
                        tracing::info!(dependency, "dependency is up");
                    } else {
                        let reason = tokio::time::timeout(CHECK_DEADLINE * 4, health.dependency.diagnose()).await;
                        let reason = reason.ok().flatten().unwrap_or_else(|| "no answer".to_owned());
                        tracing::warn!(dependency, reason, "dependency is down");
                    }
                }
            }
        });
    }
}

pub async fn health(State(health): State<Health>) -> Json<HealthBody> {
    Json(HealthBody {
        status: "healthy",
        service: health.service,
        version: crate::VERSION,
        timestamp: OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default(),
    })
}

pub async fn live() -> Json<LiveBody> {
    Json(LiveBody { status: "alive" })
}

pub async fn ready(State(health): State<Health>) -> Result<Json<ReadyBody>, ApiError> {
    let name = health.dependency.name();
    if health.shutdown.is_draining() {
        return Err(ApiError::NotReady(BTreeMap::from([(
            "shutdown".to_owned(),
            "draining".to_owned(),
        )])));
    }
    if !health.check().await {
        return Err(ApiError::NotReady(BTreeMap::from([(
            name.to_owned(),
            "down".to_owned(),
        )])));
    }
    Ok(Json(ReadyBody {
        status: "ready",
        dependencies: BTreeMap::from([(name, "up")]),
        details: health.dependency.details(),
    }))
}
