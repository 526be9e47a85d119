//! The OpenAPI 3 document of the public API, generated from the gateway's handler
//! annotations and the model types, so it cannot drift from the code. It lives in the gateway,
//! which serves it: the gateway depends on it, never the other way round.

use utoipa::OpenApi;

use super::routes;
use crate::{
    http::{error::ErrorBody, health},
    users::{
        model::{CreateUserRequest, Role, UpdateUserRequest, User},
        routes::UserPage,
    },
};

#[derive(OpenApi)]
#[openapi(
    info(title = "users-platform API", description = "User management through the api-gateway."),
    paths(
        routes::list_users,
        routes::create_user,
        routes::get_user,
        routes::update_user,
        routes::delete_user,
        health_doc,
        live_doc,
        ready_doc,
        metrics_doc,
    ),
    components(schemas(User, Role, UserPage, CreateUserRequest, UpdateUserRequest, ErrorBody, health::HealthBody, health::LiveBody, health::ReadyBody)),
    tags((name = "users", description = "User management"), (name = "operations", description = "Health and metrics"))
)]
struct ApiDoc;

pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = crate::VERSION.to_owned();
    doc
}

// The health and metrics handlers are shared with the user-service and take its state, so
// they are documented through these stand-ins.

/// Service identity and time.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, description = "Process is up", body = health::HealthBody)))]
#[allow(dead_code)]
fn health_doc() {}

/// Liveness: the process serves HTTP. Never depends on other services.
#[utoipa::path(get, path = "/health/live", tag = "operations", responses((status = 200, description = "Alive", body = health::LiveBody)))]
#[allow(dead_code)]
fn live_doc() {}

/// Readiness: the user-service answers and this instance is not shutting down.
#[utoipa::path(
    get, path = "/health/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready for traffic", body = health::ReadyBody),
        (status = 503, description = "Not ready; details say why", body = ErrorBody),
    )
)]
#[allow(dead_code)]
fn ready_doc() {}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Metrics", body = String, content_type = "text/plain")))]
#[allow(dead_code)]
fn metrics_doc() {}
