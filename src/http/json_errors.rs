//! Layer: every error a client sees is JSON. Handlers and extractors already answer with
//! [`ApiError`]; this catches what the framework makes itself (405 above all) with an empty or
//! text body.

use axum::{
    http::header::CONTENT_TYPE,
    response::{IntoResponse, Response},
};

use super::ApiError;

pub fn json_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let mut json = ApiError::from_status(status).into_response();
    // Keep the original status (e.g. 408 stays 408 even though its body says timeout).
    *json.status_mut() = status;
    json
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("application/problem+json"))
}
