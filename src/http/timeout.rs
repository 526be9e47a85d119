//! Layer: the deadline of a whole request inside this service (`REQUEST_TIMEOUT_MS`), answered
//! with a JSON 504 and logged in the request's span.

use std::time::Duration;

use axum::{extract::Request, response::IntoResponse};

use super::{
    ApiError,
    layer::{Around, Inner, ResponseFuture},
};

#[derive(Clone)]
pub struct Deadline(pub Duration);

impl Around for Deadline {
    fn around<S: Inner>(&self, req: Request, inner: &mut S) -> ResponseFuture {
        let deadline = self.0;
        let response = tokio::time::timeout(deadline, inner.call(req));
        Box::pin(async move {
            match response.await {
                Ok(response) => response,
                Err(_) => {
                    tracing::warn!(
                        deadline_ms = deadline.as_millis() as u64,
                        "request exceeded its deadline"
                    );
                    Ok(ApiError::Timeout.into_response())
                }
            }
        })
    }
}
