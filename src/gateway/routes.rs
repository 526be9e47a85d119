//! The public API: each handler forwards to the user-service. They exist one per operation
//! (rather than one catch-all proxy) so the OpenAPI document is generated from them.

use axum::{
    body::Body,
    extract::{FromRequest, MatchedPath, Request, State},
    http::{HeaderMap, Method, Response},
};

use super::Gateway;
use crate::{
    http::{
        ApiError, error::ErrorBody, json::BodyBytes, request_id::RequestId, route_label::route_label,
        trace_context::TraceContext,
    },
    users::{
        model::{CreateUserRequest, UpdateUserRequest, User},
        routes::{ListParams, UserPage},
    },
};

/// The public prefix the gateway strips before forwarding.
pub const PUBLIC_PREFIX: &str = "/api";

/// Everything the gateway forwards, extracted once.
pub struct ProxyRequest {
    method: Method,
    /// The gateway route template, for metrics (an `Arc<str>` inside: no copy per request).
    route: Option<MatchedPath>,
    path_and_query: String,
    headers: HeaderMap,
    body: bytes::Bytes,
    request_id: RequestId,
    trace: TraceContext,
}

impl<S: Send + Sync> FromRequest<S> for ProxyRequest {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let (mut parts, body) = req.into_parts();
        let route = parts.extensions.get::<MatchedPath>().cloned();
        // Set by the request id and access log layers; rebuilt from the headers if a test router skips it.
        let request_id = parts
            .extensions
            .remove::<RequestId>()
            .unwrap_or_else(|| RequestId::from_headers(&parts.headers));
        let trace = parts
            .extensions
            .remove::<TraceContext>()
            .unwrap_or_else(|| TraceContext::from_headers(&parts.headers));
        let path = parts.uri.path();
        let upstream_path = path.strip_prefix(PUBLIC_PREFIX).unwrap_or(path);
        let path_and_query = match parts.uri.query() {
            Some(query) => format!("{upstream_path}?{query}"),
            None => upstream_path.to_owned(),
        };
        let method = parts.method.clone();
        let headers = std::mem::take(&mut parts.headers);
        let BodyBytes(body) = BodyBytes::from_request(Request::from_parts(parts, body), state).await?;
        Ok(Self {
            method,
            route,
            path_and_query,
            headers,
            body,
            request_id,
            trace,
        })
    }
}

async fn forward(gateway: &Gateway, req: ProxyRequest) -> Result<Response<Body>, ApiError> {
    gateway
        .upstream
        .forward(super::upstream::Forward {
            method: req.method,
            path_and_query: &req.path_and_query,
            headers: &req.headers,
            body: req.body,
            route: route_label(req.route.as_ref()),
            request_id: req.request_id.header_value(),
            traceparent: req.trace.traceparent(),
        })
        .await
}

/// List users, oldest first, with cursor pagination.
#[utoipa::path(
    get, path = "/api/users", tag = "users", params(ListParams),
    responses(
        (status = 200, description = "One page of users", body = UserPage),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody),
        (status = 502, description = "user-service unreachable", body = ErrorBody),
        (status = 503, description = "Overloaded or storage unavailable", body = ErrorBody),
        (status = 504, description = "user-service did not answer in time", body = ErrorBody),
    )
)]
pub async fn list_users(State(gateway): State<Gateway>, req: ProxyRequest) -> Result<Response<Body>, ApiError> {
    forward(&gateway, req).await
}

/// Create a user.
#[utoipa::path(
    post, path = "/api/users", tag = "users", request_body = CreateUserRequest,
    responses(
        (status = 201, description = "Created", body = User, headers(("location" = String, description = "Path of the new user"))),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 409, description = "Email already registered", body = ErrorBody),
        (status = 413, description = "Body larger than 64 KiB", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 422, description = "Invalid fields, see details", body = ErrorBody),
        (status = 502, description = "user-service unreachable", body = ErrorBody),
        (status = 503, description = "Overloaded or storage unavailable", body = ErrorBody),
        (status = 504, description = "user-service did not answer in time", body = ErrorBody),
    )
)]
pub async fn create_user(State(gateway): State<Gateway>, req: ProxyRequest) -> Result<Response<Body>, ApiError> {
    forward(&gateway, req).await
}

/// Get one user.
#[utoipa::path(
    get, path = "/api/users/{id}", tag = "users",
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "The user", body = User),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 502, description = "user-service unreachable", body = ErrorBody),
        (status = 503, description = "Overloaded or storage unavailable", body = ErrorBody),
        (status = 504, description = "user-service did not answer in time", body = ErrorBody),
    )
)]
pub async fn get_user(State(gateway): State<Gateway>, req: ProxyRequest) -> Result<Response<Body>, ApiError> {
    forward(&gateway, req).await
}

/// Change some fields of a user.
#[utoipa::path(
    patch, path = "/api/users/{id}", tag = "users", request_body = UpdateUserRequest,
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "The updated user", body = User),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "Email already registered", body = ErrorBody),
        (status = 413, description = "Body larger than 64 KiB", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 422, description = "Invalid fields, see details", body = ErrorBody),
        (status = 502, description = "user-service unreachable", body = ErrorBody),
        (status = 503, description = "Overloaded or storage unavailable", body = ErrorBody),
        (status = 504, description = "user-service did not answer in time", body = ErrorBody),
    )
)]
pub async fn update_user(State(gateway): State<Gateway>, req: ProxyRequest) -> Result<Response<Body>, ApiError> {
    forward(&gateway, req).await
}

/// Delete a user.
#[utoipa::path(
    delete, path = "/api/users/{id}", tag = "users",
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 502, description = "user-service unreachable", body = ErrorBody),
        (status = 503, description = "Overloaded or storage unavailable", body = ErrorBody),
        (status = 504, description = "user-service did not answer in time", body = ErrorBody),
    )
)]
pub async fn delete_user(State(gateway): State<Gateway>, req: ProxyRequest) -> Result<Response<Body>, ApiError> {
    forward(&gateway, req).await
}
