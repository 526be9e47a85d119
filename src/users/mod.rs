//! The user-service: validation, storage and the `/users` API.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{Router, routing::get};
use prometheus::Registry;
use time::OffsetDateTime;

use crate::{
    config::{StoreConfig, UserServiceConfig},
    http::{
        health::{Dependency, Health},
        middleware::{Observer, service_router},
        shutdown::Shutdown,
    },
    service_name::USER_SERVICE as SERVICE_NAME,
    telemetry::metrics::{self, DependencyGauge, HttpMetrics},
};

pub mod model;
pub mod routes;
pub mod store;

use store::{MemoryStore, RedisStore, StoreError, UserStore, redis::RedisMetrics};

/// A built user-service: its router, and what start-up and tests do with it. The store is only
/// reachable through the trait, whichever backend it is.
pub struct UserServiceApp {
    router: Router,
    registry: Registry,
    store: Arc<dyn UserStore>,
    health: Health,
    /// Set once start-up work (`UserStore::prepare`, seeding) is done; readiness waits for it.
    started: Arc<AtomicBool>,
    shutdown: Shutdown,
}

impl UserServiceApp {
    /// The router to serve (cheap to clone: routes are shared).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn store(&self) -> Arc<dyn UserStore> {
        self.store.clone()
    }

    /// Starts what runs beside the server until it stops: the start-up work (retried until the
    /// store answers) and the background dependency check.
    pub fn spawn_background_work(&self, seed_sample_users: bool) {
        let (store, started, shutdown) = (self.store.clone(), self.started.clone(), self.shutdown.clone());
        tokio::spawn(async move { prepare_store(&started, store.as_ref(), seed_sample_users, &shutdown).await });
        self.health.spawn_background_check();
    }

    /// Does the start-up work now and returns when it is done (or the server stopped).
    pub async fn prepare(&self, seed_sample_users: bool) {
        prepare_store(&self.started, self.store.as_ref(), seed_sample_users, &self.shutdown).await;
    }
}

/// Options that shape the app but are not the store itself.
#[derive(Debug, Clone)]
pub struct AppSettings {
    pub max_concurrent_requests: usize,
    pub request_timeout: std::time::Duration,
}

impl From<&crate::config::ServerConfig> for AppSettings {
    fn from(server: &crate::config::ServerConfig) -> Self {
        Self {
            max_concurrent_requests: server.max_concurrent_requests,
            request_timeout: server.request_timeout,
        }
    }
}

/// Opens the configured store (lazily for Redis) and builds the app around it.
pub fn build(config: &UserServiceConfig, shutdown: Shutdown) -> anyhow::Result<UserServiceApp> {
    let registry = metrics::new_registry();
    let store: Arc<dyn UserStore> = match &config.store {
        StoreConfig::Memory => {
            tracing::warn!("no REDIS_URL or REDIS_HOST: using the in-memory store; data is lost on exit");
            Arc::new(MemoryStore::new())
        }
        StoreConfig::Redis(redis_config) => {
            tracing::info!(redis = %redis_config.redacted_url, "using the Redis store");
            Arc::new(RedisStore::connect(redis_config, RedisMetrics::register(&registry))?)
        }
    };
    Ok(build_with_store(
        store,
        registry,
        &AppSettings::from(&config.server),
        shutdown,
    ))
}

/// Builds the app on a given store and registry (tests use this for both stores).
pub fn build_with_store(
    store: Arc<dyn UserStore>,
    registry: Registry,
    settings: &AppSettings,
    shutdown: Shutdown,
) -> UserServiceApp {
    let http_metrics = HttpMetrics::register(&registry);
    let started = Arc::new(AtomicBool::new(false));
    let dependency = StoreDependency {
        store: store.clone(),
        started: started.clone(),
    };
    let gauge = DependencyGauge::register(&registry, store.kind());
    let health = Health::new(SERVICE_NAME, Arc::new(dependency), gauge, shutdown.clone());
    let users_total = metrics::gauge(&registry, "users_total", "Users in the store");
    spawn_users_total_refresh(store.clone(), users_total, shutdown.clone());

    let api = Router::new()
        .route("/users", get(routes::list_users).post(routes::create_user))
        .route(
            "/users/{id}",
            get(routes::get_user)
                .patch(routes::update_user)
                .delete(routes::delete_user),
        )
        .with_state(store.clone());
    let router = service_router(
        Observer {
            service: SERVICE_NAME,
            metrics: http_metrics,
        },
        settings.max_concurrent_requests,
        settings.request_timeout,
        api,
        health.clone().routes().merge(metrics::route(registry.clone())),
    );
    UserServiceApp {
        router,
        registry,
        store,
        health,
        started,
        shutdown,
    }
}

/// Readiness of the user-service: the store answers and start-up work is done.
struct StoreDependency {
    store: Arc<dyn UserStore>,
    started: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl Dependency for StoreDependency {
    fn name(&self) -> &'static str {
        self.store.kind()
    }

    async fn is_up(&self) -> bool {
        self.started.load(Ordering::Acquire) && self.store.ping().await.is_ok()
    }

    fn details(&self) -> std::collections::BTreeMap<&'static str, String> {
        self.store
            .primary_address()
            .map(|primary| ("redisPrimary", primary))
            .into_iter()
            .collect()
    }

    async fn diagnose(&self) -> Option<String> {
        match self.store.diagnose().await {
            Some(reason) => Some(reason),
            None if !self.started.load(Ordering::Acquire) => Some("start-up work (legacy migration) not done".into()),
            None => None,
        }
    }
}

/// Keeps `users_total` current without a store call per scrape.
fn spawn_users_total_refresh(store: Arc<dyn UserStore>, gauge: prometheus::IntGauge, shutdown: Shutdown) {
    let mut ticks = shutdown.every(crate::http::health::CHECK_INTERVAL);
    tokio::spawn(async move {
        while ticks.next().await {
            if let Ok(total) = store.count().await {
                gauge.set(i64::try_from(total).unwrap_or(i64::MAX));
            }
        }
    });
}

/// Start-up work that needs the store: its own preparation and optional sample users.
/// Retries until the store answers, so the service recovers by itself from starting before
/// Redis; readiness stays 503 meanwhile.
async fn prepare_store(started: &AtomicBool, store: &dyn UserStore, seed: bool, shutdown: &Shutdown) {
    let mut delay = std::time::Duration::from_millis(100);
    loop {
        match prepare_once(store, seed).await {
            Ok(()) => {
                started.store(true, Ordering::Release);
                return;
            }
            Err(err) => {
                tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "store not ready for start-up work; retrying");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.stopped() => return,
                }
                delay = (delay * 2).min(std::time::Duration::from_secs(2));
            }
        }
    }
}

async fn prepare_once(store: &dyn UserStore, seed: bool) -> Result<(), StoreError> {
    store.prepare().await?;
    if seed && store.count().await? == 0 {
        for (name, email, role) in SAMPLE_USERS {
            let new_user = model::NewUser {
                name: model::UserName::parse(name).map_err(StoreError::Unavailable)?,
                email: model::Email::parse(email).map_err(StoreError::Unavailable)?,
                role,
            };
            match store
                .create(&model::User::create(new_user, OffsetDateTime::now_utc()))
                .await
            {
                Ok(()) | Err(StoreError::EmailTaken) => {}
                Err(err) => return Err(err),
            }
        }
        tracing::info!(count = SAMPLE_USERS.len(), "seeded sample users");
    }
    Ok(())
}

const SAMPLE_USERS: [(&str, &str, model::Role); 3] = [
    ("Ada Lovelace", "ada@example.com", model::Role::Admin),
    ("Grace Hopper", "grace@example.com", model::Role::User),
    ("Alan Turing", "alan@example.com", model::Role::User),
];
