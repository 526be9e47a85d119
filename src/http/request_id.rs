//! Request ids, and the outermost layer: a client's `X-Request-ID` is kept when it is short and
//! printable (so it cannot inject log lines or bloat headers); otherwise a new UUID is made.
//! Every response carries it back.

use axum::{
    extract::Request,
    http::{HeaderMap, HeaderName, HeaderValue},
};

use super::layer::{Around, Inner, ResponseFuture};

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

const MAX_LEN: usize = 64;

/// The id of the request being served; in the request extensions.
#[derive(Debug, Clone)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The client's id if acceptable, else a fresh one.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        headers
            .get(HEADER)
            .filter(|value| is_acceptable(value.as_bytes()))
            .map(|value| Self(value.clone()))
            .unwrap_or_else(Self::generate)
    }

    /// A random (version 4) UUID from the thread-local CSPRNG: no `getrandom` system call and
    /// no intermediate `String` per request, unlike `Uuid::new_v4().to_string()`.
    pub fn generate() -> Self {
        let uuid = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let mut buffer = uuid::Uuid::encode_buffer();
        let id = uuid.hyphenated().encode_lower(&mut buffer);
        Self(HeaderValue::from_str(id).expect("a UUID is a valid header value"))
    }

    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        // Acceptable ids are visible ASCII, so this never falls back.
        self.0.to_str().unwrap_or("invalid")
    }
}

/// Layer: puts the request's [`RequestId`] in its extensions and its header on the response.
#[derive(Clone)]
pub struct SetRequestId;

impl Around for SetRequestId {
    fn around<S: Inner>(&self, mut req: Request, inner: &mut S) -> ResponseFuture {
        let id = RequestId::from_headers(req.headers());
        let header = id.header_value().clone();
        req.extensions_mut().insert(id);
        let response = inner.call(req);
        Box::pin(async move {
            let mut response = response.await?;
            response.headers_mut().insert(HEADER, header);
            Ok(response)
        })
    }
}

fn is_acceptable(bytes: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&bytes.len()) && bytes.iter().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, HeaderValue::from_bytes(value).expect("header"));
        headers
    }

    #[test]
    fn keeps_sane_ids_and_replaces_others() {
        assert_eq!(RequestId::from_headers(&with(b"abc-123")).as_str(), "abc-123");
        for bad in [&b"has space"[..], &[b'x'; 65][..], &b"tab\there"[..]] {
            let id = RequestId::from_headers(&with(bad));
            assert_eq!(id.as_str().len(), 36, "{bad:?} should be replaced by a UUID");
        }
        assert_eq!(RequestId::from_headers(&HeaderMap::new()).as_str().len(), 36);
    }
}
