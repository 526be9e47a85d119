//! Layer: reads every request body whole, bounded in size and time, before routing goes on.
//!
//! A response sent before the body was read (a 404, 405 or 415, or a DELETE that ignores its
//! body) makes hyper close the connection after it, and a pooling client such as our gateway
//! may already have reused that connection for another request, which then fails. Bodies are
//! bounded, so buffering costs at most the limit.
//!
//! A body that does not arrive within `REQUEST_TIMEOUT_MS` is the client's fault: 408, a 4xx,
//! so a slow client cannot burn the service's error budget. A body over the limit is read on
//! (and dropped) up to [`DRAIN_LIMIT_BYTES`] for at most [`DRAIN_TIME`] before the 413: a
//! client that writes its whole body before reading would otherwise get a connection reset
//! instead of the answer, because closing a socket with unread data sends a reset.

use std::time::Duration;

use axum::{
    body::{Body, Bytes, HttpBody as _},
    extract::Request,
    http::{HeaderValue, header::CONNECTION},
    response::{IntoResponse, Response},
};
use bytes::BytesMut;

use http_body_util::BodyExt;

use super::{
    ApiError,
    layer::{Around, Inner, ResponseFuture},
};

/// Request bodies larger than this are refused with 413 (a user is a few hundred bytes).
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;
/// How much of an oversized body is read and dropped so the client can read the 413.
pub const DRAIN_LIMIT_BYTES: usize = 1024 * 1024;
/// How long an oversized body is drained at most.
pub const DRAIN_TIME: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct ReadWholeBody {
    /// How long the client may take to send the body.
    pub timeout: Duration,
}

enum BodyError {
    /// Over the limit; the rest of the body, to drain.
    TooLarge(Body),
    /// The client went away or sent a broken encoding.
    Unreadable,
}

impl Around for ReadWholeBody {
    fn around<S: Inner>(&self, req: Request, inner: &mut S) -> ResponseFuture {
        // No body (GET, DELETE, HEAD: most requests): nothing to read or bound, so no clone
        // of the stack below, no timer and no second body.
        if req.body().is_end_stream() {
            return Box::pin(inner.call(req));
        }
        // The inner service is called only once the body is read, after this call returned:
        // take the instance that was made ready, leave a clone in its place.
        let ready = inner.clone();
        let mut ready = std::mem::replace(inner, ready);
        let timeout = self.timeout;
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let error = match tokio::time::timeout(timeout, read_bounded(body)).await {
                Ok(Ok(bytes)) => return ready.call(Request::from_parts(parts, Body::from(bytes))).await,
                Ok(Err(BodyError::TooLarge(rest))) => {
                    drain(rest).await;
                    ApiError::PayloadTooLarge
                }
                Ok(Err(BodyError::Unreadable)) => ApiError::BadRequest("could not read the request body".into()),
                Err(_) => {
                    tracing::info!(
                        timeout_ms = timeout.as_millis() as u64,
                        "request body not received in time"
                    );
                    ApiError::BodyTimeout
                }
            };
            let mut response: Response = error.into_response();
            // The rest of the body may still be on the wire; this connection cannot carry
            // another request.
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            Ok(response)
        })
    }
}

async fn read_bounded(mut body: Body) -> Result<Bytes, BodyError> {
    let mut buffer = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| BodyError::Unreadable)?.into_data() else {
            continue; // trailers
        };
        if buffer.len() + data.len() > BODY_LIMIT_BYTES {
            return Err(BodyError::TooLarge(body));
        }
        buffer.extend_from_slice(&data);
    }
    Ok(buffer.freeze())
}

/// Reads and drops what is left of an oversized body, within bounds.
async fn drain(mut rest: Body) {
    let drained = async {
        let mut dropped = 0;
        while dropped < DRAIN_LIMIT_BYTES {
            match rest.frame().await {
                Some(Ok(frame)) => dropped += frame.data_ref().map_or(0, Bytes::len),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drained).await;
}
