//! The public API: each handler forwards to the user-service. They exist one per operation
//! (rather than one catch-all proxy) so the OpenAPI document is generated from them.

use axum::{
    body::Body,
    extract::{FromRequest, MatchedPath, Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, Method, Response, Uri, header, uri::PathAndQuery},
};
use bytes::Bytes;

use super::Gateway;
use crate::{
    http::{
        ApiError, error::ErrorBody, json::BodyBytes, peer::Peer, request_id::RequestId, route_label::route_label,
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
    /// Path and query on the upstream (the public prefix stripped).
    path_and_query: PathAndQuery,
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
        let path_and_query = upstream_path_and_query(&parts.uri)?;
        let method = parts.method.clone();
        let mut headers = std::mem::take(&mut parts.headers);
        add_forwarded_for(&mut headers, parts.extensions.remove::<Peer>());
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

/// The request's path without [`PUBLIC_PREFIX`], and its query: built once, in one buffer,
/// and parsed once (it was a `format!` here and a second parse in the upstream client).
fn upstream_path_and_query(uri: &Uri) -> Result<PathAndQuery, ApiError> {
    let path = uri.path();
    let path = path.strip_prefix(PUBLIC_PREFIX).unwrap_or(path);
    let query = uri.query();
    let mut joined = String::with_capacity(path.len() + query.map_or(0, |q| q.len() + 1));
    joined.push_str(path);
    if let Some(query) = query {
        joined.push('?');
        joined.push_str(query);
    }
    PathAndQuery::from_maybe_shared(Bytes::from(joined))
        .map_err(|_| ApiError::BadRequest("invalid request path".into()))
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Appends this hop's peer to `X-Forwarded-For` and `Forwarded` and says the client spoke
/// plain HTTP to the gateway. The gateway trusts no hop: what the client sent is kept (the
/// user-service logs it) but nothing decides on it; only the last entry, the gateway's own
/// peer (the ingress in a cluster), is known to be true. Behind a TLS-terminating ingress
/// the proto is still `http`: that is the hop the gateway saw.
fn add_forwarded_for(headers: &mut HeaderMap, peer: Option<Peer>) {
    let Some(peer) = peer else { return };
    append_element(headers, X_FORWARDED_FOR, peer.forwarded_for);
    append_element(headers, header::FORWARDED, peer.forwarded);
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
}

/// Sets `name` to its values so far, joined by `, `, then `element`. A value that is not
/// visible ASCII cannot be extended; it is replaced by `element` alone.
fn append_element(headers: &mut HeaderMap, name: HeaderName, element: HeaderValue) {
    let prior: Vec<&str> = match headers.get_all(&name).iter().next() {
        // The common case, a client that sent none: the shared value as it is.
        None => {
            headers.insert(name, element);
            return;
        }
        Some(_) => headers.get_all(&name).iter().filter_map(|v| v.to_str().ok()).collect(),
    };
    let mut joined = String::with_capacity(prior.iter().map(|p| p.len() + 2).sum::<usize>() + element.len());
    for value in prior {
        joined.push_str(value);
        joined.push_str(", ");
    }
    joined.push_str(element.to_str().unwrap_or_default());
    let value = HeaderValue::from_maybe_shared(Bytes::from(joined)).unwrap_or(element);
    headers.insert(name, value);
}

/// The user-service names its resources under its own paths (`/users/{id}`); clients of the
/// gateway reach them under [`PUBLIC_PREFIX`].
fn rewrite_location(response: &mut Response<Body>) {
    let Some(location) = response.headers().get(header::LOCATION) else {
        return;
    };
    let Some(path) = location
        .to_str()
        .ok()
        .filter(|l| l.starts_with('/') && !l.starts_with("//"))
    else {
        return;
    };
    if let Ok(public) = HeaderValue::from_str(&format!("{PUBLIC_PREFIX}{path}")) {
        response.headers_mut().insert(header::LOCATION, public);
    }
}

async fn forward(gateway: &Gateway, req: ProxyRequest) -> Result<Response<Body>, ApiError> {
    let mut response = gateway
        .upstream
        .forward(super::upstream::Forward {
            method: req.method,
            path_and_query: req.path_and_query,
            headers: &req.headers,
            body: req.body,
            route: route_label(req.route.as_ref()),
            request_id: req.request_id.header_value(),
            traceparent: req.trace.traceparent(),
        })
        .await?;
    rewrite_location(&mut response);
    Ok(response)
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
        (status = 201, description = "Created", body = User, headers(("location" = String, description = "Path of the new user on the gateway: /api/users/{id}"))),
        (status = 400, description = "Malformed JSON, including a repeated key", body = ErrorBody),
        (status = 408, description = "Body not received within the request deadline", body = ErrorBody),
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
        (status = 400, description = "Malformed JSON, including a repeated key", body = ErrorBody),
        (status = 408, description = "Body not received within the request deadline", body = ErrorBody),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_headers_keep_the_client_chain_and_append_the_peer() {
        let mut headers = HeaderMap::new();
        headers.insert(X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.9"));
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        add_forwarded_for(&mut headers, Some(Peer::new("10.0.0.7:4711".parse().expect("address"))));
        assert_eq!(headers[X_FORWARDED_FOR], "203.0.113.9, 10.0.0.7");
        assert_eq!(headers[X_FORWARDED_PROTO], "http");
        assert_eq!(headers[header::FORWARDED], "for=10.0.0.7;proto=http");
        add_forwarded_for(&mut headers, Some(Peer::new("[::1]:4711".parse().expect("address"))));
        assert_eq!(
            headers[header::FORWARDED],
            "for=10.0.0.7;proto=http, for=\"[::1]\";proto=http"
        );
    }
}
