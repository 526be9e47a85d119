//! `ApiError` is the only place an error becomes a response: every failure a client can see
//! is JSON `{"error": "...", "details"?: {...}}`, and no internal detail (Redis messages, stack
//! traces) ever reaches the body; those go to the log.

use std::collections::BTreeMap;

use axum::{
    Json,
    extract::rejection::{JsonRejection, QueryRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

/// Field name -> what is wrong with it.
pub type FieldErrors = BTreeMap<String, String>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("validation failed")]
    Validation(FieldErrors),
    #[error("user not found")]
    UserNotFound,
    #[error("no route for {method} {path}")]
    RouteNotFound { method: String, path: String },
    /// A bare 404 from the framework, where the method and path are not at hand.
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("a user with this email already exists")]
    EmailTaken,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("expected request with `Content-Type: application/json`")]
    UnsupportedMediaType,
    #[error("service overloaded, retry later")]
    Overloaded,
    #[error("storage unavailable")]
    StoreUnavailable,
    #[error("upstream unavailable")]
    UpstreamUnavailable,
    #[error("upstream timed out")]
    UpstreamTimeout,
    #[error("request timed out")]
    Timeout,
    /// The client did not send its body in time: its fault, so a 4xx.
    #[error("request body not received in time")]
    BodyTimeout,
    #[error("not ready")]
    NotReady(FieldErrors),
    #[error("internal error")]
    Internal,
}

/// The body of every error response.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
    /// Per-field validation messages, or what a failed readiness check found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<BTreeMap<String, String>>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::UserNotFound | ApiError::RouteNotFound { .. } | ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::EmailTaken => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Overloaded | ApiError::StoreUnavailable | ApiError::NotReady(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            ApiError::UpstreamTimeout | ApiError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The error a bare status stands for, used to turn framework responses with empty bodies
    /// into JSON.
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => ApiError::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
            StatusCode::SERVICE_UNAVAILABLE => ApiError::Overloaded,
            StatusCode::GATEWAY_TIMEOUT => ApiError::Timeout,
            StatusCode::REQUEST_TIMEOUT => ApiError::BodyTimeout,
            status if status.is_client_error() => {
                ApiError::BadRequest(status.canonical_reason().unwrap_or("bad request").to_lowercase())
            }
            _ => ApiError::Internal,
        }
    }

    fn body(&self) -> ErrorBody {
        let error = self.to_string();
        let details = match self {
            ApiError::Validation(fields) | ApiError::NotReady(fields) => Some(fields.clone()),
            _ => None,
        };
        ErrorBody { error, details }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(self.body())).into_response();
        if matches!(self, ApiError::Overloaded) {
            // Tell well-behaved clients when to come back instead of hammering a full server.
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
            _ => ApiError::BadRequest(format!("malformed JSON body: {}", rejection.body_text())),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_errors_carry_details_and_others_do_not() {
        let mut fields = FieldErrors::new();
        fields.insert("email".into(), "is not a valid email address".into());
        let body = serde_json::to_value(ApiError::Validation(fields).body()).expect("json");
        assert_eq!(body["details"]["email"], "is not a valid email address");
        let body = serde_json::to_value(ApiError::StoreUnavailable.body()).expect("json");
        assert_eq!(body, serde_json::json!({"error": "storage unavailable"}));
    }
}
