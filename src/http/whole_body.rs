//! Layer: reads every request body whole, bounded, before routing goes on.
//!
//! A response sent before the body was read (a 404, 405 or 415, or a DELETE that ignores its
//! body) makes hyper close the connection after it, and a pooling client such as our gateway
//! may already have reused that connection for another request, which then fails. Bodies are
//! bounded, so buffering costs at most the limit.

use axum::{
    body::Body,
    extract::Request,
    http::{HeaderValue, header::CONNECTION},
    response::{IntoResponse, Response},
};

use super::{
    ApiError,
    layer::{Around, Inner, ResponseFuture},
};

/// Request bodies larger than this are refused with 413 (a user is a few hundred bytes).
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct ReadWholeBody;

impl Around for ReadWholeBody {
    fn around<S: Inner>(&self, req: Request, inner: &mut S) -> ResponseFuture {
        // The inner service is called only once the body is read, after this call returned:
        // take the instance that was made ready, leave a clone in its place.
        let ready = inner.clone();
        let mut ready = std::mem::replace(inner, ready);
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            match axum::body::to_bytes(body, BODY_LIMIT_BYTES).await {
                Ok(bytes) => ready.call(Request::from_parts(parts, Body::from(bytes))).await,
                Err(err) => Ok(body_error(err)),
            }
        })
    }
}

/// The answer when the body cannot be read whole.
fn body_error(err: axum::Error) -> Response {
    let too_large = err.into_inner().is::<http_body_util::LengthLimitError>();
    let mut response = if too_large {
        ApiError::PayloadTooLarge
    } else {
        ApiError::BadRequest("could not read the request body".into())
    }
    .into_response();
    // The rest of the body is still on the wire; this connection cannot carry another request.
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}
